// The embedding cache: computed once, evicted least-recently-used first by bytes (never the image
// on screen), failures remembered, prefetch lists replaced, urgent requests served first.
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <future>
#include <mutex>
#include <set>
#include <thread>

#include "engine/annotate/embedding_cache.h"

using sam::annotate::EmbeddingCache;
using namespace std::chrono_literals;

namespace {

// A fake "embedding": the key repeated; computing it is logged and takes `delay`. While held
// (hold(key)), a computation of that key that has started waits for release(key): the tests pick
// their moments by what has started, never by sleeping.
struct Fake {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::string> log, started;
  std::set<std::string> held;
  std::chrono::milliseconds delay{0};
  std::shared_ptr<const std::string> compute(const std::string& key) {
    {
      std::unique_lock<std::mutex> lock(mu);
      started.push_back(key);
      cv.notify_all();
      cv.wait(lock, [&] { return held.count(key) == 0; });
    }
    std::this_thread::sleep_for(delay);
    {
      std::lock_guard<std::mutex> lock(mu);
      log.push_back(key);
    }
    if (key.rfind("bad", 0) == 0) throw std::runtime_error("cannot decode");
    return std::make_shared<const std::string>(key);
  }
  void hold(const std::string& key) {
    std::lock_guard<std::mutex> lock(mu);
    held.insert(key);
  }
  void release(const std::string& key) {
    std::lock_guard<std::mutex> lock(mu);
    held.erase(key);
    cv.notify_all();
  }
  // Waits until the computation of `key` has started; false after 10 s.
  bool wait_started(const std::string& key) {
    std::unique_lock<std::mutex> lock(mu);
    return cv.wait_for(lock, 10s, [&] { return std::count(started.begin(), started.end(), key) > 0; });
  }
  std::vector<std::string> computed() {
    std::lock_guard<std::mutex> lock(mu);
    return log;
  }
};

// Polls until `pred` holds; false after 10 s.
template <typename Pred>
bool eventually(Pred pred) {
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

// 100 bytes per value, whatever the key.
int64_t hundred(const std::string&) {
  return 100;
}

}  // namespace

TEST_CASE("cache: computes once, serves hits, evicts least recently used by bytes",
          "[annotate][cache]") {
  Fake fake;
  EmbeddingCache<std::string> cache(
      250, [&](const std::string& k) { return fake.compute(k); }, hundred);
  CHECK(*cache.get("a", 5s) == "a");
  CHECK(*cache.get("b", 5s) == "b");
  CHECK(*cache.get("a", 5s) == "a");  // hit; "a" is now the most recent
  CHECK(fake.computed() == std::vector<std::string>{"a", "b"});
  CHECK(cache.get("c", 5s) != nullptr);  // 300 > 250 bytes: the LRU one ("b") goes
  CHECK(cache.state("b") == "absent");
  CHECK(cache.state("a") == "ready");
  CHECK(cache.state("c") == "ready");
  auto s = cache.stats();
  CHECK(s.bytes == 200);
  CHECK(s.entries == 2);
  CHECK(s.evicted == 1);
  CHECK(s.hits == 1);
  CHECK(s.misses == 3);
  CHECK(s.computed == 3);
}

TEST_CASE("cache: a prefetch never evicts the image the user asked for last", "[annotate][cache]") {
  Fake fake;
  EmbeddingCache<std::string> cache(
      150, [&](const std::string& k) { return fake.compute(k); }, hundred);
  REQUIRE(cache.get("current", 5s));
  cache.prefetch({"next"});  // room for one value only: "current" must stay
  REQUIRE(cache.wait_idle(5s));
  CHECK(cache.state("current") == "ready");
  CHECK(cache.state("next") == "ready");  // the newest value is kept too, over budget
  cache.prefetch({"after"});
  REQUIRE(cache.wait_idle(5s));
  CHECK(cache.state("current") == "ready");
  CHECK(cache.state("next") == "absent");
  CHECK(cache.state("after") == "ready");
}

TEST_CASE("cache: failures are remembered and reported, until forgotten", "[annotate][cache]") {
  Fake fake;
  EmbeddingCache<std::string> cache(
      1000, [&](const std::string& k) { return fake.compute(k); }, hundred);
  CHECK_THROWS_WITH(cache.get("bad.jpg", 5s),
                    Catch::Contains("bad.jpg") && Catch::Contains("cannot decode"));
  CHECK_THROWS(cache.get("bad.jpg", 5s));
  CHECK(cache.state("bad.jpg") == "failed: cannot decode");
  CHECK(fake.computed().size() == 1);  // not retried
  cache.forget("bad.jpg");
  CHECK_THROWS(cache.get("bad.jpg", 5s));
  CHECK(fake.computed().size() == 2);
  CHECK(cache.stats().failed == 2);
}

TEST_CASE("cache: urgent requests go before prefetches, and get() times out", "[annotate][cache]") {
  Fake fake;
  EmbeddingCache<std::string> cache(
      10000, [&](const std::string& k) { return fake.compute(k); }, hundred);
  fake.hold("p1");
  fake.hold("p2");
  cache.prefetch({"p1", "p2", "p3"});
  REQUIRE(fake.wait_started("p1"));  // p1 is being computed, p2 and p3 wait
  auto urgent = std::async(std::launch::async, [&] { return cache.get("u", 10s); });
  REQUIRE(eventually([&] { return cache.state("u") == "queued"; }));
  fake.release("p1");
  CHECK(urgent.get() != nullptr);  // waited for p1, then u jumped the queue
  auto order = fake.computed();
  REQUIRE(order.size() >= 2);
  CHECK(order[0] == "p1");
  CHECK(order[1] == "u");
  REQUIRE(fake.wait_started("p2"));
  cache.prefetch({"q"});  // replaces p3, not started; p2 goes on
  fake.release("p2");
  REQUIRE(cache.wait_idle(10s));
  auto all = fake.computed();
  CHECK(std::count(all.begin(), all.end(), "p2") == 1);
  CHECK(std::count(all.begin(), all.end(), "p3") == 0);
  CHECK(cache.state("q") == "ready");

  fake.hold("slow");
  CHECK(cache.get("slow", 20ms) == nullptr);  // timed out: still computing (held)
  CHECK((cache.state("slow") == "computing" || cache.state("slow") == "queued"));
  fake.release("slow");
  CHECK(cache.get("slow", 10s) != nullptr);
}

TEST_CASE("cache: many threads asking for the same keys compute each once", "[annotate][cache]") {
  Fake fake;
  fake.delay = 5ms;
  EmbeddingCache<std::string> cache(
      100000, [&](const std::string& k) { return fake.compute(k); }, hundred);
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 20; ++i)
        if (auto v = cache.get("k" + std::to_string((i + t) % 5), 10s); v && v->size() == 2) ++ok;
    });
  for (auto& t : threads) t.join();
  CHECK(ok == 160);
  CHECK(fake.computed().size() == 5);
}
