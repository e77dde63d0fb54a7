#include "engine/box_detector.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <stdexcept>

#include "sam/amg/amg_utils.h"

namespace sam::engine {

void DetectorOptions::validate() const {
  auto bad = [](const std::string& k, const std::string& why) {
    throw std::invalid_argument("semi.detector." + k + " " + why);
  };
  if (hidden < 1) bad("hidden", "must be >= 1");
  if (epochs < 0) bad("epochs", "must be >= 0");
  if (!(lr > 0)) bad("lr", "must be > 0");
  if (weight_decay < 0) bad("weight_decay", "must be >= 0");
  if (score_thresh < 0 || score_thresh > 1) bad("score_thresh", "must be in [0, 1]");
  if (nms_thresh <= 0 || nms_thresh > 1) bad("nms_thresh", "must be in (0, 1]");
  if (max_boxes < 1) bad("max_boxes", "must be >= 1");
  if (center_radius < 0) bad("center_radius", "must be >= 0");
}

DetectorTargets detector_targets(const std::vector<BoxXYXY>& boxes, int64_t grid, double img_size,
                                 double center_radius) {
  const double cell = img_size / double(grid);
  auto obj = torch::zeros({grid, grid}, torch::kFloat32);
  auto ltrb = torch::zeros({4, grid, grid}, torch::kFloat32);
  auto oa = obj.accessor<float, 2>();
  auto la = ltrb.accessor<float, 3>();
  std::vector<size_t> order(boxes.size());
  std::iota(order.begin(), order.end(), size_t(0));
  auto area = [&](size_t i) { return (boxes[i][2] - boxes[i][0]) * (boxes[i][3] - boxes[i][1]); };
  // Largest first, so that smaller boxes overwrite the cells they share with larger ones.
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return area(a) > area(b); });
  for (size_t k : order) {
    const auto& b = boxes[k];
    if (!(b[2] > b[0] && b[3] > b[1])) continue;
    const double bcx = 0.5 * (b[0] + b[2]), bcy = 0.5 * (b[1] + b[3]);
    const int64_t ci = std::clamp<int64_t>(int64_t(std::floor(bcy / cell)), 0, grid - 1);
    const int64_t cj = std::clamp<int64_t>(int64_t(std::floor(bcx / cell)), 0, grid - 1);
    for (int64_t i = 0; i < grid; ++i)
      for (int64_t j = 0; j < grid; ++j) {
        const double cx = (double(j) + 0.5) * cell, cy = (double(i) + 0.5) * cell;
        const bool inside = cx > b[0] && cx < b[2] && cy > b[1] && cy < b[3] &&
                            std::abs(cx - bcx) <= center_radius * cell &&
                            std::abs(cy - bcy) <= center_radius * cell;
        if (!inside && !(i == ci && j == cj)) continue;
        oa[i][j] = 1.f;
        const double d[4] = {cx - b[0], cy - b[1], b[2] - cx, b[3] - cy};
        for (int q = 0; q < 4; ++q) la[q][i][j] = float(std::log(std::max(d[q], 0.5) / cell));
      }
  }
  return {obj, ltrb};
}

BoxDetectorImpl::BoxDetectorImpl(int64_t embed_dim, int64_t hidden) {
  using torch::nn::Conv2dOptions;
  conv1 =
      register_module("conv1", torch::nn::Conv2d(Conv2dOptions(embed_dim, hidden, 3).padding(1)));
  conv2 = register_module("conv2", torch::nn::Conv2d(Conv2dOptions(hidden, hidden, 3).padding(1)));
  cls = register_module("cls", torch::nn::Conv2d(Conv2dOptions(hidden, 1, 1)));
  reg = register_module("reg", torch::nn::Conv2d(Conv2dOptions(hidden, 4, 1)));
  // Start from a low object prior (focal-loss practice) so that early training is not swamped by
  // the many background cells.
  torch::NoGradGuard ng;
  cls->bias.fill_(-std::log((1 - 0.05) / 0.05));
  reg->bias.fill_(1.0);
}

std::pair<torch::Tensor, torch::Tensor> BoxDetectorImpl::forward(const torch::Tensor& emb) {
  auto h = torch::relu(conv1->forward(emb));
  h = torch::relu(conv2->forward(h));
  return {cls->forward(h).squeeze(1), reg->forward(h)};
}

torch::Tensor detector_loss(const torch::Tensor& obj_logits, const torch::Tensor& ltrb,
                            const torch::Tensor& obj_target, const torch::Tensor& ltrb_target) {
  const double alpha = 0.25, gamma = 2.0;
  const auto p = torch::sigmoid(obj_logits);
  const auto ce = torch::binary_cross_entropy_with_logits(obj_logits, obj_target, {}, {},
                                                          torch::Reduction::None);
  const auto p_t = p * obj_target + (1 - p) * (1 - obj_target);
  const auto a_t = alpha * obj_target + (1 - alpha) * (1 - obj_target);
  const auto npos = obj_target.sum().clamp_min(1.0);
  const auto focal = (a_t * ce * (1 - p_t).pow(gamma)).sum() / npos;
  const auto l1 = ((ltrb - ltrb_target).abs() * obj_target.unsqueeze(1)).sum() / (4 * npos);
  return focal + l1;
}

