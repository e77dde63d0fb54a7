#include "sam/amg/generator.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>
#include <stdexcept>
#include <string>

#include "sam/amg/mask_encoder.h"

namespace sam::amg {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

double cpu_now() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

[[noreturn]] void bad_option(const std::string& key, const std::string& why) {
  throw std::invalid_argument("generator option " + key + ": " + why);
}

}  // namespace

void AmgOptions::validate() const {
  const bool have_grids = !point_grids.empty();
  if ((points_per_side > 0) == have_grids)
    bad_option("points_per_side", "give exactly one of points_per_side (> 0) and point_grids");
  if (points_per_side < 0) bad_option("points_per_side", "must be >= 0");
  if (points_per_batch < 1) bad_option("points_per_batch", "must be >= 1");
  if (crop_n_layers < 0) bad_option("crop_n_layers", "must be >= 0");
  if (crop_n_points_downscale_factor < 1)
    bad_option("crop_n_points_downscale_factor", "must be >= 1");
  if (!(crop_overlap_ratio >= 0.0 && crop_overlap_ratio < 1.0))
    bad_option("crop_overlap_ratio",
               "must be in [0, 1), got " + std::to_string(crop_overlap_ratio));
  for (auto [k, v] : {std::pair<const char*, double>{"pred_iou_thresh", pred_iou_thresh},
                      {"stability_score_thresh", stability_score_thresh},
                      {"stability_score_offset", stability_score_offset},
                      {"box_nms_thresh", box_nms_thresh},
                      {"crop_nms_thresh", crop_nms_thresh}})
    if (!std::isfinite(v)) bad_option(k, "must be a finite number");
  if (min_mask_region_area < 0) bad_option("min_mask_region_area", "must be >= 0");
  if (!(max_area_frac >= 0.0 && max_area_frac <= 1.0))
    bad_option("max_area_frac",
               "must be in [0, 1] (0 = off), got " + std::to_string(max_area_frac));
  if (have_grids) {
    if (static_cast<int>(point_grids.size()) != crop_n_layers + 1)
      bad_option("point_grids", "needs one grid per layer (" + std::to_string(crop_n_layers + 1) +
                                    "), got " + std::to_string(point_grids.size()));
    for (const auto& g : point_grids)
      if (g.empty()) bad_option("point_grids", "a layer has no points");
  }
}

std::vector<std::vector<Point>> AmgOptions::layer_grids() const {
  validate();
  if (!point_grids.empty()) return point_grids;
  return build_all_layer_point_grids(points_per_side, crop_n_layers,
                                     crop_n_points_downscale_factor);
}

struct MaskGenerator::Candidate {
  mask::Rle rle;  // image-size RLE
  BoxI box;       // inclusive xyxy: crop frame until uncropped, then image frame
  float iou = 0;
  float stability = 0;
  Point point;  // crop frame until uncropped, then image frame
  CropBox crop;
};

MaskGenerator::MaskGenerator(Sam model, AmgOptions opts, torch::Device device)
    : owned_(std::make_unique<Predictor>(std::move(model), device)),
      predictor_(owned_.get()),
      opts_(std::move(opts)),
      grids_(opts_.layer_grids()) {}

MaskGenerator::MaskGenerator(Predictor& predictor, AmgOptions opts)
    : predictor_(&predictor), opts_(std::move(opts)), grids_(opts_.layer_grids()) {}

