#pragma once
// The project's one worker pool: a parallel loop whose items are handed out one at a time in
// increasing order (uneven items balance), used by the data tools (conversion, validation,
// synthesis) and the evaluations (eval/common.h's run_workers: per-worker libtorch threads).
// The first exception is rethrown after every worker has stopped. No libtorch (samlib_base).
#include <cstdint>
#include <functional>

#include "data/progress.h"

namespace sam::data {

/// Calls f(i, worker) for every i in [0, n) on `jobs` threads (0 = all cores; never more than n,
/// at least 1), the caller's thread being worker 0. `on_worker_start(worker, workers)`, when given,
/// runs first on each worker's thread (per-thread settings); `progress(done, n)` after each
/// finished item, one call at a time.
void parallel_for_workers(int64_t n, int jobs, const std::function<void(int64_t item, int worker)>& f,
                          const std::function<void(int worker, int workers)>& on_worker_start = {},
                          const ProgressFn& progress = {});

/// Calls f(i) for every i in [0, n) on `jobs` threads (0 = all cores), the caller's included.
template <class F>
void parallel_for(int64_t n, int jobs, F&& f) {
  parallel_for_workers(n, jobs, [&f](int64_t i, int) { f(i); });
}

}  // namespace sam::data
