#pragma once
// The semi-automatic stage's class-agnostic box detector (paper section 4: a detector with one
// "object" class trained on the first stage's masks). Here a light head on SAM's frozen image
// embedding: per embedding cell an objectness logit and a box as distances (left, top, right,
// bottom) from the cell centre, FCOS-style. Boxes are in the model's input frame: the image
// resized so that its long side is S (img_size) pixels, x right, y down; cell (i, j) covers
// [j, j+1) x [i, i+1) times S/G.
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include <torch/torch.h>

namespace sam::engine {

struct DetectorOptions {
  int hidden = 128;  ///< channels of the two 3x3 conv layers
  int epochs = 60;   ///< passes over the training images
  double lr = 2e-3;  ///< AdamW
  double weight_decay = 1e-4;
  double score_thresh = 0.3;   ///< keep detections with objectness >= this
  double nms_thresh = 0.5;     ///< box IoU of NMS between detections
  int max_boxes = 50;          ///< at most this many detections per image
  double center_radius = 1.5;  ///< cells within this many cells of a box centre are positives
  uint64_t seed = 0;
  /// Throws std::invalid_argument naming the field that is out of range.
  void validate() const;
};

using BoxXYXY = std::array<double, 4>;  ///< x0, y0, x1, y1

/// Targets for one image: objectness [G, G] (0/1) and log-distances [4, G, G] (log(d / cell),
/// meaningful where objectness is 1). A box claims the cells whose centre lies inside it and
/// within center_radius cells of its centre, and always the cell holding its centre; where boxes
/// compete the smallest wins (small objects would otherwise lose every cell).
struct DetectorTargets {
  torch::Tensor objectness, ltrb;
};
DetectorTargets detector_targets(const std::vector<BoxXYXY>& boxes, int64_t grid, double img_size,
                                 double center_radius);

struct Detection {
  BoxXYXY box;  ///< input-frame pixels
  double score = 0;
};

struct BoxDetectorImpl : torch::nn::Module {
  BoxDetectorImpl(int64_t embed_dim, int64_t hidden);
  /// emb [B, D, G, G] -> objectness logits [B, G, G] and log-distances [B, 4, G, G].
  std::pair<torch::Tensor, torch::Tensor> forward(const torch::Tensor& emb);
  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr}, cls{nullptr}, reg{nullptr};
};
TORCH_MODULE(BoxDetector);

/// Objectness focal loss (normalised by the number of positives) + L1 on the positives'
/// log-distances, averaged over the batch. Targets as detector_targets, stacked [B, ...].
torch::Tensor detector_loss(const torch::Tensor& obj_logits, const torch::Tensor& ltrb,
                            const torch::Tensor& obj_target, const torch::Tensor& ltrb_target);

/// Trains `det` on embeddings [1, D, G, G] (one per image) with their boxes (input frame);
/// returns the mean loss of every epoch. Deterministic for a given options.seed.
std::vector<double> train_detector(BoxDetector& det, const std::vector<torch::Tensor>& embeddings,
                                   const std::vector<std::vector<BoxXYXY>>& boxes, double img_size,
                                   const DetectorOptions& o);

/// Detections on one embedding [1, D, G, G], in the input frame, clipped to [0, valid_w] x
/// [0, valid_h] (the resized image inside the padded square), after score threshold and NMS, best
/// first.
std::vector<Detection> detect(BoxDetector& det, const torch::Tensor& embedding, double img_size,
                              double valid_w, double valid_h, const DetectorOptions& o);

/// Weights as a torch::save archive; load needs a module of the same shape.
void save_detector(BoxDetector& det, const std::string& path);
void load_detector(BoxDetector& det, const std::string& path);

}  // namespace sam::engine
