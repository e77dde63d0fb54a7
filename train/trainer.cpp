#include "train/trainer.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <map>
#include <set>
#include <thread>
#include <sstream>

#include <torch/torch.h>

#include "data/atomic_file.h"
#include "data/dataset.h"
#include "data/image_input.h"
#include "data/loader.h"
#include "data/log.h"
#include "data/process.h"
#include "data/progress.h"
#include "data/rng.h"
#include "eval/points.h"
#include "sam/amp.h"
#include "sam/mae.h"
#include "sam/sam_model.h"
#include "train/embed.h"
#include "train/freeze.h"
#include "train/grad_reducer.h"
#include "train/interactive.h"
#include "train/lora.h"
#include "train/mae_view.h"
#include "train/optim.h"
#include "train/run_state.h"
#include "train/tensorboard.h"

namespace sam::train {

namespace fs = std::filesystem;

namespace {

std::string fmt(double v, int prec = 4) {
  std::ostringstream o;
  o << std::setprecision(prec) << v;
  return o.str();
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Datasets

TrainDatasets open_train_datasets(const std::vector<std::string>& specs, const std::vector<double>& weights) {
  if (specs.empty()) throw std::invalid_argument("data.train is empty: give at least one dataset spec");
  if (!weights.empty() && weights.size() != specs.size())
    throw std::invalid_argument("data.weights: " + std::to_string(weights.size()) + " values for " +
                                std::to_string(specs.size()) + " data.train entries");
  TrainDatasets out;
  out.specs = specs;
  auto parts = data::make_dataset_parts(specs);
  size_t at = 0;
  for (size_t i = 0; i < weights.size(); ++i) {  // the loader's weighted parts, over the joined dataset
    out.mix.push_back({at, at + parts[i]->size(), weights[i]});
    at += parts[i]->size();
  }
  out.dataset = data::join_datasets(std::move(parts));
  return out;
}

std::string TrainDatasets::describe_mix() const {
  std::ostringstream s;
  for (size_t i = 0; i < mix.size(); ++i) {
    const size_t n = mix[i].end - mix[i].begin;
    s << (i ? "; " : "") << specs[i] << ": " << n << " samples x " << mix[i].factor << " = "
      << std::llround(mix[i].factor * static_cast<double>(n)) << " per epoch";
  }
  return s.str();
}

// ---------------------------------------------------------------------------------------------
// Initialisation and export

bool uses_autocast(const RunConfig& run, const torch::Device& device) {
  return run.amp == "bf16" || (run.amp == "auto" && device.is_cuda());
}

nlohmann::json init_from_mae(torch::nn::Module& model, const std::string& path) {
  namespace F = torch::nn::functional;
  auto ckpt = pth_read(path);
  // MAE releases wrap the weights in {"model": ...}; accept both.
  bool wrapped = false;
  for (const auto& kv : ckpt) wrapped = wrapped || kv.first.rfind("model.", 0) == 0;
  auto own = state_dict(model);
  std::map<std::string, torch::Tensor> target(own.begin(), own.end());
  nlohmann::json report = {{"used", nlohmann::json::array()}, {"unexpected", nlohmann::json::array()}};
  std::set<std::string> filled;
  torch::NoGradGuard ng;
  if (wrapped)  // the weights alone (the file may also hold an optimiser's state)
    ckpt.erase(std::remove_if(ckpt.begin(), ckpt.end(), [](const auto& kv) { return kv.first.rfind("model.", 0) != 0; }),
               ckpt.end());
  const NamedTensors ours = mae_from_official(ckpt);  // our module names (mlp.lin1/lin2)
  for (size_t i = 0; i < ckpt.size(); ++i) {
    const std::string key = wrapped ? ckpt[i].first.substr(6) : ckpt[i].first;  // as the file names it
    const torch::Tensor& t = ckpt[i].second;
    const std::string name = "image_encoder." + ours[i].first;
    auto it = target.find(name);
    if (it == target.end()) {
      report["unexpected"].push_back(key);
      continue;
    }
    auto dst = it->second;
    auto src = t.to(torch::kFloat);
    if (key == "pos_embed" && src.dim() == 3) {
      // [1, 1 + n*n, C] with a class token -> drop it, grid n x n -> bicubic to the model's grid.
      const int64_t tokens = src.size(1), C = src.size(2);
      int64_t n = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(tokens - 1))));
      if (n * n != tokens - 1) n = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(tokens))));
      auto grid = src.narrow(1, tokens - n * n, n * n).reshape({1, n, n, C}).permute({0, 3, 1, 2});
      const int64_t G = dst.size(1);
      if (n != G)
        grid = F::interpolate(grid, F::InterpolateFuncOptions().size(std::vector<int64_t>{G, G}).mode(torch::kBicubic).align_corners(false));
      src = grid.permute({0, 2, 3, 1});
    } else if (key == "patch_embed.proj.weight" && src.sizes() != dst.sizes() && src.dim() == 4) {
      // Another patch size (MAE ViT-H is /14): resize the kernel (bicubic; approximate).
      src = F::interpolate(src, F::InterpolateFuncOptions().size(std::vector<int64_t>{dst.size(2), dst.size(3)}).mode(torch::kBicubic).align_corners(false)) *
            (static_cast<double>(t.size(2) * t.size(3)) / (dst.size(2) * dst.size(3)));
    } else if ((key.find("rel_pos_h") != std::string::npos || key.find("rel_pos_w") != std::string::npos) &&
               src.dim() == 2 && src.size(0) != dst.size(0)) {
      src = F::interpolate(src.t().unsqueeze(0), F::InterpolateFuncOptions().size(std::vector<int64_t>{dst.size(0)}).mode(torch::kLinear).align_corners(false))
                .squeeze(0)
                .t();
    }
    if (src.sizes() != dst.sizes()) {
      std::ostringstream msg;
      msg << path << ": MAE key '" << key << "' has shape " << src.sizes() << " but the model's " << name << " is "
          << dst.sizes();
      throw std::runtime_error(msg.str());
    }
    dst.copy_(src);
    filled.insert(name);
    report["used"].push_back(key);
  }
  nlohmann::json missing = nlohmann::json::array();
  for (const auto& kv : own)
    if (kv.first.rfind("image_encoder.", 0) == 0 && !filled.count(kv.first)) missing.push_back(kv.first);
  report["missing"] = missing;
  if (filled.empty()) throw std::runtime_error(path + ": no MAE encoder weights found (expected patch_embed.*, blocks.N.*)");
  return report;
}

