// The embedding store of decoder training on cached embeddings (train/embed.h,
// data/embedding_store.h): records equal to the encoder's outputs for the loader's images, the
// stored precisions, 2 ranks writing the store 1 rank writes, resume, refusals, bad images, the
// loader reading embeddings instead of images, and the identity check against another encoder.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <thread>

#include "data/embedding_store.h"
#include "data/loader.h"
#include "data/synth.h"
#include "train/embed.h"
#include "train/interactive.h"
#include "small_model.h"
#include "test_util.h"

using namespace sam::train;
namespace d = sam::data;
namespace fs = std::filesystem;

namespace {

// 7 small synthetic images (SA-1B layout).
const fs::path& synth_dir() {
  static const fs::path dir = [] {
    const fs::path p = sam_test::temp_dir("embed_synth");
    d::SynthOptions o;
    o.width = 96, o.height = 72, o.min_objects = 2, o.max_objects = 4, o.seed = 5;
    d::synth_write(p.string(), o, 7, 1, false, 1);
    return p;
  }();
  return dir;
}

// Embeds `spec` into `out` on `world` ranks (threads of one process).
EmbedReport embed(sam::Sam& model, const std::string& spec, const EmbedOptions& o, int world = 1) {
  const auto ds = d::make_dataset(spec);
  std::vector<EmbedReport> reps(world);
  std::vector<std::string> errors(world);
  std::vector<std::thread> threads;
  static int group = 0;
  const std::string name = "embed_" + std::to_string(::getpid()) + "_" + std::to_string(group++);
  for (int r = 0; r < world; ++r)
    threads.emplace_back([&, r] {
      try {
        auto comm = Communicator::create_local(name, r, world, torch::kCPU, "gloo");
        reps[r] = embed_dataset(model, *ds, {spec}, o, *comm, torch::kCPU);
      } catch (const std::exception& e) {
        errors[r] = e.what();
      }
    });
  for (auto& t : threads) t.join();
  for (int r = 0; r < world; ++r)
    if (!errors[r].empty()) throw std::runtime_error(errors[r]);
  return reps[0];
}

// The encoder's output for sample i's image as the loader resizes it (one image per call).
torch::Tensor encoder_output(sam::Sam& model, const d::Dataset& ds, size_t i) {
  torch::NoGradGuard ng;
  auto img = d::resized_image(ds.get(i), model->config.img_size);
  return model->image_encoder->forward(preprocess_batch(model, {img}, torch::kCPU))[0];
}

}  // namespace

TEST_CASE("embed: the records are the encoder's outputs, in each stored precision, and 2 ranks write what 1 writes",
          "[train][embed]") {
  auto model = sam_test::small_model();
  model->eval();
  const std::string spec = "sa1b:" + synth_dir().string();
  const auto ds = d::make_dataset(spec);
  const auto root = sam_test::temp_dir("embed_records");
  EmbedOptions o;
  o.dtype = "fp32";
  o.shard_size = 3;
  o.out = (root / "fp32").string();
  const auto rep = embed(model, spec, o);
  CHECK(rep.shards == 3);
  CHECK(rep.shards_written == 3);
  CHECK(rep.images == 7);
  CHECK(rep.skipped == 0);
  d::EmbeddingStore fp32(o.out);
  REQUIRE(fp32.size() == 7);
  CHECK(fp32.shape() == std::vector<int64_t>{256, 4, 4});
  CHECK(fp32.manifest().at("status") == "complete");
  CHECK_NOTHROW(check_embedding_store(fp32, model));

  o.out = (root / "fp16_2ranks").string();
  o.dtype = "fp16";
  o.batch = 2;  // several images per encoder call: the same values to rounding
  CHECK(embed(model, spec, o, 2).shards_written == 3);
  d::EmbeddingStore fp16(o.out);
  o.out = (root / "bf16").string();
  o.dtype = "bf16";
  embed(model, spec, o);
  d::EmbeddingStore bf16(o.out);
  CHECK(fp16.dtype() == torch::kHalf);
  CHECK(bf16.dtype() == torch::kBFloat16);

  for (size_t i = 0; i < ds->size(); ++i) {
    const auto s = ds->get(i);
    const auto key = d::image_key(s.image);
    INFO(key);
    const auto want = encoder_output(model, *ds, i);
    // One image per call, as the trainer's encoder with a batch of 1: the same bits.
    CHECK(torch::equal(fp32.read(key, s.height, s.width), want));
    const double scale = want.abs().max().item<double>();
    CHECK((fp16.read(key, s.height, s.width).to(torch::kFloat) - want).abs().max().item<double>() <= scale * 1e-3);
    CHECK((bf16.read(key, s.height, s.width).to(torch::kFloat) - want).abs().max().item<double>() <= scale * 8e-3);
    CHECK(fp16.find(key)->sample == s.id);
    // The stored image size is checked against the sample's.
    CHECK_THROWS_WITH(fp32.read(key, s.height + 1, s.width), Catch::Contains("is of a 72x96 image"));
  }
  CHECK_THROWS_AS(fp32.read("/nowhere.jpg", 72, 96), d::DataError);
  // The trainer's frozen encoder runs in autograd mode, without the inference kernels
  // (sam/decoder_kernels.h) the store is made with: the same values to float rounding.
  {
    for (auto& p : model->image_encoder->parameters()) p.set_requires_grad(false);
    const auto s = ds->get(0);
    const auto img = d::resized_image(s, model->config.img_size);
    const auto in_loop = model->image_encoder->forward(preprocess_batch(model, {img}, torch::kCPU))[0];
    const auto stored = fp32.read(d::image_key(s.image), s.height, s.width);
    CHECK((stored - in_loop).abs().max().item<double>() <= 1e-5 * in_loop.abs().max().item<double>());
  }
  fs::remove_all(root);
}

