// sam_train end to end on a small synthetic SA-1B folder with the tiny architecture: exact resume
// after SIGKILL, 2 Gloo processes under torchrun against 1 process with the same global batch,
// non-finite steps, bad samples, config errors and export, TensorBoard event files.
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <map>
#include <thread>

#include <nlohmann/json.hpp>

#include "data/image.h"
#include "peers.h"
#include "sam/pth_io.h"
#include "test_util.h"

namespace fs = std::filesystem;

namespace {

const std::string& synth_dir() {
  static const std::string dir =
      sam_test::synth_sa1b("train_synth", "--images 8 --seed 3 --size 160x120 --min-objects 2 --max-objects 4");
  return dir;
}

// A small, fast configuration: tiny model, 4 masks per image, 3 rounds; the 1 % mask floor these
// tests were written with (configs/tiny.yaml's 5 % would drop most of the small synthetic masks).
std::string base_args(const fs::path& run_dir) {
  return "--config " + (sam_test::source_dir() / "configs" / "tiny.yaml").string() + " --run-dir " + run_dir.string() +
         " data.train=[sa1b:" + synth_dir() + "] 'data.val=\"\"' data.max_masks=4 data.workers=1 train.batch_size=2 data.min_mask_area_frac=0.01"
         " prompt.rounds=3 prompt.mask_only_rounds=1 train.log_every=1 train.val_every=0 train.threads=1"
         " optim.warmup_iters=2";
}

std::string sam_train() { return (sam_test::bin_dir() / "sam_train").string(); }

// The last logged loss of each step (a resumed run logs the steps after its checkpoint again).
std::map<int64_t, double> losses(const fs::path& run_dir) {
  std::map<int64_t, double> out;
  std::ifstream in(run_dir / "metrics.jsonl");
  std::string line;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_object() && j.value("event", "") == "train") out[j["step"].get<int64_t>()] = j["loss"].get<double>();
  }
  return out;
}

std::vector<nlohmann::json> events(const fs::path& run_dir, const std::string& ev) {
  std::vector<nlohmann::json> out;
  std::ifstream in(run_dir / "metrics.jsonl");
  std::string line;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_object() && j.value("event", "") == ev) out.push_back(j);
  }
  return out;
}

}  // namespace

namespace {

// A run killed with SIGKILL (it sends the signal itself, at a point named by SAM_TRAIN_KILL_AT:
// train/run_state.h) and restarted, against the same run uninterrupted: the losses of every step
// and the final weights. Two kills: between checkpoints (after step 5; the last checkpoint is step
// 3's) and inside a checkpoint write (step 6's written to its temporary file, not yet renamed:
// the resume starts from step 3's again). `exact`: bit for bit (the CPU); otherwise within `tol`
// relative (a GPU's atomic adds vary in the last bits from run to run). Returns the folder of the
// runs (ref: the uninterrupted one).
fs::path check_resume(const std::string& tag, const std::string& extra, bool exact, double tol) {
  const auto root = sam_test::temp_dir(tag);
  const int steps = 8;
  const std::string iters = " train.iterations=" + std::to_string(steps) + " train.ckpt_every=3" + extra;
  // The uninterrupted reference.
  std::string out;
  REQUIRE(sam_test::run_command(sam_train() + " " + base_args(root / "ref") + iters, &out) == 0);
  const auto ref = losses(root / "ref");
  REQUIRE(ref.size() == steps);
  REQUIRE(fs::exists(root / "ref" / "model.pth"));
  auto ref_weights = sam::pth_read((root / "ref" / "model.pth").string());

  struct Kill {
    const char* at;
    size_t logged;  // steps logged before the kill
  };
  for (const Kill kill : {Kill{"step:5", 5}, Kill{"checkpoint:6", 6}}) {
    const std::string name = std::string(kill.at).substr(0, std::string(kill.at).find(':'));
    const fs::path run = root / name;
    const std::string args = base_args(run) + iters;
    INFO("killed at " << kill.at);
    // The shell reports a child killed by SIGKILL as 128 + 9.
    REQUIRE(sam_test::run_command(std::string("SAM_TRAIN_KILL_AT=") + kill.at + " " + sam_train() + " " + args,
                                  &out) == 128 + SIGKILL);
    REQUIRE(fs::exists(run / "checkpoint.pth"));
    CHECK(losses(run).size() == kill.logged);
    CHECK(fs::exists(run / "checkpoint.pth.tmp") == (name == "checkpoint"));
    REQUIRE(sam_test::run_command(sam_train() + " " + args, &out) == 0);
    INFO(out);
    CHECK(out.find("resume:") != std::string::npos);
    CHECK(out.find("at step 3") != std::string::npos);
    CHECK(out.find("warning") == std::string::npos);
    const auto resumed = losses(run);
    REQUIRE(resumed.size() == steps);
    for (const auto& [step, loss] : ref) {
      INFO("step " << step);
      if (exact) CHECK(resumed.at(step) == loss);  // exactly: same bits
      else CHECK(resumed.at(step) == Approx(loss).epsilon(tol));
    }
    // The final weights agree too.
    auto& a = ref_weights;
    auto b = sam::pth_read((run / "model.pth").string());
    REQUIRE(a.size() == b.size());
    for (size_t i = 0; i < a.size(); ++i) {
      INFO(a[i].first);
      if (exact) CHECK(torch::equal(a[i].second, b[i].second));
      else CHECK(torch::allclose(a[i].second, b[i].second, 1e-3, 1e-5));
    }
  }
  return root;
}

}  // namespace

TEST_CASE("sam_train: a run killed between or inside checkpoint writes resumes to the same losses, bit for bit", "[tools][train]") {
  check_resume("train_resume", "", /*exact=*/true, 0);
}

