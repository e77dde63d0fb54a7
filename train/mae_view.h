#pragma once
// A picture of what an MAE pre-training run (train.objective mae) has learnt: per image, the
// input, the patches the encoder saw, the decoder's reconstruction, and the reconstruction with
// the visible patches pasted back (MAE's figure 2 layout). `sam_train reconstruct` writes it.
// And the masking noise that training and the picture draw alike.
#include <cstdint>
#include <string>
#include <vector>

#include <opencv2/core.hpp>
#include <torch/types.h>

namespace sam::train {

struct MaeViewOptions {
  uint64_t seed = 0;     ///< the masking of image i is drawn from (seed, i)
  bool raw = false;      ///< the optimiser's weights instead of the weight average (train.ema_decay)
};

/// One row per image (centre square, resized to the run's input size S) of four S x S panels,
/// 4 px white gaps; RGB. With norm_pix_loss the predicted patches are put back in pixels with
/// each true patch's mean and variance (as MAE's visualisation does). Reads `run_dir`'s
/// config.json and its checkpoint.pth (else model.pth). Throws naming the run or image at fault.
/// MaskedAutoencoder::forward's noise [seeds, tokens] on the CPU: row b uniform in [0, 1) from
/// data::Rng(seeds[b]), so an image's masking depends on its seed alone (not on the batch, the rank
/// or the device).
torch::Tensor mae_masking_noise(const std::vector<uint64_t>& seeds, int64_t tokens);

cv::Mat mae_reconstructions(const std::string& run_dir, const std::vector<std::string>& images,
                            const MaeViewOptions& options = {});

}  // namespace sam::train
