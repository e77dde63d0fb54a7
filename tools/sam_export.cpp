// sam_export: a SAM model of any architecture as files other tools load (docs/INTEROP.md).
//   sam_export onnx --model ARCH --checkpoint FILE --decoder OUT.onnx [--encoder OUT.onnx] [options]
// The decoder has Meta's SamOnnxModel signature (CVAT, Label Studio, X-AnyLabeling, Meta's demo);
// the encoder takes the preprocessed image [batch, 3, S, S] and gives the embedding.
#include <CLI/CLI.hpp>

#include <iomanip>
#include <sstream>

#include "sam/onnx/onnx_export.h"
#include "data/log.h"
#include "tools/tool_common.h"

namespace {

namespace ox = sam::onnx_export;

void report(const char* what, const std::string& path, const ox::ExportSummary& s) {
  std::ostringstream line;
  line << what << ": " << path << " (" << s.nodes << " nodes, " << s.initializers << " initializers, "
       << std::fixed << std::setprecision(1) << s.weight_bytes / 1048576.0 << " MiB of weights"
       << (s.external_data ? " in " + path + ".data" : std::string()) << ", opset " << s.opset << ")";
  sam::log::info(line.str());
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Export a SAM model (any architecture) for other tools"};
  sam::tools::add_log_level_option(app);
  app.require_subcommand(1);
  auto* onnx = app.add_subcommand("onnx", "ONNX files: the decoder with Meta's signature, the image encoder");
  std::string model_name, checkpoint, decoder, encoder, external = "auto";
  ox::DecoderOptions dec;
  ox::EncoderOptions enc;
  int opset = 17;
  int threads = 0;
  onnx->add_option("--model", model_name, "vit_b, vit_l, vit_h or an architecture .json/.yaml")->required();
  onnx->add_option("--checkpoint", checkpoint, "weights (.pth, torch.save format; `sam_train export` writes one)")
      ->required();
  onnx->add_option("--decoder", decoder, "the prompt encoder, mask decoder and post-processing (.onnx)");
  onnx->add_option("--encoder", encoder, "the image encoder (.onnx)");
  onnx->add_flag("--return-single-mask", dec.return_single_mask,
                 "the decoder returns only the best mask (Meta's rule: by the number of points)");
  onnx->add_flag("--use-stability-score", dec.use_stability_score,
                 "the decoder's scores are the low-res masks' stability scores (offset 1.0)");
  onnx->add_flag("--return-extra-metrics", dec.return_extra_metrics,
                 "the decoder returns masks, iou_predictions, stability_scores, areas, low_res_masks");
  onnx->add_flag("--gelu-approximate", dec.gelu_approximate, "tanh GELU (for runtimes without Erf)");
  onnx->add_flag("--batch-prompts", dec.batch_prompts,
                 "the prompts' batch is a dynamic axis (point_coords [B, N, 2], ...) sharing one embedding");
  onnx->add_option("--opset", opset, "ONNX opset")->check(CLI::Range(ox::kMinOpset, ox::kMaxOpset));
  onnx->add_option("--external-data", external,
                   "weights in <file>.data: auto (only when the file would reach 2 GiB), always, never")
      ->check(CLI::IsMember({"auto", "always", "never"}));
  onnx->add_option("--threads", threads, "CPU threads (0 = all cores)");
  CLI11_PARSE(app, argc, argv);

  return sam::tools::run_main("sam_export", [&]() {
    if (decoder.empty() && encoder.empty()) throw std::invalid_argument("give --decoder and/or --encoder");
    sam::tools::set_threads(threads);
    sam::Sam model(sam::model_config_resolve(model_name));
    sam::load_checkpoint(model, checkpoint);
    dec.opset = enc.opset = opset;
    enc.gelu_approximate = dec.gelu_approximate;
    const auto ext = external == "always" ? ox::ExternalData::kAlways
                     : external == "never" ? ox::ExternalData::kNever
                                           : ox::ExternalData::kAuto;
    if (!decoder.empty()) report("decoder", decoder, ox::export_decoder(model, dec, decoder, ext));
    if (!encoder.empty()) report("encoder", encoder, ox::export_encoder(model, enc, encoder, ext));
    return 0;
  });
}
