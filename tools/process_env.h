#pragma once
// What a program of ours fixes in its own environment before it starts working: variables that
// libraries read once, when they are loaded (before main), so that setting them means executing
// the program again. Used by every tool (tools/tool_common.h) and every test binary
// (tests/test_main.cpp); no libtorch here.
#include <dlfcn.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <utility>
#include <vector>

namespace sam::tools {

/// The core whose kernels the loaded OpenBLAS runs ("SkylakeX", "Prescott", ...), or nullptr when
/// the process has no OpenBLAS.
inline const char* openblas_core_name() {
  using CoreName = char* (*)();
  auto corename = reinterpret_cast<CoreName>(::dlsym(RTLD_DEFAULT, "openblas_get_corename"));
  return corename != nullptr ? corename() : nullptr;
}

/// Whether `core` is one of OpenBLAS's x86-64 cores without AVX2 kernels (the generic fallback is
/// Prescott).
inline bool openblas_core_pre_avx2(const char* core) {
  static const char* const kPreAvx2[] = {
      "Prescott",  "Core2",  "Penryn",    "Dunnington", "Nehalem",     "Sandybridge", "Atom",
      "Opteron",   "Opteron(SSE3)", "Barcelona", "Bobcat", "Bulldozer", "Piledriver", "Steamroller",
      "Katmai",    "Coppermine", "Northwood", "Banias", "Unknown"};
  for (const char* c : kPreAvx2)
    if (core != nullptr && ::strcasecmp(core, c) == 0) return true;
  return false;
}

/// Whether this CPU runs AVX2 and FMA (OpenBLAS's Haswell kernels and newer).
inline bool cpu_has_avx2_fma() {
#if defined(__x86_64__) && defined(__GNUC__)
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
  return false;
#endif
}

/// OpenBLAS's kernels. A DYNAMIC_ARCH OpenBLAS (Debian's, which Debian's libtorch uses) picks its
/// kernels by the CPU's model number, and a model it does not know gets the generic SSE3 kernels
/// ("Prescott"): on this project's machines with Intel model 207 (Emerald Rapids, AVX-512) Debian's
/// OpenBLAS 0.3.21 does that, and its 2048^3 sgemm runs at 55-79 GFLOP/s instead of the 240-300 of
/// its AVX-512 kernels. The core is chosen when the library is loaded and only OPENBLAS_CORETYPE
/// overrides it. Returns the core type to set when the loaded OpenBLAS runs pre-AVX2 kernels on a
/// CPU with AVX2 and FMA (Cooperlake's kernels with AVX-512 BF16, SkylakeX's with AVX-512, else
/// Haswell's), or nullptr: no OpenBLAS in the process (libtorch with MKL), OPENBLAS_CORETYPE set
/// by the user, or a core that already uses the CPU.
inline const char* openblas_core_fix() {
  if (std::getenv("OPENBLAS_CORETYPE") != nullptr) return nullptr;
  if (!openblas_core_pre_avx2(openblas_core_name()) || !cpu_has_avx2_fma()) return nullptr;
#if defined(__x86_64__) && defined(__GNUC__)
  const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
                      __builtin_cpu_supports("avx512cd");
  if (avx512 && __builtin_cpu_supports("avx512bf16")) return "Cooperlake";
  return avx512 ? "SkylakeX" : "Haswell";
#else
  return nullptr;
#endif
}

/// Sets each (name, value) and executes this program again with its own arguments; returns false
/// if there was nothing to set or the exec failed (the program then goes on as it is). A value is
/// set only where the variable is unset, so the second start finds nothing to do.
inline bool reexec_with(const std::vector<std::pair<const char*, const char*>>& vars) {
  bool changed = false;
  for (const auto& [name, value] : vars) {
    if (value == nullptr || std::getenv(name) != nullptr) continue;
    ::setenv(name, value, 1);
    changed = true;
  }
  if (!changed) return false;
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  const std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::string> args;
  for (size_t i = 0; i < all.size();) {
    const size_t end = all.find('\0', i);
    args.push_back(all.substr(i, end == std::string::npos ? std::string::npos : end - i));
    if (end == std::string::npos) break;
    i = end + 1;
  }
  if (args.empty()) return false;
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  ::execv("/proc/self/exe", argv.data());
  return false;
}

}  // namespace sam::tools
