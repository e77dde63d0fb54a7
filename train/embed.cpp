#include "train/embed.h"

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <sstream>
#include <unordered_set>

#include "data/atomic_file.h"
#include "data/config_file.h"
#include "data/loader.h"
#include "data/log.h"
#include "sam/amp.h"
#include "train/interactive.h"

namespace sam::train {

namespace fs = std::filesystem;

nlohmann::json encoder_identity(Sam& model) {
  const auto all = model_config_to_json(model->config);
  nlohmann::json id = nlohmann::json::object();
  for (const char* k : {"img_size", "patch_size", "embed_dim", "depth", "num_heads", "mlp_ratio", "window_size",
                        "global_attn_indexes", "layer_norm_eps", "prompt_dim", "pixel_mean", "pixel_std"})
    id[k] = all.at(k);
  if (all.at("encoder") != "vit")  // another encoder design: its own sizes (a ViT's identity keeps its old keys)
    for (const char* k : {"encoder", "tiny_vit_dims", "tiny_vit_depths", "tiny_vit_heads", "tiny_vit_windows",
                          "tiny_vit_mbconv_ratio"})
      id[k] = all.at(k);
  uint64_t h = 0xcbf29ce484222325ULL;  // FNV-1a, 64 bit
  const auto mix = [&h](const void* p, size_t n) {
    const auto* b = static_cast<const unsigned char*>(p);
    for (size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 0x100000001b3ULL;
  };
  for (const auto& [name, t] : state_dict(*model)) {
    if (name.rfind("image_encoder.", 0) != 0) continue;
    mix(name.data(), name.size());
    for (int64_t d : t.sizes()) mix(&d, sizeof d);
    const auto v = t.detach().to(torch::kCPU, torch::kFloat).contiguous();
    mix(v.data_ptr(), v.nbytes());
  }
  std::ostringstream hex;
  hex << std::hex << std::setw(16) << std::setfill('0') << h;
  id["weights"] = hex.str();
  return id;
}

void check_embedding_store(const data::EmbeddingStore& store, Sam& model) {
  const auto diff = cfg::first_difference(store.manifest().value("identity", nlohmann::json::object()), encoder_identity(model));
  if (!diff.empty())
    throw std::runtime_error(store.dir() + ": the embeddings were made by another image encoder (" + diff +
                             " in this run): run sam_data embed with this run's model and init");
  const int64_t G = model->config.grid_size();
  const std::vector<int64_t> want{model->config.prompt_dim, G, G};
  if (store.shape() != want)
    throw std::runtime_error(store.dir() + ": embeddings of shape " + nlohmann::json(store.shape()).dump() +
                             ", the model's encoder gives " + nlohmann::json(want).dump());
}

EmbedReport embed_dataset(Sam& model, const data::Dataset& ds, const std::vector<std::string>& specs,
                          const EmbedOptions& o, Communicator& comm, const torch::Device& device) {
  if (o.out.empty()) throw std::invalid_argument("embed: no output folder");
  if (o.batch < 1) throw std::invalid_argument("embed: the batch must be at least 1 image");
  if (o.shard_size < 1) throw std::invalid_argument("embed: the shard size must be at least 1 sample");
  const auto dtype = data::embedding_dtype(o.dtype);
  const int64_t N = static_cast<int64_t>(ds.size());
  if (N == 0) throw std::invalid_argument("embed: " + ds.describe() + " has no sample");
  const int64_t shards = (N + o.shard_size - 1) / o.shard_size;
  const int S = model->config.img_size;
  const int64_t G = model->config.grid_size();
  const std::string manifest_path = (fs::path(o.out) / "manifest.json").string();

  nlohmann::json manifest = {{"format", data::kEmbeddingFormat},
                             {"version", data::kEmbeddingVersion},
                             {"dtype", o.dtype},
                             {"shape", {model->config.prompt_dim, G, G}},
                             {"image_size", S},
                             {"shard_size", o.shard_size},
                             {"samples", N},
                             {"datasets", specs},
                             {"identity", encoder_identity(model)},
                             {"autocast_bf16", o.autocast},
                             {"shards", shards}};
  // Rank 0 checks a store already there (a resumed build must make the same records) and marks
  // the store as being built; every rank learns whether that failed.
  std::string refusal;
  if (comm.rank() == 0) {
    try {
      fs::create_directories(o.out);
      if (fs::exists(manifest_path)) {
        std::ifstream in(manifest_path);
        const auto old = nlohmann::json::parse(in);
        const auto diff = cfg::first_difference(data::embedding_manifest_header(old), data::embedding_manifest_header(manifest));
        if (!diff.empty())
          throw std::runtime_error(manifest_path + " holds embeddings made with another " + diff +
                                   ": choose another folder or delete it");
      }
      manifest["status"] = "building";
      data::write_file_atomic(manifest_path, manifest.dump(2) + "\n");
    } catch (const std::exception& e) {
      refusal = e.what();
    }
  }
  if (comm.allreduce_sum({refusal.empty() ? 0.0 : 1.0})[0] > 0)
    throw std::runtime_error(refusal.empty() ? "embed: rank 0 could not start the store " + o.out : refusal);

  torch::NoGradGuard ng;
  EmbedReport rep;
  rep.shards = shards;
  double existing = 0, written = 0;
  for (int64_t k = comm.rank(); k < shards; k += comm.world_size()) {
    if (data::embedding_shard_done(o.out, k)) {
      ++existing;
      continue;
    }
    const auto t0 = std::chrono::steady_clock::now();
    data::EmbeddingShard shard;
    shard.index = k;
    shard.first = k * o.shard_size;
    shard.count = std::min(o.shard_size, N - shard.first);
    std::vector<torch::Tensor> out, pending;
    std::unordered_set<std::string> seen;  // samples of one image (objects of a folder dataset) share it
    const auto flush = [&] {
      if (pending.empty()) return;
      torch::Tensor emb;
      {
        AutocastGuard guard(device.type(), o.autocast);
        emb = model->image_encoder->forward(preprocess_batch(model, pending, device));
      }
      out.push_back(emb.to(torch::kCPU).to(dtype).contiguous());
      pending.clear();
    };
    for (int64_t i = shard.first; i < shard.first + shard.count; ++i) {
      std::string id = ds.sample_id(static_cast<size_t>(i));
      try {
        const data::Sample s = ds.get(static_cast<size_t>(i));
        const std::string key = data::image_key(s.image);
        if (!seen.insert(key).second) continue;
        pending.push_back(data::resized_image(s, S));
        shard.records.push_back({key, s.height, s.width, s.id});
      } catch (const data::DataError& e) {
        shard.skipped.push_back({{"sample", id}, {"problem", data::problem_name(e.problem())}, {"message", e.what()}});
        log::warn("embed: skipping " + std::string(e.what()));
        continue;
      }
      if (static_cast<int>(pending.size()) == o.batch) flush();
    }
    flush();
    const auto data = out.empty() ? torch::empty({0, model->config.prompt_dim, G, G}, torch::TensorOptions().dtype(dtype))
                                  : torch::cat(out).contiguous();
    data::write_embedding_shard(o.out, shard, data);
    ++written;
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::ostringstream line;
    line << "embed: shard " << k + 1 << "/" << shards << " (rank " << comm.rank() << "): " << shard.records.size()
         << " images, " << shard.skipped.size() << " skipped, " << std::setprecision(3) << secs << " s";
    log::info(line.str());
  }
  const auto counts = comm.allreduce_sum({existing, written});
  rep.shards_existing = static_cast<int64_t>(counts[0]);
  rep.shards_written = static_cast<int64_t>(counts[1]);
  comm.barrier();
  // Rank 0 checks every shard and completes the manifest.
  std::string failure;
  if (comm.rank() == 0) {
    try {
      int64_t images = 0, skipped = 0;
      for (int64_t k = 0; k < shards; ++k) {
        const auto s = data::read_embedding_shard(o.out, k);
        images += static_cast<int64_t>(s.records.size());
        skipped += static_cast<int64_t>(s.skipped.size());
      }
      manifest["status"] = "complete";
      manifest["images"] = images;
      manifest["skipped"] = skipped;
      data::write_file_atomic(manifest_path, manifest.dump(2) + "\n");
      rep.images = images;
      rep.skipped = skipped;
    } catch (const std::exception& e) {
      failure = e.what();
    }
  }
  const auto totals = comm.allreduce_sum({failure.empty() ? 0.0 : 1.0, static_cast<double>(rep.images),
                                          static_cast<double>(rep.skipped)});
  if (totals[0] > 0) throw std::runtime_error(failure.empty() ? "embed: rank 0 could not complete " + o.out : failure);
  rep.images = static_cast<int64_t>(totals[1]);
  rep.skipped = static_cast<int64_t>(totals[2]);
  return rep;
}

}  // namespace sam::train