std::vector<double> train_detector(BoxDetector& det, const std::vector<torch::Tensor>& embeddings,
                                   const std::vector<std::vector<BoxXYXY>>& boxes, double img_size,
                                   const DetectorOptions& o) {
  o.validate();
  if (embeddings.size() != boxes.size())
    throw std::invalid_argument("train_detector: embeddings and boxes differ in number");
  std::vector<double> losses;
  if (embeddings.empty()) return losses;
  torch::manual_seed(o.seed);
  const int64_t grid = embeddings[0].size(-1);
  std::vector<torch::Tensor> objs, regs;
  for (const auto& b : boxes) {
    auto t = detector_targets(b, grid, img_size, o.center_radius);
    objs.push_back(t.objectness);
    regs.push_back(t.ltrb);
  }
  const auto all_emb = torch::cat(embeddings, 0).detach();
  const auto all_obj = torch::stack(objs), all_reg = torch::stack(regs);
  torch::optim::AdamW opt(det->parameters(),
                          torch::optim::AdamWOptions(o.lr).weight_decay(o.weight_decay));
  det->train();
  const int64_t n = all_emb.size(0), bs = 8;
  std::mt19937_64 rng(o.seed);
  std::vector<int64_t> perm(static_cast<size_t>(n));
  std::iota(perm.begin(), perm.end(), int64_t(0));
  for (int e = 0; e < o.epochs; ++e) {
    std::shuffle(perm.begin(), perm.end(), rng);
    double sum = 0;
    int steps = 0;
    for (int64_t s = 0; s < n; s += bs) {
      const int64_t m = std::min(bs, n - s);
      auto idx = torch::from_blob(perm.data() + s, {m}, torch::kInt64).clone();
      auto [lo, lr] = det->forward(all_emb.index_select(0, idx));
      auto loss = detector_loss(lo, lr, all_obj.index_select(0, idx), all_reg.index_select(0, idx));
      opt.zero_grad();
      loss.backward();
      opt.step();
      sum += loss.item<double>();
      ++steps;
    }
    losses.push_back(sum / std::max(steps, 1));
  }
  det->eval();
  return losses;
}

std::vector<Detection> detect(BoxDetector& det, const torch::Tensor& embedding, double img_size,
                              double valid_w, double valid_h, const DetectorOptions& o) {
  torch::NoGradGuard ng;
  det->eval();
  auto [lo, lr] = det->forward(embedding);
  const auto score = torch::sigmoid(lo[0]).contiguous();
  const auto dist = lr[0].exp().contiguous();
  const int64_t grid = score.size(0);
  const double cell = img_size / double(grid);
  auto sa = score.accessor<float, 2>();
  auto da = dist.accessor<float, 3>();
  std::vector<amg::BoxF> fboxes;
  std::vector<float> scores;
  std::vector<Detection> cand;
  for (int64_t i = 0; i < grid; ++i)
    for (int64_t j = 0; j < grid; ++j) {
      if (sa[i][j] < o.score_thresh) continue;
      const double cx = (double(j) + 0.5) * cell, cy = (double(i) + 0.5) * cell;
      Detection d;
      d.box = {std::clamp(cx - da[0][i][j] * cell, 0.0, valid_w),
               std::clamp(cy - da[1][i][j] * cell, 0.0, valid_h),
               std::clamp(cx + da[2][i][j] * cell, 0.0, valid_w),
               std::clamp(cy + da[3][i][j] * cell, 0.0, valid_h)};
      if (!(d.box[2] - d.box[0] >= 1 && d.box[3] - d.box[1] >= 1)) continue;
      d.score = sa[i][j];
      cand.push_back(d);
      fboxes.push_back({float(d.box[0]), float(d.box[1]), float(d.box[2]), float(d.box[3])});
      scores.push_back(float(d.score));
    }
  std::vector<Detection> out;
  for (int64_t k : amg::batched_nms(fboxes, scores, o.nms_thresh)) {
    out.push_back(cand[size_t(k)]);
    if (int(out.size()) >= o.max_boxes) break;
  }
  return out;
}

void save_detector(BoxDetector& det, const std::string& path) {
  torch::serialize::OutputArchive ar;
  det->save(ar);
  ar.save_to(path);
}

void load_detector(BoxDetector& det, const std::string& path) {
  torch::serialize::InputArchive ar;
  ar.load_from(path);
  det->load(ar);
}

}  // namespace sam::engine