TEST_CASE("embed: a rerun resumes the missing shards, and a store of other records is refused", "[train][embed]") {
  auto model = sam_test::small_model();
  model->eval();
  const std::string spec = "sa1b:" + synth_dir().string();
  const auto root = sam_test::temp_dir("embed_resume");
  EmbedOptions o;
  o.out = (root / "store").string();
  o.shard_size = 2;
  REQUIRE(embed(model, spec, o).shards_written == 4);
  const std::string stem = d::embedding_shard_stem(o.out, 2);
  const auto key1 = d::read_embedding_shard(o.out, 1).records[0].key;
  const auto before = d::EmbeddingStore(o.out).read(key1, 72, 96);
  auto manifest = d::EmbeddingStore(o.out).manifest();
  const auto kept = fs::last_write_time(d::embedding_shard_stem(o.out, 0) + ".bin");
  // A build stopped in shard 2 (its records written, its index not).
  fs::remove(stem + ".json");
  CHECK_THROWS_WITH(d::EmbeddingStore(o.out), Catch::Contains("shard-000002.json"));
  manifest["status"] = "building";
  sam_test::write_text(fs::path(o.out) / "manifest.json", manifest.dump());
  CHECK_THROWS_WITH(d::EmbeddingStore(o.out), Catch::Contains("has not finished"));
  // On 2 ranks this time: only shard 2 is made again.
  const auto rep = embed(model, spec, o, 2);
  CHECK(rep.shards_written == 1);
  CHECK(rep.shards_existing == 3);
  CHECK(rep.images == 7);
  CHECK(fs::last_write_time(d::embedding_shard_stem(o.out, 0) + ".bin") == kept);
  d::EmbeddingStore store(o.out);
  CHECK(store.size() == 7);
  CHECK(torch::equal(store.read(key1, 72, 96), before));
  // Other settings or another encoder in the same folder: refused, naming what differs.
  EmbedOptions other = o;
  other.dtype = "bf16";
  CHECK_THROWS_WITH(embed(model, spec, other), Catch::Contains("another dtype"));
  other = o;
  other.shard_size = 3;
  CHECK_THROWS_WITH(embed(model, spec, other), Catch::Contains("another shard_size"));
  auto stranger = sam_test::small_model(/*seed=*/4);
  stranger->eval();
  CHECK_THROWS_WITH(embed(stranger, spec, o), Catch::Contains("another identity"));
  // The trainer's check: another encoder's store is refused, naming its weights.
  CHECK_THROWS_WITH(check_embedding_store(store, stranger), Catch::Contains("another image encoder (weights"));
  fs::remove_all(root);
}

TEST_CASE("embed: a bad image is skipped and listed, and the loader reads embeddings instead of images", "[train][embed]") {
  auto model = sam_test::small_model();
  model->eval();
  const auto root = sam_test::temp_dir("embed_loader");
  fs::copy(synth_dir(), root / "data", fs::copy_options::recursive);
  // sa_3's image is cut short: it cannot be decoded.
  {
    const auto img = root / "data" / "sa_3.jpg";
    const auto size = fs::file_size(img);
    fs::resize_file(img, size / 3);
  }
  const std::string spec = "sa1b:" + (root / "data").string();
  EmbedOptions o;
  o.out = (root / "store").string();
  o.shard_size = 4;
  o.dtype = "fp32";
  const auto rep = embed(model, spec, o);
  CHECK(rep.images == 6);
  CHECK(rep.skipped == 1);
  const auto shard = d::read_embedding_shard(o.out, 0);
  REQUIRE(shard.skipped.size() == 1);
  CHECK(shard.skipped[0]["sample"] == "sa_3");
  CHECK(shard.skipped[0]["problem"] == "corrupt_image");

  auto store = std::make_shared<const d::EmbeddingStore>(o.out);
  const auto ds = d::make_dataset(spec);
  d::LoaderOptions lo;
  lo.image_size = model->config.img_size;
  lo.max_masks = 3;
  lo.workers = 2;
  lo.seed = 9;
  lo.log = [](const std::string&) {};
  d::Loader plain(ds, lo);
  lo.embeddings = store;
  d::Loader cached(ds, lo);
  for (int i = 0; i < 7; ++i) {  // the 7th from the next epoch: every sample of the first has been read
    // The same samples in the same order, the same masks; the embedding instead of the image.
    const auto a = plain.next();
    const auto b = cached.next();
    INFO(a.id);
    CHECK(a.id == b.id);
    CHECK(torch::equal(a.masks, b.masks));
    CHECK(!b.image.defined());
    REQUIRE(b.embedding.defined());
    CHECK(torch::equal(b.embedding, encoder_output(model, *ds, static_cast<size_t>(std::stoi(a.id.substr(3)) - 1))));
  }
  // The bad image: skipped by both, as corrupt_image by the one that decodes it, as a missing
  // embedding by the other.
  const auto bad = plain.stats().skipped[static_cast<int>(d::Problem::corrupt_image)];
  CHECK(bad >= 1);
  CHECK(cached.stats().skipped[static_cast<int>(d::Problem::missing_embedding)] == bad);
  CHECK(cached.stats().skipped_total() == bad);
  // Jitter and flips cannot use stored embeddings.
  lo.hflip = true;
  CHECK_THROWS_WITH(d::Loader(ds, lo), Catch::Contains("must be off"));
  fs::remove_all(root);
}
