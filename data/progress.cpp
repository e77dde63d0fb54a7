#include "data/progress.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>

#include "data/log.h"

namespace sam::data {

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const long long t = std::llround(seconds);
  char buf[48];
  if (t >= 3600) std::snprintf(buf, sizeof buf, "%lldh%02lldm", t / 3600, (t % 3600) / 60);
  else if (t >= 60) std::snprintf(buf, sizeof buf, "%lldm%02llds", t / 60, t % 60);
  else std::snprintf(buf, sizeof buf, "%llds", t);
  return buf;
}

Progress::Progress(int64_t total, int64_t done, double every_s, Clock clock)
    : clock_(clock ? std::move(clock) : Clock([] {
        return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
      })),
      every_s_(every_s),
      total_(total),
      done_at_start_(done),
      done_(done) {
  start_s_ = clock_();
}

void Progress::set_done(int64_t done) { done_ = done; }

double Progress::elapsed_s() const { return clock_() - start_s_; }

double Progress::rate() const {
  const double el = elapsed_s();
  const int64_t n = done_ - done_at_start_;
  return n > 0 && el > 0 ? static_cast<double>(n) / el : 0.0;
}

double Progress::eta_s() const {
  const double r = rate();
  double left = r > 0 ? static_cast<double>(std::max<int64_t>(total_ - done_, 0)) / r : -1;
  if (deadline_s_ > 0) {
    const double until = std::max(0.0, deadline_s_ - elapsed_s());
    left = left < 0 ? until : std::min(left, until);
  }
  return left;
}

std::string Progress::eta_text() const { return "ETA " + format_duration(eta_s()); }

std::string Progress::line(const std::string& label) const {
  char rate[32];
  std::snprintf(rate, sizeof rate, "%.3g", this->rate());
  return label + " " + std::to_string(done_) + "/" + std::to_string(total_) + " (" + rate + "/s, " +
         format_duration(elapsed_s()) + " elapsed, " + eta_text() + ")";
}

bool Progress::due() {
  const double now = clock_();
  if (done_ < total_ && now - last_line_s_ < every_s_) return false;
  last_line_s_ = now;
  return true;
}

ProgressFn log_progress(const std::string& label, double every_s) {
  auto p = std::make_shared<Progress>(0, 0, every_s);
  return [p, label](int64_t done, int64_t total) {
    p->set_total(total);
    p->set_done(done);
    if (p->due()) log::info(p->line(label));
  };
}

}  // namespace sam::data