TEST_CASE("sam_train: MAE pre-training killed between or inside checkpoint writes resumes bit for bit, and SAM "
          "starts from its model.pth", "[tools][train][mae]") {
  // The synthetic images without their masks, random resized crops and flips, a small decoder.
  const std::string mae = " train.objective=mae 'data.train=[\"images:" + synth_dir() + "\"]' data.random_resized_crop=true"
                          " data.hflip=true mae.decoder_dim=32 mae.decoder_depth=1 mae.decoder_heads=4 optim.schedule=cosine"
                          " train.activation_checkpointing=true model.drop_path_rate=0.2";
  const auto root = check_resume("train_resume_mae", mae, /*exact=*/true, 0);
  // The log names the objective; the loss is per-patch normalised pixels: near 1 at the start.
  const auto ref = losses(root / "ref");
  CHECK(ref.begin()->second > 0.5);
  CHECK(ref.begin()->second < 2.0);
  // model.pth is MAE's file: Python's torch.load gives {"model": OrderedDict} with MAE's names.
  auto w = sam::pth_read((root / "ref" / "model.pth").string());
  REQUIRE(w.size() > 6);
  CHECK(w[0].first == "model.cls_token");
  CHECK(w[1].first == "model.pos_embed");
  std::string out;
  {
    // The reconstruction picture of two images: 2 rows of 4 panels S x S with 4 px gaps. In the
    // second panel the hidden patches are grey (127) and 75 % of them; in the fourth the visible
    // patches are the input's exactly.
    const auto img = (fs::path(synth_dir()) / "sa_1.jpg").string(), png = (root / "rec.png").string();
    REQUIRE(sam_test::run_command(sam_train() + " reconstruct " + (root / "ref").string() + " " + img + " " + img +
                                      " --out " + png + " --seed 3", &out) == 0);
    const cv::Mat pic = sam::data::image_read_rgb(png);
    // configs/tiny.yaml's architecture.
    const auto arch = nlohmann::json::parse(std::ifstream(sam_test::source_dir() / "configs" / "model_tiny.json"));
    const int S = arch["img_size"], p = arch["patch_size"], gap = 4, n = S / p;
    REQUIRE(pic.rows == 2 * S + gap);
    REQUIRE(pic.cols == 4 * S + 3 * gap);
    for (int row = 0; row < 2; ++row) {
      const int y = row * (S + gap);
      int hidden = 0, pasted_equal = 0;
      for (int py = 0; py < n; ++py)
        for (int px = 0; px < n; ++px) {
          const auto patch = [&](int panel) { return pic(cv::Rect(panel * (S + gap) + px * p, y + py * p, p, p)); };
          const bool grey = cv::countNonZero(patch(1).reshape(1) != 127) == 0;
          hidden += grey;
          if (!grey) pasted_equal += cv::countNonZero(patch(3).reshape(1) != patch(0).reshape(1)) == 0;
        }
      CHECK(hidden == n * n - n * n / 4);
      CHECK(pasted_equal == n * n / 4);
    }
  }
  // SAM training from it: the encoder's blocks come from the MAE run.
  REQUIRE(sam_test::run_command(sam_train() + " " + base_args(root / "sam") + " train.iterations=1 init.kind=mae init.checkpoint=" +
                                    (root / "ref").string(), &out) == 0);
  INFO(out);
  CHECK(out.find("init: MAE encoder from " + (root / "ref" / "model.pth").string() + ": 51 keys used") != std::string::npos);
  // Refusals name the key.
  CHECK(sam_test::run_command(sam_train() + " " + base_args(root / "bad") + " train.objective=mae lora.rank=4 'lora.targets=[\"*.qkv\"]'", &out) != 0);
  CHECK(out.find("lora.rank") != std::string::npos);
  CHECK(sam_test::run_command(sam_train() + " " + base_args(root / "bad") + " data.random_resized_crop=true", &out) != 0);
  CHECK(out.find("data.random_resized_crop is for train.objective mae") != std::string::npos);
}

TEST_CASE("sam_train on CUDA: a killed run resumes with the GPU generator's state", "[tools][train][cuda]") {
  SAM_REQUIRE_CUDA();
  // Drop path draws its masks on the GPU: without the GPU generator's state in the checkpoint the
  // resumed steps draw other masks and their losses move by percents, far beyond the last-bit
  // variation of the GPU's atomic adds that the tolerance allows.
  check_resume("train_resume_cuda", " train.device=cuda model.drop_path_rate=0.3 train.amp=off", /*exact=*/false, 1e-4);
}

namespace {

// One process with 2 images per step against 2 Gloo processes with 1 image each.
void check_two_ranks(const std::string& tag, int port, const std::string& args) {
  if (!sam_test::have_torchrun()) {
    sam_test::skip(sam_test::test_python() + " has no torchrun (Debian: python3-torch)");
    return;
  }
  const auto root = sam_test::temp_dir(tag);
  const std::string extra = " train.iterations=4 train.ckpt_every=0" + args;
  std::string out;
  // One process, 2 images per step.
  REQUIRE(sam_test::run_command(sam_train() + " " + base_args(root / "one") + extra, &out) == 0);
  // Two processes, 1 image each: the same 2 images per step (the sampler strides by rank).
  const std::string torchrun = sam_test::torchrun_two(port);
  const int rc = sam_test::run_command(torchrun + sam_train() + " " + base_args(root / "two") + extra + " train.batch_size=1", &out);
  INFO(out);
  REQUIRE(rc == 0);
  CHECK(out.find("gloo") != std::string::npos);
  const auto one = losses(root / "one"), two = losses(root / "two");
  REQUIRE(one.size() == 4);
  REQUIRE(two.size() == 4);
  for (const auto& [step, loss] : one) {
    INFO("step " << step);
    // Only the summation order of the gradient all-reduce differs.
    CHECK(two.at(step) == Approx(loss).epsilon(1e-4));
  }
  auto a = sam::pth_read((root / "one" / "model.pth").string());
  auto b = sam::pth_read((root / "two" / "model.pth").string());
  REQUIRE(a.size() == b.size());
  // AdamW moves a weight by about lr per step whatever the gradient's size, so where a gradient is
  // near zero the summation order can flip its sign: a few weights may differ by up to 2 lr per
  // step (lr 2e-3 here, 4 steps), while the weights as a whole agree closely.
  double worst = 0, sum = 0, count = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!a[i].second.is_floating_point()) continue;
    auto d = (a[i].second - b[i].second).abs();
    worst = std::max(worst, d.max().item<double>());
    sum += d.sum().item<double>();
    count += static_cast<double>(d.numel());
  }
  INFO("largest difference " << worst << ", mean " << sum / count);
  CHECK(worst < 2 * 2e-3 * 4);
  CHECK(sum / count < 1e-5);
  fs::remove_all(root);
}

