#pragma once
// The programs' logger: every program and library writes its messages through these functions
// (spdlog underneath, data/log.cpp; kept out of this header, which the whole project includes).
//  - Levels: debug, info, warn, error. $SAM_LOG_LEVEL (debug, info, warn, error, off) sets the
//    starting level (info); the programs' --log-level flag calls set_level.
//  - The console: debug and info lines on stdout, warn and error on stderr, one message per line,
//    flushed at once. Under torchrun (WORLD_SIZE > 1) each line starts with "[rank R] ".
//  - A file sink (FileSink) appends the same lines, without the rank prefix, to a run's log (the
//    trainer's train.log: the line format that file always had, the message alone).
#include <memory>
#include <string>

namespace sam::log {

enum class Level { kDebug, kInfo, kWarn, kError, kOff };

/// "debug", "info", "warn", "error" or "off"; throws std::invalid_argument naming the valid ones.
Level parse_level(const std::string& name);
/// Lines below `level` are dropped, on the console and in every file sink.
void set_level(Level level);
Level level();

/// Every console line goes to stderr (for programs whose stdout carries data, such as JSON).
void messages_to_stderr();

void debug(const std::string& line);
void info(const std::string& line);
void warn(const std::string& line);
void error(const std::string& line);

/// Every line logged while this lives is also appended to `path` (created if missing). Several
/// may be open at once (the data engine's retraining rounds each have their run's log). Throws
/// std::runtime_error naming the path when it cannot be opened.
class FileSink {
 public:
  explicit FileSink(const std::string& path);
  ~FileSink();
  FileSink(const FileSink&) = delete;
  FileSink& operator=(const FileSink&) = delete;

 private:
  std::shared_ptr<void> sink_;
};

}  // namespace sam::log
