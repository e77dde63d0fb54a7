// The worker pool (data/parallel.h): every item runs once, worker indices and the start hook,
// progress counts in order, the worker count clamped to the items, the first exception rethrown
// after the others stop. Its libtorch form, eval's run_workers: tests/eval/test_common.cpp.
#include <catch2/catch.hpp>

#include <atomic>
#include <mutex>
#include <set>
#include <stdexcept>
#include <vector>

#include "data/parallel.h"

using sam::data::parallel_for;
using sam::data::parallel_for_workers;

TEST_CASE("parallel: every item runs once, on workers 0..jobs-1, progress counts 1..n") {
  const int64_t n = 200;
  std::vector<std::atomic<int>> runs(n);
  std::mutex mu;
  std::set<int> workers_seen, started;
  int started_count = -1;
  std::vector<int64_t> progress;
  std::set<int64_t> totals;
  parallel_for_workers(
      n, 3,
      [&](int64_t i, int w) {
        ++runs[static_cast<size_t>(i)];
        std::lock_guard<std::mutex> lock(mu);
        workers_seen.insert(w);
      },
      [&](int w, int count) {
        std::lock_guard<std::mutex> lock(mu);
        started.insert(w);
        started_count = count;
      },
      [&](int64_t done, int64_t total) {  // one call at a time: no lock needed
        totals.insert(total);
        progress.push_back(done);
      });
  for (const auto& r : runs) CHECK(r == 1);
  CHECK(started == std::set<int>{0, 1, 2});
  CHECK(started_count == 3);
  CHECK(totals == std::set<int64_t>{n});
  for (int w : workers_seen) CHECK((w >= 0 && w < 3));
  REQUIRE(progress.size() == size_t(n));
  for (int64_t k = 0; k < n; ++k) CHECK(progress[size_t(k)] == k + 1);
}

TEST_CASE("parallel: workers never outnumber the items, none is an empty loop") {
  std::set<int> started, counts;
  std::mutex mu;
  parallel_for_workers(
      2, 8, [](int64_t, int) {},
      [&](int w, int count) {
        std::lock_guard<std::mutex> lock(mu);
        started.insert(w);
        counts.insert(count);
      });
  CHECK(started.size() == 2);
  CHECK(counts == std::set<int>{2});
  int calls = 0;
  parallel_for(0, 4, [&](int64_t) { ++calls; });
  CHECK(calls == 0);
}

TEST_CASE("parallel: the first exception is rethrown and the loop stops handing out items") {
  std::atomic<int64_t> ran{0};
  CHECK_THROWS_WITH(parallel_for(100000, 2,
                                 [&](int64_t i) {
                                   ++ran;
                                   if (i == 5) throw std::runtime_error("item 5 is bad");
                                 }),
                    "item 5 is bad");
  CHECK(ran < 100000);
}
