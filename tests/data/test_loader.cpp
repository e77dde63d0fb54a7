// The training loader (data/loader.h): deterministic sharding, exact resume, mask filtering and
// sampling, and bad samples skipped and counted by reason while the run goes on.
#include <catch2/catch.hpp>

#include <opencv2/imgcodecs.hpp>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "data/loader.h"
#include "data/synth.h"
#include "test_util.h"

using namespace sam::data;
namespace fs = std::filesystem;

namespace {

// One small synthetic SA-1B folder shared by the tests of this binary.
const fs::path& clean_dir() {
  static const fs::path dir = [] {
    const fs::path d = sam_test::temp_dir("loader_clean");
    SynthOptions o;
    o.width = 96, o.height = 72, o.min_objects = 4, o.max_objects = 10, o.seed = 3;
    synth_write(d.string(), o, 12, 1, false, 2);
    return d;
  }();
  return dir;
}

LoaderOptions small_options() {
  LoaderOptions o;
  o.image_size = 64;
  o.max_masks = 6;
  o.workers = 2;
  o.prefetch = 4;
  o.seed = 11;
  o.log = [](const std::string&) {};
  return o;
}

bool same(const TrainSample& a, const TrainSample& b) {
  return a.id == b.id && a.index == b.index && a.image.sizes() == b.image.sizes() &&
         a.masks.sizes() == b.masks.sizes() && torch::equal(a.image, b.image) &&
         torch::equal(a.masks, b.masks);
}

void write(const fs::path& p, const std::string& text) {
  std::ofstream(p, std::ios::binary) << text;
}

std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

}  // namespace

TEST_CASE("loader: shards of 2 and 3 ranks are disjoint, cover the epoch, and follow the seed") {
  for (const int world : {2, 3}) {
    for (const bool drop_last : {true, false}) {
      LoaderOptions o;
      o.world_size = world;
      o.drop_last = drop_last;
      o.seed = 5;
      std::multiset<int64_t> all;
      for (int r = 0; r < world; ++r) {
        o.rank = r;
        const auto idx = shard_indices(25, o, 0);
        CHECK(idx.size() == size_t(drop_last ? 25 / world : (25 - r + world - 1) / world));
        all.insert(idx.begin(), idx.end());
      }
      CHECK(all.size() == size_t(drop_last ? 25 / world * world : 25));
      CHECK(std::set<int64_t>(all.begin(), all.end()).size() == all.size());  // each sample once
      for (int64_t v : all) CHECK((v >= 0 && v < 25));
    }
  }
  LoaderOptions o;
  o.seed = 5;
  const auto a = shard_indices(50, o, 0);
  CHECK(shard_indices(50, o, 0) == a);  // same seed and epoch: same order
  CHECK(shard_indices(50, o, 1) != a);  // next epoch: another order
  o.seed = 6;
  CHECK(shard_indices(50, o, 0) != a);  // another seed: another order
  o.shuffle = false;
  CHECK(shard_indices(5, o, 3) == std::vector<int64_t>{0, 1, 2, 3, 4});
}

TEST_CASE("loader: ranks' loaders together return every sample of an epoch once") {
  const auto ds = open_sa1b(clean_dir().string());
  REQUIRE(ds->size() == 12);
  for (const int world : {2, 3}) {
    std::multiset<std::string> ids;
    std::vector<std::string> first_order;
    for (int r = 0; r < world; ++r) {
      LoaderOptions o = small_options();
      o.rank = r, o.world_size = world;
      Loader loader(ds, o);
      REQUIRE(loader.shard_size() == 12 / world);
      for (int64_t k = 0; k < loader.shard_size(); ++k) {
        const TrainSample s = loader.next();
        CHECK(s.index % world == r);  // global positions r, r + R, ...
        ids.insert(s.id);
        if (r == 0) first_order.push_back(s.id);
      }
      CHECK(loader.state().epoch == 1);
      CHECK(loader.state().position == 0);
      CHECK(loader.stats().skipped_total() == 0);
    }
    CHECK(ids.size() == 12);
    CHECK(std::set<std::string>(ids.begin(), ids.end()).size() == 12);
    // Same seed: same order again.
    LoaderOptions o = small_options();
    o.world_size = world;
    Loader again(ds, o);
    for (const auto& id : first_order) CHECK(again.next().id == id);
  }
}

