#include "eval/common.h"

#include <algorithm>
#include <atomic>
#include <stdexcept>
#include <thread>

#include "data/parallel.h"

namespace sam::eval {

void run_workers(int64_t n, int workers, const std::function<void(int64_t, int)>& f,
                 const ProgressFn& progress) {
  // OpenMP thread counts are per calling thread: with several workers each sets its own share of
  // the cores, and the caller's count is restored afterwards (also when an item threw).
  struct Restore {
    int threads = torch::get_num_threads();
    std::atomic<bool> changed{false};
    ~Restore() {
      if (changed) torch::set_num_threads(threads);
    }
  } restore;
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  data::parallel_for_workers(
      n, std::max(1, workers), f,
      [&](int, int count) {
        if (count <= 1) return;
        restore.changed = true;
        torch::set_num_threads(std::max(1, cores / count));
      },
      progress);
}

torch::Tensor image_tensor(const cv::Mat& rgb) {
  if (rgb.type() != CV_8UC3 || !rgb.isContinuous())
    throw std::invalid_argument("image_tensor: expected a continuous RGB CV_8UC3 image");
  return torch::from_blob(rgb.data, {rgb.rows, rgb.cols, 3}, torch::kUInt8);
}

}  // namespace sam::eval
