#pragma once
// Small helpers shared by the command-line programs: threads, device, error reporting.
#include <exception>
#include <iostream>
#include <string>
#include <thread>

#include <torch/torch.h>

namespace sam::tools {

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

/// Runs `body`, turning any exception into "<program>: error: <message>" and exit code 1.
template <typename F>
int run_main(const char* program, F&& body) {
  try {
    return body();
  } catch (const c10::Error& e) {
    std::cerr << program << ": error: " << e.what_without_backtrace() << "\n";
  } catch (const std::exception& e) {
    std::cerr << program << ": error: " << e.what() << "\n";
  }
  return 1;
}

}  // namespace sam::tools
