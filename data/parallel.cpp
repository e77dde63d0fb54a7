#include "data/parallel.h"

#include <algorithm>
#include <atomic>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace sam::data {

void parallel_for_workers(int64_t n, int jobs, const std::function<void(int64_t, int)>& f,
                          const std::function<void(int, int)>& on_worker_start, const ProgressFn& progress) {
  if (jobs <= 0) jobs = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const int workers = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(jobs, n)));
  std::atomic<int64_t> next{0};
  int64_t done = 0;  // under mu
  std::atomic<bool> failed{false};
  std::exception_ptr error;
  std::mutex mu;
  const auto keep_first_error = [&] {  // inside a catch block
    std::lock_guard<std::mutex> lock(mu);
    if (!error) error = std::current_exception();
    failed = true;
  };
  auto work = [&](int worker) {
    try {
      if (on_worker_start) on_worker_start(worker, workers);
    } catch (...) {
      keep_first_error();
    }
    while (!failed) {
      const int64_t i = next++;
      if (i >= n) return;
      try {
        f(i, worker);
        if (progress) {
          std::lock_guard<std::mutex> lock(mu);
          progress(++done, n);
        }
      } catch (...) {
        keep_first_error();
      }
    }
  };
  std::vector<std::thread> threads;
  for (int w = 1; w < workers; ++w) threads.emplace_back(work, w);
  work(0);
  for (auto& t : threads) t.join();
  if (error) std::rethrow_exception(error);
}

}  // namespace sam::data