TEST_CASE("loader: resuming from a saved state gives the same samples bit for bit") {
  const auto ds = open_sa1b(clean_dir().string());
  LoaderOptions o = small_options();
  o.large_scale_jitter = true;
  o.hflip = true;
  o.max_masks = 4;
  Loader a(ds, o);
  for (int i = 0; i < 9; ++i) a.next();
  const nlohmann::json saved = a.state().to_json();
  CHECK(saved == nlohmann::json({{"epoch", 0}, {"position", 9}}));
  std::vector<TrainSample> expect;
  for (int i = 0; i < 7; ++i) expect.push_back(a.next());  // crosses into epoch 1
  CHECK(a.state().epoch == 1);
  CHECK(a.state().position == 4);

  LoaderOptions o2 = o;
  o2.workers = 3;  // thread count and prefetch do not change the stream
  o2.prefetch = 1;
  Loader b(ds, o2, LoaderState::from_json(saved));
  for (int i = 0; i < 7; ++i) {
    const TrainSample s = b.next();
    INFO("sample " << i << ": " << s.id << " vs " << expect[size_t(i)].id);
    CHECK(same(s, expect[size_t(i)]));
  }
  LoaderOptions o3 = o;
  o3.workers = 0;  // synchronous
  Loader c(ds, o3, LoaderState::from_json(saved));
  for (int i = 0; i < 7; ++i) CHECK(same(c.next(), expect[size_t(i)]));
  // Jitter and flip vary between epochs for the same image.
  LoaderOptions o4 = o;
  Loader d(ds, o4);
  std::map<std::string, torch::Tensor> first;
  bool differs = false;
  for (int i = 0; i < 24; ++i) {
    const TrainSample s = d.next();
    CHECK(s.image.sizes() == torch::IntArrayRef({3, 64, 64}));
    if (i < 12)
      first[s.id] = s.image;
    else
      differs |= !torch::equal(first[s.id], s.image);
  }
  CHECK(differs);

  CHECK_THROWS_WITH(LoaderState::from_json({{"epoch", 1}}), Catch::Contains("position"));
  CHECK_THROWS_WITH(Loader(ds, o, LoaderState{0, 13}), Catch::Contains("outside a shard of 12"));
}

TEST_CASE("loader: output shapes, mask limits and values") {
  const auto ds = open_sa1b(clean_dir().string());
  LoaderOptions o = small_options();
  o.max_masks = 3;
  Loader loader(ds, o);
  for (int i = 0; i < 12; ++i) {
    const TrainSample s = loader.next();
    REQUIRE(s.image.dim() == 3);
    CHECK(s.image.dtype() == torch::kUInt8);
    CHECK(s.image.size(0) == 3);
    CHECK(s.image.size(1) == 48);  // 72 x 96 -> longest side 64
    CHECK(s.image.size(2) == 64);
    CHECK(s.masks.size(0) >= 1);
    CHECK(s.masks.size(0) <= 3);
    CHECK(s.masks.size(1) == 48);
    CHECK(s.masks.max().item<int>() == 1);
    CHECK(s.masks.flatten(1).sum(1).min().item<int64_t>() > 0);  // no empty mask
  }
}