void export_run(const std::string& run_dir, const std::string& out, bool raw, bool adapters) {
  const fs::path dir(run_dir);
  NamedTensors weights;
  if (fs::exists(dir / "checkpoint.pth")) {
    auto ck = load_run_checkpoint((dir / "checkpoint.pth").string());
    weights = (raw || ck.ema.empty()) ? std::move(ck.model) : std::move(ck.ema);
  } else if (raw || adapters) {
    throw std::runtime_error(run_dir + ": no checkpoint.pth (" +
                             (adapters ? "a run's LoRA adapters" : "the optimiser's own weights") + " are only there)");
  } else if (fs::exists(dir / "model.pth")) {
    weights = pth_read((dir / "model.pth").string());
  } else {
    throw std::runtime_error(run_dir + ": no checkpoint.pth or model.pth to export");
  }
  // Validate against the run's architecture (with its adapters) before writing.
  if (fs::exists(dir / "config.json")) {
    std::ifstream in(dir / "config.json");
    auto cfg = train_config_from_json(nlohmann::json::parse(in), (dir / "config.json").string());
    if (cfg.train.objective == "mae") {
      if (adapters) throw std::runtime_error(run_dir + ": an MAE pre-training run has no LoRA adapters");
      MaskedAutoencoder m(cfg.model, cfg.mae);
      if (!fs::exists(dir / "checkpoint.pth")) {  // model.pth is in MAE's layout already
        fs::copy_file(dir / "model.pth", out + ".tmp", fs::copy_options::overwrite_existing);
      } else {
        load_state_dict(*m, weights, run_dir);
        save_mae(out + ".tmp", mae_state_dict(weights));
      }
      fs::rename(out + ".tmp", out);
      return;
    }
    Sam model(cfg.model);
    std::unique_ptr<LoraAdapters> lora;
    if (cfg.lora.rank > 0) lora = std::make_unique<LoraAdapters>(*model, cfg.lora);
    load_state_dict(*model, weights, run_dir);
  }
  if (adapters) {
    weights = lora_only(weights);
    if (weights.empty()) throw std::runtime_error(run_dir + ": the run has no LoRA adapters (lora.rank 0)");
  } else {
    weights = merge_lora(std::move(weights));  // the official format: adapters folded into their weights
  }
  const std::string tmp = out + ".tmp";
  pth_write(tmp, weights);
  fs::rename(tmp, out);
}

// ---------------------------------------------------------------------------------------------
// The run

struct Trainer::Impl {
  TrainConfig cfg;
  DistEnv env;
  torch::Device device{torch::kCPU};
  std::unique_ptr<Communicator> comm;
  Sam model{nullptr};
  MaskedAutoencoder mae{nullptr};      // train.objective mae: the module trained instead of `model`
  Sam teacher{nullptr};                // train.objective distill without data.embeddings: its encoder runs
  bool distill = false;                // train.objective distill: `model` is the student
  torch::nn::Module* net = nullptr;    // the module trained (model's or mae's)
  std::unique_ptr<AdamW> optim;
  std::unique_ptr<WeightAverage> ema;  // rank 0 only, when train.ema_decay > 0
  std::unique_ptr<LoraAdapters> lora;  // when lora.rank > 0
  bool autocast = false;               // bf16 autocast of the forward passes (train.amp)
  std::shared_ptr<data::Dataset> train_set, val_set;
  std::shared_ptr<const data::EmbeddingStore> embeddings;  // data.embeddings: the encoder does not run
  std::unique_ptr<data::Loader> loader;
  fs::path dir;
  std::unique_ptr<log::FileSink> log_file;  // rank 0: the run's train.log
  std::ofstream metrics_file;
  int64_t step = 0;
  int nonfinite_streak = 0;
  bool is_root() const { return comm->rank() == 0; }

  // Rank 0's messages (the other ranks' would repeat them), through the logger: the console and
  // train.log.
  void log(const std::string& line) {
    if (is_root()) log::info(line);
  }
  void log_warning(const std::string& line) {
    if (is_root()) log::warn(line);
  }
  std::unique_ptr<EventWriter> events;  // rank 0, when train.tensorboard
  void metric(const nlohmann::json& j) {
    if (!is_root()) return;
    if (metrics_file) metrics_file << j.dump() << std::endl;
    if (events && j.contains("step")) events->scalars(j["step"].get<int64_t>(), tensorboard_scalars(j));
  }

  void setup();
  void init_weights();
  torch::Tensor mae_step(const StepBatch& batch, int64_t micro_step, int64_t global_images, bool last,
                         GradientReducer* reducer);
  torch::Tensor distill_step(const StepBatch& batch, int64_t global_images, bool last, GradientReducer* reducer);
  void setup_teacher(bool resuming);
  void save_checkpoint();
  nlohmann::json validate();
  int loop();
};

