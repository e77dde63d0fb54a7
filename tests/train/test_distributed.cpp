// Data-parallel communication: the GPU a local rank takes, the collectives of a group of threads
// (Gloo; NCCL with a GPU), and the bucketed gradient all-reduce that starts during the backward
// pass, against the sum of the ranks' own gradients.
#include <catch2/catch.hpp>

#include <thread>

#include "sam/sam_model.h"
#include "train/distributed.h"
#include "train/grad_reducer.h"
#include "train/interactive.h"
#include "test_util.h"

using namespace sam::train;

TEST_CASE("each local rank takes its GPU, or the one its launcher exposes", "[train][dist]") {
  CHECK(cuda_index_for_local_rank(0, 8) == 0);
  CHECK(cuda_index_for_local_rank(5, 8) == 5);
  // Slurm --gpus-per-task=1 (or CUDA_VISIBLE_DEVICES per rank): local rank 3 sees one GPU, index 0.
  CHECK(cuda_index_for_local_rank(3, 1) == 0);
  CHECK_THROWS_WITH(cuda_index_for_local_rank(5, 4), Catch::Contains("only 4 GPUs are visible"));
  CHECK_THROWS_WITH(cuda_index_for_local_rank(0, 0), Catch::Contains("no CUDA device"));
  bind_device(torch::kCPU);  // a no-op on the CPU
}

namespace {

// Runs fn(rank, comm) on `world` threads that form one group named `name`.
void on_threads(const std::string& name, int world, const torch::Device& device, const std::string& backend,
                const std::function<void(int, Communicator&)>& fn) {
  std::vector<std::thread> threads;
  std::vector<std::string> errors(world);
  for (int r = 0; r < world; ++r)
    threads.emplace_back([&, r] {
      try {
        auto comm = Communicator::create_local(name + "_" + std::to_string(::getpid()), r, world, device, backend);
        fn(r, *comm);
      } catch (const std::exception& e) {
        errors[r] = e.what();
      }
    });
  for (auto& t : threads) t.join();
  for (int r = 0; r < world; ++r) {
    INFO("rank " << r);
    CHECK(errors[r] == "");
  }
}

void check_collectives(const std::string& name, int world, const torch::Device& device, const std::string& backend,
                       const std::string& expect_backend) {
  on_threads(name, world, device, backend, [&](int r, Communicator& c) {
    CHECK(c.backend() == expect_backend);
    auto opts = torch::TensorOptions().device(device);
    std::vector<torch::Tensor> ts{torch::full({3}, 1.0 + r, opts), torch::full({2, 2}, 10.0 * (r + 1), opts)};
    c.allreduce_sum(ts, /*bucket_mb=*/1e-6);  // one tensor per bucket
    double s1 = 0, s2 = 0;
    for (int k = 0; k < world; ++k) {
      s1 += 1.0 + k;
      s2 += 10.0 * (k + 1);
    }
    CHECK(torch::equal(ts[0].cpu(), torch::full({3}, s1)));
    CHECK(torch::equal(ts[1].cpu(), torch::full({2, 2}, s2)));
    auto t = torch::full({4}, static_cast<double>(r), opts);
    c.allreduce_sum_async(t)->wait();
    CHECK(t.cpu()[0].item<double>() == world * (world - 1) / 2.0);
    std::vector<torch::Tensor> b{torch::full({2}, 7.0 + r, opts)};
    c.broadcast(b, world - 1);
    CHECK(b[0].cpu()[1].item<double>() == 7.0 + world - 1);
    CHECK(c.allreduce_sum(std::vector<double>{0.5, static_cast<double>(r)})[0] == 0.5 * world);
    c.barrier();
  });
}

}  // namespace

TEST_CASE("a Gloo group of threads sums, broadcasts and meets", "[train][dist]") {
  check_collectives("gloo2", 2, torch::kCPU, "auto", "gloo");
}

