#pragma once
// A cache of values that are slow to compute (image embeddings: seconds each on a CPU), filled by
// one background thread ahead of use and bounded by bytes (least recently used first out).
//
// Requests come in two kinds: get() for what a user is waiting on (computed first, in arrival
// order) and prefetch() for what the user will want next (replaced wholesale by each call, so the
// worker never spends minutes on images the user has already skipped).
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace sam::annotate {

/// Counters of an EmbeddingCache (for /api/status and benchmarks).
struct CacheStats {
  int64_t bytes = 0, limit_bytes = 0, entries = 0;
  int64_t hits = 0, misses = 0, computed = 0, evicted = 0, failed = 0;
  double compute_seconds = 0;  ///< total time spent computing
};

template <typename V>
class EmbeddingCache {
 public:
  using Compute = std::function<std::shared_ptr<const V>(const std::string& key)>;
  using Bytes = std::function<int64_t(const V&)>;

  /// limit_bytes: the budget for cached values (one value larger than it is still kept alone, or
  /// nothing could be served). compute runs on the worker thread, which first calls worker_init
  /// (e.g. to lower its scheduling priority) when given.
  EmbeddingCache(int64_t limit_bytes, Compute compute, Bytes bytes,
                 std::function<void()> worker_init = {})
      : compute_(std::move(compute)), bytes_(std::move(bytes)) {
    stats_.limit_bytes = limit_bytes;
    worker_ = std::thread([this, init = std::move(worker_init)] {
      if (init) init();
      run();
    });
  }
  ~EmbeddingCache() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    worker_.join();
  }
  EmbeddingCache(const EmbeddingCache&) = delete;
  EmbeddingCache& operator=(const EmbeddingCache&) = delete;

  /// The value for `key`, computing it first in line if needed and waiting at most `timeout`;
  /// nullptr on timeout. Rethrows (as std::runtime_error) the failure of an earlier computation of
  /// `key`, which is not retried until forget(key).
  std::shared_ptr<const V> get(const std::string& key, std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    last_wanted_ = key;
    if (auto v = lookup_locked(key, true)) return v;
    ++stats_.misses;
    if (!in_queue_locked(key)) urgent_.push_back(key);
    cv_.notify_all();
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      if (auto v = lookup_locked(key, false)) return v;
      if (!in_queue_locked(key) && computing_ != key) {
        // Neither cached, failed nor queued: it was evicted right after computing; ask again.
        urgent_.push_back(key);
        cv_.notify_all();
      }
      if (cv_.wait_until(lock, deadline) == std::cv_status::timeout)
        return lookup_locked(key, false);
    }
  }

  /// The value if cached (counts as a use), else nullptr; never waits or queues.
  std::shared_ptr<const V> peek(const std::string& key) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = map_.find(key);
    if (it == map_.end()) return nullptr;
    lru_.splice(lru_.begin(), lru_, it->second.pos);
    return it->second.value;
  }

  /// "ready", "computing", "queued", "failed: <why>" or "absent".
  std::string state(const std::string& key) const {
    std::lock_guard<std::mutex> lock(mu_);
    if (map_.count(key)) return "ready";
    if (auto f = failures_.find(key); f != failures_.end()) return "failed: " + f->second;
    if (computing_ == key) return "computing";
    if (in_queue_locked(key)) return "queued";
    return "absent";
  }

  /// Replaces the list of keys to compute when nothing urgent waits (first = soonest).
  void prefetch(std::vector<std::string> keys) {
    std::lock_guard<std::mutex> lock(mu_);
    prefetch_.assign(keys.begin(), keys.end());
    cv_.notify_all();
  }

  /// Drops a cached value or a recorded failure.
  void forget(const std::string& key) {
    std::lock_guard<std::mutex> lock(mu_);
    failures_.erase(key);
    if (auto it = map_.find(key); it != map_.end()) erase_locked(it);
  }

  CacheStats stats() const {
    std::lock_guard<std::mutex> lock(mu_);
    return stats_;
  }

  /// Blocks until nothing is queued or being computed (tests, benchmarks), or the timeout.
  bool wait_idle(std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, timeout,
                        [&] { return urgent_.empty() && prefetch_.empty() && computing_.empty(); });
  }

 private:
  struct Entry {
    std::shared_ptr<const V> value;
    int64_t bytes;
    std::list<std::string>::iterator pos;
  };

  std::shared_ptr<const V> lookup_locked(const std::string& key, bool count) {
    auto it = map_.find(key);
    if (it == map_.end()) {
      if (auto f = failures_.find(key); f != failures_.end())
        throw std::runtime_error(key + ": " + f->second);
      return nullptr;
    }
    if (count) ++stats_.hits;
    lru_.splice(lru_.begin(), lru_, it->second.pos);
    return it->second.value;
  }

  bool in_queue_locked(const std::string& key) const {
    for (const auto& k : urgent_)
      if (k == key) return true;
    for (const auto& k : prefetch_)
      if (k == key) return true;
    return false;
  }

  void erase_locked(typename std::unordered_map<std::string, Entry>::iterator it) {
    stats_.bytes -= it->second.bytes;
    lru_.erase(it->second.pos);
    map_.erase(it);
    stats_.entries = static_cast<int64_t>(map_.size());
  }

  void insert_locked(const std::string& key, std::shared_ptr<const V> value, int64_t bytes) {
    lru_.push_front(key);
    map_[key] = Entry{std::move(value), bytes, lru_.begin()};
    stats_.bytes += bytes;
    // Evict least recently used first, but never the new value nor the one a user asked for last
    // (a prefetch must not push out the image on screen).
    auto it = lru_.end();
    while (stats_.bytes > stats_.limit_bytes && it != lru_.begin()) {
      --it;
      if (*it == key || *it == last_wanted_) continue;
      auto victim = map_.find(*it);
      it = std::next(it);
      erase_locked(victim);
      ++stats_.evicted;
    }
    stats_.entries = static_cast<int64_t>(map_.size());
  }

  void run() {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      cv_.wait(lock, [&] { return stop_ || !urgent_.empty() || !prefetch_.empty(); });
      if (stop_) return;
      auto& queue = !urgent_.empty() ? urgent_ : prefetch_;
      std::string key = queue.front();
      queue.pop_front();
      if (map_.count(key) || failures_.count(key)) continue;
      computing_ = key;
      lock.unlock();
      std::shared_ptr<const V> value;
      std::string error;
      const auto t0 = std::chrono::steady_clock::now();
      try {
        value = compute_(key);
        if (!value) error = "computation returned nothing";
      } catch (const std::exception& e) {
        error = e.what();
      } catch (...) {
        error = "unknown error";
      }
      const double secs =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      const int64_t nbytes = value ? bytes_(*value) : 0;
      lock.lock();
      computing_.clear();
      stats_.compute_seconds += secs;
      if (value) {
        ++stats_.computed;
        insert_locked(key, std::move(value), nbytes);
      } else {
        ++stats_.failed;
        failures_[key] = error;
      }
      cv_.notify_all();
    }
  }

  Compute compute_;
  Bytes bytes_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::unordered_map<std::string, Entry> map_;
  std::list<std::string> lru_;  ///< front = most recently used
  std::unordered_map<std::string, std::string> failures_;
  std::deque<std::string> urgent_, prefetch_;
  std::string computing_, last_wanted_;
  CacheStats stats_;
  bool stop_ = false;
  std::thread worker_;  ///< last: starts after every other member exists
};

}  // namespace sam::annotate