TEST_CASE("loader: crowd, empty and over-90% masks are dropped and masks align with the image") {
  const auto dir = sam_test::temp_dir("loader_filter");
  // A 40 x 60 image whose red channel is the one usable mask.
  cv::Mat img(40, 60, CV_8UC3, cv::Scalar(0, 0, 0));
  img(cv::Rect(10, 5, 20, 15)).setTo(cv::Scalar(0, 0, 255));  // BGR: red, pixels x 10..29, y 5..19
  cv::imwrite((dir / "im.png").string(), img);
  const std::string json =
      R"({"images": [{"id": 1, "width": 60, "height": 40, "file_name": "im.png"}],
    "annotations": [
      {"id": 1, "image_id": 1, "iscrowd": 1, "segmentation": {"size": [40, 60], "counts": [100, 50, 2250]}},
      {"id": 2, "image_id": 1, "iscrowd": 0, "segmentation": [[10,5, 30,5, 30,20, 10,20]]},
      {"id": 3, "image_id": 1, "iscrowd": 0, "segmentation": [[0,0, 60,0, 60,38, 0,38]]},
      {"id": 4, "image_id": 1, "iscrowd": 0, "segmentation": [[5,5, 5,5, 5,5]]}]})";
  write(dir / "inst.json", json);
  const auto ds = open_coco((dir / "inst.json").string(), dir.string());
  LoaderOptions o = small_options();
  o.image_size = 60;  // no resize: masks must equal the rasterised polygon exactly
  o.workers = 0;
  Loader loader(ds, o);
  const TrainSample s = loader.next();
  REQUIRE(s.masks.size(0) == 1);
  const auto expect = sam::mask::rle_from_polygon({10, 5, 30, 5, 30, 20, 10, 20}, 40, 60);
  std::vector<uint8_t> dense(40 * 60);
  sam::mask::rle_decode(expect, dense.data());
  CHECK(torch::equal(s.masks[0], torch::from_blob(dense.data(), {40, 60}, torch::kUInt8)));
  CHECK(torch::equal(s.image[0] == 255, s.masks[0] == 1));  // red channel = the mask
  CHECK(s.image[2].max().item<int>() == 0);
  fs::remove_all(dir);
}

TEST_CASE("loader: masks under min_mask_area_frac are dropped") {
  const auto dir = sam_test::temp_dir("loader_min_area");
  cv::imwrite((dir / "im.png").string(), cv::Mat(40, 60, CV_8UC3, cv::Scalar(9, 9, 9)));
  // Areas 300 (12.5 % of 2400 px), 40 (1.7 %) and 4 (0.17 %).
  const std::string json =
      R"({"images": [{"id": 1, "width": 60, "height": 40, "file_name": "im.png"}],
    "annotations": [
      {"id": 1, "image_id": 1, "iscrowd": 0, "segmentation": [[10,5, 30,5, 30,20, 10,20]]},
      {"id": 2, "image_id": 1, "iscrowd": 0, "segmentation": [[40,30, 50,30, 50,34, 40,34]]},
      {"id": 3, "image_id": 1, "iscrowd": 0, "segmentation": [[1,1, 3,1, 3,3, 1,3]]}]})";
  write(dir / "inst.json", json);
  const auto ds = open_coco((dir / "inst.json").string(), dir.string());
  auto areas = [&](double min_frac) {
    LoaderOptions o = small_options();
    o.image_size = 60;
    o.workers = 0;
    o.min_mask_area_frac = min_frac;
    Loader loader(ds, o);
    const TrainSample s = loader.next();
    std::vector<int64_t> a;
    for (int64_t i = 0; i < s.masks.size(0); ++i) a.push_back(s.masks[i].sum().item<int64_t>());
    std::sort(a.begin(), a.end());
    return a;
  };
  CHECK(areas(0.0) == std::vector<int64_t>{4, 40, 300});
  CHECK(areas(0.01) == std::vector<int64_t>{40, 300});
  CHECK(areas(0.05) == std::vector<int64_t>{300});
  // Nothing left: the sample is skipped as having no usable mask.
  LoaderOptions o = small_options();
  o.workers = 0;
  o.min_mask_area_frac = 0.5;
  CHECK_THROWS(Loader(ds, o).next());
  o.min_mask_area_frac = 0.95;  // not below max_mask_area_frac
  CHECK_THROWS_WITH(Loader(ds, o), Catch::Contains("min_mask_area_frac"));
  fs::remove_all(dir);
}