std::vector<MaskGenerator::Candidate> MaskGenerator::process_crop(const torch::Tensor& image,
                                                                  const CropBox& crop,
                                                                  int64_t img_h, int64_t img_w) {
  auto t0 = Clock::now();
  double c0 = cpu_now();
  auto cropped = image.slice(0, crop.y0, crop.y1).slice(1, crop.x0, crop.x1);
  predictor_->set_image(cropped, data::resizer(opts_.resize));
  timings_.encoder_s += seconds_since(t0);
  timings_.encoder_cpu_s += cpu_now() - c0;

  const auto [in_h, in_w] = predictor_->input_size();
  const auto& cfg = predictor_->config();
  const int64_t lr = cfg.low_res_size();
  // The reference thresholds at model.mask_threshold = 0.0.
  const MaskEncoder encoder(lr, cfg.img_size, in_h, in_w, crop, img_h, img_w, 0.0,
                            opts_.stability_score_offset);
  const auto& grid = grids_.at(static_cast<size_t>(crop.layer));
  std::vector<Point> points;
  points.reserve(grid.size());
  for (const auto& g : grid)
    points.push_back(
        {g[0] * static_cast<double>(crop.width()), g[1] * static_cast<double>(crop.height())});

  const float iou_thr = static_cast<float>(opts_.pred_iou_thresh);
  const float stab_thr = static_cast<float>(opts_.stability_score_thresh);
  const double max_area =
      opts_.max_area_frac * static_cast<double>(img_h) * static_cast<double>(img_w);
  std::vector<Candidate> cands;
  const int64_t n = static_cast<int64_t>(points.size());
  for (int64_t b0 = 0; b0 < n; b0 += opts_.points_per_batch) {
    const int64_t B = std::min<int64_t>(opts_.points_per_batch, n - b0);
    auto coords = torch::empty({B, 1, 2}, torch::kDouble);
    auto acc = coords.accessor<double, 3>();
    for (int64_t i = 0; i < B; ++i) {
      acc[i][0][0] = points[b0 + i][0];
      acc[i][0][1] = points[b0 + i][1];
    }
    auto labels = torch::ones({B, 1}, torch::kLong);
    t0 = Clock::now();
    c0 = cpu_now();
    PredictOptions popts;
    popts.multimask = true;
    popts.upscale = false;
    auto pred = predictor_->predict_batch(coords, labels, {}, {}, popts);
    auto low = pred.low_res.to(torch::kCPU, torch::kFloat).contiguous();
    auto iou = pred.iou.to(torch::kCPU, torch::kFloat).contiguous();
    timings_.decoder_s += seconds_since(t0);
    timings_.decoder_cpu_s += cpu_now() - c0;

    t0 = Clock::now();
    const int64_t C = low.size(1);
    timings_.prompts += B;
    timings_.candidates += B * C;
    const float* iou_p = iou.data_ptr<float>();
    const float* low_p = low.data_ptr<float>();
    std::vector<int64_t> idx;
    for (int64_t i = 0; i < B * C; ++i)
      if (!(opts_.pred_iou_thresh > 0.0) || iou_p[i] > iou_thr) idx.push_back(i);
    timings_.kept_iou += static_cast<int64_t>(idx.size());
    std::vector<EncodedMask> enc(idx.size());
    at::parallel_for(0, static_cast<int64_t>(idx.size()), 1, [&](int64_t s, int64_t e) {
      for (int64_t k = s; k < e; ++k) enc[k] = encoder.encode(low_p + idx[k] * lr * lr, true);
    });
    for (size_t k = 0; k < idx.size(); ++k) {
      EncodedMask& m = enc[k];
      // int32 counts divided as float32, as the reference's true division does.
      const float stab = static_cast<float>(m.n_hi) / static_cast<float>(m.n_lo);
      if (opts_.stability_score_thresh > 0.0 && !(stab >= stab_thr)) continue;
      ++timings_.kept_stability;
      if (is_box_near_crop_edge(m.box, crop, img_w, img_h)) continue;
      if (opts_.max_area_frac > 0.0 && static_cast<double>(m.area) >= max_area) continue;
      ++timings_.kept_edge;
      Candidate c;
      c.rle = std::move(m.rle);
      c.box = m.box;
      c.iou = iou_p[idx[k]];
      c.stability = stab;
      c.point = points[b0 + idx[k] / C];
      c.crop = crop;
      cands.push_back(std::move(c));
    }
    timings_.masks_s += seconds_since(t0);
  }
  predictor_->reset();

  // Duplicates within the crop, by predicted IoU, on crop-frame boxes.
  t0 = Clock::now();
  std::vector<BoxF> boxes;
  std::vector<float> scores;
  for (const auto& c : cands) {
    boxes.push_back({static_cast<float>(c.box[0]), static_cast<float>(c.box[1]),
                     static_cast<float>(c.box[2]), static_cast<float>(c.box[3])});
    scores.push_back(c.iou);
  }
  std::vector<Candidate> out;
  for (int64_t i : batched_nms(boxes, scores, opts_.box_nms_thresh)) {
    Candidate c = std::move(cands[i]);
    c.box = uncrop_box(c.box, crop);
    c.point = uncrop_point(c.point, crop);
    out.push_back(std::move(c));
  }
  timings_.kept_box_nms += static_cast<int64_t>(out.size());
  timings_.nms_s += seconds_since(t0);
  return out;
}

