// The evaluations' worker loop (eval/common.h run_workers, on data/parallel.h's pool): each worker
// sets its share of libtorch's threads, the caller's count is restored afterwards, also when an
// item throws, whose exception reaches the caller.
#include <catch2/catch.hpp>

#include <atomic>
#include <stdexcept>

#include <torch/torch.h>

#include "eval/common.h"

TEST_CASE("run_workers: per-worker libtorch threads, the caller's count restored, errors rethrown") {
  const int before = torch::get_num_threads();
  std::atomic<int> items{0}, min_threads{1 << 20};
  sam::eval::run_workers(8, 2, [&](int64_t, int) {
    const int t = torch::get_num_threads();
    int m = min_threads;
    while (t < m && !min_threads.compare_exchange_weak(m, t)) {
    }
    ++items;
  });
  CHECK(items == 8);
  CHECK(min_threads >= 1);
  CHECK(torch::get_num_threads() == before);
  CHECK_THROWS_WITH(sam::eval::run_workers(4, 2, [](int64_t i, int) {
                      if (i == 1) throw std::invalid_argument("bad item");
                    }),
                    "bad item");
  CHECK(torch::get_num_threads() == before);
}