TEST_CASE("loader: each kind of bad sample is skipped, counted and logged once, the run goes on") {
  const auto dir = sam_test::temp_dir("loader_bad");
  for (const auto& e : fs::directory_iterator(clean_dir()))
    fs::copy_file(e.path(), dir / e.path().filename());
  // 1: truncated JPEG; 2: not a JPEG; 3: malformed JSON; 4: counts not summing to h*w;
  // 5: odd polygon; 6: missing image; 7: no usable mask (one covers everything, one is empty).
  const std::string jpg = slurp(dir / "sa_1.jpg");
  write(dir / "sa_1.jpg", jpg.substr(0, jpg.size() / 2));
  write(dir / "sa_2.jpg", "\xFF\xD8\xFF garbage that is not a JPEG \xFF\xD9");
  const std::string j3 = slurp(dir / "sa_3.json");
  write(dir / "sa_3.json", j3.substr(0, j3.size() - 10));
  nlohmann::json j4 = nlohmann::json::parse(slurp(dir / "sa_4.json"));
  j4["annotations"][1]["segmentation"]["counts"] = "0T1";  // counts that do not sum to 72*96
  write(dir / "sa_4.json", j4.dump());
  nlohmann::json j5 = nlohmann::json::parse(slurp(dir / "sa_5.json"));
  j5["annotations"][0]["segmentation"] = {{1, 2, 3, 4, 5, 6, 7}};
  write(dir / "sa_5.json", j5.dump());
  fs::remove(dir / "sa_6.jpg");
  nlohmann::json j7 = nlohmann::json::parse(slurp(dir / "sa_7.json"));
  j7["annotations"] = {
      {{"id", 1}, {"segmentation", {{"size", {72, 96}}, {"counts", {0, 72 * 96}}}}},
      {{"id", 2}, {"segmentation", {{"size", {72, 96}}, {"counts", {72 * 96}}}}}};
  write(dir / "sa_7.json", j7.dump());

  const auto ds = open_sa1b(dir.string());
  REQUIRE(ds->size() == 12);
  LoaderOptions o = small_options();
  std::vector<std::string> logged;
  std::mutex mu;
  o.log = [&](const std::string& s) {
    std::lock_guard<std::mutex> lock(mu);
    logged.push_back(s);
  };
  Loader loader(ds, o);
  std::set<std::string> ids;
  for (int i = 0; i < 10; ++i) ids.insert(loader.next().id);  // two epochs of the 5 good samples
  CHECK(ids == std::set<std::string>{"sa_8", "sa_9", "sa_10", "sa_11", "sa_12"});
  const LoaderStats st = loader.stats();
  CHECK(st.returned == 10);
  auto n = [&](Problem p) { return st.skipped[size_t(p)]; };
  // Each bad file was met once or twice (the 10th good sample may come before the last bad ones
  // of the second epoch), and counted under its reason.
  for (Problem p : {Problem::missing_file, Problem::malformed_json, Problem::bad_rle,
                    Problem::bad_polygon, Problem::no_usable_masks}) {
    INFO(problem_name(p));
    CHECK(n(p) >= 1);
    CHECK(n(p) <= 2);
  }
  CHECK(n(Problem::corrupt_image) >= 2);
  CHECK(n(Problem::corrupt_image) <= 4);
  CHECK(n(Problem::other) == 0);
  CHECK(st.to_json()["skipped"].contains("bad_polygon"));
  // Logged once per file, naming it.
  REQUIRE(logged.size() == 7);
  std::string all;
  for (const auto& l : logged) all += l + "\n";
  for (const char* f :
       {"sa_1.jpg", "sa_2.jpg", "sa_3.json", "sa_4.json", "sa_5.json", "sa_6.jpg", "sa_7.json"})
    CHECK_THAT(all, Catch::Contains(f));
  CHECK_THAT(all, Catch::Contains("[bad_polygon]") && Catch::Contains("truncated"));
  // A COCO file holds many images: the message names the image as well as the file.
  CHECK_THAT(all, Catch::Contains("image sa_7: no usable mask"));

  // A dataset with no usable sample at all stops with an error instead of spinning.
  const auto bad = sam_test::temp_dir("loader_allbad");
  for (const char* f : {"sa_3.json", "sa_5.json"}) fs::copy_file(dir / f, bad / f);
  Loader hopeless(open_sa1b(bad.string()), o);
  CHECK_THROWS_WITH(hopeless.next(), Catch::Contains("no usable sample"));
  fs::remove_all(dir);
  fs::remove_all(bad);
}