Trainer::Trainer(TrainConfig config, DistEnv env) : impl_(std::make_unique<Impl>()) {
  impl_->cfg = std::move(config);
  impl_->env = env;
}

Trainer::~Trainer() = default;

void Trainer::Impl::init_weights() {
  const nlohmann::json r = load_initial_weights(model, cfg.init, [&](const std::string& line) { log(line); });
  if (!r.is_null()) metric({{"event", "init_mae"}, {"report", r}});
}

nlohmann::json load_initial_weights(Sam& model, const InitConfig& in, const std::function<void(const std::string&)>& log) {
  nlohmann::json mae;
  if (in.kind == "sam") {
    load_checkpoint(model, in.checkpoint);
    log("init: loaded SAM weights from " + in.checkpoint);
  } else if (in.kind == "run") {
    const fs::path p = fs::is_directory(in.checkpoint) ? fs::path(in.checkpoint) / "checkpoint.pth" : fs::path(in.checkpoint);
    load_state_dict(*model, merge_lora(load_run_checkpoint(p.string()).model), p.string());
    log("init: loaded weights of run checkpoint " + p.string());
  } else if (in.kind == "mae") {
    // A file, or an MAE pre-training run's directory (its model.pth).
    const std::string path = fs::is_directory(in.checkpoint) ? (fs::path(in.checkpoint) / "model.pth").string() : in.checkpoint;
    auto r = init_from_mae(*model, path);
    log("init: MAE encoder from " + path + ": " + std::to_string(r["used"].size()) + " keys used, " +
        std::to_string(r["missing"].size()) + " encoder keys missing, " + std::to_string(r["unexpected"].size()) +
        " unexpected");
    for (const auto& k : r["missing"]) log("init:   missing " + k.get<std::string>());
    for (const auto& k : r["unexpected"]) log("init:   unexpected " + k.get<std::string>());
    mae = r;
  }
  for (const auto& a : in.adapters)
    log("init: added the LoRA adapters of " + a + " (" + std::to_string(stack_adapters(*model, a)) + " layers)");
  return mae;
}

