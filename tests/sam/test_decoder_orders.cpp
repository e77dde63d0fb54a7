// The decoder attention's three orders of products (reference, keys-side and values-side
// reassociation) and the shared-image batches against the reference order: outputs and gradients.
#include <catch2/catch.hpp>

#include "sam/mask_decoder.h"

namespace {

using Order = sam::DecoderAttentionImpl::Order;

const char* name(Order o) {
  switch (o) {
    case Order::kPlain: return "plain";
    case Order::kKeys: return "keys";
    case Order::kValues: return "values";
    default: return "auto";
  }
}

// Runs attention in `order` on copies of the inputs; returns the output and the input gradients
// for a fixed random weighting of the output.
std::vector<torch::Tensor> run(sam::DecoderAttention& attn, Order order, const std::vector<torch::Tensor>& in,
                               const torch::Tensor& w) {
  attn->forced_order = order;
  std::vector<torch::Tensor> x;
  for (const auto& t : in) x.push_back(t.detach().clone().requires_grad_(true));
  auto out = attn->forward(x[0], x[1], x[2]);
  (out * w.expand_as(out)).sum().backward();
  std::vector<torch::Tensor> r{out.detach()};
  for (auto& t : x) r.push_back(t.grad());
  for (const auto& p : attn->parameters()) {
    // The keys-side order never uses k_proj's bias (a per-row constant under the softmax): its
    // gradient is zero in every order, undefined in that one.
    r.push_back(p.grad().defined() ? p.grad().clone() : torch::zeros_like(p));
    p.mutable_grad() = torch::Tensor();
  }
  attn->forced_order = Order::kAuto;
  return r;
}

}  // namespace

TEST_CASE("decoder attention: every order of products computes the reference's attention", "[sam][decoder]") {
  torch::manual_seed(5);
  // (Bq, Bk, Nq, Nk): tokens against a shared or per-prompt image, the image against tokens.
  for (auto s : std::vector<std::array<int64_t, 4>>{{3, 1, 7, 50}, {3, 3, 7, 50}, {1, 3, 50, 7}, {3, 3, 50, 7},
                                                    {1, 1, 5, 9}}) {
    const int64_t Bq = s[0], Bk = s[1], Nq = s[2], Nk = s[3], D = 32, B = std::max(Bq, Bk);
    sam::DecoderAttention attn(D, 4, 2);
    attn->eval();
    std::vector<torch::Tensor> in{torch::randn({Bq, Nq, D}), torch::randn({Bk, Nk, D}), torch::randn({Bk, Nk, D})};
    auto w = torch::randn({B, Nq, D});
    // The reference on explicitly repeated batches.
    std::vector<torch::Tensor> full;
    for (const auto& t : in) full.push_back(t.size(0) == B ? t : t.expand({B, t.size(1), t.size(2)}).contiguous());
    attn->forced_order = Order::kPlain;
    auto ref = attn->forward(full[0], full[1], full[2]).detach();
    for (auto order : {Order::kPlain, Order::kKeys, Order::kValues, Order::kAuto}) {
      INFO("Bq " << Bq << " Bk " << Bk << " Nq " << Nq << " Nk " << Nk << " order " << name(order));
      auto r = run(attn, order, in, w);
      CHECK(r[0].sizes() == ref.sizes());
      CHECK(torch::allclose(r[0], ref, 1e-4, 1e-5));
      if (order != Order::kPlain) {
        auto p = run(attn, Order::kPlain, in, w);
        for (size_t i = 1; i < r.size(); ++i) {
          INFO("gradient " << i);
          CHECK(torch::allclose(r[i], p[i], 1e-3, 1e-4));
        }
      }
    }
  }
}

TEST_CASE("decoder attention picks the cheaper order for SAM's shapes", "[sam][decoder]") {
  sam::DecoderAttention attn(256, 8, 2);  // ViT-B/L/H decoder cross-attention
  attn->eval();
  // One prompt: token-to-image by the keys side, image-to-token by the values side.
  CHECK(attn->choose_order(1, 1, 7, 4096, 256) == Order::kKeys);
  CHECK(attn->choose_order(1, 1, 4096, 7, 256) == Order::kValues);
  // 64 prompts on a shared image: the shared keys are projected once.
  CHECK(attn->choose_order(64, 1, 7, 4096, 256) == Order::kPlain);
  CHECK(attn->choose_order(1, 64, 4096, 7, 256) == Order::kValues);
  // Training with dropout keeps the reference's order.
  sam::DecoderAttention drop(256, 8, 2, 0.1);
  drop->train();
  CHECK(drop->choose_order(1, 1, 7, 4096, 256) == Order::kPlain);
  // The tiny model's decoder (64 channels, internal 32): the reference's order is cheapest.
  sam::DecoderAttention tiny(64, 8, 2);
  tiny->eval();
  CHECK(tiny->choose_order(8, 8, 7, 256, 64) == Order::kPlain);
}
