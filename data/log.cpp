// The logger behind data/log.h: one spdlog logger whose sink is a distribution list (the console,
// then the open file sinks). Built as a library of its own without libtorch's headers (PyTorch's
// wheels carry another fmt than the one Debian's spdlog was built with).
#include "data/log.h"

#include <spdlog/logger.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/dist_sink.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <stdexcept>

namespace sam::log {
namespace {

// stdout for debug and info, stderr for warn and error (or everything); flushed per line.
class ConsoleSink : public spdlog::sinks::base_sink<std::mutex> {
 public:
  std::atomic<bool> all_to_stderr{false};

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    spdlog::memory_buf_t line;
    formatter_->format(msg, line);
    std::FILE* out = all_to_stderr || msg.level >= spdlog::level::warn ? stderr : stdout;
    std::fwrite(line.data(), 1, line.size(), out);
    std::fflush(out);
  }
  void flush_() override {
    std::fflush(stdout);
    std::fflush(stderr);
  }
};

spdlog::level::level_enum to_spd(Level l) {
  switch (l) {
    case Level::kDebug: return spdlog::level::debug;
    case Level::kInfo: return spdlog::level::info;
    case Level::kWarn: return spdlog::level::warn;
    case Level::kError: return spdlog::level::err;
    case Level::kOff: return spdlog::level::off;
  }
  return spdlog::level::info;
}

// "[rank R] " under torchrun (WORLD_SIZE > 1), else nothing.
std::string rank_prefix() {
  const char* ws = std::getenv("WORLD_SIZE");
  const char* r = std::getenv("RANK");
  if (ws == nullptr || std::atoi(ws) <= 1) return "";
  return "[rank " + std::string(r ? r : "?") + "] ";
}

struct State {
  std::shared_ptr<spdlog::sinks::dist_sink_mt> dist = std::make_shared<spdlog::sinks::dist_sink_mt>();
  std::shared_ptr<ConsoleSink> console = std::make_shared<ConsoleSink>();
  std::shared_ptr<spdlog::logger> logger;
  Level level = Level::kInfo;

  State() {
    console->set_pattern(rank_prefix() + "%v");
    dist->add_sink(console);
    logger = std::make_shared<spdlog::logger>("sam", dist);
    logger->flush_on(spdlog::level::trace);
    if (const char* env = std::getenv("SAM_LOG_LEVEL"); env && *env) {
      try {
        level = parse_level(env);
      } catch (const std::invalid_argument& e) {
        std::fprintf(stderr, "SAM_LOG_LEVEL: %s; using info\n", e.what());
      }
    }
    logger->set_level(to_spd(level));
  }
};

State& state() {
  static State s;
  return s;
}

}  // namespace

Level parse_level(const std::string& name) {
  if (name == "debug") return Level::kDebug;
  if (name == "info") return Level::kInfo;
  if (name == "warn" || name == "warning") return Level::kWarn;
  if (name == "error") return Level::kError;
  if (name == "off") return Level::kOff;
  throw std::invalid_argument("log level '" + name + "': use debug, info, warn, error or off");
}

void set_level(Level l) {
  state().level = l;
  state().logger->set_level(to_spd(l));
}
Level level() { return state().level; }
void messages_to_stderr() { state().console->all_to_stderr = true; }

void debug(const std::string& line) { state().logger->debug(line); }
void info(const std::string& line) { state().logger->info(line); }
void warn(const std::string& line) { state().logger->warn(line); }
void error(const std::string& line) { state().logger->error(line); }

FileSink::FileSink(const std::string& path) {
  std::shared_ptr<spdlog::sinks::basic_file_sink_mt> file;
  try {
    file = std::make_shared<spdlog::sinks::basic_file_sink_mt>(path, /*truncate=*/false);
  } catch (const spdlog::spdlog_ex& e) {
    throw std::runtime_error("cannot open the log file " + path + ": " + e.what());
  }
  file->set_pattern("%v");
  state().dist->add_sink(file);
  sink_ = std::shared_ptr<spdlog::sinks::sink>(file);  // stored as the base: the destructor casts back
}

FileSink::~FileSink() {
  auto file = std::static_pointer_cast<spdlog::sinks::sink>(sink_);
  state().dist->remove_sink(file);
  file->flush();
}

}  // namespace sam::log
