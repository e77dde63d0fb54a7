// Durability of accepts: several clients accept masks in a loop while the server is killed with
// SIGKILL after a random number of acknowledged accepts, three times over on the same database. Every accept the server
// acknowledged (201) must be in the database afterwards, exactly as sent, and SQLite's integrity
// check must pass.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <mutex>
#include <random>
#include <regex>
#include <thread>

#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>

#include "data/mask/rle.h"
#include "engine/annotate/http.h"
#include "engine/annotate/store.h"
#include "annotate_server.h"
#include "test_util.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

struct Acked {
  int64_t id;
  std::string image;
  std::string counts;
};

}  // namespace

TEST_CASE("sam_annotate: SIGKILL while saving loses no acknowledged accept",
          "[tools][annotate][crash]") {
  const auto dir = sam_test::temp_dir("annotate_crash");
  fs::create_directories(dir / "images");
  const std::vector<std::string> images = {"a.png", "b.png", "c.png"};
  for (size_t i = 0; i < images.size(); ++i) {
    cv::Mat m(48 + 8 * static_cast<int>(i), 64, CV_8UC3, cv::Scalar(30 * i, 90, 200));
    cv::imwrite((dir / "images" / images[i]).string(), m);
  }

  std::vector<Acked> acked;
  std::mutex acked_mu;
  int64_t attempts = 0;
  std::mt19937 rng(77);
  for (int round = 0; round < 3; ++round) {
    auto [pid, port] = sam_test::start_annotate_server(dir, "server_" + std::to_string(round) + ".log");
    // Image sizes are learned on first view.
    {
      httplib::Client c("127.0.0.1", port);
      for (const auto& n : images) REQUIRE(c.Get(("/api/images/" + n).c_str())->status == 200);
    }
    std::atomic<bool> stop{false};
    std::atomic<int64_t> tries{0};
    const size_t acked_before = acked.size();
    std::vector<std::thread> clients;
    for (int t = 0; t < 4; ++t) {
      clients.emplace_back([&, t, port = port] {
        std::mt19937 r(static_cast<unsigned>(1000 * round + t));
        httplib::Client c("127.0.0.1", port);
        c.set_read_timeout(10);
        c.set_connection_timeout(2);
        while (!stop) {
          const size_t k = r() % images.size();
          const int h = 48 + 8 * static_cast<int>(k), w = 64;
          std::vector<uint8_t> m(static_cast<size_t>(h * w), 0);
          const int x0 = static_cast<int>(r() % 60), y0 = static_cast<int>(r() % 40);
          const int x1 = x0 + 1 + static_cast<int>(r() % (w - x0)),
                    y1 = y0 + 1 + static_cast<int>(r() % (h - y0));
          for (int y = y0; y < y1; ++y)
            for (int x = x0; x < x1; ++x) m[static_cast<size_t>(y * w + x)] = 1;
          const auto rle = sam::mask::rle_encode(m.data(), h, w);
          json body = {{"image", images[k]},
                       {"segmentation", sam::mask::rle_to_json(rle)},
                       {"seconds", 1.5},
                       {"clicks", {{"points", {{x0 + 0.5, y0 + 0.5, 1}}}}}};
          ++tries;
          auto res = c.Post("/api/annotations", body.dump(), "application/json");
          if (!res) {
            if (stop) break;
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
            continue;
          }
          if (res->status == 201) {
            auto j = json::parse(res->body);
            std::lock_guard<std::mutex> lock(acked_mu);
            acked.push_back({j["id"].get<int64_t>(), images[k], sam::mask::rle_to_string(rle)});
          } else {
            FAIL_CHECK("accept answered " << res->status << ": " << res->body);
          }
        }
      });
    }
    // The kill comes after a random number of acknowledged accepts of this round (not after a
    // time, which a slower or faster host would fill with more or fewer): the 4 clients keep
    // requests in flight, so it lands mid-write most likely.
    const size_t target = 8 + rng() % 16;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(2);
    bool reached = false;
    while (!reached && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      std::lock_guard<std::mutex> lock(acked_mu);
      reached = acked.size() >= acked_before + target;
    }
    REQUIRE(kill(pid, SIGKILL) == 0);
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFSIGNALED(status));
    stop = true;
    for (auto& c : clients) c.join();
    attempts += tries;
    INFO("round " << round << ": " << target << " accepts wanted before the kill");
    REQUIRE(reached);
  }
  INFO(acked.size() << " acknowledged of " << attempts << " attempts");
  REQUIRE(acked.size() >= 24);  // at least 8 a round

  sam::annotate::AnnotationStore store((dir / "a.sqlite").string(), /*read_only=*/true);
  CHECK(store.integrity_check() == "ok");
  int missing = 0, changed = 0;
  for (const auto& a : acked) {
    auto got = store.annotation(a.id);
    if (!got) {
      ++missing;
      continue;
    }
    if (got->image != a.image || sam::mask::rle_to_string(got->rle) != a.counts) ++changed;
  }
  CHECK(missing == 0);
  CHECK(changed == 0);
  // Nothing was stored twice under one id, and no more rows than attempts.
  CHECK(static_cast<int64_t>(store.all_annotations().size()) >= static_cast<int64_t>(acked.size()));
  CHECK(static_cast<int64_t>(store.all_annotations().size()) <= attempts);
}