TEST_CASE("loader: option errors") {
  const auto ds = open_sa1b(clean_dir().string());
  LoaderOptions o = small_options();
  o.rank = 2, o.world_size = 2;
  CHECK_THROWS_WITH(Loader(ds, o), Catch::Contains("rank 2"));
  o = small_options();
  o.world_size = 13;
  CHECK_THROWS_WITH(Loader(ds, o), Catch::Contains("gets no sample"));
  o = small_options();
  o.max_mask_area_frac = 0;
  CHECK_THROWS(Loader(ds, o));
}

TEST_CASE("loader: weighted parts, every epoch the same length with round(f n) visits per part") {
  // Parts [0, 10) x 2.5, [10, 30) x 0.5, [30, 33) x 1: 25 + 10 + 3 = 38 visits an epoch.
  LoaderOptions o;
  o.seed = 9;
  o.mix = {{0, 10, 2.5}, {10, 30, 0.5}, {30, 33, 1.0}};
  CHECK(epoch_length(33, o) == 38);
  std::set<int64_t> half_seen[2];
  for (int64_t epoch = 0; epoch < 2; ++epoch) {
    const auto idx = shard_indices(33, o, epoch);
    REQUIRE(idx.size() == 38);
    std::map<int64_t, int> visits;
    for (int64_t i : idx) ++visits[i];
    int twice = 0, thrice = 0, half = 0;
    for (int64_t i = 0; i < 10; ++i) {
      CHECK((visits[i] == 2 || visits[i] == 3));  // floor(2.5) copies, then 5 of the 10 once more
      twice += visits[i] == 2;
      thrice += visits[i] == 3;
    }
    CHECK(twice == 5);
    CHECK(thrice == 5);
    for (int64_t i = 10; i < 30; ++i) {
      CHECK(visits[i] <= 1);
      half += visits[i];
      if (visits[i]) half_seen[epoch].insert(i);
    }
    CHECK(half == 10);  // round(0.5 x 20), without replacement
    for (int64_t i = 30; i < 33; ++i) CHECK(visits[i] == 1);
    CHECK(shard_indices(33, o, epoch) == idx);  // a function of (seed, epoch)
  }
  CHECK(half_seen[0] != half_seen[1]);  // another half the next epoch

  // Two ranks share an epoch's visits between them.
  o.world_size = 2;
  std::multiset<int64_t> both;
  for (int r = 0; r < 2; ++r) {
    o.rank = r;
    const auto idx = shard_indices(33, o, 0);
    CHECK(idx.size() == 19);
    both.insert(idx.begin(), idx.end());
  }
  o.world_size = 1;
  o.rank = 0;
  const auto one = shard_indices(33, o, 0);
  CHECK(both == std::multiset<int64_t>(one.begin(), one.end()));

  // Parts that leave a gap, or a weight that is not positive, are refused.
  LoaderOptions bad = o;
  bad.mix = {{0, 10, 1.0}, {11, 33, 1.0}};
  CHECK_THROWS_WITH(epoch_length(33, bad), Catch::Contains("cover"));
  bad.mix = {{0, 33, 0.0}};
  CHECK_THROWS_WITH(epoch_length(33, bad), Catch::Contains("positive"));
  bad.mix = {{0, 30, 1.0}};
  CHECK_THROWS_WITH(epoch_length(33, bad), Catch::Contains("30 of 33"));
}