const std::string kLoraArgs =
    " lora.rank=4 lora.alpha=8 'lora.targets=[\"image_encoder.blocks.*.attn.qkv\", \"*.mlp.lin1\"]'";

}  // namespace

TEST_CASE("sam_train: 2 Gloo processes under torchrun give the losses of 1 process with the same global batch",
          "[tools][train][dist]") {
  check_two_ranks("train_dist", 29500, "");
}

TEST_CASE("sam_train: LoRA on 2 Gloo processes gives the losses of 1 process", "[tools][train][dist]") {
  // The adapters' gradients are all-reduced after the backward pass (train/lora.h), not from hooks.
  check_two_ranks("train_dist_lora", 29520, kLoraArgs);
}

TEST_CASE("sam_train: MAE pre-training on 2 Gloo processes gives the losses of 1 process", "[tools][train][dist][mae]") {
  // The masking is drawn per sample from (seed, step, sample), not from the ranks' generators.
  check_two_ranks("train_dist_mae", 29580, " train.objective=mae data.train=[images:" + synth_dir() +
                                               "] data.random_resized_crop=true mae.decoder_dim=32 mae.decoder_depth=1 "
                                               "mae.decoder_heads=4");
}

TEST_CASE("sam_train: a frozen image encoder on 2 Gloo processes gives the losses of 1 process", "[tools][train][dist]") {
  // The frozen parameters are in no bucket; the encoder's pass records no graph on either rank.
  check_two_ranks("train_dist_freeze", 29540, " 'train.freeze=[\"image_encoder.*\"]'");
}

TEST_CASE("sam_train: a LoRA run with dropout and activation checkpointing resumes bit for bit", "[tools][train]") {
  check_resume("train_resume_lora", kLoraArgs + " lora.dropout=0.2 train.activation_checkpointing=true",
               /*exact=*/true, 0);
}

TEST_CASE("sam_train: LoRA trains the adapters alone, model.pth and export are the official format, and "
          "export --adapters stacked on the base gives the same weights",
          "[tools][train]") {
  const auto root = sam_test::temp_dir("train_lora");
  std::string out;
  const std::string common = " train.ckpt_every=0 train.ema_decay=0";
  REQUIRE(sam_test::run_command(sam_train() + " " + base_args(root / "start") + common + " train.iterations=0", &out) == 0);
  const auto start = sam::pth_read((root / "start" / "model.pth").string());
  const int rc = sam_test::run_command(sam_train() + " " + base_args(root / "run") + common + kLoraArgs +
                                           " train.iterations=3 optim.lr=0.01",
                                       &out);
  INFO(out);
  REQUIRE(rc == 0);
  CHECK_THAT(out, Catch::Contains("LoRA: rank 4, alpha 8 on "));
  auto adapted = [](const std::string& k) {
    return (k.find(".attn.qkv.") != std::string::npos && k.rfind("image_encoder.", 0) == 0) ||
           k.find(".mlp.lin1.") != std::string::npos;
  };
  // The checkpoint: the base weights bit for bit, trained adapters.
  int base_same = 0, lora_b = 0;
  for (const auto& [k, t] : sam::pth_read((root / "run" / "checkpoint.pth").string())) {
    if (k.rfind("model.", 0) != 0) continue;
    const std::string name = k.substr(6);
    if (name.find(".lora_B") != std::string::npos) {
      ++lora_b;
      CHECK(t.abs().max().item<double>() > 0);  // B starts at zero
      continue;
    }
    if (name.find(".lora_") != std::string::npos) continue;
    bool found = false;
    for (const auto& kv : start)
      if (kv.first == name) {
        found = true;
        CHECK(torch::equal(kv.second, t));
        ++base_same;
      }
    CHECK(found);
  }
  CHECK(lora_b > 0);
  CHECK(base_same == static_cast<int>(start.size()));
  // model.pth: the official keys, changed in the adapted layers' weights only.
  const auto merged = sam::pth_read((root / "run" / "model.pth").string());
  REQUIRE(merged.size() == start.size());
  int changed = 0;
  for (size_t i = 0; i < merged.size(); ++i) {
    REQUIRE(merged[i].first == start[i].first);
    const bool same = torch::equal(merged[i].second, start[i].second);
    const bool is_adapted_weight = adapted(merged[i].first) && merged[i].first.find(".weight") != std::string::npos;
    INFO(merged[i].first);
    CHECK(same == !is_adapted_weight);
    changed += same ? 0 : 1;
  }
  CHECK(changed == lora_b);
  // export: the same merged weights; --adapters: the adapter entries alone.
  REQUIRE(sam_test::run_command(sam_train() + " export " + (root / "run").string() + " " + (root / "merged.pth").string(), &out) == 0);
  const auto exported = sam::pth_read((root / "merged.pth").string());
  REQUIRE(exported.size() == merged.size());
  for (size_t i = 0; i < merged.size(); ++i) CHECK(torch::equal(exported[i].second, merged[i].second));
  const auto adapters = (root / "adapters.pth").string();
  REQUIRE(sam_test::run_command(sam_train() + " export --adapters " + (root / "run").string() + " " + adapters, &out) == 0);
  const auto only = sam::pth_read(adapters);
  CHECK(static_cast<int>(only.size()) == 3 * lora_b);
  for (const auto& kv : only) CHECK_THAT(kv.first, Catch::Contains(".lora_"));
  CHECK(fs::file_size(adapters) * 20 < fs::file_size(root / "merged.pth"));
  // init.adapters: the base plus the adapters is the run's model.
  REQUIRE(sam_test::run_command(sam_train() + " " + base_args(root / "stacked") + common + " train.iterations=0" +
                                    " init.kind=sam init.checkpoint=" + (root / "start" / "model.pth").string() +
                                    " 'init.adapters=[\"" + adapters + "\"]'",
                                &out) == 0);
  CHECK_THAT(out, Catch::Contains("added the LoRA adapters of " + adapters));
  const auto stacked = sam::pth_read((root / "stacked" / "model.pth").string());
  REQUIRE(stacked.size() == merged.size());
  for (size_t i = 0; i < merged.size(); ++i) {
    INFO(merged[i].first);
    CHECK(torch::equal(stacked[i].second, merged[i].second));
  }
  // A run without adapters has none to export.
  CHECK(sam_test::run_command(sam_train() + " export --adapters " + (root / "start").string() + " " +
                                  (root / "none.pth").string(), &out) != 0);
  CHECK_THAT(out, Catch::Contains("no LoRA adapters"));
  // A LoRA target that matches nothing stops the run before it starts.
  CHECK(sam_test::run_command(sam_train() + " " + base_args(root / "typo") + common +
                                  " train.iterations=1 lora.rank=4 'lora.targets=[\"*.qvk\"]'",
                              &out) != 0);
  CHECK_THAT(out, Catch::Contains("lora.targets") && Catch::Contains("*.qvk"));
  fs::remove_all(root);
}

