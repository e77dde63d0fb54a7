#pragma once
// The progress of a long loop, one mechanism for every long job (training, evaluation, the mask
// generator over a folder, the data engine's stages, sam_data's conversions and validation): the
// rate over this run's items, the time left (capped by a deadline when the job has one) and one
// way of writing them. No libtorch, no OpenCV (samlib_base).
#include <cstdint>
#include <functional>
#include <string>

namespace sam::data {

/// Called after each finished item with (items done, items in all); at most one call at a time.
using ProgressFn = std::function<void(int64_t done, int64_t total)>;

/// "45s", "3m07s", "1h05m"; "?" for a negative or non-finite number of seconds.
std::string format_duration(double seconds);

class Progress {
 public:
  /// Seconds since some fixed point; the steady clock unless a test gives its own.
  using Clock = std::function<double()>;

  /// A loop over `total` items of which `done` were finished before this run (a resumed run:
  /// they do not count in the rate). `every_s`: the least time between two lines (due()).
  explicit Progress(int64_t total, int64_t done = 0, double every_s = 10, Clock clock = {});

  /// `done` items are finished in all (not an increment).
  void set_done(int64_t done);
  void set_total(int64_t total) { total_ = total; }
  /// The job stops at `seconds` after this object's start whatever is left (a time limit): the
  /// time left is at most what remains of it. 0: none.
  void set_deadline(double seconds) { deadline_s_ = seconds; }

  int64_t done() const { return done_; }
  int64_t total() const { return total_; }
  double elapsed_s() const;
  /// Items per second over this run's items; 0 before the first.
  double rate() const;
  /// Seconds left at that rate (capped by the deadline); negative when unknown (no item yet and
  /// no deadline).
  double eta_s() const;

  /// "ETA 3m07s" ("ETA ?" while unknown).
  std::string eta_text() const;
  /// "<label> <done>/<total> (<rate>/s, <elapsed> elapsed, ETA <left>)".
  std::string line(const std::string& label) const;
  /// Whether to write a line now: at the last item, and otherwise when `every_s` has passed
  /// since the previous true (the first item included).
  bool due();

 private:
  Clock clock_;
  double start_s_ = 0, last_line_s_ = -1e300, every_s_ = 10, deadline_s_ = 0;
  int64_t total_ = 0, done_at_start_ = 0, done_ = 0;
};

/// A ProgressFn that logs `Progress::line(label)` (sam::log::info) when due: the evaluations',
/// the validators' and the converters' progress.
ProgressFn log_progress(const std::string& label, double every_s = 10);

}  // namespace sam::data
