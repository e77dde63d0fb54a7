#pragma once
// Benchmarks behind `sam_data bench`: loader throughput and memory, the cost of each step of
// one sample, and COCO RLE encode/decode speed.
#include <cstdint>
#include <functional>
#include <string>

#include <nlohmann/json.hpp>

#include "data/loader.h"
#include "data/process.h"

namespace sam::data {

struct LoaderBenchResult {
  int64_t samples = 0;
  double seconds = 0, images_per_s = 0, masks_per_sample = 0;
  double cpu_s_per_sample =
      0;  // process CPU time (all threads) per sample: the work, whatever the load
  double rss_before_mib = 0, rss_steady_mib = 0,
         rss_max_mib = 0;  // before the loader, median and max while running
  LoaderStats stats;
  nlohmann::json to_json() const;
};

/// Runs a Loader over `ds` with `options`, discards `warmup` samples, then times `samples` more
/// (the consumer does nothing else) and samples RSS after each.
LoaderBenchResult bench_loader(std::shared_ptr<Dataset> ds, const LoaderOptions& options,
                               int64_t samples, int64_t warmup = 8);

/// Mean milliseconds per sample of each step, run one sample at a time, as wall time and as the
/// process's CPU time (which does not grow when the machine is shared): read + parse the
/// annotations, decode every RLE string (filtering), read + decode the image, transform the image,
/// transform up to K masks. Over the first `samples` readable samples of `ds`.
nlohmann::json profile_steps(const Dataset& ds, const LoaderOptions& options, int64_t samples);

struct RleBenchResult {
  int h = 0, w = 0;
  uint64_t runs = 0;                        // counts in the RLE
  double encode_mb_s = 0, decode_mb_s = 0;  // MB (10^6 bytes) of the dense h*w mask per second
  double to_string_us = 0, from_string_us = 0;
  nlohmann::json to_json() const;
};

/// Everything `sam_data bench` measures.
struct BenchOptions {
  std::string data_dir = "runs/bench_sa1b";  // SA-1B folder; synthesised when it has no pair
  int64_t make = 48;                         // images to synthesise (about 100 masks each)
  int width = 2250, height = 1500;           // their size
  int64_t samples = 150, profile = 12;       // loader samples timed; profile samples
  int rle_reps = 30;
  LoaderOptions loader;
};

/// Runs the benchmark: synthesises the data set if needed, then profile_steps, bench_loader and
/// bench_rle on a 1500 x 2250 mask (object and noisy). Returns the report as JSON; progress
/// messages go to `log`.
nlohmann::json run_bench(const BenchOptions& options,
                         const std::function<void(const std::string&)>& log);

/// RLE speed on an h x w mask: kind "object" (a few large overlapping shapes with holes, about
/// 30% set, the typical SA-1B mask) or "noisy" (8x8 blocks set at random, many short runs).
RleBenchResult bench_rle(int h, int w, const std::string& kind, int reps);

}  // namespace sam::data
