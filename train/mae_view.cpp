#include "train/mae_view.h"

#include <filesystem>
#include <fstream>
#include <stdexcept>

#include <torch/torch.h>

#include "data/image.h"
#include "data/rng.h"
#include "sam/mae.h"
#include "sam/sam_model.h"
#include "train/run_state.h"
#include "train/train_config.h"

namespace sam::train {

namespace fs = std::filesystem;

namespace {

// [3, S, S] float RGB 0-255 -> CV_8UC3 RGB.
cv::Mat to_mat(const torch::Tensor& chw) {
  auto hwc = chw.clamp(0, 255).round().to(torch::kUInt8).permute({1, 2, 0}).contiguous();
  cv::Mat m(static_cast<int>(hwc.size(0)), static_cast<int>(hwc.size(1)), CV_8UC3, hwc.data_ptr<uint8_t>());
  return m.clone();
}

}  // namespace

cv::Mat mae_reconstructions(const std::string& run_dir, const std::vector<std::string>& images,
                            const MaeViewOptions& o) {
  const fs::path dir(run_dir);
  std::ifstream in(dir / "config.json");
  if (!in) throw std::runtime_error(run_dir + ": no config.json (not a run directory)");
  const auto cfg = train_config_from_json(nlohmann::json::parse(in), (dir / "config.json").string());
  if (cfg.train.objective != "mae")
    throw std::runtime_error(run_dir + ": train.objective is " + cfg.train.objective + ", not mae");
  if (images.empty()) throw std::invalid_argument("no images to reconstruct");
  torch::manual_seed(cfg.train.seed);
  MaskedAutoencoder m(cfg.model, cfg.mae);
  if (fs::exists(dir / "checkpoint.pth")) {
    auto ck = load_run_checkpoint((dir / "checkpoint.pth").string());
    load_state_dict(*m, (o.raw || ck.ema.empty()) ? ck.model : ck.ema, run_dir);
  } else if (fs::exists(dir / "model.pth")) {
    load_state_dict(*m, mae_from_official(pth_read((dir / "model.pth").string())), (dir / "model.pth").string());
  } else {
    throw std::runtime_error(run_dir + ": no checkpoint.pth or model.pth");
  }
  m->eval();
  torch::NoGradGuard ng;
  const int S = cfg.model.img_size, gap = 4;
  cv::Mat grid(static_cast<int>(images.size()) * (S + gap) - gap, 4 * S + 3 * gap, CV_8UC3, cv::Scalar::all(255));
  const auto mean = m->pixel_mean, std = m->pixel_std;
  for (size_t i = 0; i < images.size(); ++i) {
    const cv::Mat rgb = data::image_read_rgb(images[i]);
    const int side = std::min(rgb.rows, rgb.cols);
    const cv::Mat square = data::resize_fast(rgb(cv::Rect((rgb.cols - side) / 2, (rgb.rows - side) / 2, side, side)), S, S);
    auto img = torch::from_blob(square.data, {S, S, 3}, torch::kUInt8).permute({2, 0, 1}).to(torch::kFloat).unsqueeze(0);
    const auto x = m->preprocess(img);
    const int64_t L = cfg.model.grid_size() * cfg.model.grid_size();
    const auto out = m->forward(x, mae_masking_noise({data::derive_seed({o.seed, static_cast<uint64_t>(i)})}, L));
    const auto pred = m->pred_to_pixels(x, out.pred);
    const auto recon = m->unpatchify(pred)[0] * std + mean;  // back to 0-255
    // 1 where the patch was hidden, as an image.
    const auto hidden = m->unpatchify(out.mask.unsqueeze(-1).expand({1, L, pred.size(2)}))[0];
    const auto orig = img[0];
    const auto masked = orig * (1 - hidden) + 127.0 * hidden;
    const auto pasted = orig * (1 - hidden) + recon * hidden;
    const int y = static_cast<int>(i) * (S + gap);
    int x0 = 0;
    for (const auto& panel : {orig, masked, recon, pasted}) {
      to_mat(panel).copyTo(grid(cv::Rect(x0, y, S, S)));
      x0 += S + gap;
    }
  }
  return grid;
}

torch::Tensor mae_masking_noise(const std::vector<uint64_t>& seeds, int64_t tokens) {
  auto noise = torch::empty({static_cast<int64_t>(seeds.size()), tokens}, torch::kFloat);
  for (size_t b = 0; b < seeds.size(); ++b) {
    data::Rng rng(seeds[b]);
    float* row = noise[static_cast<int64_t>(b)].data_ptr<float>();
    for (int64_t t = 0; t < tokens; ++t) row[t] = static_cast<float>(rng.uniform());
  }
  return noise;
}

}  // namespace sam::train
