// Loader and RLE benchmarks.
#include "data/bench.h"

#include <opencv2/imgproc.hpp>

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <fstream>
#include <memory>
#include <numeric>
#include <stdexcept>

#include "data/rng.h"
#include "data/synth.h"
#include "data/transforms.h"

namespace sam::data {
namespace {

using Clock = std::chrono::steady_clock;

double secs(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// CPU seconds of the whole process: on a shared machine this measures the work itself, not how
// much of the machine we were given.
double process_cpu() {
  rusage u;
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_stime.tv_sec + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) * 1e-6;
}

}  // namespace

nlohmann::json LoaderBenchResult::to_json() const {
  return {{"samples", samples},
          {"seconds", seconds},
          {"images_per_s", images_per_s},
          {"masks_per_sample", masks_per_sample},
          {"cpu_s_per_sample", cpu_s_per_sample},
          {"rss_before_mib", rss_before_mib},
          {"rss_steady_mib", rss_steady_mib},
          {"rss_max_mib", rss_max_mib},
          {"stats", stats.to_json()}};
}

LoaderBenchResult bench_loader(std::shared_ptr<Dataset> ds, const LoaderOptions& options,
                               int64_t samples, int64_t warmup) {
  LoaderBenchResult r;
  r.rss_before_mib = rss_mib();
  Loader loader(std::move(ds), options);
  for (int64_t i = 0; i < warmup; ++i) loader.next();
  std::vector<double> rss;
  int64_t masks = 0;
  const double c0 = process_cpu();
  const auto t0 = Clock::now();
  for (int64_t i = 0; i < samples; ++i) {
    TrainSample s = loader.next();
    masks += s.masks.size(0);
    rss.push_back(rss_mib());
  }
  r.seconds = secs(t0, Clock::now());
  r.cpu_s_per_sample = samples ? (process_cpu() - c0) / samples : 0;
  r.samples = samples;
  r.images_per_s = samples / std::max(r.seconds, 1e-9);
  r.masks_per_sample = samples ? double(masks) / samples : 0;
  if (!rss.empty()) {
    r.rss_max_mib = *std::max_element(rss.begin(), rss.end());
    std::nth_element(rss.begin(), rss.begin() + rss.size() / 2, rss.end());
    r.rss_steady_mib = rss[rss.size() / 2];
  }
  r.stats = loader.stats();
  return r;
}

nlohmann::json profile_steps(const Dataset& ds, const LoaderOptions& o, int64_t samples) {
  // Per step: wall and thread-CPU milliseconds, summed over the samples.
  enum { kGet, kRle, kImg, kXimg, kXmask, kSteps };
  static const char* kNames[kSteps] = {"read_parse_json", "decode_rle_strings", "read_decode_image",
                                       "transform_image", "transform_masks"};
  double wall[kSteps] = {0}, cpu[kSteps] = {0};
  int64_t n = 0, masks = 0;
  Rng rng(o.seed);
  // Process CPU (OpenCV's resize and colour conversion run on its own thread pool); nothing else
  // runs in this process meanwhile.
  auto t = Clock::now();
  double c = process_cpu();
  auto lap = [&](int step) {
    const auto t2 = Clock::now();
    const double c2 = process_cpu();
    wall[step] += secs(t, t2);
    cpu[step] += c2 - c;
    t = t2, c = c2;
  };
  for (size_t i = 0; i < ds.size() && n < samples; ++i) {
    t = Clock::now(), c = process_cpu();
    try {
      const Sample s = ds.get(i);
      lap(kGet);
      std::vector<mask::Rle> cand;
      const double limit = o.max_mask_area_frac * double(s.height) * double(s.width);
      for (const auto& an : s.annotations) {
        if (an.iscrowd) continue;
        mask::Rle r = an.rle();
        const double area = double(mask::rle_area(r));
        if (area > 0 && area <= limit) cand.push_back(std::move(r));
      }
      lap(kRle);
      const cv::Mat img = s.load_image();
      lap(kImg);
      const Geometry g =
          o.large_scale_jitter
              ? plan_lsj(img.rows, img.cols, o.image_size, o.lsj_min, o.lsj_max, false, rng)
              : plan_resize_longest(img.rows, img.cols, o.image_size);
      const cv::Mat out = apply_image(img, g);
      lap(kXimg);
      const size_t k = std::min<size_t>(cand.size(), size_t(o.max_masks));
      // Uninitialised, like the loader's torch::empty: apply_rle writes every byte.
      std::unique_ptr<uint8_t[]> buf(
          new uint8_t[size_t(g.canvas_h) * g.canvas_w * std::max<size_t>(k, 1)]);
      for (size_t j = 0; j < k; ++j)
        apply_rle(cand[j], g, buf.get() + j * size_t(g.canvas_h) * g.canvas_w);
      lap(kXmask);
      masks += static_cast<int64_t>(k);
      ++n;
    } catch (const DataError&) {
      continue;  // bad samples are the loader's business; the profile skips them
    }
  }
  nlohmann::json j = {{"samples", n}, {"masks_per_sample", n ? double(masks) / n : 0}};
  double tw = 0, tc = 0;
  for (int k = 0; k < kSteps; ++k) {
    j["wall_ms"][kNames[k]] = n ? 1000 * wall[k] / n : 0;
    j["cpu_ms"][kNames[k]] = n ? 1000 * cpu[k] / n : 0;
    tw += wall[k], tc += cpu[k];
  }
  j["wall_ms"]["total"] = n ? 1000 * tw / n : 0;
  j["cpu_ms"]["total"] = n ? 1000 * tc / n : 0;
  return j;
}

nlohmann::json run_bench(const BenchOptions& o,
                         const std::function<void(const std::string&)>& log) {
  nlohmann::json out;
  std::vector<std::string> warnings;
  bool have = false;
  try {
    have = !list_sa1b(o.data_dir, false, warnings).empty();
  } catch (const std::invalid_argument&) {
  }
  if (!have) {
    SynthOptions so;
    so.width = o.width, so.height = o.height;
    so.min_objects = 44, so.max_objects = 60;  // about 100 visible masks per image
    log("writing " + std::to_string(o.make) + " synthetic " + std::to_string(o.width) + "x" +
        std::to_string(o.height) + " images to " + o.data_dir);
    const auto st = synth_write(o.data_dir, so, o.make);
    out["synth"] = {{"images", st.images},
                    {"masks_per_image", st.masks / double(std::max<int64_t>(st.images, 1))}};
  }
  const auto ds = open_sa1b(o.data_dir);
  out["dataset"] = ds->describe();
  out["profile_one_thread"] = profile_steps(*ds, o.loader, o.profile);
  log("profile " + out["profile_one_thread"].dump());
  out["loader"] = bench_loader(ds, o.loader, o.samples).to_json();
  const LoaderOptions& lo = o.loader;
  out["loader_options"] = {{"workers", lo.workers},        {"prefetch", lo.prefetch},
                           {"image_size", lo.image_size},  {"max_masks", lo.max_masks},
                           {"lsj", lo.large_scale_jitter}, {"hflip", lo.hflip}};
  out["rle_object_2250x1500"] = bench_rle(1500, 2250, "object", o.rle_reps).to_json();
  out["rle_noisy_2250x1500"] = bench_rle(1500, 2250, "noisy", o.rle_reps).to_json();
  out["peak_rss_mib"] = peak_rss_mib();
  return out;
}

nlohmann::json RleBenchResult::to_json() const {
  return {{"h", h},
          {"w", w},
          {"runs", runs},
          {"encode_mb_s", encode_mb_s},
          {"decode_mb_s", decode_mb_s},
          {"to_string_us", to_string_us},
          {"from_string_us", from_string_us}};
}

RleBenchResult bench_rle(int h, int w, const std::string& kind, int reps) {
  if (h <= 0 || w <= 0 || reps <= 0)
    throw std::invalid_argument("bench_rle: need positive sizes and reps");
  cv::Mat m(h, w, CV_8UC1, cv::Scalar(0));
  Rng rng(12345);
  if (kind == "object") {
    for (int k = 0; k < 5; ++k)
      cv::ellipse(m,
                  cv::Point(static_cast<int>(w * rng.uniform(0.3, 0.7)),
                            static_cast<int>(h * rng.uniform(0.3, 0.7))),
                  cv::Size(static_cast<int>(w * rng.uniform(0.1, 0.25)),
                           static_cast<int>(h * rng.uniform(0.1, 0.25))),
                  rng.uniform(0, 180), 0, 360, cv::Scalar(1), cv::FILLED);
    for (int k = 0; k < 20; ++k)
      cv::circle(m,
                 cv::Point(static_cast<int>(w * rng.uniform(0.3, 0.7)),
                           static_cast<int>(h * rng.uniform(0.3, 0.7))),
                 static_cast<int>(std::min(h, w) * rng.uniform(0.005, 0.03)), cv::Scalar(0),
                 cv::FILLED);
  } else if (kind == "noisy") {
    for (int y = 0; y < h; y += 8)
      for (int x = 0; x < w; x += 8)
        if (rng.chance(0.5)) m(cv::Rect(x, y, std::min(8, w - x), std::min(8, h - y))).setTo(1);
  } else {
    throw std::invalid_argument("bench_rle: kind must be object or noisy, got " + kind);
  }
  RleBenchResult r;
  r.h = h, r.w = w;
  mask::Rle rle;
  std::vector<uint8_t> out(size_t(h) * w);
  // Best of `reps` runs: the figure the code reaches when the machine lets it.
  double best_enc = 1e30, best_dec = 1e30, best_ts = 1e30, best_fs = 1e30;
  for (int i = 0; i < reps; ++i) {
    auto a = Clock::now();
    rle = mask::rle_encode(m.data, h, w);
    auto b = Clock::now();
    mask::rle_decode(rle, out.data());
    auto c = Clock::now();
    const std::string s = mask::rle_to_string(rle);
    auto d = Clock::now();
    const mask::Rle back = mask::rle_from_string(s, h, w);
    auto e = Clock::now();
    if (back.counts != rle.counts || std::memcmp(out.data(), m.data, out.size()) != 0)
      throw std::runtime_error("bench_rle: round trip mismatch");
    best_enc = std::min(best_enc, secs(a, b));
    best_dec = std::min(best_dec, secs(b, c));
    best_ts = std::min(best_ts, secs(c, d));
    best_fs = std::min(best_fs, secs(d, e));
  }
  const double mb = double(h) * w / 1e6;
  r.runs = rle.counts.size();
  r.encode_mb_s = mb / best_enc;
  r.decode_mb_s = mb / best_dec;
  r.to_string_us = best_ts * 1e6;
  r.from_string_us = best_fs * 1e6;
  return r;
}

}  // namespace sam::data