TEST_CASE("sam_train: non-finite steps are skipped, logged, and stop the run after max_nonfinite in a row",
          "[tools][train]") {
  const auto root = sam_test::temp_dir("train_nonfinite");
  std::string out;
  // Steps 1 and 3 are non-finite: skipped, the run goes on.
  REQUIRE(sam_test::run_command("SAM_TRAIN_NONFINITE_AT=1,3 " + sam_train() + " " + base_args(root / "a") +
                                    " train.iterations=5 train.ckpt_every=0",
                                &out) == 0);
  auto nf = events(root / "a", "nonfinite");
  REQUIRE(nf.size() == 2);
  CHECK(nf[0]["step"] == 1);
  CHECK(nf[1]["step"] == 3);
  CHECK(losses(root / "a").size() == 3);
  // Three in a row with max_nonfinite=3: the run stops with status 2 and keeps a checkpoint.
  const int rc = sam_test::run_command("SAM_TRAIN_NONFINITE_AT=2,3,4 " + sam_train() + " " + base_args(root / "b") +
                                           " train.iterations=9 train.ckpt_every=0 train.max_nonfinite=3",
                                       &out);
  INFO(out);
  CHECK(rc == 2);
  CHECK(out.find("non-finite losses in a row") != std::string::npos);
  CHECK(fs::exists(root / "b" / "checkpoint.pth"));
}

TEST_CASE("sam_train: an unreadable image is skipped and counted", "[tools][train]") {
  const auto root = sam_test::temp_dir("train_badsample");
  const fs::path data = root / "sa1b";
  fs::create_directories(data);
  for (const auto& e : fs::directory_iterator(synth_dir())) fs::copy(e.path(), data / e.path().filename());
  // Corrupt one image (its JSON stays valid).
  std::string victim;
  for (const auto& e : fs::directory_iterator(data))
    if (e.path().extension() == ".jpg") victim = e.path().string();
  REQUIRE(!victim.empty());
  std::ofstream(victim, std::ios::binary | std::ios::trunc) << "not a jpeg";
  std::string out;
  const int rc = sam_test::run_command(sam_train() + " " + base_args(root / "run") + " data.train=[sa1b:" +
                                           data.string() + "] train.iterations=6 train.ckpt_every=0",
                                       &out);
  INFO(out);
  REQUIRE(rc == 0);
  auto end = events(root / "run", "end");
  REQUIRE(end.size() == 1);
  int64_t skipped = 0;
  for (const auto& kv : end[0]["loader"]["skipped"].items()) skipped += kv.value().get<int64_t>();
  CHECK(skipped >= 1);
  CHECK(out.find(fs::path(victim).filename().string()) != std::string::npos);  // named in the log
}

TEST_CASE("sam_train: config errors name the key, and export writes the official format", "[tools][train]") {
  const auto root = sam_test::temp_dir("train_cfg");
  std::string out;
  CHECK(sam_test::run_command(sam_train() + " " + base_args(root / "r") + " optim.lrr=1", &out) != 0);
  CHECK(out.find("optim.lrr") != std::string::npos);
  CHECK(out.find("lr") != std::string::npos);
  CHECK(sam_test::run_command(sam_train() + " --config " + (root / "missing.yaml").string(), &out) != 0);
  CHECK(out.find("missing.yaml") != std::string::npos);

  REQUIRE(sam_test::run_command(sam_train() + " " + base_args(root / "r") + " train.iterations=2 train.ckpt_every=1", &out) == 0);
  for (const char* f : {"config.json", "metrics.jsonl", "train.log", "checkpoint.pth", "model.pth", "loss.svg", "iou.svg"})
    CHECK(fs::exists(root / "r" / f));
  REQUIRE(sam_test::run_command(sam_train() + " export " + (root / "r").string() + " " + (root / "out.pth").string(), &out) == 0);
  auto sd = sam::pth_read((root / "out.pth").string());
  bool has = false;
  for (const auto& kv : sd) has = has || kv.first == "mask_decoder.iou_token.weight";
  CHECK(has);
  // configs/tiny.yaml keeps a weight average: model.pth and the default export hold it, --raw the
  // optimiser's own weights, which differ after two steps.
  auto model = sam::pth_read((root / "r" / "model.pth").string());
  REQUIRE(sd.size() == model.size());
  bool same = true;
  for (size_t i = 0; i < sd.size(); ++i) same = same && torch::equal(sd[i].second, model[i].second);
  CHECK(same);
  REQUIRE(sam_test::run_command(sam_train() + " export --raw " + (root / "r").string() + " " + (root / "raw.pth").string(), &out) == 0);
  auto raw = sam::pth_read((root / "raw.pth").string());
  REQUIRE(raw.size() == model.size());
  bool differs = false;
  for (size_t i = 0; i < raw.size(); ++i) differs = differs || !torch::equal(raw[i].second, model[i].second);
  CHECK(differs);
}