void Trainer::Impl::setup() {
  device = process_device(cfg.train.device, env);
  autocast = uses_autocast(cfg.train, device);
  comm = Communicator::create(env, device, cfg.train.dist_backend);
  if (autocast && device.is_cpu() && sam::cpu_bf16_matmul_lossy())
    log_warning("train.amp=bf16 on this CPU: this libtorch's bf16 matrix products sum in bf16 here "
                "(libtorch 1.13 without AVX-512 bf16 kernels), so the gradients are coarser than "
                "bf16 rounding alone; train.amp=off trains in fp32");
  const int threads = threads_per_process(cfg.train.threads, env);
  torch::set_num_threads(threads);

  dir = cfg.run_dir;
  if (is_root()) {
    fs::create_directories(dir);
    data::write_file_atomic((dir / "config.json").string(), cfg.resolved.dump(2) + "\n");
    log_file = std::make_unique<log::FileSink>((dir / "train.log").string());
    metrics_file.open(dir / "metrics.jsonl", std::ios::app);
    if (cfg.train.tensorboard) events = std::make_unique<EventWriter>(dir.string());
  }
  comm->barrier();

  // The same initial weights on every rank: seeded construction, then rank 0's broadcast.
  torch::manual_seed(cfg.train.seed);
  if (cfg.train.objective == "mae") {
    mae = MaskedAutoencoder(cfg.model, cfg.mae);
    mae->to(device);
    for (auto* list : {&mae->blocks, &mae->decoder_blocks})
      for (auto& b : **list) b->as<EncoderBlock>()->checkpoint = cfg.train.activation_checkpointing;
    net = mae.get();
    log("objective: MAE pre-training, mask ratio " + fmt(cfg.mae.mask_ratio) + ", decoder " +
        std::to_string(cfg.mae.decoder_depth) + " x " + std::to_string(cfg.mae.decoder_dim) +
        (cfg.mae.norm_pix_loss ? ", per-patch normalised targets" : ", pixel targets"));
  } else {
    model = Sam(cfg.model);
    model->to(device);
    model->image_encoder->set_activation_checkpointing(cfg.train.activation_checkpointing);
    net = model.get();
  }
  const fs::path ck = dir / "checkpoint.pth";
  const bool resuming = fs::exists(ck);
  if (!resuming && model) init_weights();  // the base that adapters start from
  distill = cfg.train.objective == "distill";
  if (distill) setup_teacher(resuming);
  std::vector<std::string> trainable = cfg.train.trainable;
  if (cfg.lora.rank > 0) {
    // The adapters train; everything else only when train.trainable names it.
    lora = std::make_unique<LoraAdapters>(*net, cfg.lora);
    log(lora->summary());
    trainable.insert(trainable.end(), {"*.lora_A", "*.lora_B"});
  }
  auto freeze_patterns = cfg.train.freeze;
  if (distill) freeze_patterns.insert(freeze_patterns.end(), {"prompt_encoder.*", "mask_decoder.*"});  // the teacher's
  auto frozen = apply_freeze(*net, freeze_patterns, trainable);
  if (!cfg.data.embeddings.empty() && !distill) {
    // The encoder does not run: it is frozen, and naming a part of it to train is an error.
    for (auto& kv : model->named_parameters(true)) {
      if (!kv.value().requires_grad() || kv.key().rfind("image_encoder.", 0) != 0) continue;
      if (!trainable.empty())
        throw std::invalid_argument("data.embeddings: the image encoder does not run, so " + kv.key() +
                                    " cannot train (named by train.trainable or lora.targets)");
      auto freeze = freeze_patterns;
      freeze.push_back("image_encoder.*");
      frozen = apply_freeze(*model, freeze, trainable);
      break;
    }
  }
  log(frozen.summary());
  const bool shard = cfg.train.shard_optimizer && comm->world_size() > 1;
  optim = std::make_unique<AdamW>(make_param_groups(*net, cfg.model.depth, cfg.optim), cfg.optim,
                                  shard ? comm.get() : nullptr);
  {
    const double mib = static_cast<double>(optim->state_bytes()) / (1 << 20);
    if (shard) {
      const auto all = comm->allreduce_sum({mib});  // the whole, as each rank holds a share
      log("optimizer state sharded over " + std::to_string(comm->world_size()) + " ranks: " + fmt(mib, 5) +
          " MiB on rank 0 of " + fmt(all[0], 5) + " MiB");
    } else {
      log("optimizer state: " + fmt(mib, 5) + " MiB" +
          (comm->world_size() > 1 ? " on each rank (train.shard_optimizer would share it out)" : ""));
    }
    metric({{"event", "optimizer_state"}, {"mib_rank0", mib}, {"sharded", shard}});
  }

  data::LoaderState start;
  NamedTensors resumed_ema;
  int64_t resumed_ema_updates = 0;
  if (resuming) {
    auto state = load_run_checkpoint(ck.string());
    resumed_ema = std::move(state.ema);
    resumed_ema_updates = state.meta.value("ema_updates", int64_t{0});
    load_state_dict(*net, state.model, ck.string());
    optim->load_state(state.optim);
    step = state.meta.at("step").get<int64_t>();
    nonfinite_streak = state.meta.value("nonfinite_streak", 0);
    start = data::LoaderState::from_json(state.meta.at("loader"));
    const int was = state.meta.value("world_size", 1), now = comm->world_size();
    if (was != now) {
      // Another world size: the same place in the epoch's order (ranks read positions r, r + W,
      // ...), so the run continues with the same samples when its global batch is kept.
      const int64_t global = start.position * was;
      if (global % now != 0)
        throw std::runtime_error(ck.string() + ": " + std::to_string(global) + " samples of epoch " +
                                 std::to_string(start.epoch) + " were read on " + std::to_string(was) +
                                 " ranks; that is not a whole number per rank on " + std::to_string(now) +
                                 ": resume on a world size that divides it");
      start.position = global / now;
      log("resume: " + std::to_string(was) + " rank(s) -> " + std::to_string(now) + " (sample " +
          std::to_string(global) + " of epoch " + std::to_string(start.epoch) + "; keep train.batch_size x ranks x "
          "train.grad_accum to continue the same run)");
    }
    // Generator states are per rank (drop path / dropout draws differ between ranks).
    const std::string key = "rank" + std::to_string(comm->rank());
    NamedTensors mine;
    for (const auto& kv : state.rng)
      if (kv.first.rfind(key + ".", 0) == 0) mine.emplace_back(kv.first.substr(key.size() + 1), kv.second);
    if (!restore_rng_states(mine, device))
      log_warning("resume: warning: the checkpoint holds no generator state for " + device.str() +
          " (written on another device type): drop path draws differ from an uninterrupted run");
    log("resume: " + ck.string() + " at step " + std::to_string(step));
  } else {
    torch::manual_seed(cfg.train.seed * 1000003ULL + comm->rank());
  }
  {
    std::vector<torch::Tensor> params;
    for (auto& kv : state_dict(*net)) params.push_back(kv.second);
    comm->broadcast(params, 0);
  }
  if (lora) lora->materialize(false);
  if (cfg.train.ema_decay > 0 && is_root()) {
    ema = std::make_unique<WeightAverage>(state_dict(*net), cfg.train.ema_decay);
    if (!resumed_ema.empty()) ema->load(resumed_ema, resumed_ema_updates);
    else if (resuming) log("resume: the checkpoint holds no weight average; it starts from the resumed weights");
  }

  if (!cfg.data.embeddings.empty()) {
    // The store must be of this run's encoder (its weights as loaded: init, or the checkpoint).
    embeddings = std::make_shared<const data::EmbeddingStore>(cfg.data.embeddings);
    check_embedding_store(*embeddings, distill ? teacher : model);
    if (embeddings->manifest().value("datasets", nlohmann::json()) != nlohmann::json(cfg.data.train))
      log_warning("data.embeddings " + cfg.data.embeddings + " was made for " + embeddings->manifest().value("datasets", nlohmann::json()).dump() +
                  ", data.train is " + nlohmann::json(cfg.data.train).dump() + ": images it lacks are skipped");
    log("data: the " + std::string(distill ? "teacher's" : "encoder's") + " embeddings from " + cfg.data.embeddings +
        " (" + std::to_string(embeddings->size()) + " images, " + embeddings->manifest().at("dtype").get<std::string>() +
        "); the " + (distill ? "teacher's " : "") + "encoder does not run");
    if (distill) teacher = nullptr;  // its prompt encoder and decoder are the student's already
  }
  auto opened = open_train_datasets(cfg.data.train, cfg.data.weights);
  train_set = opened.dataset;
  for (const auto& w : train_set->warnings()) log_warning("data warning: " + w);
  data::LoaderOptions lo;
  lo.image_size = cfg.model.img_size;
  lo.max_masks = cfg.data.max_masks;
  lo.max_mask_area_frac = cfg.data.max_mask_area_frac;
  lo.min_mask_area_frac = cfg.data.min_mask_area_frac;
  lo.large_scale_jitter = cfg.data.large_scale_jitter;
  lo.lsj_min = cfg.data.lsj_min;
  lo.lsj_max = cfg.data.lsj_max;
  lo.hflip = cfg.data.hflip;
  lo.images_only = mae || distill;  // pixels alone: images without masks count too
  lo.random_resized_crop = cfg.data.random_resized_crop;
  lo.rrc_min_scale = cfg.data.rrc_min_scale;
  lo.workers = cfg.data.workers;
  lo.prefetch = cfg.data.prefetch;
  lo.pin_memory = device.is_cuda();
  lo.seed = cfg.train.seed;
  lo.rank = comm->rank();
  lo.world_size = comm->world_size();
  lo.log = [](const std::string& line) { log::warn(line); };
  lo.mix = opened.mix;
  lo.embeddings = embeddings;
  loader = std::make_unique<data::Loader>(train_set, lo, start);
  if (!opened.mix.empty()) log("data mix: " + opened.describe_mix());
  if (!cfg.data.val.empty()) val_set = data::make_dataset(cfg.data.val);
  log("train: " + train_set->describe() + ", " + std::to_string(loader->shard_size()) + " samples per epoch on each of " +
      std::to_string(comm->world_size()) + " rank(s) (" + comm->backend() + "), " + std::to_string(threads) + " thread(s), " +
      device.str() + (autocast ? ", bf16 autocast" : ", fp32"));
}

