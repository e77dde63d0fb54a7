// The sliced CPU attention kernels (loops, and BLAS products per slice) against the plain tensor
// formulation: outputs and gradients.
#include <catch2/catch.hpp>

#include <functional>

#include "sam/attention.h"
#include "test_util.h"

namespace {
// Runs the enclosing test once per kernel, restoring the automatic choice afterwards.
struct KernelScope {
  explicit KernelScope(sam::AttentionKernel k) { sam::set_attention_kernel(k); }
  ~KernelScope() { sam::set_attention_kernel(sam::AttentionKernel::kAuto); }
};
const char* kernel_name(sam::AttentionKernel k) {
  return k == sam::AttentionKernel::kLoop   ? "loop"
         : k == sam::AttentionKernel::kGemm ? "gemm"
                                            : "auto";
}
const std::vector<sam::AttentionKernel> kKernels{
    sam::AttentionKernel::kLoop, sam::AttentionKernel::kGemm, sam::AttentionKernel::kAuto};

// `attn` against attention_core_reference on q [BH, Nq, c], k [BH, Nk, c], v [BH, Nk, c + 1]
// (scale 0.3): outputs and the gradients of q, k and v.
void check_against_reference(
    const std::function<torch::Tensor(const torch::Tensor&, const torch::Tensor&, const torch::Tensor&)>& attn,
    int64_t BH, int64_t Nq, int64_t Nk, int64_t c) {
  INFO("BH " << BH << ", Nq " << Nq << ", Nk " << Nk << ", c " << c);
  auto q = torch::randn({BH, Nq, c}).requires_grad_(true);
  auto k = torch::randn({BH, Nk, c}).requires_grad_(true);
  auto v = torch::randn({BH, Nk, c + 1}).requires_grad_(true);
  auto q2 = q.detach().clone().requires_grad_(true), k2 = k.detach().clone().requires_grad_(true),
       v2 = v.detach().clone().requires_grad_(true);
  auto a = attn(q, k, v);
  auto b = sam::attention_core_reference(q2, k2, v2, 0.3);
  CHECK(torch::allclose(a, b, 1e-5, 1e-6));
  auto w = torch::randn_like(a);
  (a * w).sum().backward();
  (b * w).sum().backward();
  CHECK(torch::allclose(q.grad(), q2.grad(), 1e-4, 1e-5));
  CHECK(torch::allclose(k.grad(), k2.grad(), 1e-4, 1e-5));
  CHECK(torch::allclose(v.grad(), v2.grad(), 1e-4, 1e-5));
}
using RelPosFn = std::function<torch::Tensor(const torch::Tensor&, const torch::Tensor&, const torch::Tensor&,
                                             const torch::Tensor&, const torch::Tensor&, double, int64_t, int64_t)>;

// `attn` against rel_pos_attention_reference on an H x W grid (scale 0.25): outputs (within
// `out_atol`) and the gradients of all five inputs.
void check_rel_pos_against_reference(const RelPosFn& attn, int64_t H, int64_t W, int64_t BH, int64_t c,
                                     double out_atol) {
  INFO("grid " << H << "x" << W << ", " << BH << " slices, head dim " << c);
  const int64_t L = H * W;
  auto mk = [&](std::vector<int64_t> s) { return torch::randn(s).requires_grad_(true); };
  auto q = mk({BH, L, c}), k = mk({BH, L, c}), v = mk({BH, L, c}), rh = mk({BH, H, W, H}), rw = mk({BH, H, W, W});
  std::vector<torch::Tensor> a_in{q, k, v, rh, rw}, b_in;
  for (auto& t : a_in) b_in.push_back(t.detach().clone().requires_grad_(true));
  auto a = attn(q, k, v, rh, rw, 0.25, H, W);
  auto b = sam::rel_pos_attention_reference(b_in[0], b_in[1], b_in[2], b_in[3], b_in[4], 0.25, H, W);
  CHECK(torch::allclose(a, b, 1e-5, out_atol));
  auto w = torch::randn_like(a);
  (a * w).sum().backward();
  (b * w).sum().backward();
  for (size_t i = 0; i < a_in.size(); ++i) {
    INFO("input " << i);
    CHECK(torch::allclose(a_in[i].grad(), b_in[i].grad(), 1e-4, 1e-5));
  }
}
}  // namespace