TEST_CASE("sam_train: TensorBoard event files hold metrics.jsonl's numbers, read by tensorboard's reader",
          "[tools][train][peers]") {
  SAM_REQUIRE_PEERS(py);
  const auto root = sam_test::temp_dir("train_tensorboard");
  std::string out;
  REQUIRE(sam_test::run_command(sam_train() + " " + base_args(root / "r") + " data.val=sa1b:" + synth_dir() +
                                    " data.val_max_samples=2 train.iterations=4 train.val_every=2 train.ckpt_every=0",
                                &out) == 0);
  REQUIRE(sam_test::run_command(py + " " + (sam_test::source_dir() / "tests" / "peers" / "tb_events.py").string() +
                                    " " + (root / "r").string(),
                                &out) == 0);
  INFO(out);
  const auto tb = nlohmann::json::parse(out.substr(out.find('{')));
  // Every number of every train and val line, at its step, as float32.
  size_t compared = 0;
  for (const char* ev : {"train", "val"}) {
    const auto lines = events(root / "r", ev);
    REQUIRE(lines.size() == (std::string(ev) == "train" ? 4u : 2u));
    for (const auto& j : lines) {
      for (const auto& [key, v] : j.items()) {
        if (!v.is_number() || key == "step") continue;
        const std::string tag = std::string(ev) + "/" + key;
        INFO(tag << " at step " << j["step"]);
        REQUIRE(tb.contains(tag));
        bool found = false;
        for (const auto& sv : tb[tag])
          if (sv[0] == j["step"]) {
            found = true;
            CHECK(sv[1].get<double>() == Approx(static_cast<float>(v.get<double>())).epsilon(1e-7).margin(1e-30));
          }
        CHECK(found);
        ++compared;
      }
    }
  }
  CHECK(compared >= 4 * 8 + 2 * 2);
  CHECK(tb.contains("train/iou_round_3"));  // prompt.rounds=3: one curve per round
  // train.tensorboard=false writes none.
  REQUIRE(sam_test::run_command(sam_train() + " " + base_args(root / "off") +
                                    " train.iterations=1 train.ckpt_every=0 train.tensorboard=false",
                                &out) == 0);
  for (const auto& e : fs::directory_iterator(root / "off"))
    CHECK(e.path().filename().string().rfind("events.out.tfevents", 0) != 0);
}

TEST_CASE("sam_train: train.val_at_start validates the starting weights at step 0, once", "[tools][train]") {
  const auto root = sam_test::temp_dir("train_val_at_start");
  std::string out;
  const std::string args = base_args(root / "r") + " data.val=sa1b:" + synth_dir() +
                           " data.val_max_samples=2 train.val_at_start=true train.ckpt_every=0";
  REQUIRE(sam_test::run_command(sam_train() + " " + args + " train.iterations=2", &out) == 0);
  auto steps = [&] {
    std::vector<int64_t> s;
    for (const auto& j : events(root / "r", "val")) s.push_back(j["step"].get<int64_t>());
    return s;
  };
  CHECK(steps() == std::vector<int64_t>{0, 2});
  // Resumed (checkpoint.pth at step 2) to 3 steps: the end's validation only, no second step 0.
  REQUIRE(sam_test::run_command(sam_train() + " " + args + " train.iterations=3", &out) == 0);
  CHECK(steps() == std::vector<int64_t>{0, 2, 3});
  fs::remove_all(root);
}

TEST_CASE("sam_train: train.freeze keeps the matching weights bit for bit, the others train", "[tools][train]") {
  const auto root = sam_test::temp_dir("train_freeze");
  std::string out;
  // The starting weights: a run of no steps writes them (the same seed, the same construction).
  const std::string common = " train.ckpt_every=0 train.ema_decay=0";
  REQUIRE(sam_test::run_command(sam_train() + " " + base_args(root / "start") + common + " train.iterations=0", &out) == 0);
  const auto start = sam::pth_read((root / "start" / "model.pth").string());
  REQUIRE(sam_test::run_command(sam_train() + " " + base_args(root / "run") + common +
                                    " train.iterations=3 'train.freeze=[\"image_encoder.*\", \"prompt_encoder.*\"]'",
                                &out) == 0);
  CHECK_THAT(out, Catch::Contains("tensors frozen)"));
  const auto after = sam::pth_read((root / "run" / "model.pth").string());
  REQUIRE(after.size() == start.size());
  int frozen = 0, changed = 0;
  for (size_t i = 0; i < after.size(); ++i) {
    REQUIRE(after[i].first == start[i].first);
    const bool is_frozen = after[i].first.rfind("image_encoder.", 0) == 0 || after[i].first.rfind("prompt_encoder.", 0) == 0;
    const bool same = torch::equal(after[i].second, start[i].second);
    if (is_frozen) {
      ++frozen;
      CHECK(same);
    } else if (!same) {
      ++changed;
    }
  }
  CHECK(frozen > 0);
  CHECK(changed > 0);  // the decoder trained
  // A pattern that matches nothing stops the run before it starts, naming the key.
  CHECK(sam_test::run_command(sam_train() + " " + base_args(root / "typo") + common +
                                  " train.iterations=1 'train.freeze=[\"image_encodr.*\"]'",
                              &out) != 0);
  CHECK_THAT(out, Catch::Contains("train.freeze") && Catch::Contains("image_encodr.*"));
  fs::remove_all(root);
}

