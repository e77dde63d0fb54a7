// The run checkpoint (train/run_state.h): a round trip of every part, the atomic write leaving
// no temporary file (the writer itself: tests/data/test_atomic_file.cpp), clear errors for files
// that are not run checkpoints, and the generators' states restoring the same draws.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "sam/pth_io.h"
#include "train/run_state.h"
#include "test_util.h"

using namespace sam::train;
namespace fs = std::filesystem;
using Catch::Matchers::Contains;

namespace {
bool same(const sam::NamedTensors& a, const sam::NamedTensors& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (a[i].first != b[i].first || a[i].second.scalar_type() != b[i].second.scalar_type() ||
        !torch::equal(a[i].second, b[i].second))
      return false;
  return true;
}
}  // namespace

TEST_CASE("run checkpoint: every part round-trips, in order, and no temporary file stays") {
  const auto dir = sam_test::temp_dir("run_state");
  torch::manual_seed(4);
  RunCheckpoint ck;
  ck.model = {{"image_encoder.pos_embed", torch::randn({1, 4, 4, 8})},
              {"mask_decoder.iou_token.weight", torch::randn({1, 8})}};
  ck.ema = {{"image_encoder.pos_embed", torch::randn({1, 4, 4, 8})}};
  ck.optim = {{"step", torch::tensor(int64_t{17})}, {"exp_avg.0", torch::randn({3, 5}).to(torch::kDouble)}};
  ck.rng = capture_rng_states(torch::kCPU);
  ck.meta = {{"step", 17}, {"loader", {{"epoch", 2}, {"order", {3, 1, 2}}}}, {"note", "résumé ✓"}};
  const auto path = (dir / "last.pth").string();
  save_run_checkpoint(path, ck);
  CHECK_FALSE(fs::exists(path + ".tmp"));
  const auto back = load_run_checkpoint(path);
  CHECK(same(back.model, ck.model));
  CHECK(same(back.ema, ck.ema));
  CHECK(same(back.optim, ck.optim));
  CHECK(same(back.rng, ck.rng));
  CHECK(back.meta == ck.meta);

  // A run without a weight average has no ema entries, and reads back without them.
  ck.ema.clear();
  save_run_checkpoint(path, ck);
  CHECK(load_run_checkpoint(path).ema.empty());
  fs::remove_all(dir);
}

TEST_CASE("run checkpoint: files that are not one are refused, naming the file") {
  const auto dir = sam_test::temp_dir("run_state_bad");
  const auto plain = (dir / "model.pth").string();
  sam::pth_write(plain, {{"image_encoder.pos_embed", torch::zeros({2})}});
  CHECK_THROWS_WITH(load_run_checkpoint(plain), Contains(plain) && Contains("not a run checkpoint"));

  const std::string bad_json = "{\"step\": ";
  auto meta = torch::empty({static_cast<int64_t>(bad_json.size())}, torch::kUInt8);
  std::memcpy(meta.data_ptr<uint8_t>(), bad_json.data(), bad_json.size());
  const auto corrupt = (dir / "corrupt.pth").string();
  sam::pth_write(corrupt, {{"model.w", torch::zeros({2})}, {"meta", meta}});
  CHECK_THROWS_WITH(load_run_checkpoint(corrupt), Contains(corrupt) && Contains("corrupt run metadata"));

  CHECK_THROWS(load_run_checkpoint((dir / "missing.pth").string()));
  fs::remove_all(dir);
}

TEST_CASE("generator states: restoring repeats the draws made after the capture") {
  torch::manual_seed(123);
  const auto states = capture_rng_states(torch::kCPU);
  REQUIRE(states.size() == 1);
  CHECK(states[0].first == "torch_cpu");
  const auto first = torch::rand({16});
  const auto bern = torch::empty({32}).bernoulli_(0.3);
  CHECK(restore_rng_states(states, torch::kCPU));
  CHECK(torch::equal(torch::rand({16}), first));
  CHECK(torch::equal(torch::empty({32}).bernoulli_(0.3), bern));
  // Without the CPU's state nothing is restored and the draws go on.
  CHECK(restore_rng_states({}, torch::kCPU));
  CHECK_FALSE(torch::equal(torch::rand({16}), first));
}