TEST_CASE("sliced attention equals the reference, forward and backward", "[sam][attention]") {
  torch::manual_seed(0);
  for (auto kernel : kKernels) {
    KernelScope scope(kernel);
    INFO("kernel " << kernel_name(kernel));
    for (auto shape : std::vector<std::array<int64_t, 4>>{
             {16, 7, 64, 8}, {24, 64, 7, 4}, {3, 5, 5, 32}, {6, 40, 36, 32}}) {
      check_against_reference([](auto& q, auto& k, auto& v) { return sam::attention_core(q, k, v, 0.3); }, shape[0],
                              shape[1], shape[2], shape[3]);
    }
    // No graph needed: still the same values.
    torch::NoGradGuard ng;
    auto q = torch::randn({4, 3, 8}), k = torch::randn({4, 9, 8}), v = torch::randn({4, 9, 8});
    CHECK(torch::allclose(sam::attention_core(q, k, v, 0.5),
                          sam::attention_core_reference(q, k, v, 0.5), 1e-5, 1e-6));
  }
}

TEST_CASE("attention dropout keeps the expectation and only acts in training", "[sam][attention]") {
  torch::manual_seed(1);
  auto q = torch::randn({2, 4, 8}), k = torch::randn({2, 16, 8}), v = torch::randn({2, 16, 8});
  auto ref = sam::attention_core_reference(q, k, v, 0.35);
  CHECK(torch::allclose(sam::attention_core(q, k, v, 0.35, 0.5, /*training=*/false), ref, 1e-5,
                        1e-6));
  auto mean = torch::zeros_like(ref);
  const int n = 400;
  for (int i = 0; i < n; ++i) mean += sam::attention_core(q, k, v, 0.35, 0.5, true);
  mean /= n;
  CHECK((mean - ref).abs().max().item<double>() < 0.15);
  CHECK_FALSE(torch::allclose(sam::attention_core(q, k, v, 0.35, 0.5, true), ref, 1e-3, 1e-3));
}

TEST_CASE("both kernels apply the same dropout mask, forward and backward", "[sam][attention]") {
  // The mask is drawn before the kernel runs, so with the same seed the two kernels must agree.
  auto run = [](sam::AttentionKernel kernel) {
    KernelScope scope(kernel);
    torch::manual_seed(7);
    auto q = torch::randn({5, 24, 16}).requires_grad_(true),
         k = torch::randn({5, 20, 16}).requires_grad_(true),
         v = torch::randn({5, 20, 8}).requires_grad_(true);
    auto out = sam::attention_core(q, k, v, 0.25, 0.3, true);
    (out * torch::linspace(-1, 1, out.numel()).view_as(out)).sum().backward();
    return std::vector<torch::Tensor>{out.detach(), q.grad(), k.grad(), v.grad()};
  };
  auto a = run(sam::AttentionKernel::kLoop), b = run(sam::AttentionKernel::kGemm);
  for (size_t i = 0; i < a.size(); ++i) {
    INFO("tensor " << i);
    CHECK(torch::allclose(a[i], b[i], 1e-4, 1e-5));
  }
  // And the dropout did something: without it the output differs.
  torch::manual_seed(7);
  auto q = torch::randn({5, 24, 16}), k = torch::randn({5, 20, 16}), v = torch::randn({5, 20, 8});
  CHECK_FALSE(torch::allclose(sam::attention_core_reference(q, k, v, 0.25), a[0], 1e-3, 1e-3));
}

TEST_CASE("relative-position attention equals the reference, forward and backward",
          "[sam][attention]") {
  torch::manual_seed(2);
  for (auto kernel : kKernels) {
    KernelScope scope(kernel);
    INFO("kernel " << kernel_name(kernel));
    // Grids under 1024 keys run in the sliced kernels (loops or BLAS per slice), 32 x 32 and
    // 40 x 27 in the one that takes chunks of query rows (the last chunk of 40 x 27 a short one).
    for (auto hw : std::vector<std::array<int64_t, 4>>{{6, 6, 5, 8},
                                                       {16, 16, 2, 8},
                                                       {4, 7, 3, 8},
                                                       {6, 6, 4, 32},
                                                       {16, 16, 2, 32},
                                                       {32, 32, 2, 8},
                                                       {40, 27, 2, 8}}) {
      check_rel_pos_against_reference(sam::rel_pos_attention, hw[0], hw[1], hw[2], hw[3], 1e-6);
    }
  }
}