TEST_CASE("sam_train: data.weights mixes the datasets and logs each one's samples per epoch", "[tools][train]") {
  const auto root = sam_test::temp_dir("train_mix");
  std::string out;
  const std::string spec = "sa1b:" + synth_dir();
  REQUIRE(sam_test::run_command(sam_train() + " " + base_args(root / "run") + " train.ckpt_every=0 train.iterations=1" +
                                    " 'data.train=[\"" + spec + "\", \"" + spec + "\"]' 'data.weights=[1.5, 0.5]'",
                                &out) == 0);
  CHECK_THAT(out, Catch::Contains("data mix: " + spec + ": 8 samples x 1.5 = 12 per epoch; " + spec +
                                  ": 8 samples x 0.5 = 4 per epoch"));
  CHECK_THAT(out, Catch::Contains("16 samples per epoch on each of 1 rank"));
  fs::remove_all(root);
}

TEST_CASE("sam_train: data.embeddings from sam_data embed trains as the frozen encoder in the loop does",
          "[tools][train][embed]") {
  const auto root = sam_test::temp_dir("train_embeddings");
  std::string out;
  const std::string common = " train.ckpt_every=0 train.ema_decay=0 train.iterations=3 data.hflip=false";
  const std::string sam_data = (sam_test::bin_dir() / "sam_data").string();
  // The stores: sam_data embed reads the same configuration (model, init, data.train).
  std::string config = base_args(root / "unused");  // the same keys; a run folder as an override
  config.replace(config.find("--run-dir "), 10, "run_dir=");
  for (const char* dtype : {"fp32", "fp16"}) {
    REQUIRE(sam_test::run_command(sam_data + " embed " + config + " --out " +
                                      (root / dtype).string() + " --dtype " + dtype + " --shard-size 3",
                                  &out) == 0);
    INFO(out);
    CHECK_THAT(out, Catch::Contains("embed: 8 images in 3 shards"));
  }
  const std::string frozen = " 'train.freeze=[\"image_encoder.*\"]'";
  REQUIRE(sam_test::run_command(sam_train() + " " + base_args(root / "frozen") + common + frozen, &out) == 0);
  const auto ref = losses(root / "frozen");
  REQUIRE(ref.size() == 3);
  for (const char* dtype : {"fp32", "fp16"}) {
    const auto run = root / (std::string("run_") + dtype);
    REQUIRE(sam_test::run_command(sam_train() + " " + base_args(run) + common + " data.embeddings=" + (root / dtype).string(),
                                  &out) == 0);
    INFO(out);
    CHECK_THAT(out, Catch::Contains("the encoder does not run"));
    const auto got = losses(run);
    REQUIRE(got.size() == 3);
    // The first step's loss: the stored embeddings are the encoder's to the stored precision (the
    // clicks of later steps depend on thresholded predictions, so runs drift apart from there).
    CHECK(got.at(1) == Approx(ref.at(1)).epsilon(std::string(dtype) == "fp32" ? 1e-5 : 2e-3));
    // The encoder is frozen: its weights leave the run as they came.
    const auto a = sam::pth_read((root / "frozen" / "model.pth").string());
    const auto b = sam::pth_read((run / "model.pth").string());
    REQUIRE(a.size() == b.size());
    for (size_t i = 0; i < a.size(); ++i)
      if (a[i].first.rfind("image_encoder.", 0) == 0) CHECK(torch::equal(a[i].second, b[i].second));
  }
  // Refusals, naming what is wrong: flips, an encoder that would train, another encoder's store.
  const std::string store = " data.embeddings=" + (root / "fp32").string();
  CHECK(sam_test::run_command(sam_train() + " " + base_args(root / "r1") + common + store + " data.hflip=true", &out) != 0);
  CHECK_THAT(out, Catch::Contains("data.hflip must be false"));
  CHECK(sam_test::run_command(sam_train() + " " + base_args(root / "r2") + common + store +
                                  " 'train.trainable=[\"image_encoder.neck.*\", \"mask_decoder.*\"]'",
                              &out) != 0);
  CHECK_THAT(out, Catch::Contains("cannot train"));
  CHECK(sam_test::run_command(sam_train() + " " + base_args(root / "r3") + common + store + " train.seed=4", &out) != 0);
  CHECK_THAT(out, Catch::Contains("another image encoder (weights"));
  fs::remove_all(root);
}