TEST_CASE("loader: a weighted loader resumes bit for bit and repeats samples with fresh draws") {
  const auto ds = open_sa1b(clean_dir().string());  // 12 samples
  LoaderOptions o = small_options();
  o.large_scale_jitter = true;
  o.hflip = true;
  o.mix = {{0, 4, 2.0}, {4, 12, 0.5}};  // 8 + 4 = 12 visits an epoch
  Loader a(ds, o);
  CHECK(a.shard_size() == 12);
  std::map<std::string, std::vector<torch::Tensor>> seen;
  for (int i = 0; i < 5; ++i) {
    const auto s = a.next();
    seen[s.id].push_back(s.image);
  }
  const auto saved = a.state();
  std::vector<TrainSample> expect;
  for (int i = 0; i < 10; ++i) expect.push_back(a.next());  // into epoch 1
  Loader b(ds, o, saved);
  for (int i = 0; i < 10; ++i) CHECK(same(b.next(), expect[size_t(i)]));
  // The samples of the first part come twice an epoch, each visit with its own jitter.
  for (const auto& s : expect) seen[s.id].push_back(s.image);
  bool repeated_differs = false;
  for (const auto& [id, images] : seen)
    for (size_t k = 1; k < images.size(); ++k) repeated_differs |= !torch::equal(images[0], images[k]);
  CHECK(repeated_differs);
}

TEST_CASE("loader: images:DIR lists a plain image folder, and images_only reads images without masks") {
  // The synthetic folder's JPEGs alone, plus a file that is not an image and a subfolder.
  const fs::path d = sam_test::temp_dir("loader_images");
  int n = 0;
  for (const auto& e : fs::directory_iterator(clean_dir()))
    if (e.path().extension() == ".jpg") fs::copy_file(e.path(), d / e.path().filename()), ++n;
  REQUIRE(n == 12);
  write(d / "notes.txt", "not an image");
  fs::create_directories(d / "more");
  fs::copy_file(d / "sa_1.jpg", d / "more" / "extra.jpg");
  const auto flat = make_dataset("images:" + d.string());
  CHECK(flat->size() == 12);
  CHECK(flat->sample_id(0) == "sa_1");
  CHECK(flat->sample_id(11) == "sa_12");  // natural order
  CHECK(flat->get(0).annotations.empty());
  CHECK(make_dataset("images:" + d.string() + "?recursive=1")->size() == 13);
  CHECK_THROWS_WITH(make_dataset("images:" + (d / "none").string()), Catch::Contains("none"));
  CHECK_THROWS_WITH(make_dataset("images:" + d.string() + "?x=1"), Catch::Contains("x"));

  LoaderOptions o = small_options();
  o.images_only = true;
  o.random_resized_crop = true;
  o.hflip = true;
  Loader a(flat, o);
  std::vector<TrainSample> first;
  for (int i = 0; i < 12; ++i) {
    auto s = a.next();
    CHECK_FALSE(s.masks.defined());
    REQUIRE(s.image.sizes() == torch::IntArrayRef({3, 64, 64}));  // the crop fills the square
    first.push_back(s);
  }
  // Seeded: a second loader gives the same crops.
  Loader b(flat, o);
  for (int i = 0; i < 12; ++i) {
    auto s = b.next();
    CHECK(s.id == first[i].id);
    CHECK(torch::equal(s.image, first[i].image));
  }
  // Without the crop: the longest side resized, as for SAM.
  o.random_resized_crop = false;
  Loader c(flat, o);
  CHECK(c.next().image.sizes() == torch::IntArrayRef({3, 48, 64}));
  // The crop needs images_only.
  o.images_only = false;
  o.random_resized_crop = true;
  CHECK_THROWS_WITH(Loader(flat, o), Catch::Contains("images_only"));
}
