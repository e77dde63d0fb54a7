#pragma once
// Zero-shot edge detection (paper 7.2 and appendix D.2) on BSDS500, scored with the BSDS
// boundary benchmark (eval/bsds.h):
//  1. The automatic generator with a 16 x 16 grid of foreground points (3 masks each, 768
//     candidates), no predicted-IoU or stability filter, one crop layer (the whole image), and
//     box NMS (0.7) removing redundant masks.
//  2. The kept masks' logits are recovered by decoding their points again on the image's
//     embedding (the generator returns binary masks only, and resets its predictor, so the image
//     is embedded a second time): of the three outputs, the one whose binary mask
//     has the highest IoU with the kept mask (an exact match in practice; the worst match is
//     reported).
//  3. Per kept mask: probability = sigmoid(logits) at the image size, 3x3 Sobel gradients
//     (replicated border), magnitude kept only within one pixel of the binary mask's boundary
//     (its 3x3 dilation minus its 3x3 erosion: our reading of the paper's "set to zero if they
//     do not intersect with the outer boundary pixels of a mask").
//  4. Per-pixel maximum over masks (the gradient direction of the winning mask kept), linear
//     normalisation to [0, 1], and edge NMS: a pixel is kept only when it is larger than the
//     bilinearly interpolated map one pixel ahead along its gradient direction and not smaller
//     than the one behind (Canny's non-maximum suppression, the paper's "edge NMS"; the strict
//     side keeps one pixel of a two-pixel plateau).
#include <cstdint>
#include <string>
#include <vector>

#include <torch/torch.h>
#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>

#include "sam/amg/generator.h"
#include "eval/bsds.h"
#include "eval/common.h"
#include "data/image_input.h"
#include "sam/predictor.h"
#include "sam/sam_model.h"

namespace sam::eval {

struct EdgesOptions {
  int points_per_side = 16;
  int points_per_batch = 64;
  double box_nms_thresh = 0.7;
  bool boundary_band = true;  ///< keep gradients only near each mask's boundary (step 3)
  bool edge_nms = true;       ///< thin with edge NMS (step 4)
  BsdsOptions bsds;
  int64_t max_samples = 0;  ///< first N images (sorted by id); 0 = all
  int workers = 1;
  data::ResizeMode resize = data::ResizeMode::kPilExact;
  std::string save_dir;  ///< when set, writes <id>.png (edge map x 255) there
  /// The generator settings of step 1.
  amg::AmgOptions amg_options() const;
};

/// Accumulates per-mask probability maps into one edge map (steps 3 and 4).
class EdgeAccumulator {
 public:
  EdgeAccumulator(int height, int width, bool boundary_band);
  /// prob: CV_32FC1 mask probabilities (H x W); mask: CV_8UC1 binary mask (may be empty: no band).
  void add(const cv::Mat& prob, const cv::Mat& mask);
  /// The normalised map in [0, 1] (CV_32FC1), thinned by edge NMS when `nms`.
  cv::Mat finish(bool nms) const;

 private:
  bool band_;
  cv::Mat mag_, gx_, gy_;
};

/// Canny-style non-maximum suppression of `mag` (CV_32FC1) along the direction (gx, gy).
cv::Mat edge_nms(const cv::Mat& mag, const cv::Mat& gx, const cv::Mat& gy);

/// The SAM edge map of one RGB image (CV_8UC3): CV_32FC1 in [0, 1]. `generator` must have been
/// built on `predictor` with o.amg_options(). Optional outputs: kept masks, worst logit-recovery
/// IoU.
cv::Mat sam_edge_map(amg::MaskGenerator& generator, sam::Predictor& predictor, const cv::Mat& rgb,
                     const EdgesOptions& o, int64_t* n_masks = nullptr,
                     double* worst_match = nullptr);

/// One BSDS image with its human boundary maps.
struct BsdsImage {
  std::string id, image;
  std::vector<std::string> boundaries;
};

/// Lists ROOT/images/<split>/<id>.jpg with ROOT/png_gt/boundaries/<split>/<id>_<k>.png (k in
/// numeric order), sorted by id. Throws std::invalid_argument naming a missing folder or an image
/// without boundary maps.
std::vector<BsdsImage> list_bsds(const std::string& root, const std::string& split);

/// Reads a 0/255 boundary PNG as CV_8UC1 (nonzero = boundary). Throws naming the file.
cv::Mat read_boundary_map(const std::string& path);

struct EdgesResult {
  BsdsSummary summary;
  int64_t images = 0;
  double mean_masks = 0;   ///< kept masks per image
  double worst_match = 1;  ///< lowest IoU of a recovered logit mask with its kept mask
  std::vector<std::string> ids;
  /// {"images", "mean_masks", "ods", "ois", "ap", "r50", "curve", "matching", "pipeline", ...}.
  nlohmann::json to_json() const;
};

/// How the benchmark matches pixels (printed and stored with every result).
const char* bsds_matching_description();

/// Runs the pipeline on every image of the split and scores it.
EdgesResult evaluate_edges(sam::Sam model, const std::string& bsds_root, const std::string& split,
                           const EdgesOptions& o, const torch::Device& device = torch::kCPU,
                           const ProgressFn& progress = nullptr);

}  // namespace sam::eval