TEST_CASE("sam_train: train.shard_optimizer on 2 Gloo processes trains as without it, bit for bit, and its "
          "checkpoint resumes on 1 process",
          "[tools][train][dist]") {
  if (!sam_test::have_torchrun()) {
    sam_test::skip(sam_test::test_python() + " has no torchrun (Debian: python3-torch)");
    return;
  }
  const auto root = sam_test::temp_dir("train_zero1");
  const std::string two = sam_test::torchrun_two(29560) + sam_train() + " ";
  const std::string extra = " train.batch_size=1 train.ckpt_every=0";
  std::string out;
  REQUIRE(sam_test::run_command(two + base_args(root / "plain") + extra + " train.iterations=4", &out) == 0);
  REQUIRE(sam_test::run_command(two + base_args(root / "zero") + extra + " train.iterations=4 train.shard_optimizer=true",
                                &out) == 0);
  INFO(out);
  CHECK_THAT(out, Catch::Contains("optimizer state sharded over 2 ranks"));
  const auto plain = losses(root / "plain"), zero = losses(root / "zero");
  REQUIRE(plain.size() == 4);
  REQUIRE(zero.size() == 4);
  for (const auto& [step, loss] : plain) {
    INFO("step " << step);
    CHECK(zero.at(step) == loss);  // the same bits: each weight's update is the unsharded one
  }
  const auto a = sam::pth_read((root / "plain" / "model.pth").string());
  const auto b = sam::pth_read((root / "zero" / "model.pth").string());
  REQUIRE(a.size() == b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    INFO(a[i].first);
    CHECK(torch::equal(a[i].second, b[i].second));
  }
  // A sharded run stopped at step 2 and resumed by one process with the same global batch (2
  // images): the same samples and prompts; the losses as check_two_ranks compares 2 ranks with 1.
  REQUIRE(sam_test::run_command(two + base_args(root / "resumed") + extra +
                                    " train.iterations=2 train.shard_optimizer=true train.ckpt_every=2",
                                &out) == 0);
  REQUIRE(sam_test::run_command(sam_train() + " " + base_args(root / "resumed") + " train.iterations=4 train.batch_size=2",
                                &out) == 0);
  CHECK_THAT(out, Catch::Contains("resume: 2 rank(s) -> 1 (sample "));
  const auto resumed = losses(root / "resumed");
  REQUIRE(resumed.size() == 4);
  for (const auto& [step, loss] : plain) {
    INFO("step " << step);
    CHECK(resumed.at(step) == Approx(loss).epsilon(1e-4));
  }
  fs::remove_all(root);
}

namespace {

// A teacher for the distillation tests: the test configuration's SAM trained for 2 steps.
const std::string& teacher_checkpoint() {
  static const std::string path = [] {
    const auto dir = sam_test::temp_dir("train_teacher");
    std::string out;
    if (sam_test::run_command(sam_train() + " " + base_args(dir / "run") + " train.iterations=2", &out) != 0)
      throw std::runtime_error("teacher run failed: " + out);
    return (dir / "run" / "model.pth").string();
  }();
  return path;
}

std::string distill_args(const std::string& student = "model_tiny_student.json") {
  return " train.objective=distill model.arch=" + (sam_test::source_dir() / "configs" / student).string() +
         " distill.teacher_arch=" + (sam_test::source_dir() / "configs" / "model_tiny.json").string() +
         " distill.teacher_checkpoint=" + teacher_checkpoint() + " data.hflip=false optim.lr=3e-3";
}

}  // namespace

TEST_CASE("sam_train: distillation lowers the embedding loss, resumes bit for bit, and writes a SAM checkpoint of "
          "the student with the teacher's decoder",
          "[tools][train][distill]") {
  const auto root = check_resume("train_distill", distill_args(), /*exact=*/true, 0);
  const auto ref = losses(root / "ref");
  INFO("first loss " << ref.begin()->second << ", last " << ref.rbegin()->second);
  CHECK(ref.rbegin()->second < 0.5 * ref.begin()->second);
  // model.pth: the student's encoder (width 48) and the teacher's prompt encoder and decoder, bit
  // for bit; model.json: the student's architecture.
  const auto student = sam::pth_read((root / "ref" / "model.pth").string());
  const auto teacher = sam::pth_read(teacher_checkpoint());
  std::map<std::string, torch::Tensor> t(teacher.begin(), teacher.end());
  size_t shared = 0;
  for (const auto& [name, w] : student) {
    INFO(name);
    if (name.rfind("image_encoder.", 0) == 0) continue;
    REQUIRE(t.count(name));
    CHECK(torch::equal(w, t.at(name)));
    ++shared;
  }
  CHECK(shared > 20);
  std::map<std::string, torch::Tensor> s(student.begin(), student.end());
  CHECK(s.at("image_encoder.pos_embed").size(3) == 48);
  CHECK_FALSE(s.count("image_encoder.blocks.2.norm1.weight"));
  REQUIRE(fs::exists(root / "ref" / "model.json"));
  // The programs take it: sam_predict with the run's model.json.
  std::string jpg;
  for (const auto& e : fs::directory_iterator(synth_dir()))
    if (e.path().extension() == ".jpg") jpg = e.path().string();
  std::string out;
  const int rc = sam_test::run_command((sam_test::bin_dir() / "sam_predict").string() + " --model " +
                                           (root / "ref" / "model.json").string() + " --checkpoint " +
                                           (root / "ref" / "model.pth").string() + " --image " + jpg +
                                           " --point 40,40,1 --out " + (root / "pred").string(),
                                       &out);
  INFO(out);
  CHECK(rc == 0);
  CHECK(fs::exists(root / "pred" / "result.json"));
  const std::string model = " --model " + (root / "ref" / "model.json").string() + " --checkpoint " +
                            (root / "ref" / "model.pth").string();
  CHECK(sam_test::run_command((sam_test::bin_dir() / "sam_amg").string() + model + " --input " + jpg + " --output " +
                                  (root / "amg").string() + " --points-per-side 8 --threads 1",
                              &out) == 0);
  CHECK(sam_test::run_command((sam_test::bin_dir() / "sam_eval").string() + " points" + model + " --dataset sa1b:" +
                                  synth_dir() + " --clicks 2 --max-samples 3 --threads 1 --out " +
                                  (root / "eval.json").string(),
                              &out) == 0);
  CHECK(fs::exists(root / "eval.json"));
  if (fs::exists(sam_test::bin_dir() / "sam_export")) {  // builds with ONNX
    CHECK(sam_test::run_command((sam_test::bin_dir() / "sam_export").string() + " onnx" + model + " --decoder " +
                                    (root / "d.onnx").string() + " --encoder " + (root / "e.onnx").string(),
                                &out) == 0);
    CHECK(fs::exists(root / "e.onnx"));
  }
  // A student whose decoder differs from the teacher's is refused, naming the key.
  CHECK(sam_test::run_command(sam_train() + " " + base_args(root / "bad") + distill_args() + " model.prompt_dim=32", &out) != 0);
  CHECK_THAT(out, Catch::Contains("model.prompt_dim is 32, the teacher's"));
}

