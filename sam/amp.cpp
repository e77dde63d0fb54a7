#include "sam/amp.h"

#include <stdexcept>
#include <string>

#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <torch/version.h>

// PyTorch 2.4 replaced the per-backend functions (set_enabled for CUDA, set_cpu_enabled, ...) by
// ones taking the device type; the old ones remain only as deprecated wrappers.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
#define SAM_AUTOCAST_BY_DEVICE 1
#else
#define SAM_AUTOCAST_BY_DEVICE 0
#endif

namespace sam {
namespace {

void check_device(c10::DeviceType d) {
  if (d != c10::DeviceType::CUDA && d != c10::DeviceType::CPU)
    throw std::invalid_argument("autocast: only CUDA and CPU devices are supported, not " + c10::DeviceTypeName(d));
}

bool get_enabled(c10::DeviceType d) {
#if SAM_AUTOCAST_BY_DEVICE
  return at::autocast::is_autocast_enabled(d);
#else
  return d == c10::DeviceType::CUDA ? at::autocast::is_enabled() : at::autocast::is_cpu_enabled();
#endif
}

void set_enabled(c10::DeviceType d, bool on) {
#if SAM_AUTOCAST_BY_DEVICE
  at::autocast::set_autocast_enabled(d, on);
#else
  if (d == c10::DeviceType::CUDA) at::autocast::set_enabled(on);
  else at::autocast::set_cpu_enabled(on);
#endif
}

c10::ScalarType get_dtype(c10::DeviceType d) {
#if SAM_AUTOCAST_BY_DEVICE
  return at::autocast::get_autocast_dtype(d);
#else
  return d == c10::DeviceType::CUDA ? at::autocast::get_autocast_gpu_dtype() : at::autocast::get_autocast_cpu_dtype();
#endif
}

void set_dtype(c10::DeviceType d, c10::ScalarType t) {
#if SAM_AUTOCAST_BY_DEVICE
  at::autocast::set_autocast_dtype(d, t);
#else
  if (d == c10::DeviceType::CUDA) at::autocast::set_autocast_gpu_dtype(t);
  else at::autocast::set_autocast_cpu_dtype(t);
#endif
}

}  // namespace

AutocastGuard::AutocastGuard(c10::DeviceType device, bool enabled, c10::ScalarType dtype) : device_(device) {
  if (enabled) enter({true, dtype});
}

AutocastGuard::AutocastGuard(c10::DeviceType device, const AutocastState& state) : device_(device) {
  enter(state);
}

void AutocastGuard::enter(const AutocastState& state) {
  check_device(device_);
  prev_enabled_ = get_enabled(device_);
  prev_dtype_ = get_dtype(device_);
  if (state.enabled) {
    set_enabled(device_, true);
    set_dtype(device_, state.dtype);
    at::autocast::increment_nesting();
    active_ = true;
  } else if (prev_enabled_) {
    set_enabled(device_, false);
    restore_only_ = true;
  }
}

AutocastGuard::~AutocastGuard() {
  if (restore_only_) {
    set_enabled(device_, prev_enabled_);
    return;
  }
  if (!active_) return;
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  set_enabled(device_, prev_enabled_);
  set_dtype(device_, prev_dtype_);
}

bool autocast_enabled(c10::DeviceType device) {
  check_device(device);
  return get_enabled(device);
}

AutocastState autocast_state(c10::DeviceType device) {
  check_device(device);
  return {get_enabled(device), get_dtype(device)};
}

bool cpu_bf16_matmul_lossy() {
  static const bool lossy = [] {
    at::AutoDispatchBelowAutograd no_grad;
    const int64_t n = 4096;  // exact in fp32; a bf16 running sum stops at 256
    const auto a = at::ones({2, n}, at::TensorOptions().dtype(at::kBFloat16));
    const auto b = at::ones({n, 2}, at::TensorOptions().dtype(at::kBFloat16));
    return at::mm(a, b)[0][0].item<float>() != static_cast<float>(n);
  }();
  return lossy;
}

at::Tensor matmul(const at::Tensor& a, const at::Tensor& b) {
  const bool bf16 = a.scalar_type() == at::kBFloat16 || b.scalar_type() == at::kBFloat16 ||
                    (get_enabled(c10::DeviceType::CPU) && get_dtype(c10::DeviceType::CPU) == at::kBFloat16);
  if (!a.is_cpu() || !bf16 || b.dim() < 2 || !cpu_bf16_matmul_lossy()) return at::matmul(a, b);
  return at::matmul(a, b.transpose(-2, -1).contiguous().transpose(-2, -1));
}

}  // namespace sam
