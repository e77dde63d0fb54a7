#pragma once
// ONNX export of a SAM model of any architecture this project builds (docs/INTEROP.md):
//  - the prompt encoder, mask decoder and mask post-processing with the signature and semantics of
//    Meta's SamOnnxModel (segment_anything/utils/onnx.py, SAM_SPEC 3.3), the file CVAT, Label
//    Studio's backend, X-AnyLabeling and Meta's demo load; optionally with the prompt batch as a
//    dynamic axis too;
//  - the image encoder (preprocessed [batch, 3, S, S] in, embedding out), as Meta's
//    scripts/export_onnx_model.py writes it.
// The graphs are written node by node with the onnx library's protobuf classes (not traced), and
// every file is checked with onnx's checker and strict shape inference before this returns.
#include <cstdint>
#include <string>

#include "sam/sam_model.h"

namespace sam::onnx_export {

/// Options of the decoder file; the first four are Meta's export flags of the same names.
struct DecoderOptions {
  bool return_single_mask = false;    ///< only the best mask (by the reference's point-count rule)
  bool use_stability_score = false;   ///< scores = stability of the low-res masks (offset 1.0)
  bool return_extra_metrics = false;  ///< outputs masks, scores, stability_scores, areas, low_res_masks
  bool gelu_approximate = false;      ///< tanh GELU in the mask downscaler and the upscaler (Meta's flag)
  /// The prompts' batch as a dynamic axis: point_coords [B, N, 2], point_labels [B, N],
  /// mask_input [B, 1, 4G, 4G], has_mask_input [B]; outputs lead with B. One image embedding
  /// [1, C, G, G] is shared by all B prompts. Off: Meta's signature, B = 1.
  bool batch_prompts = false;
  int opset = 17;  ///< 13..17 (LayerNormalization from 17, decomposed below)
};

/// Options of the image-encoder file.
struct EncoderOptions {
  bool gelu_approximate = false;  ///< tanh GELU in the ViT's MLPs
  int opset = 17;
};

/// Where the weights go. Protobuf cannot hold a file of 2 GiB or more (ViT-H's encoder is 2.5 GB):
/// kAuto writes tensors of 1 KiB and more to `<file>.data` beside the model then, inline otherwise.
enum class ExternalData { kAuto, kAlways, kNever };

/// What a file holds.
struct ExportSummary {
  int64_t nodes = 0;
  int64_t initializers = 0;
  int64_t weight_bytes = 0;
  bool external_data = false;
  int opset = 0;
};

/// Writes the decoder of `model` (eval mode, CPU float32) to `path`. Throws std::invalid_argument
/// for bad options and std::runtime_error when the file cannot be written or fails onnx's checks.
ExportSummary export_decoder(Sam& model, const DecoderOptions& options, const std::string& path,
                             ExternalData external = ExternalData::kAuto);
/// Writes the image encoder of `model` to `path` (input "x" [batch, 3, S, S], output
/// "image_embeddings" [batch, C, G, G]).
ExportSummary export_encoder(Sam& model, const EncoderOptions& options, const std::string& path,
                             ExternalData external = ExternalData::kAuto);

/// The lowest and highest opset the exporter writes.
constexpr int kMinOpset = 13;
constexpr int kMaxOpset = 17;

}  // namespace sam::onnx_export
