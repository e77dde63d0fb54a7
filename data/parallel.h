#pragma once
// A minimal parallel loop for the data tools (conversion, validation, synthesis): items are
// handed out one at a time, so uneven items balance; the first exception is rethrown after all
// threads finish.
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace sam::data {

/// Calls f(i) for every i in [0, n) on `jobs` threads (0 = all cores), the caller's included.
template <class F>
void parallel_for(int64_t n, int jobs, F&& f) {
  if (jobs <= 0) jobs = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  jobs = static_cast<int>(std::min<int64_t>(jobs, std::max<int64_t>(n, 1)));
  std::atomic<int64_t> next{0};
  std::atomic<bool> failed{false};
  std::exception_ptr error;
  std::mutex mu;
  auto work = [&] {
    while (!failed) {
      const int64_t i = next++;
      if (i >= n) return;
      try {
        f(i);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mu);
        if (!error) error = std::current_exception();
        failed = true;
      }
    }
  };
  std::vector<std::thread> threads;
  for (int t = 1; t < jobs; ++t) threads.emplace_back(work);
  work();
  for (auto& t : threads) t.join();
  if (error) std::rethrow_exception(error);
}

}  // namespace sam::data