TEST_CASE("on a GPU: a 1-rank NCCL group, and 2 Gloo ranks on CUDA tensors", "[train][dist][cuda]") {
  SAM_REQUIRE_CUDA();
  const torch::Device gpu(torch::kCUDA, 0);
  check_collectives("nccl1", 1, gpu, "auto", "nccl");
  // NCCL refuses two ranks on one GPU; Gloo carries CUDA tensors through the host.
  check_collectives("gloocuda2", 2, gpu, "gloo", "gloo");
}

namespace {

sam::ModelConfig tiny() {
  return sam::model_config_resolve((sam_test::source_dir() / "configs" / "model_tiny.json").string());
}

// A batch of one image with rectangles; `variant` moves them (different data per rank).
StepBatch rect_batch(int variant) {
  StepBatch b;
  const int64_t h = 200, w = 240;
  auto img = torch::full({3, h, w}, 30 + 20 * variant, torch::kUInt8);
  auto masks = torch::zeros({3, h, w}, torch::kUInt8);
  for (int k = 0; k < 3; ++k) {
    const int64_t y = 10 + 50 * k + 7 * variant, x = 20 + 60 * k, bh = 40 + 5 * variant, bw = 50;
    for (int c = 0; c < 3; ++c) img[c].narrow(0, y, bh).narrow(1, x, bw).fill_(60 * (k + 1) + c * 30);
    masks[k].narrow(0, y, bh).narrow(1, x, bw).fill_(1);
  }
  b.images.push_back(img);
  b.masks.push_back(masks);
  b.keys.push_back(variant);
  return b;
}

// The gradients of one step of a fresh tiny model (seeded weights) on `batch`, by name.
std::map<std::string, torch::Tensor> local_gradients(const StepBatch& batch, const StepOptions& o,
                                                     const torch::Device& device) {
  torch::manual_seed(11);
  sam::Sam model(tiny());
  model->to(device);
  model->train();
  interactive_step_async(model, batch, o, device);
  std::map<std::string, torch::Tensor> g;
  for (auto& kv : model->named_parameters())
    if (kv.value().grad().defined()) g[kv.key()] = kv.value().grad().cpu();
  return g;
}

// With `owners`, the reduce-scatter of train.shard_optimizer: the parameters' owners cycle through
// every rank (-1), rank 0 and rank 1 in the model's order, and each rank keeps the sums it owns.
void check_reducer(const std::string& name, const torch::Device& device, const std::string& backend,
                   bool owners = false) {
  StepOptions o;
  o.prompt.rounds = 3;
  o.prompt.mask_only_rounds = 1;
  o.global_masks = 6;       // both ranks normalise by the global count, as the trainer does
  // The expectation: each rank's own gradients, summed.
  auto g0 = local_gradients(rect_batch(0), o, device), g1 = local_gradients(rect_batch(1), o, device);
  std::vector<std::map<std::string, torch::Tensor>> reduced(2);
  std::vector<int> early_started(2), buckets(2), collectives(2);
  std::map<std::string, int> owner_of;
  // The models are made here: seeding the shared generator from two threads would race.
  std::vector<sam::Sam> models;
  for (int r = 0; r < 2; ++r) {
    torch::manual_seed(11);
    models.emplace_back(tiny());
    models.back()->to(device);
    models.back()->train();
  }
  on_threads(name, 2, device, backend, [&](int r, Communicator& comm) {
    auto& model = models[r];
    std::vector<torch::Tensor> early, hooked;
    for (auto& kv : model->named_parameters())
      (kv.key().rfind("image_encoder.", 0) == 0 ? hooked : early).push_back(kv.value());
    std::reverse(hooked.begin(), hooked.end());
    std::map<const void*, int> by_impl;
    int k = 0;
    for (auto& kv : model->named_parameters()) {
      by_impl[kv.value().unsafeGetTensorImpl()] = k % 3 - 1;
      if (r == 0) owner_of[kv.key()] = k % 3 - 1;
      ++k;
    }
    GradientReducer::OwnerOf owner;
    if (owners) owner = [&](const torch::Tensor& p) { return by_impl.at(p.unsafeGetTensorImpl()); };
    // Small buckets: many start early.
    GradientReducer reducer(comm, early, hooked, /*bucket_mb=*/0.05, owner);
    reducer.arm();
    StepOptions ro = o;
    ro.before_encoder_backward = [&, r] {
      // A parameter only rank 1 produced a gradient for, and one no rank did.
      if (r == 0) model->mask_decoder->iou_token->weight.mutable_grad() = torch::Tensor();
      model->prompt_encoder->not_a_point_embed->weight.mutable_grad() = torch::Tensor();
      reducer.start_early();
    };
    interactive_step_async(model, rect_batch(r), ro, device);
    reducer.finish();
    buckets[r] = reducer.buckets();
    early_started[r] = reducer.started_before_finish();
    collectives[r] = reducer.collectives();
    for (auto& kv : model->named_parameters())
      if (kv.value().grad().defined()) reduced[r][kv.key()] = kv.value().grad().cpu();
  });
  for (int r = 0; r < 2; ++r) {
    INFO("rank " << r << ": " << early_started[r] << " of " << buckets[r] << " buckets started before finish()");
    // The overlap: most buckets were started while the backward pass still ran.
    CHECK(buckets[r] > 4);
    CHECK(early_started[r] >= buckets[r] - 1);
    const std::string only1 = "mask_decoder.iou_token.weight", none = "prompt_encoder.not_a_point_embed.weight";
    REQUIRE(g0.count(only1));
    REQUIRE(g0.count(none));
    // Without owners one all-reduce per bucket; with them one reduce per owner of a bucket's part.
    if (owners)
      CHECK(collectives[r] > buckets[r]);
    else
      CHECK(collectives[r] == buckets[r]);
    size_t kept = 0;
    for (const auto& [key, a] : g0) {
      INFO(key);
      REQUIRE(g1.count(key));
      const bool mine = !owners || owner_of.at(key) < 0 || owner_of.at(key) == r;
      if (key == none || !mine) {
        // No rank produced one: it stays without a gradient, as in a single process.
        CHECK_FALSE(reduced[r].count(key));
        continue;
      }
      REQUIRE(reduced[r].count(key));
      ++kept;
      // Rank 0's missing gradient counts as zeros.
      const auto expect = key == only1 ? g1[key] : a + g1[key];
      CHECK(torch::allclose(reduced[r][key], expect, 1e-5, 1e-7));
    }
    // Nothing else: without owners every produced gradient, with them this rank's share.
    CHECK(reduced[r].size() == kept);
    CHECK((owners ? kept < g0.size() - 1 : kept == g0.size() - 1));
  }
}

}  // namespace

TEST_CASE("the bucketed all-reduce, started during the backward pass, sums the ranks' gradients",
          "[train][dist]") {
  check_reducer("reducer_cpu", torch::kCPU, "auto");
}

TEST_CASE("the bucketed all-reduce on CUDA tensors (Gloo, 2 ranks on one GPU)", "[train][dist][cuda]") {
  SAM_REQUIRE_CUDA();
  check_reducer("reducer_cuda", torch::Device(torch::kCUDA, 0), "gloo");
}

TEST_CASE("sharded (train.shard_optimizer), the buckets are reduced onto the parameters' owners: each rank "
          "gets the sums of its own share, started during the backward pass",
          "[train][dist]") {
  check_reducer("reducer_owners_cpu", torch::kCPU, "auto", /*owners=*/true);
}

TEST_CASE("the reduce onto owners on CUDA tensors (Gloo through the host, 2 ranks on one GPU)", "[train][dist][cuda]") {
  SAM_REQUIRE_CUDA();
  check_reducer("reducer_owners_cuda", torch::Device(torch::kCUDA, 0), "gloo", /*owners=*/true);
}