TEST_CASE("relative-position attention without a graph (inference) equals the reference",
          "[sam][attention]") {
  // Without a graph the probabilities are not kept: the kernel leaves the exponentials
  // unnormalised and scales the output's rows (8-lane code with masked tails where the CPU has
  // AVX2). Grids whose rows are and are not multiples of 8 keys, large scores (a large head dim
  // and scale) so the row maximum matters, the chunked kernel's short last chunk.
  torch::manual_seed(5);
  torch::NoGradGuard ng;
  for (auto kernel : kKernels) {
    KernelScope scope(kernel);
    INFO("kernel " << kernel_name(kernel));
    for (auto hw : std::vector<std::array<int64_t, 4>>{
             {6, 6, 5, 8}, {4, 7, 3, 8}, {14, 14, 2, 64}, {16, 16, 2, 32}, {32, 32, 2, 8}, {40, 27, 2, 8}}) {
      const int64_t H = hw[0], W = hw[1], BH = hw[2], c = hw[3], L = H * W;
      INFO("grid " << H << "x" << W << ", " << BH << " slices, head dim " << c);
      auto q = torch::randn({BH, L, c}) * 3, k = torch::randn({BH, L, c}), v = torch::randn({BH, L, c});
      auto rh = torch::randn({BH, H, W, H}) * 4, rw = torch::randn({BH, H, W, W}) * 4;
      auto a = sam::rel_pos_attention(q, k, v, rh, rw, 0.25, H, W);
      auto b = sam::rel_pos_attention_reference(q, k, v, rh, rw, 0.25, H, W);
      // Outputs of order 1; both kernels differ from the reference's by up to 7e-6 here.
      CHECK(torch::allclose(a, b, 1e-5, 1e-5));
      // The same values with a graph (the kernel that keeps the probabilities), to rounding.
      torch::AutoGradMode on(true);
      auto with_graph = sam::rel_pos_attention(q.requires_grad_(true), k, v, rh, rw, 0.25, H, W);
      CHECK(torch::allclose(a, with_graph.detach(), 1e-5, 1e-5));
      q.requires_grad_(false);
    }
  }
}

TEST_CASE("batched matmul equals bmm, forward and backward", "[sam][attention]") {
  torch::manual_seed(3);
  auto a = torch::randn({5, 7, 3}).requires_grad_(true),
       b = torch::randn({5, 3, 9}).requires_grad_(true);
  auto a2 = a.detach().clone().requires_grad_(true), b2 = b.detach().clone().requires_grad_(true);
  auto x = sam::batched_matmul(a, b.transpose(1, 2).contiguous().transpose(1, 2));
  auto y = torch::bmm(a2, b2);
  CHECK(torch::allclose(x, y, 1e-5, 1e-6));
  auto w = torch::randn_like(x);
  (x * w).sum().backward();
  (y * w).sum().backward();
  CHECK(torch::allclose(a.grad(), a2.grad(), 1e-5, 1e-6));
  CHECK(torch::allclose(b.grad(), b2.grad(), 1e-5, 1e-6));
}

TEST_CASE("scaled_dot_product_attention with the relative-position bias equals the reference",
          "[sam][attention][sdpa]") {
  // The GPU path of the encoder and decoder attention (libtorch >= 2.1), checked here on the CPU:
  // outputs and the gradients of all five inputs.
  if (!sam::sdpa_available()) {
    sam_test::skip("this libtorch has no scaled_dot_product_attention (the cluster build has)", true);
    return;
  }
  torch::manual_seed(4);
  for (auto hw : std::vector<std::array<int64_t, 4>>{{6, 6, 5, 8}, {4, 7, 3, 16}, {14, 14, 2, 32}}) {
    check_rel_pos_against_reference(sam::rel_pos_attention_sdpa, hw[0], hw[1], hw[2], hw[3], 1e-5);
  }
  // The decoder's attention (no bias), with the scale given.
  check_against_reference([](auto& q, auto& k, auto& v) { return sam::attention_core_sdpa(q, k, v, 0.3); }, 6, 7, 50,
                          16);
}