void Trainer::Impl::save_checkpoint() {
  // Every rank's generator state goes into the one file rank 0 writes.
  auto rng = capture_rng_states(device);
  NamedTensors all_rng;
  for (int r = 0; r < comm->world_size(); ++r) {
    for (auto& kv : rng) {
      auto t = kv.second.clone();
      if (comm->world_size() > 1) {
        std::vector<torch::Tensor> one{t.to(device)};
        comm->broadcast(one, r);
        t = one[0].to(torch::kCPU);
      }
      all_rng.emplace_back("rank" + std::to_string(r) + "." + kv.first, t);
    }
  }
  auto optim_state = optim->state();  // sharded: every rank takes part in gathering it
  if (is_root()) {
    RunCheckpoint ck;
    ck.model = state_dict(*net);
    ck.optim = std::move(optim_state);
    ck.rng = all_rng;
    ck.meta = {{"step", step}, {"loader", loader->state().to_json()}, {"nonfinite_streak", nonfinite_streak},
               {"world_size", comm->world_size()}};
    if (ema) {
      ck.ema = ema->average();
      ck.meta["ema_updates"] = ema->updates();
    }
    save_run_checkpoint((dir / "checkpoint.pth").string(), ck);
  }
  comm->barrier();
}

nlohmann::json Trainer::Impl::validate() {
  nlohmann::json j;
  if (!val_set) return j;
  if (is_root()) {
    if (lora) lora->materialize(false);
    eval::PointsOptions po;
    po.clicks = 1;
    po.max_samples = cfg.data.val_max_samples;
    po.resize = data::ResizeMode::kFast;
    auto r = eval::evaluate_points(model, *val_set, po, device);
    j = {{"event", "val"}, {"step", step}, {"n", r.n}, {"miou_1click", r.miou_1click},
         {"miou_1click_oracle", r.miou_1click_oracle}};
    std::string line = "val  step " + std::to_string(step) + " | 1-click mIoU " + fmt(r.miou_1click) + " | oracle " +
                       fmt(r.miou_1click_oracle);
    if (ema) {
      // The average, swapped into the model for the evaluation and out again (exact copies).
      ema->swap_in();
      if (lora) lora->materialize(false);
      auto e = eval::evaluate_points(model, *val_set, po, device);
      ema->swap_in();
      if (lora) lora->materialize(false);
      j["ema_miou_1click"] = e.miou_1click;
      j["ema_miou_1click_oracle"] = e.miou_1click_oracle;
      line += " | weight average " + fmt(e.miou_1click) + ", oracle " + fmt(e.miou_1click_oracle);
    }
    log(line + " | n " + std::to_string(r.n));
    metric(j);
  }
  net->train();
  comm->barrier();
  return j;
}

// One micro-step of MAE pre-training: the loss of this rank's images as its share of the global
// batch's mean (so the all-reduced gradients are the mean's), and its backward pass. Each image's
// masking is drawn on the CPU from (seed, micro-step, sample key), as the SAM step's prompts are:
// the same masks whatever the world size, device or resume. Returns the share (detached, double,
// on the device).
torch::Tensor Trainer::Impl::mae_step(const StepBatch& batch, int64_t micro_step, int64_t global_images, bool last,
                                      GradientReducer* reducer) {
  std::vector<torch::Tensor> xs;
  for (const auto& im : batch.images) xs.push_back(mae->preprocess(im.to(device, /*non_blocking=*/true).unsqueeze(0)));
  const auto x = torch::cat(xs);
  const int64_t B = x.size(0), L = cfg.model.grid_size() * cfg.model.grid_size();
  std::vector<uint64_t> seeds;
  for (int64_t b = 0; b < B; ++b)
    seeds.push_back(data::derive_seed({cfg.train.seed, 0x3ae5ULL, static_cast<uint64_t>(micro_step),
                                       static_cast<uint64_t>(batch.keys[b])}));
  const auto noise = mae_masking_noise(seeds, L);
  if (reducer && last) reducer->arm();
  torch::Tensor loss;
  {
    AutocastGuard ag(device.type(), autocast);
    loss = mae->forward(x, noise.to(device)).loss.sum() / static_cast<double>(global_images);
  }
  loss.backward();
  return loss.detach().to(torch::kDouble);
}

