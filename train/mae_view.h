#pragma once
// A picture of what an MAE pre-training run (train.objective mae) has learnt: per image, the
// input, the patches the encoder saw, the decoder's reconstruction, and the reconstruction with
// the visible patches pasted back (MAE's figure 2 layout). `sam_train reconstruct` writes it.
#include <cstdint>
#include <string>
#include <vector>

#include <opencv2/core.hpp>

namespace sam::train {

struct MaeViewOptions {
  uint64_t seed = 0;     ///< the masking of image i is drawn from (seed, i)
  bool raw = false;      ///< the optimiser's weights instead of the weight average (train.ema_decay)
};

/// One row per image (centre square, resized to the run's input size S) of four S x S panels,
/// 4 px white gaps; RGB. With norm_pix_loss the predicted patches are put back in pixels with
/// each true patch's mean and variance (as MAE's visualisation does). Reads `run_dir`'s
/// config.json and its checkpoint.pth (else model.pth). Throws naming the run or image at fault.
cv::Mat mae_reconstructions(const std::string& run_dir, const std::vector<std::string>& images,
                            const MaeViewOptions& options = {});

}  // namespace sam::train
