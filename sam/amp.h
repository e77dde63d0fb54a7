#pragma once
// Mixed precision for the forward passes (the paper trains in mixed precision; SAM 2's trainer
// uses bf16 autocast): a scoped autocast region, the C++ counterpart of `torch.autocast`.
#include <ATen/core/Tensor.h>
#include <c10/core/DeviceType.h>
#include <c10/core/ScalarType.h>

namespace sam {

/// Whether autocast is on for a device, and to which type.
struct AutocastState {
  bool enabled = false;
  c10::ScalarType dtype = c10::ScalarType::BFloat16;
};

/// Enables autocast to `dtype` for `device` (CUDA or CPU) for the guard's lifetime, and restores
/// the previous state on exit (clearing the cast-weight cache when the outermost region ends, as
/// torch.autocast does). With `enabled` false it does nothing.
class AutocastGuard {
 public:
  AutocastGuard(c10::DeviceType device, bool enabled, c10::ScalarType dtype = c10::ScalarType::BFloat16);
  /// Sets exactly `state` for `device`, on or off, for the guard's lifetime (the recompute of an
  /// activation-checkpointed block runs under the state its forward pass saw).
  AutocastGuard(c10::DeviceType device, const AutocastState& state);
  ~AutocastGuard();
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  void enter(const AutocastState& state);
  c10::DeviceType device_;
  bool active_ = false, restore_only_ = false, prev_enabled_ = false;
  c10::ScalarType prev_dtype_ = c10::ScalarType::Float;
};

/// Whether autocast is on for `device` now (for tests and logs).
bool autocast_enabled(c10::DeviceType device);
/// The autocast state of `device` now (CPU or CUDA).
AutocastState autocast_state(c10::DeviceType device);

/// Whether this libtorch's CPU bf16 matrix product accumulates in bf16 when the second operand is
/// in the plain row-major layout (libtorch 1.13 on CPUs without oneDNN's AVX-512 bf16 kernels: a
/// sum of 4096 ones comes out as 256); the same product with the second operand in the
/// transposed layout accumulates in fp32. Probed once per process.
bool cpu_bf16_matmul_lossy();

/// torch::matmul(a, b) (b at least 2-d), with fp32 accumulation where the product runs in bf16 on
/// the CPU (bf16 operands or CPU autocast) and cpu_bf16_matmul_lossy() holds: b is then passed in
/// the transposed layout (a copy of b). Elsewhere exactly torch::matmul.
at::Tensor matmul(const at::Tensor& a, const at::Tensor& b);

}  // namespace sam