TEST_CASE("sam_train: a TinyViT-style student distils, resumes bit for bit (BatchNorm's statistics too), and the "
          "programs take it",
          "[tools][train][distill][tiny_vit]") {
  const auto root = check_resume("train_distill_hybrid", distill_args("model_tiny_hybrid.json"), /*exact=*/true, 0);
  const auto ref = losses(root / "ref");
  INFO("first loss " << ref.begin()->second << ", last " << ref.rbegin()->second);
  CHECK(ref.rbegin()->second < ref.begin()->second);
  const auto w = sam::pth_read((root / "ref" / "model.pth").string());
  std::map<std::string, torch::Tensor> s(w.begin(), w.end());
  CHECK(s.count("image_encoder.layers.1.blocks.0.attn.attention_biases"));
  REQUIRE(s.count("image_encoder.layers.0.blocks.0.conv1.bn.running_mean"));
  CHECK(s.at("image_encoder.layers.0.blocks.0.conv1.bn.num_batches_tracked").item<int64_t>() == 8);  // 8 steps
  CHECK(s.at("image_encoder.layers.0.blocks.0.conv1.bn.running_mean").abs().sum().item<double>() > 0);
  const std::string model = " --model " + (root / "ref" / "model.json").string() + " --checkpoint " +
                            (root / "ref" / "model.pth").string();
  std::string out;
  CHECK(sam_test::run_command((sam_test::bin_dir() / "sam_eval").string() + " points" + model + " --dataset sa1b:" +
                                  synth_dir() + " --clicks 2 --max-samples 3 --threads 1 --out " +
                                  (root / "eval.json").string(),
                              &out) == 0);
  INFO(out);
  CHECK(fs::exists(root / "eval.json"));
  if (fs::exists(sam_test::bin_dir() / "sam_export")) {  // builds with ONNX: the decoder exports, the encoder is refused
    CHECK(sam_test::run_command((sam_test::bin_dir() / "sam_export").string() + " onnx" + model + " --decoder " +
                                    (root / "d.onnx").string(),
                                &out) == 0);
    CHECK(sam_test::run_command((sam_test::bin_dir() / "sam_export").string() + " onnx" + model + " --decoder " +
                                    (root / "d2.onnx").string() + " --encoder " + (root / "e.onnx").string(),
                                &out) != 0);
    CHECK_THAT(out, Catch::Contains("tiny_vit encoder is not written yet"));
  }
}

TEST_CASE("sam_train: distillation lowers the loss on a fixed batch", "[tools][train][distill]") {
  // Two images and 2 per step: every step sees the same batch (in another order).
  const auto root = sam_test::temp_dir("train_distill_fixed");
  fs::create_directories(root / "images");
  int n = 0;
  for (const auto& e : fs::directory_iterator(synth_dir()))
    if (e.path().extension() == ".jpg" && n < 2) fs::copy_file(e.path(), root / "images" / e.path().filename()), ++n;
  REQUIRE(n == 2);
  std::string out;
  REQUIRE(sam_test::run_command(sam_train() + " " + base_args(root / "run") + distill_args() + " data.train=[images:" +
                                    (root / "images").string() + "] train.iterations=12 train.ckpt_every=0",
                                &out) == 0);
  const auto l = losses(root / "run");
  REQUIRE(l.size() == 12);
  INFO("losses " << l.at(1) << " ... " << l.at(6) << " ... " << l.at(12));
  CHECK(l.at(6) < l.at(1));
  CHECK(l.at(12) < l.at(6));
  CHECK(l.at(12) < 0.3 * l.at(1));
  fs::remove_all(root);
}

TEST_CASE("sam_train: distillation from the teacher's cached embeddings gives the losses of the teacher in the loop",
          "[tools][train][distill][embed]") {
  const auto root = sam_test::temp_dir("train_distill_store");
  std::string out;
  // The teacher's store: sam_data embed with the teacher's configuration (the test config, init
  // from its checkpoint).
  std::string config = base_args(root / "unused");
  config.replace(config.find("--run-dir "), 10, "run_dir=");
  REQUIRE(sam_test::run_command((sam_test::bin_dir() / "sam_data").string() + " embed " + config +
                                    " init.kind=sam init.checkpoint=" + teacher_checkpoint() + " --out " +
                                    (root / "store").string() + " --dtype fp32",
                                &out) == 0);
  const std::string common = distill_args() + " train.iterations=3 train.ckpt_every=0";
  REQUIRE(sam_test::run_command(sam_train() + " " + base_args(root / "live") + common, &out) == 0);
  REQUIRE(sam_test::run_command(sam_train() + " " + base_args(root / "cached") + common + " data.embeddings=" +
                                    (root / "store").string(),
                                &out) == 0);
  INFO(out);
  CHECK_THAT(out, Catch::Contains("the teacher's embeddings from"));
  const auto live = losses(root / "live"), cached = losses(root / "cached");
  REQUIRE(live.size() == 3);
  REQUIRE(cached.size() == 3);
  for (const auto& [step, loss] : live) {
    INFO("step " << step);
    CHECK(cached.at(step) == Approx(loss).epsilon(1e-5));
  }
  // Another teacher's store is refused: a teacher trained for 1 step instead of 2.
  REQUIRE(sam_test::run_command(sam_train() + " " + base_args(root / "teacher1") + " train.iterations=1", &out) == 0);
  CHECK(sam_test::run_command(sam_train() + " " + base_args(root / "bad") + common + " data.embeddings=" +
                                  (root / "store").string() + " distill.teacher_checkpoint=" +
                                  (root / "teacher1" / "model.pth").string(),
                              &out) != 0);
  CHECK_THAT(out, Catch::Contains("another image encoder"));
  fs::remove_all(root);
}

TEST_CASE("sam_train: distillation on 2 Gloo processes gives the losses of 1 process", "[tools][train][dist][distill]") {
  check_two_ranks("train_dist_distill", 29600, distill_args());
}
