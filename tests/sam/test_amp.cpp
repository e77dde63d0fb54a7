// sam::matmul: torch::matmul, except that a CPU product in bf16 sums in fp32 on every host.
#include <catch2/catch.hpp>

#include "sam/amp.h"

#include <torch/torch.h>

TEST_CASE("sam::matmul sums bf16 products in fp32 on the CPU, with bf16 operands and under autocast",
          "[sam][amp]") {
  // 4096 ones: exact in fp32 and in the bf16 result, while a bf16 running sum stops at 256 (what
  // libtorch 1.13's product gives on CPUs without AVX-512 bf16: cpu_bf16_matmul_lossy()).
  const int64_t n = 4096;
  INFO("this host's libtorch bf16 product is " << (sam::cpu_bf16_matmul_lossy() ? "lossy" : "exact"));
  const auto ones_bf16 = [](std::vector<int64_t> s) { return torch::ones(s, torch::kBFloat16); };
  for (const auto& [a, b] : std::vector<std::pair<torch::Tensor, torch::Tensor>>{
           {ones_bf16({2, n}), ones_bf16({n, 3})},         // mm
           {ones_bf16({4, 2, n}), ones_bf16({4, n, 3})},   // bmm
           {ones_bf16({2, 2, 5, n}), ones_bf16({2, 2, n, 3})}}) {  // batched matmul
    INFO("a " << a.sizes() << " b " << b.sizes());
    const auto y = sam::matmul(a, b);
    CHECK(y.scalar_type() == torch::kBFloat16);
    CHECK((y.to(torch::kFloat) == static_cast<float>(n)).all().item<bool>());
  }
  {
    sam::AutocastGuard bf16(torch::kCPU, true);
    const auto y = sam::matmul(torch::ones({3, n}), torch::ones({n, 2}));
    CHECK(y.scalar_type() == torch::kBFloat16);  // autocast ran it in bf16
    CHECK((y.to(torch::kFloat) == static_cast<float>(n)).all().item<bool>());
  }
  // Elsewhere the same values as torch::matmul.
  auto a = torch::randn({3, 7, 9}), b = torch::randn({9, 4});
  CHECK(torch::equal(sam::matmul(a, b), torch::matmul(a, b)));
}
