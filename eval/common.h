#pragma once
// Shared plumbing of the evaluations: a worker loop over images with per-worker libtorch thread
// counts, progress callbacks, and image conversion.
#include <cstdint>
#include <functional>
#include <string>

#include <torch/torch.h>
#include <opencv2/core.hpp>

#include "data/progress.h"

namespace sam::eval {

/// Called after each finished item: (done, total), from any worker thread, one call at a time
/// (data/progress.h; the programs pass data::log_progress).
using ProgressFn = data::ProgressFn;

/// Calls f(item, worker) for every item in [0, n) on `workers` threads (data::parallel_for_workers:
/// worker in [0, workers), the caller's thread is worker 0, items handed out one at a time in
/// increasing order, the first exception rethrown after all workers stop). With more than one
/// worker each sets libtorch's intra-op threads to max(1, cores / workers), and the caller's
/// setting is restored afterwards.
void run_workers(int64_t n, int workers, const std::function<void(int64_t item, int worker)>& f,
                 const ProgressFn& progress = nullptr);

/// An RGB CV_8UC3 image as a uint8 [H, W, 3] tensor sharing its memory (the Mat must be
/// continuous and outlive the tensor).
torch::Tensor image_tensor(const cv::Mat& rgb);

}  // namespace sam::eval