// The teacher of a distillation run: its prompt encoder and mask decoder become the student's
// (they are frozen, so a resumed run has them in its checkpoint already); its encoder stays to
// run beside the student's unless data.embeddings holds its outputs.
void Trainer::Impl::setup_teacher(bool resuming) {
  const auto& d = cfg.distill;
  teacher = Sam(model_config_resolve(d.teacher_arch));
  load_checkpoint(teacher, d.teacher_checkpoint);
  teacher->to(device);
  teacher->eval();
  for (auto& p : teacher->parameters()) p.set_requires_grad(false);
  if (!resuming) {
    NamedTensors shared;
    for (auto& kv : state_dict(*teacher))
      if (kv.first.rfind("image_encoder.", 0) != 0) shared.push_back(kv);
    NamedTensors own = state_dict(*model);
    std::map<std::string, torch::Tensor> by(own.begin(), own.end());
    torch::NoGradGuard ng;
    for (const auto& [name, t] : shared) by.at(name).copy_(t);
  }
  int64_t student = 0, teacher_n = 0;
  for (const auto& p : model->image_encoder->parameters()) student += p.numel();
  for (const auto& p : teacher->image_encoder->parameters()) teacher_n += p.numel();
  log("objective: distillation of the image encoder (" + millions(student) + " parameters) from " + d.teacher_checkpoint +
      " (" + d.teacher_arch + ", encoder " + millions(teacher_n) + "); prompt encoder and mask decoder: the teacher's, frozen");
}

// One micro-step of distillation: the student encoder's embeddings of this rank's images against
// the teacher's (the store's, or its encoder's), mean squared error per image, as this rank's
// share of the global batch's mean; and its backward pass. Returns the share.
torch::Tensor Trainer::Impl::distill_step(const StepBatch& batch, int64_t global_images, bool last,
                                          GradientReducer* reducer) {
  std::vector<torch::Tensor> xs;
  for (const auto& im : batch.images) xs.push_back(model->preprocess(im.to(device, /*non_blocking=*/true).unsqueeze(0)));
  const auto x = torch::cat(xs);
  torch::Tensor target;
  if (!batch.embeddings.empty()) {
    std::vector<torch::Tensor> es;
    for (const auto& e : batch.embeddings) es.push_back(e.to(device, /*non_blocking=*/true).to(torch::kFloat));
    target = torch::stack(es);
  } else {
    torch::NoGradGuard ng;
    AutocastGuard ag(device.type(), autocast);
    target = teacher->image_encoder->forward(x).to(torch::kFloat).contiguous();
  }
  if (reducer && last) {
    reducer->arm();
    reducer->start_early();  // nothing trains but the encoder, whose buckets start from their hooks
  }
  torch::Tensor loss;
  {
    AutocastGuard ag(device.type(), autocast);
    const auto student = model->image_encoder->forward(x);
    loss = (student.to(torch::kFloat) - target).pow(2).mean({1, 2, 3}).sum() / static_cast<double>(global_images);
  }
  loss.backward();
  return loss.detach().to(torch::kDouble);
}

