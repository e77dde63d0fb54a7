// The progress of long loops (data/progress.h) on a clock the test moves by hand: rate over this
// run's items only, time left, the deadline cap, when a line is due, the durations' format, and
// the logging callback's lines in a file sink.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "data/log.h"
#include "data/progress.h"
#include "test_util.h"

using sam::data::format_duration;
using sam::data::Progress;

namespace {

// A clock that stands still until the test moves it.
struct FakeClock {
  std::shared_ptr<double> now = std::make_shared<double>(1000.0);
  Progress::Clock fn() const {
    auto n = now;
    return [n] { return *n; };
  }
  void advance(double s) const { *now += s; }
};

}  // namespace

TEST_CASE("progress: durations are written as s, m:s and h:m") {
  CHECK(format_duration(0) == "0s");
  CHECK(format_duration(44.6) == "45s");
  CHECK(format_duration(59.4) == "59s");
  CHECK(format_duration(187) == "3m07s");
  CHECK(format_duration(3600 + 5 * 60 + 59) == "1h05m");
  CHECK(format_duration(-1) == "?");
  CHECK(format_duration(std::numeric_limits<double>::infinity()) == "?");
}

TEST_CASE("progress: rate and time left count this run's items only") {
  FakeClock c;
  // 100 items, 40 done by an earlier run.
  Progress p(100, 40, 10, c.fn());
  CHECK(p.rate() == 0);
  CHECK(p.eta_s() < 0);
  CHECK(p.eta_text() == "ETA ?");
  c.advance(20);
  p.set_done(50);  // 10 items in 20 s: 0.5/s; 50 left: 100 s
  CHECK(p.rate() == Approx(0.5));
  CHECK(p.eta_s() == Approx(100));
  CHECK(p.eta_text() == "ETA 1m40s");
  CHECK(p.line("images") == "images 50/100 (0.5/s, 20s elapsed, ETA 1m40s)");
  c.advance(100);
  p.set_done(100);
  CHECK(p.eta_s() == Approx(0));
}

TEST_CASE("progress: a deadline caps the time left") {
  FakeClock c;
  Progress p(1000, 0, 10, c.fn());
  p.set_deadline(60);
  CHECK(p.eta_s() == Approx(60));  // no item yet: the deadline alone
  c.advance(10);
  p.set_done(10);  // 1/s: 990 s by the count, 50 s by the deadline
  CHECK(p.eta_s() == Approx(50));
  c.advance(100);
  CHECK(p.eta_s() == 0);  // past the deadline
  Progress q(20, 0, 10, c.fn());
  q.set_deadline(600);
  c.advance(10);
  q.set_done(10);  // 10 s left by the count, under the deadline's 590
  CHECK(q.eta_s() == Approx(10));
}

TEST_CASE("progress: a line is due first, then at most every every_s, and at the last item") {
  FakeClock c;
  Progress p(10, 0, 5, c.fn());
  p.set_done(1);
  CHECK(p.due());
  c.advance(2);
  p.set_done(2);
  CHECK_FALSE(p.due());
  c.advance(3);
  p.set_done(3);
  CHECK(p.due());  // 5 s since the last line
  c.advance(1);
  p.set_done(10);
  CHECK(p.due());  // the last item, whatever the time
}

TEST_CASE("progress: log_progress writes its lines through the logger") {
  const auto dir = sam_test::temp_dir("progress");
  const auto path = (dir / "log.txt").string();
  {
    sam::log::FileSink sink(path);
    auto fn = sam::data::log_progress("images", 3600);
    for (int i = 1; i <= 5; ++i) fn(i, 5);
  }
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  const std::string text = ss.str();
  // The first and the last item only (an hour between lines).
  CHECK(text.find("images 1/5 (") != std::string::npos);
  CHECK(text.find("images 5/5 (") != std::string::npos);
  CHECK(text.find("images 3/5") == std::string::npos);
  CHECK(text.find("ETA") != std::string::npos);
}
