#include "sam/device.h"

#include <algorithm>
#include <chrono>
#include <sstream>

#include <torch/torch.h>

#include "data/process.h"

#ifdef SAM_WITH_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <cuda_runtime_api.h>
#endif

namespace sam {

namespace {
[[noreturn]] void no_cuda(const torch::Device& d) {
  throw std::runtime_error(d.str() + ": this build has no CUDA (scripts/build.sh --cuda makes one)");
}
}  // namespace

void device_synchronize(const torch::Device& device) {
  if (!device.is_cuda()) return;
#ifdef SAM_WITH_CUDA
  torch::cuda::synchronize(device.has_index() ? device.index() : -1);
#else
  no_cuda(device);
#endif
}

double device_peak_mib(const torch::Device& device) {
  if (!device.is_cuda()) return data::peak_rss_mib();
#ifdef SAM_WITH_CUDA
  const auto idx = device.has_index() ? device.index() : c10::cuda::current_device();
  const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(idx);
  return static_cast<double>(stats.allocated_bytes[0].peak) / (1024.0 * 1024.0);
#else
  no_cuda(device);
#endif
}

void device_reset_peak(const torch::Device& device) {
  if (!device.is_cuda()) return;
#ifdef SAM_WITH_CUDA
  c10::cuda::CUDACachingAllocator::resetPeakStats(device.has_index() ? device.index() : c10::cuda::current_device());
#else
  no_cuda(device);
#endif
}

std::string device_description(const torch::Device& device) {
  std::ostringstream o;
  if (!device.is_cuda()) {
    o << "cpu, " << torch::get_num_threads() << " threads";
    return o.str();
  }
#ifdef SAM_WITH_CUDA
  const auto idx = device.has_index() ? device.index() : c10::cuda::current_device();
  const cudaDeviceProp* p = at::cuda::getDeviceProperties(idx);
  int driver = 0, runtime = 0;
  cudaDriverGetVersion(&driver);
  cudaRuntimeGetVersion(&runtime);
  o << p->name << ", sm_" << p->major << p->minor << ", " << std::fixed;
  o.precision(1);
  o << static_cast<double>(p->totalGlobalMem) / (1024.0 * 1024.0 * 1024.0) << " GiB, driver " << driver / 1000 << "."
    << (driver % 1000) / 10 << ", runtime " << runtime / 1000 << "." << (runtime % 1000) / 10;
  return o.str();
#else
  no_cuda(device);
#endif
}

double measure_gemm_tflops(const torch::Device& device, torch::ScalarType dtype, int64_t n, int reps) {
  torch::NoGradGuard ng;
  auto opts = torch::TensorOptions().device(device).dtype(dtype);
  auto a = torch::randn({n, n}, opts), b = torch::randn({n, n}, opts), c = torch::empty({n, n}, opts);
  torch::mm_out(c, a, b);  // warm-up (and cuBLAS's heuristics)
  device_synchronize(device);
  double best = 1e30;
  for (int t = 0; t < 3; ++t) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int r = 0; r < reps; ++r) torch::mm_out(c, a, b);
    device_synchronize(device);
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return 2.0 * static_cast<double>(n) * n * n * reps / best / 1e12;
}

}  // namespace sam
