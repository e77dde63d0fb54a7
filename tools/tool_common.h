#pragma once
// Small helpers shared by the command-line programs: threads, device, error reporting.
#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <torch/torch.h>

#include "data/log.h"
#include "tools/process_env.h"

namespace sam::tools {

/// The median of `v` as numpy computes it (an even count gives the mean of the two middle
/// values), so that the benchmarks' figures and the Python reference's are the same statistic.
inline double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/// OpenMP waits. libgomp's default spins for about 300000 iterations at every barrier before
/// sleeping; as soon as another process wants the cores those spins take its time: on this 2-core
/// machine under a load of 5 a training step took 6 to 10 times longer than with sleeping waits.
/// Sleeping at once (OMP_WAIT_POLICY=PASSIVE, spin count 0) costs a futex wake-up per parallel
/// operation instead, about a quarter of a small model's training step on an idle machine. A
/// short spin (GOMP_SPINCOUNT=300) keeps most of the idle-machine speed (ref training step 0.25 s
/// against 0.32 s with PASSIVE) and costs nothing measurable with two such processes on the two
/// cores (0.35 s each, as with PASSIVE; 1000 gave 0.40 s, 20000 gave 1.5 s). libgomp reads these
/// variables when it is loaded, before main, so a program started with neither sets them and
/// re-executes itself once (tools/process_env.h), with OpenBLAS's kernels fixed in the same start
/// where its own choice does not use the CPU. Set either OMP variable yourself (e.g.
/// OMP_WAIT_POLICY=ACTIVE on a dedicated machine), or OPENBLAS_CORETYPE, to keep your choice.
inline bool ensure_process_env() {
  const bool omp_unset = std::getenv("OMP_WAIT_POLICY") == nullptr && std::getenv("GOMP_SPINCOUNT") == nullptr;
  return reexec_with({{"OMP_WAIT_POLICY", omp_unset ? "PASSIVE" : nullptr},
                      {"GOMP_SPINCOUNT", omp_unset ? "300" : nullptr},  // overrides the policy's spin count of 0
                      {"OPENBLAS_CORETYPE", openblas_core_fix()}});
}
// One per program: every tool is a single translation unit including this header.
[[maybe_unused]] static const bool process_env_set = ensure_process_env();

/// Progress reaches a pipe or a log file as it is printed: stdout is line-buffered whatever it is
/// connected to (C's default buffers whole blocks when it is not a terminal, so `sam_train | grep
/// step` or `sam_engine > log` showed a long run's lines only at its end). std::cout writes
/// through stdout (synchronised with stdio, the default).
inline bool line_buffered_stdout() { return std::setvbuf(stdout, nullptr, _IOLBF, 0) == 0; }
[[maybe_unused]] static const bool stdout_line_buffered = line_buffered_stdout();

/// Freed memory stays in the process. glibc serves blocks above its mmap threshold (dynamic, up
/// to 32 MiB) with mmap and gives them back on free, and trims the heap's top above 128 KiB: a
/// training step's activations of tens of MiB then fault their pages in again every step (kernel
/// time: page faults and zeroing). A fixed threshold of 1 GiB (32 MiB where glibc refuses more)
/// and no trimming keep them mapped: the ref training case 0.255 -> 0.239 s/step in paired runs.
/// The threshold must be set first: a trim threshold alone also fixes the mmap threshold at its
/// 128 KiB start, which doubled the step time. Peak memory is unchanged (the blocks are reused).
inline bool keep_freed_memory() {
  if (::mallopt(M_MMAP_THRESHOLD, 1 << 30) == 0 && ::mallopt(M_MMAP_THRESHOLD, 32 << 20) == 0)
    return false;
  return ::mallopt(M_TRIM_THRESHOLD, 1 << 30) != 0;
}
[[maybe_unused]] static const bool freed_memory_kept = keep_freed_memory();

/// Sets libtorch's intra-op threads (0 = all cores; libtorch starts with one here).
inline void set_threads(int n) {
  if (n <= 0) n = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  torch::set_num_threads(n);
}

/// "cpu" or "cuda[:i]"; throws when CUDA is asked for but not available.
inline torch::Device parse_device(const std::string& s) {
  torch::Device d(s);
  if (d.is_cuda() && !torch::cuda::is_available())
    throw std::runtime_error("--device " + s + ": this libtorch has no CUDA or no GPU is visible");
  return d;
}

/// --log-level on a program's command line (CLI::App; given after a subcommand too): the messages
/// shown, debug, info, warn, error or off; without it $SAM_LOG_LEVEL, else info (data/log.h).
inline void add_log_level_option(CLI::App& app) {
  app.fallthrough();
  app.add_option_function<std::string>(
         "--log-level", [](const std::string& v) { sam::log::set_level(sam::log::parse_level(v)); },
         "messages shown: debug, info, warn, error, off (default: $SAM_LOG_LEVEL, else info)")
      ->check(CLI::IsMember({"debug", "info", "warn", "error", "off"}));
}

/// Runs `body`, turning any exception into "<program>: error: <message>" and exit code 1.
template <typename F>
int run_main(const char* program, F&& body) {
  try {
    return body();
  } catch (const c10::Error& e) {
    sam::log::error(std::string(program) + ": error: " + e.what_without_backtrace());
  } catch (const std::exception& e) {
    sam::log::error(std::string(program) + ": error: " + e.what());
  }
  return 1;
}

}  // namespace sam::tools
