#pragma once
// What the programs and the trainer need to know of the device they run on: waiting for it, its
// peak memory, its description, and its dense matrix-product rate (the divisor of MFU). CUDA parts
// are compiled in the CUDA build (SAM_WITH_CUDA); elsewhere a CUDA device is refused.
#include <string>

#include <torch/types.h>

namespace sam {

/// Waits until `device` has finished the work queued on it (a no-op on the CPU).
void device_synchronize(const torch::Device& device);

/// The most memory held for tensors on `device` since the last reset, in MiB: the caching
/// allocator's peak on a GPU, the process's peak resident memory on the CPU.
double device_peak_mib(const torch::Device& device);
/// Starts a new peak (GPU; the CPU's cannot be reset).
void device_reset_peak(const torch::Device& device);

/// "NVIDIA H200, sm_90, 139.8 GiB, driver 13.0, runtime 13.0" or "cpu, 16 threads".
std::string device_description(const torch::Device& device);

/// The dense matrix-product rate of `device` in TFLOP/s: an n x n by n x n product in `dtype`,
/// `reps` times after a warm-up, the best of 3 timings.
double measure_gemm_tflops(const torch::Device& device, torch::ScalarType dtype, int64_t n, int reps);

}  // namespace sam