int Trainer::Impl::loop() {
  const auto& tc = cfg.train;
  StepOptions so;
  so.prompt = cfg.prompt;
  so.loss = cfg.loss;
  so.loss_full_resolution = cfg.loss.resolution == "full";
  so.seed = tc.seed;
  so.autocast_bf16 = autocast;
  // Rate and time left (data/progress.h): by the iteration count, or by the time limit when that
  // comes first.
  data::Progress progress(tc.iterations, step);
  if (tc.time_limit_min > 0) progress.set_deadline(tc.time_limit_min * 60);
  auto elapsed = [&] { return progress.elapsed_s(); };
  const bool tty = is_root() && isatty(STDERR_FILENO);
  const int64_t R = cfg.prompt.rounds;
  // The step's numbers stay on the device, summed over the logging window there; the host reads
  // them at logging steps only on a GPU (every step on the CPU, where a read costs nothing), so the
  // host queues the next step while the device still runs this one.
  const auto dd = torch::TensorOptions().device(device).dtype(torch::kDouble);
  auto win = torch::zeros({5 + R}, dd);  // loss, focal, dice, iou_mse, masks, IoU per round (finite steps)
  auto win_steps = torch::zeros({}, dd);
  auto streak = torch::full({}, static_cast<double>(nonfinite_streak), dd);  // skipped steps in a row
  const auto read_streak = [&] { nonfinite_streak = static_cast<int>(std::lround(streak.item<double>())); };
  torch::Tensor grad_norm;
  std::vector<std::pair<int64_t, torch::Tensor>> win_flags;  // (step, skipped steps in a row after it)
  double win_images = 0, win_time = 0, win_data = 0;
  int64_t win_host_steps = 0;
  std::vector<torch::Tensor> grads_of;  // parameters in optimiser order
  for (const auto& g : optim->groups())
    for (const auto& p : g.params) grads_of.push_back(p);
  // Several ranks: the gradient all-reduce starts during the backward pass (train/grad_reducer.h).
  std::unique_ptr<GradientReducer> reducer;
  if (comm->world_size() > 1) {
    std::vector<torch::Tensor> early, hooked;
    for (auto& kv : net->named_parameters(true)) {
      if (!kv.value().requires_grad()) continue;
      // The adapters' gradients exist only after the backward pass (LoraAdapters::pull_grads):
      // with adapters every bucket starts then.
      (!lora && model && kv.key().rfind("image_encoder.", 0) == 0 ? hooked : early).push_back(kv.value());
    }
    std::reverse(hooked.begin(), hooked.end());  // the backward pass meets the neck first, the patch embedding last
    // Sharded, each rank needs the summed gradients of the parameters it updates only: a reduce to
    // each owner (the reduce-scatter of ZeRO stage 1) instead of the all-reduce.
    GradientReducer::OwnerOf owner;
    if (optim->sharded()) owner = [&o = *optim](const torch::Tensor& p) { return o.owner(p); };
    reducer = std::make_unique<GradientReducer>(*comm, early, hooked, 25.0, owner);
  }
  if (tc.val_at_start && step == 0) validate();  // a resumed run has it in its metrics already
  net->train();
  while (step < tc.iterations) {
    const auto t0 = std::chrono::steady_clock::now();
    const double lr = lr_at(cfg.optim, step, tc.iterations);
    optim->zero_grad();
    if (lora) lora->materialize(true);  // W + s B A from this step's adapters (and dropout masks)
    auto sums = torch::zeros({4 + R}, dd);
    double step_masks = 0;
    int64_t images = 0;
    for (int micro = 0; micro < tc.grad_accum; ++micro) {
      StepBatch batch;
      const auto td = std::chrono::steady_clock::now();
      for (int b = 0; b < tc.batch_size; ++b) {
        auto s = loader->next();
        if (s.image.defined()) batch.images.push_back(s.image);
        if (s.embedding.defined()) batch.embeddings.push_back(s.embedding);
        if (s.masks.defined()) batch.masks.push_back(s.masks);
        batch.keys.push_back(s.index);
      }
      images += tc.batch_size;
      win_data += std::chrono::duration<double>(std::chrono::steady_clock::now() - td).count();
      const int64_t global_images = tc.batch_size * comm->world_size() * tc.grad_accum;
      if (mae || distill) {
        sums[0] += mae ? mae_step(batch, step * tc.grad_accum + micro, global_images, micro + 1 == tc.grad_accum, reducer.get())
                       : distill_step(batch, global_images, micro + 1 == tc.grad_accum, reducer.get());
        continue;
      }
      double local_masks = 0;
      for (const auto& m : batch.masks) local_masks += static_cast<double>(m.size(0));
      // The loss normaliser: the step's masks over all ranks (a host collective; no GPU involved).
      so.global_masks = comm->allreduce_sum({local_masks})[0] * tc.grad_accum;
      step_masks += so.global_masks / tc.grad_accum;
      so.step = step * tc.grad_accum + micro;
      const bool last = micro + 1 == tc.grad_accum;
      so.before_encoder_backward = nullptr;
      if (reducer && last) {
        reducer->arm();
        if (!lora) so.before_encoder_backward = [&] { reducer->start_early(); };
      }
      sums += interactive_step_async(model, batch, so, device).sums;
    }
    if (lora) lora->pull_grads();
    if (reducer) {
      if (lora || mae) reducer->start_early();
      reducer->finish();
    }
    const bool injected = nonfinite_injected(step);  // the tests' fault injection (run_state.h)
    // One device collective for the step's numbers and whether any rank's loss was not finite.
    auto local_bad = torch::logical_not(torch::isfinite(sums[0])).to(torch::kDouble) + (injected ? 1.0 : 0.0);
    auto packed = torch::cat({torch::nan_to_num(sums, 0.0, 0.0, 0.0), local_bad.view({1})});
    if (comm->world_size() > 1) comm->allreduce_sum_async(packed)->wait();
    auto skip = (packed[4 + R] > 0).to(torch::kFloat);  // 1: skip this update
    {
      torch::NoGradGuard ng;
      std::vector<torch::Tensor> grads;
      for (const auto& p : grads_of)
        if (p.grad().defined()) grads.push_back(p.mutable_grad());
      auto sq = torch::zeros({}, dd);
      if (optim->sharded()) {
        // Each rank holds the summed gradients of its own parameters: their squared norms, one per
        // parameter in optimiser order (zero elsewhere), summed over the ranks (x + 0 is x), then
        // added in the order below: the unsharded norm bit for bit.
        std::vector<torch::Tensor> parts;
        for (const auto& p : grads_of)
          parts.push_back(optim->owner(p) == comm->rank() && p.grad().defined() ? p.grad().pow(2).sum().to(torch::kDouble)
                                                                               : torch::zeros({}, dd));
        auto each = torch::stack(parts);
        comm->allreduce_sum_async(each)->wait();
        for (int64_t i = 0; i < each.size(0); ++i) sq += each[i];
      } else {
        for (const auto& g : grads) sq += g.pow(2).sum().to(torch::kDouble);
      }
      grad_norm = sq.sqrt();
      if (tc.clip_grad_norm > 0) {
        // min(1, clip / (norm + 1e-6)), applied on the device.
        auto scale = torch::clamp_max(tc.clip_grad_norm / (grad_norm + 1e-6), 1.0).to(torch::kFloat);
        for (auto& g : grads) g.mul_(scale);
      }
    }
    optim->step(lr, skip);
    if (ema) ema->update(skip);
    const auto skipped = skip.to(torch::kDouble), keep = 1.0 - skipped;
    win += torch::cat({packed.narrow(0, 0, 4), torch::full({1}, step_masks, dd), packed.narrow(0, 4, R)}) * keep;
    win_steps += keep;
    streak = (streak + 1.0) * skipped;
    win_flags.emplace_back(step, streak.clone());
    ++step;

    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    win_images += static_cast<double>(images) * comm->world_size();
    win_time += secs;
    ++win_host_steps;
    const bool log_now = step % tc.log_every == 0 || step == tc.iterations;
    if (device.is_cpu() || log_now) {
      // The skipped steps of the window (a step was skipped when the run of skipped steps after it
      // is not 0), and that run now.
      std::vector<torch::Tensor> fl;
      for (auto& f : win_flags) fl.push_back(f.second);
      auto runs = torch::stack(fl).to(torch::kCPU);
      for (size_t i = 0; i < win_flags.size(); ++i) {
        const int run = static_cast<int>(std::lround(runs[i].item<double>()));
        if (run == 0) continue;
        const int64_t at = win_flags[i].first;
        log_warning("step " + std::to_string(at) + ": non-finite loss, step skipped (" + std::to_string(run) + " in a row)");
        metric({{"event", "nonfinite"}, {"step", at}, {"streak", run}});
      }
      win_flags.clear();
      read_streak();
      if (nonfinite_streak >= tc.max_nonfinite) {
        log_warning("stopping: " + std::to_string(nonfinite_streak) + " non-finite losses in a row (train.max_nonfinite)");
        save_checkpoint();
        return 2;
      }
    }
    if (log_now) {
      auto w = win.to(torch::kCPU);
      const double n = win_steps.item<double>();
      if (n > 0) {
        const double* v = w.data_ptr<double>();
        const double masks = v[4];
        nlohmann::json j = {{"event", "train"}, {"step", step}, {"loss", v[0] / n}, {"lr", lr},
                            {"grad_norm", grad_norm.item<double>()}, {"masks_per_step", masks / n},
                            {"images_per_s", win_images / std::max(win_time, 1e-9)},
                            {"sec_per_step", win_time / win_host_steps}, {"data_wait_s", win_data / win_host_steps},
                            {"elapsed_s", elapsed()}};
        nlohmann::json ious = nlohmann::json::array();
        for (int64_t r = 0; r < R; ++r) ious.push_back(v[5 + r] / std::max(masks, 1.0));
        std::string quality;  // the objective's own numbers: SAM's IoU of the first and last round
        if (mae || distill) {
          j.erase("masks_per_step");
        } else {
          j["iou_round"] = ious;
          quality = " | IoU r1 " + fmt(ious.front().get<double>(), 3) + " last " + fmt(ious.back().get<double>(), 3);
        }
        metric(j);
        progress.set_done(step);
        if (tty) std::cerr << "\r" << std::string(100, ' ') << "\r";
        log("step " + std::to_string(step) + "/" + std::to_string(tc.iterations) + " | loss " + fmt(v[0] / n) +
            quality + " | lr " + fmt(lr, 3) + " | " + fmt(win_images / std::max(win_time, 1e-9), 3) + " img/s | data " +
            fmt(100.0 * win_data / std::max(win_time, 1e-9), 2) + "% | " + progress.eta_text());
      }
      win.zero_();
      win_steps.zero_();
      win_images = win_time = win_data = 0;
      win_host_steps = 0;
    } else if (tty) {
      progress.set_done(step);
      const int width = 30;
      const int done = static_cast<int>(width * static_cast<double>(step) / std::max<int64_t>(1, tc.iterations));
      std::cerr << "\r[" << std::string(done, '#') << std::string(width - done, '.') << "] " << step << "/"
                << tc.iterations << " " << progress.eta_text() << std::flush;
    }
    kill_point("step", step);
    if (tc.ckpt_every > 0 && step % tc.ckpt_every == 0) {
      read_streak();
      save_checkpoint();
    }
    if (tc.val_every > 0 && step % tc.val_every == 0) validate();
    if (tc.time_limit_min > 0) {
      const double over = elapsed() >= tc.time_limit_min * 60 ? 1.0 : 0.0;
      if (comm->allreduce_sum({over})[0] > 0) {
        log("time limit of " + fmt(tc.time_limit_min) + " min reached at step " + std::to_string(step));
        break;
      }
    }
  }
  if (tty) std::cerr << "\r" << std::string(100, ' ') << "\r";
  read_streak();
  save_checkpoint();
  if (tc.val_every == 0 || step % tc.val_every != 0) validate();
  if (is_root()) {
    // The weight average when the run keeps one (the optimiser's own weights stay in checkpoint.pth).
    // Adapters folded into their weights: model.pth is always the official format.
    NamedTensors sd = ema ? ema->average() : state_dict(*net);
    if (mae) save_mae((dir / "model.pth.tmp").string(), mae_state_dict(sd));  // MAE's layout: init.kind mae reads it
    else pth_write((dir / "model.pth.tmp").string(), merge_lora(std::move(sd)));
    fs::rename(dir / "model.pth.tmp", dir / "model.pth");
    if (distill)  // the student's architecture, for sam_predict / sam_amg / sam_eval --model
      data::write_file_atomic((dir / "model.json").string(), model_config_to_json(cfg.model).dump(2) + "\n");
    auto stats = loader->stats().to_json();
    const double peak = data::peak_rss_mib();
    metric({{"event", "end"}, {"step", step}, {"loader", stats}, {"elapsed_s", elapsed()}, {"peak_rss_mib", peak}});
    log("done: step " + std::to_string(step) + ", loader " + stats.dump() + ", peak memory " + fmt(peak, 5) + " MiB");
    if (ema) log("model.pth holds the weight average (train.ema_decay " + fmt(cfg.train.ema_decay) + ", " +
                 std::to_string(ema->updates()) + " updates); sam_train export --raw writes the optimiser's own weights");
  }
  comm->barrier();
  return 0;
}

int Trainer::run() {
  impl_->setup();
  return impl_->loop();
}

int64_t Trainer::step() const { return impl_->step; }

}  // namespace sam::train