std::vector<AmgMask> MaskGenerator::generate(const torch::Tensor& image_hwc) {
  TORCH_CHECK(
      image_hwc.dim() == 3 && image_hwc.size(2) == 3 && image_hwc.scalar_type() == torch::kUInt8,
      "generate: image must be uint8 [H, W, 3] RGB; got ", image_hwc.sizes(), " ",
      image_hwc.scalar_type());
  const auto t_start = Clock::now();
  const double cpu_start = cpu_now();
  timings_ = AmgTimings{};
  const auto image = image_hwc.to(torch::kCPU);
  const int64_t H = image.size(0), W = image.size(1);
  const auto crops = generate_crop_boxes(H, W, opts_.crop_n_layers, opts_.crop_overlap_ratio);
  timings_.crops = static_cast<int64_t>(crops.size());

  std::vector<Candidate> cands;
  for (const auto& crop : crops) {
    auto part = process_crop(image, crop, H, W);
    for (auto& c : part) cands.push_back(std::move(c));
  }

  auto t0 = Clock::now();
  if (crops.size() > 1) {
    // Prefer masks from smaller crops: score 1 / area(crop), a float32 reciprocal as in torch.
    std::vector<BoxF> boxes;
    std::vector<float> scores;
    for (const auto& c : cands) {
      boxes.push_back({static_cast<float>(c.box[0]), static_cast<float>(c.box[1]),
                       static_cast<float>(c.box[2]), static_cast<float>(c.box[3])});
      scores.push_back(1.0f / static_cast<float>(c.crop.width() * c.crop.height()));
    }
    std::vector<Candidate> kept;
    for (int64_t i : batched_nms(boxes, scores, opts_.crop_nms_thresh))
      kept.push_back(std::move(cands[i]));
    cands = std::move(kept);
  }
  timings_.kept_crop_nms = static_cast<int64_t>(cands.size());
  timings_.nms_s += seconds_since(t0);

  t0 = Clock::now();
  if (opts_.min_mask_region_area > 0 && !cands.empty()) {
    const int64_t n = static_cast<int64_t>(cands.size());
    std::vector<CleanResult> cleaned(n);
    at::parallel_for(0, n, 1, [&](int64_t s, int64_t e) {
      for (int64_t i = s; i < e; ++i)
        cleaned[i] = clean_small_regions(cands[i].rle, opts_.min_mask_region_area);
    });
    // postprocess_small_regions: boxes of the cleaned masks, score 1 if unchanged, 0 if changed,
    // NMS at the larger threshold; kept changed masks take their new RLE and box.
    std::vector<BoxF> boxes;
    std::vector<float> scores;
    for (int64_t i = 0; i < n; ++i) {
      const BoxI b = cleaned[i].changed ? cleaned[i].box : mask::rle_bbox_inclusive(cands[i].rle);
      boxes.push_back({static_cast<float>(b[0]), static_cast<float>(b[1]), static_cast<float>(b[2]),
                       static_cast<float>(b[3])});
      scores.push_back(cleaned[i].changed ? 0.0f : 1.0f);
    }
    std::vector<Candidate> kept;
    const double thr = std::max(opts_.box_nms_thresh, opts_.crop_nms_thresh);
    for (int64_t i : batched_nms(boxes, scores, thr)) {
      Candidate c = std::move(cands[i]);
      if (cleaned[i].changed) {
        c.rle = std::move(cleaned[i].rle);
        c.box = cleaned[i].box;
      }
      kept.push_back(std::move(c));
    }
    cands = std::move(kept);
  }
  timings_.cleanup_s += seconds_since(t0);

  std::vector<AmgMask> out;
  out.reserve(cands.size());
  for (auto& c : cands) {
    AmgMask m;
    m.area = static_cast<int64_t>(mask::rle_area(c.rle));
    m.segmentation = std::move(c.rle);
    m.bbox = {static_cast<double>(c.box[0]), static_cast<double>(c.box[1]),
              static_cast<double>(c.box[2] - c.box[0]), static_cast<double>(c.box[3] - c.box[1])};
    m.predicted_iou = c.iou;
    m.point_coords = c.point;
    m.stability_score = c.stability;
    m.crop_box = {c.crop.x0, c.crop.y0, c.crop.width(), c.crop.height()};
    out.push_back(std::move(m));
  }
  timings_.kept_final = static_cast<int64_t>(out.size());
  timings_.total_s = seconds_since(t_start);
  timings_.total_cpu_s = cpu_now() - cpu_start;
  return out;
}

}  // namespace sam::amg
