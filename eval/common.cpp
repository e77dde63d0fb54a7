#include "eval/common.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <exception>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

namespace sam::eval {

void run_workers(int64_t n, int workers, const std::function<void(int64_t, int)>& f,
                 const ProgressFn& progress) {
  workers = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(workers, n)));
  std::atomic<int64_t> next{0}, done{0};
  std::atomic<bool> failed{false};
  std::exception_ptr error;
  std::mutex mu;
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const int per_worker = std::max(1, cores / workers);
  auto work = [&](int worker) {
    // OpenMP thread counts are per calling thread, so every worker sets its own.
    if (workers > 1) torch::set_num_threads(per_worker);
    while (!failed) {
      const int64_t i = next++;
      if (i >= n) return;
      try {
        f(i, worker);
        const int64_t d = ++done;
        if (progress) {
          std::lock_guard<std::mutex> lock(mu);
          progress(d, n);
        }
      } catch (...) {
        std::lock_guard<std::mutex> lock(mu);
        if (!error) error = std::current_exception();
        failed = true;
      }
    }
  };
  const int caller_threads = torch::get_num_threads();
  std::vector<std::thread> threads;
  for (int w = 1; w < workers; ++w) threads.emplace_back(work, w);
  work(0);
  for (auto& t : threads) t.join();
  if (workers > 1) torch::set_num_threads(caller_threads);
  if (error) std::rethrow_exception(error);
}

torch::Tensor image_tensor(const cv::Mat& rgb) {
  if (rgb.type() != CV_8UC3 || !rgb.isContinuous())
    throw std::invalid_argument("image_tensor: expected a continuous RGB CV_8UC3 image");
  return torch::from_blob(rgb.data, {rgb.rows, rgb.cols, 3}, torch::kUInt8);
}

}  // namespace sam::eval
