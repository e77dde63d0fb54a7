// Datasets (data/dataset.h, data/annotation.h, data/tar.h): the shared COCO and interactive
// benchmark folders, every COCO segmentation form, SA-1B folders and tar shards (made with the
// system tar, read in place), DAVIS-style and users' folders, spec strings, and the writers.
#include <catch2/catch.hpp>

#include <opencv2/imgcodecs.hpp>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "data/convert.h"
#include "data/dataset.h"
#include "data/synth.h"
#include "data/tar.h"
#include "test_util.h"

using namespace sam::data;
using sam::mask::Rle;
namespace fs = std::filesystem;
using Catch::Matchers::Contains;

namespace {

// The Problem of the DataError thrown by f; Problem::other with a note when none is thrown.
template <class F>
Problem problem_of(F&& f, std::string* msg = nullptr) {
  try {
    f();
  } catch (const DataError& e) {
    if (msg) *msg = e.what();
    return e.problem();
  }
  if (msg) *msg = "<no DataError>";
  return Problem::other;
}

void write(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << text;
}

std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

uint64_t count_set(const cv::Mat& m) {
  return uint64_t(cv::countNonZero(m));
}

fs::path coco_tiny() { return sam_test::shared_data() / "COCO_Tiny"; }

}  // namespace

TEST_CASE("coco: COCO_Tiny val and train load with every instance, crowd flags and sane masks") {
  struct Split {
    const char* name;
    size_t images, instances, crowd;
  };
  for (const Split sp : {Split{"val2017", 80, 815, 11}, Split{"train2017", 80, 705, 6}}) {
    const auto json = coco_tiny() / "annotations" / (std::string("instances_") + sp.name + ".json");
    auto ds = make_dataset("coco:" + json.string() + ":" + (coco_tiny() / sp.name).string());
    REQUIRE(ds->size() == sp.images);
    CHECK(ds->categories().size() == 80);
    CHECK(ds->warnings().empty());
    size_t instances = 0, crowd = 0, box_outside = 0, box_off = 0, polygons = 0;
    double pixels = 0, stored_area = 0;
    for (size_t i = 0; i < ds->size(); ++i) {
      const Sample s = ds->get(i);
      CHECK(s.image.path == (coco_tiny() / sp.name / (s.id + ".jpg")).string());
      for (const Annotation& a : s.annotations) {
        ++instances;
        const Rle r = a.rle();
        REQUIRE(r.h == s.height);
        REQUIRE(r.w == s.width);
        const double area = double(sam::mask::rle_area(r));
        if (a.iscrowd) {
          ++crowd;
          // Crowd regions are uncompressed RLEs (COCO's "area" for them is not their pixel count:
          // the first of val2017 stores 34764 for 32885 pixels, counted independently).
          CHECK(a.segmentation.kind == Segmentation::Kind::rle);
          if (sp.crowd == 11 && crowd == 1) CHECK(area == 32885);
          continue;
        }
        // Polygons: COCO stores the polygon's area and extent. The raster's box lies inside the
        // extent (a pixel is set when its centre is inside), within a pixel for most (thin tips
        // can be shorter than a pixel and leave no pixel).
        ++polygons;
        pixels += area;
        stored_area += a.area;
        const auto b = sam::mask::rle_bbox_coco(r);
        bool off = false;
        for (int k = 0; k < 2; ++k) {
          const double lo = a.bbox[size_t(k)], hi = lo + a.bbox[size_t(k) + 2];
          if (b[size_t(k)] < lo - 1.0 || b[size_t(k)] + b[size_t(k) + 2] > hi + 1.0) ++box_outside;
          off |= std::fabs(b[size_t(k)] - lo) > 1.0 ||
                 std::fabs(b[size_t(k)] + b[size_t(k) + 2] - hi) > 1.0;
        }
        box_off += off;
      }
    }
    CHECK(instances == sp.instances);
    CHECK(crowd == sp.crowd);
    CHECK(box_outside == 0);
    CHECK(box_off < polygons / 10);
    CHECK(std::fabs(pixels - stored_area) < 0.02 * stored_area);
    // The default image folder: annotations/instances_<split>.json -> <split>/.
    CHECK(make_dataset("coco:" + json.string())->get(0).image.path == ds->get(0).image.path);
    // Images decode at the declared size.
    for (size_t i = 0; i < ds->size(); i += 9)
      CHECK(ds->get(i).load_image().rows == ds->get(i).height);
  }
}

TEST_CASE("coco: every segmentation form follows pycocotools' annToRLE") {
  const auto dir = sam_test::temp_dir("coco_forms");
  // A 10 x 12 image (h x w). Uncompressed counts: 0-run 15, 1-run 5, rest 0.
  Rle c;
  c.h = 10, c.w = 12, c.counts = {15, 5, 100};
  const std::string compressed = sam::mask::rle_to_string(c);
  const std::string json = R"({
    "images": [{"id": 7, "width": 12, "height": 10, "file_name": "a.png"},
               {"id": 8, "width": 12, "height": 10, "file_name": "b.png"}],
    "categories": [{"id": 3, "name": "thing", "supercategory": "x"}],
    "annotations": [
      {"id": 1, "image_id": 7, "category_id": 3, "iscrowd": 0, "segmentation": [[1,1, 6,1, 6,5, 1,5]]},
      {"id": 2, "image_id": 7, "iscrowd": 0, "segmentation": [[2,2,3,3], [7,1,2,2]]},
      {"id": 3, "image_id": 7, "iscrowd": 0, "segmentation": [[0,0, 4,0, 0,4], [8,8, 11,8, 11,9.5]]},
      {"id": 4, "image_id": 7, "iscrowd": 0, "segmentation": [[1,1, 6,1, 6]]},
      {"id": 5, "image_id": 7, "iscrowd": 1, "segmentation": {"size": [10, 12], "counts": [15, 5, 100]}},
      {"id": 6, "image_id": 7, "iscrowd": 0, "segmentation": {"size": [10, 12], "counts": ")" +
                           compressed + R"("}},
      {"id": 7, "image_id": 7, "iscrowd": 0, "segmentation": {"size": [11, 12], "counts": [132]}},
      {"id": 8, "image_id": 7, "iscrowd": 0, "segmentation": "oops"},
      {"id": 9, "image_id": 7, "iscrowd": 0, "segmentation": [1,1, 6,1, 6,5]},
      {"id": 10, "image_id": 7, "iscrowd": 0, "segmentation": []},
      {"id": 11, "image_id": 7, "iscrowd": 0, "segmentation": {"size": [10, 12], "counts": [15, 5, 99]}},
      {"id": 12, "image_id": 99, "segmentation": [[1,1,2,2,3,3]]}
    ]})";
  write(dir / "inst.json", json);
  fs::create_directories(dir / "img");
  auto ds = make_dataset("coco:" + (dir / "inst.json").string() + ":" + (dir / "img").string());
  REQUIRE(ds->size() == 2);
  CHECK(ds->categories().at(0).name == "thing");
  REQUIRE(ds->warnings().size() == 1);
  CHECK_THAT(ds->warnings()[0], Contains("unknown image_id 99"));
  const Sample s = ds->get(0);
  CHECK(ds->get(1).annotations.empty());
  REQUIRE(s.annotations.size() == 11);
  auto poly = [](std::vector<double> p) { return sam::mask::rle_from_polygon(p, 10, 12); };
  const auto& A = s.annotations;
  CHECK(A[0].category_id == 3);
  CHECK(A[0].rle().counts == poly({1, 1, 6, 1, 6, 5, 1, 5}).counts);
  // First entry with 4 numbers: every entry is a box [x, y, w, h] (frPyObjects' rule).
  CHECK(A[1].segmentation.kind == Segmentation::Kind::boxes);
  CHECK(A[1].rle().counts == sam::mask::rle_merge({sam::mask::rle_from_bbox(2, 2, 3, 3, 10, 12),
                                                   sam::mask::rle_from_bbox(7, 1, 2, 2, 10, 12)},
                                                  false)
                                 .counts);
  CHECK(
      A[2].rle().counts ==
      sam::mask::rle_merge({poly({0, 0, 4, 0, 0, 4}), poly({8, 8, 11, 8, 11, 9.5})}, false).counts);
  std::string msg;
  CHECK(problem_of([&] { A[3].rle(); }, &msg) == Problem::bad_polygon);
  CHECK_THAT(msg, Contains("odd number of coordinates") && Contains("inst.json"));
  CHECK(A[4].iscrowd);
  CHECK(A[4].rle().counts == std::vector<uint32_t>{15, 5, 100});
  CHECK(A[4].area == 5);  // computed from the mask when not stored
  CHECK(compressed == "?5T3");
  CHECK(A[5].rle().counts == c.counts);
  CHECK(problem_of([&] { A[6].rle(); }, &msg) == Problem::bad_rle);
  CHECK_THAT(msg, Contains("11x12") && Contains("10x12"));
  CHECK(problem_of([&] { A[7].rle(); }) == Problem::malformed_json);
  CHECK(A[8].rle().counts == poly({1, 1, 6, 1, 6, 5}).counts);  // flat list: one polygon
  CHECK(sam::mask::rle_area(A[9].rle()) == 0);                  // no polygon: empty mask
  CHECK(problem_of([&] { A[10].rle(); }) == Problem::bad_rle);  // counts sum to 119, not 120
  CHECK(problem_of([&] { s.load_image(); }) == Problem::missing_file);

  // Whole-file problems name the file.
  write(dir / "bad.json",
        R"({"images": [{"id": 1, "width": 5, "file_name": "x.jpg"}], "annotations": []})");
  CHECK_THROWS_WITH(open_coco((dir / "bad.json").string(), dir.string()),
                    Contains("bad.json") && Contains("images[0]") && Contains("height"));
  write(dir / "trunc.json", json.substr(0, 200));
  CHECK(problem_of([&] { open_coco((dir / "trunc.json").string(), dir.string()); }) ==
        Problem::malformed_json);
  fs::remove_all(dir);
}

TEST_CASE("sa1b: folder pairs, natural order, file_name fallback, missing and orphan images") {
  const auto dir = sam_test::temp_dir("sa1b_folder");
  SynthOptions o;
  o.width = 64, o.height = 48, o.min_objects = 2, o.max_objects = 4;
  synth_write(dir.string(), o, 3, 9, false, 1);  // sa_9, sa_10, sa_11
  auto ds = open_sa1b(dir.string());
  REQUIRE(ds->size() == 3);
  CHECK(ds->sample_id(0) == "sa_9");
  CHECK(ds->sample_id(1) == "sa_10");
  CHECK(ds->get(1).image_id == 10);
  CHECK(ds->get(1).annotations.at(0).segmentation.kind ==
        Segmentation::Kind::rle_string);  // kept compressed
  // An image under another name, found through the JSON's file_name.
  fs::rename(dir / "sa_9.jpg", dir / "photo9.jpg");
  nlohmann::json j = nlohmann::json::parse(slurp(dir / "sa_9.json"));
  j["image"]["file_name"] = "photo9.jpg";
  write(dir / "sa_9.json", j.dump());
  fs::remove(dir / "sa_10.jpg");
  write(dir / "sa_12.jpg", "not a json's image");
  ds = open_sa1b(dir.string());
  REQUIRE(ds->size() == 3);
  CHECK(ds->get(0).image.path == (dir / "photo9.jpg").string());
  CHECK(ds->get(0).load_image().cols == 64);
  std::string msg;
  CHECK(problem_of([&] { ds->get(1).load_image(); }, &msg) == Problem::missing_file);
  CHECK_THAT(msg, Contains("sa_10.jpg"));
  bool orphan = false;  // photo9.jpg and sa_12.jpg have no JSON of their own
  for (const auto& w : ds->warnings())
    orphan |= w.find("2 image(s) without a JSON") != std::string::npos;
  CHECK(orphan);
  // A declared size that is not the image's.
  j = nlohmann::json::parse(slurp(dir / "sa_11.json"));
  j["image"]["width"] = 65;
  for (auto& a : j["annotations"]) a["segmentation"]["size"] = {48, 65};
  write(dir / "sa_11.json", j.dump());
  CHECK(problem_of([&] { ds->get(2).load_image(); }) == Problem::size_mismatch);
  CHECK(problem_of([&] { ds->get(2).annotations.at(0).rle(); }) ==
        Problem::bad_rle);  // counts sum to 48*64
  fs::remove_all(dir);
}

TEST_CASE("sa1b: tar shards made by the system tar read in place equal the folder") {
  const auto dir = sam_test::temp_dir("sa1b_tar");
  SynthOptions o;
  o.width = 80, o.height = 60, o.min_objects = 3, o.max_objects = 6;
  // A long folder name: ustar must split it into prefix + name, pax and GNU use their own headers.
  const std::string deep =
      "a_rather_long_folder_name_for_the_ustar_prefix_field_0123456789/"
      "and_another_level_abcdefghij";
  const fs::path src = dir / "src" / deep;
  synth_write(src.string(), o, 5, 1, false, 1);
  const auto folder = open_sa1b(src.string());
  REQUIRE(folder->size() == 5);
  for (const std::string fmt : {"ustar", "pax", "gnu"}) {
    const fs::path tar = dir / ("shard_" + fmt + ".tar");
    std::string out;
    REQUIRE(sam_test::run_command("tar --format=" + fmt + " -C " + (dir / "src").string() +
                                      " -cf " + tar.string() + " " + deep,
                                  &out) == 0);
    const auto ds = make_dataset("sa1b:" + tar.string());
    INFO(fmt << ": " << ds->describe());
    REQUIRE(ds->size() == folder->size());
    CHECK(ds->warnings().empty());
    for (size_t i = 0; i < ds->size(); ++i) {
      const Sample a = folder->get(i), b = ds->get(i);
      CHECK(a.id == b.id);
      CHECK(b.image.member == deep + "/" + a.id + ".jpg");
      CHECK(b.image.read() == a.image.read());
      REQUIRE(a.annotations.size() == b.annotations.size());
      for (size_t k = 0; k < a.annotations.size(); ++k)
        CHECK(a.annotations[k].rle().counts == b.annotations[k].rle().counts);
      CHECK(cv::norm(a.load_image(), b.load_image(), cv::NORM_INF) == 0);
    }
  }
  // A folder of shards: both shards then nothing else (no loose pairs).
  fs::create_directories(dir / "shards");
  fs::copy_file(dir / "shard_pax.tar", dir / "shards" / "sa_000001.tar");
  fs::copy_file(dir / "shard_gnu.tar", dir / "shards" / "sa_000000.tar");
  CHECK(make_dataset("sa1b:" + (dir / "shards").string())->size() == 10);
  CHECK_THAT(make_dataset("sa1b:" + (dir / "shards").string())->describe(),
             Contains("2 tar shard"));

  // A truncated shard keeps what is complete and says so.
  const std::string bytes = slurp(dir / "shard_pax.tar");
  write(dir / "cut.tar", bytes.substr(0, bytes.size() / 2));
  const auto cut = open_sa1b((dir / "cut.tar").string());
  CHECK(cut->size() < 5);
  REQUIRE(!cut->warnings().empty());
  CHECK_THAT(cut->warnings()[0], Contains("cut.tar") && Contains("truncated"));
  // Compressed archives are refused with a clear message.
  REQUIRE(sam_test::run_command("gzip -k " + (dir / "shard_gnu.tar").string()) == 0);
  CHECK_THROWS_WITH(make_dataset("sa1b:" + (dir / "shard_gnu.tar.gz").string()),
                    Contains("compressed"));
  fs::remove_all(dir);
}

TEST_CASE("tar: the writer's archives read back here and with the system tar") {
  const auto dir = sam_test::temp_dir("tar_writer");
  // Members of sizes 0, 1, 511, 512, 513 and 70000 bytes, one name of 150 bytes (pax "path").
  std::vector<std::pair<std::string, std::string>> members;
  const std::string long_name = std::string(120, 'n') + "/" + std::string(29, 'f');
  for (size_t size : {0, 1, 511, 512, 513, 70000}) {
    std::string body(size, '\0');
    for (size_t i = 0; i < size; ++i) body[i] = char((i * 131u + size) & 0xff);
    members.push_back({"m_" + std::to_string(size) + ".bin", body});
  }
  members.push_back({long_name, "a member whose name needs a pax header"});
  const fs::path tar = dir / "out.tar";
  {
    TarWriter w(tar.string(), 1700000000);
    for (const auto& [n, b] : members) w.add(n, b.data(), b.size());
    CHECK_FALSE(fs::exists(tar));  // only "<path>.part" until finished
    CHECK(fs::exists(dir / "out.tar.part"));
    w.finish();
    CHECK(w.members() == members.size());
    CHECK(w.bytes_written() == fs::file_size(tar));
  }
  CHECK(fs::file_size(tar) % 512 == 0);
  CHECK_FALSE(fs::exists(dir / "out.tar.part"));
  const TarArchive a(tar.string());
  CHECK(a.index().problems.empty());
  REQUIRE(a.index().members.size() == members.size());
  for (size_t i = 0; i < members.size(); ++i) {
    CHECK(a.index().members[i].name == members[i].first);
    const auto got = a.read(a.index().members[i]);
    CHECK(std::string(got.begin(), got.end()) == members[i].second);
  }
  // GNU tar lists the same names and extracts the same bytes, without warnings.
  std::string out;
  REQUIRE(sam_test::run_command("tar -tf " + tar.string(), &out) == 0);
  std::string expected;
  for (const auto& m : members) expected += m.first + "\n";
  CHECK(out == expected);
  fs::create_directories(dir / "x");
  REQUIRE(sam_test::run_command("tar -C " + (dir / "x").string() + " -xf " + tar.string(), &out) ==
          0);
  CHECK(out.empty());
  for (const auto& [n, b] : members) CHECK(slurp(dir / "x" / n) == b);
  REQUIRE(sam_test::run_command("TZ=UTC tar --full-time -tvf " + tar.string() + " m_1.bin", &out) == 0);
  CHECK_THAT(out, Contains("-rw-r--r--") && Contains("2023-11-14"));
  // Abandoned writers leave nothing behind; bad names are refused.
  {
    TarWriter w((dir / "gone.tar").string());
    w.add("a", "x", 1);
    CHECK_THROWS_AS(w.add("", "x", 1), std::invalid_argument);
    CHECK_THROWS_AS(w.add(std::string("a\0b", 3), "x", 1), std::invalid_argument);
  }
  CHECK_FALSE(fs::exists(dir / "gone.tar"));
  CHECK_FALSE(fs::exists(dir / "gone.tar.part"));
  CHECK_THROWS_WITH(TarWriter((dir / "no" / "such" / "dir.tar").string()),
                    Contains("dir.tar") && Contains("cannot create"));
  fs::remove_all(dir);
}

TEST_CASE("tar: header walking survives garbage and reports it") {
  std::string junk(4096, '\0');
  for (size_t i = 0; i < junk.size(); ++i) junk[i] = char((i * 7919u) >> 3);
  auto reader = [&](const std::string& data) {
    return [&data](uint64_t off, void* buf, size_t n) -> size_t {
      if (off >= data.size()) return 0;
      const size_t k = std::min<size_t>(n, data.size() - off);
      std::memcpy(buf, data.data() + off, k);
      return k;
    };
  };
  TarIndex idx = tar_index(reader(junk), junk.size());
  CHECK(idx.members.empty());
  REQUIRE(idx.problems.size() == 1);
  CHECK_THAT(idx.problems[0], Contains("checksum"));
  const std::string empty(1024, '\0');
  idx = tar_index(reader(empty), empty.size());
  CHECK(idx.members.empty());
  CHECK(idx.problems.empty());
}

TEST_CASE("grabcut: 50 samples, 128 read as an ignore band") {
  auto ds = make_dataset("grabcut:" + (sam_test::shared_data() / "GrabCut").string());
  REQUIRE(ds->size() == 50);
  CHECK(ds->warnings().empty());
  size_t with_band = 0;
  for (size_t i = 0; i < ds->size(); ++i) {
    const Sample s = ds->get(i);
    REQUIRE(s.annotations.size() == 1);
    const cv::Mat m = s.mask(0), ig = s.ignore_mask(0);
    CHECK(count_set(m) > 100);
    CHECK(count_set(m & ig) == 0);
    with_band += count_set(ig) > 0;
    CHECK(fs::path(s.image.path).stem().string() == s.id);
    CHECK(s.load_image().size() == m.size());
    // The mask file itself: 255 -> object, 128 -> ignore, 0 -> background.
    const cv::Mat raw = cv::imread(s.annotation_file, cv::IMREAD_GRAYSCALE);
    CHECK(count_set(raw == 255) == count_set(m));
    CHECK(count_set(raw == 128) == count_set(ig));
  }
  CHECK(
      with_band ==
      42);  // 8 masks (106024, 153093, 181079, 189080, 208001, 376043, llama, teddy) are 0/255 only
}

TEST_CASE("berkeley: 96 benchmark samples, 100 with the suffixed extra objects") {
  const auto root = sam_test::shared_data() / "Berkeley";
  auto ds = make_dataset("berkeley:" + root.string());
  REQUIRE(ds->size() == 96);
  CHECK_THAT(ds->describe(), Contains("4 suffixed masks not used"));
  std::set<std::string> ids;
  for (size_t i = 0; i < ds->size(); ++i) ids.insert(ds->sample_id(i));
  CHECK(ids.count("189011"));
  CHECK(!ids.count("189011a"));
  auto all = make_dataset("berkeley:" + root.string() + "?all=1");
  REQUIRE(all->size() == 100);
  size_t extra = 0;
  for (size_t i = 0; i < all->size(); ++i) {
    const Sample s = all->get(i);
    CHECK(count_set(s.mask(0)) > 50);
    CHECK_FALSE(s.annotations[0].ignore.has_value());
    if (s.id.size() == 7 && (s.id.back() == 'a' || s.id.back() == 'b')) {
      CHECK(s.image.path == (root / "images" / (s.id.substr(0, 6) + ".jpg")).string());
      ++extra;
    }
  }
  CHECK(extra == 4);
  // The a/b masks are other objects than the benchmark's.
  size_t main_index = 0;
  while (ds->sample_id(main_index) != "189011") ++main_index;
  const Sample main = ds->get(main_index);
  for (size_t i = 0; i < all->size(); ++i)
    if (all->sample_id(i) == "189011a")
      CHECK(cv::norm(all->get(i).mask(0), main.mask(0), cv::NORM_L1) > 100);
}

TEST_CASE("davis and folder: the benchmark's one object per image, id maps, suffix pairing, options") {
  const auto dir = sam_test::temp_dir("folders");
  // DAVIS-style: img/ + gt/ with three colour-coded objects and a void colour.
  cv::Mat img(20, 30, CV_8UC3, cv::Scalar(10, 20, 30)), gt(20, 30, CV_8UC3, cv::Scalar(0, 0, 0));
  gt(cv::Rect(0, 0, 10, 10)).setTo(cv::Scalar(0, 0, 128));      // object (128, 0, 0) in RGB
  gt(cv::Rect(10, 0, 5, 20)).setTo(cv::Scalar(0, 128, 0));      // (0, 128, 0)
  gt(cv::Rect(20, 5, 3, 3)).setTo(cv::Scalar(0, 128, 128));     // (128, 128, 0)
  gt(cv::Rect(25, 15, 2, 2)).setTo(cv::Scalar(200, 200, 200));  // void
  fs::create_directories(dir / "davis" / "img");
  fs::create_directories(dir / "davis" / "gt");
  cv::imwrite((dir / "davis" / "img" / "00000.jpg").string(), img);
  cv::imwrite((dir / "davis" / "gt" / "00000.png").string(), gt);
  // The benchmark's protocol (RITM's DavisDataset): one sample, every non-black pixel (the
  // largest channel > 0) is the object: 100 + 100 + 9, and the void pixels when no ignore is set.
  auto ds = make_dataset("davis:" + (dir / "davis").string());
  REQUIRE(ds->size() == 1);
  CHECK(ds->get(0).id == "00000");
  CHECK(count_set(ds->get(0).mask(0)) == 100 + 100 + 9 + 4);
  ds = make_dataset("davis:" + (dir / "davis").string() + "?ignore=200");
  REQUIRE(ds->size() == 1);
  CHECK(count_set(ds->get(0).mask(0)) == 209);
  CHECK(count_set(ds->get(0).ignore_mask(0)) == 4);
  // COCO-MVal: the same layout and protocol.
  ds = make_dataset("coco-mval:" + (dir / "davis").string());
  REQUIRE(ds->size() == 1);
  CHECK(count_set(ds->get(0).mask(0)) == 213);
  // objects=1: one sample per object id.
  ds = make_dataset("davis:" + (dir / "davis").string() + "?ignore=200&objects=1");
  REQUIRE(ds->size() == 3);
  // Objects in colour order (RGB packed): (0,128,0) 5x20, (128,0,0) 10x10, (128,128,0) 3x3.
  const uint64_t sorted_want[3] = {100, 100, 9};
  for (size_t i = 0; i < 3; ++i) {
    const Sample s = ds->get(i);
    CHECK(s.id == "00000#" + std::to_string(i + 1));
    CHECK(count_set(s.mask(0)) == sorted_want[i]);
    CHECK(count_set(s.ignore_mask(0)) == 4);
  }
  // folder: suffix pairing rules, threshold and ignore options.
  const fs::path f = dir / "mine";
  fs::create_directories(f / "images");
  fs::create_directories(f / "masks");
  for (const char* name : {"cat", "7", "17"})
    cv::imwrite((f / "images" / (std::string(name) + ".png")).string(), img);
  cv::Mat m(20, 30, CV_8UC1, cv::Scalar(0));
  m(cv::Rect(2, 2, 4, 4)).setTo(200);
  m(cv::Rect(10, 10, 2, 2)).setTo(100);
  for (const char* name : {"cat", "cat_1", "cat-dog", "catalog", "7a", "17", "17_b", "9"})
    cv::imwrite((f / "masks" / (std::string(name) + ".png")).string(), m);
  ds = make_dataset("folder:" + f.string());
  std::map<std::string, std::string> pairs;
  for (size_t i = 0; i < ds->size(); ++i)
    pairs[ds->sample_id(i)] = fs::path(ds->get(i).image.path).stem().string();
  CHECK(pairs == std::map<std::string, std::string>{{"cat", "cat"},
                                                    {"cat_1", "cat"},
                                                    {"cat-dog", "cat"},
                                                    {"7a", "7"},
                                                    {"17", "17"},
                                                    {"17_b", "17"}});
  size_t unmatched = 0;  // catalog (letter after a letter) and 9 (no image)
  for (const auto& w : ds->warnings()) unmatched += w.find("has no image") != std::string::npos;
  CHECK(unmatched == 2);
  CHECK(count_set(ds->get(0).mask(0)) == 16);  // > 127 only
  ds = make_dataset("folder:" + f.string() + "?threshold=50&ignore=100");
  CHECK(count_set(ds->get(0).mask(0)) == 16);
  CHECK(count_set(ds->get(0).ignore_mask(0)) == 4);
  ds = make_dataset("folder:" + f.string() + "?labels=1");
  CHECK(ds->size() == 12);  // two grey levels in each of the 6 masks
  fs::remove_all(dir);
}

TEST_CASE("make_dataset: spec errors name the kind, option or path") {
  const std::string gc = (sam_test::shared_data() / "GrabCut").string();
  CHECK_THROWS_WITH(make_dataset("nosuch:/x"),
                    Contains("unknown kind 'nosuch'") && Contains("grabcut"));
  CHECK_THROWS_WITH(make_dataset("/just/a/path"), Contains("KIND:PATH"));
  CHECK_THROWS_WITH(make_dataset("grabcut:" + gc + "?bogus=1"), Contains("unknown option 'bogus'"));
  CHECK_THROWS_WITH(make_dataset("berkeley:/no/such/dir"), Contains("/no/such/dir"));
  CHECK_THROWS_WITH(make_dataset("sa1b:/no/such/dir"), Contains("/no/such/dir"));
  CHECK_THROWS_WITH(make_dataset("coco:/no/such.json:/tmp"), Contains("/no/such.json"));
  CHECK_THROWS_WITH(make_dataset("folder:" + gc + "?threshold=abc"), Contains("threshold=abc"));
}

TEST_CASE("writers: SA-1B and COCO JSON round trip through the readers") {
  const Rle r = sam::mask::rle_from_polygon({2, 1, 9, 1, 9, 7, 2, 7}, 12, 16);
  Annotation a;
  a.id = 42;
  a.segmentation.kind = Segmentation::Kind::rle;
  a.segmentation.h = 12, a.segmentation.w = 16;
  a.segmentation.rle = r;
  a.bbox = {2, 1, 6, 5};
  a.area = double(sam::mask::rle_area(r));
  a.predicted_iou = 0.93;
  a.stability_score = 0.97;
  a.crop_box = std::array<double, 4>{0, 0, 16, 12};
  a.point_coords = {{5, 4}};
  ImageInfo im{5, 16, 12, "sa_5.jpg"};
  const auto text = sa1b_json(im, {a}).dump();
  const Sa1bRecord back = parse_sa1b_json(text, "mem.json");
  CHECK(back.image.id == 5);
  CHECK(back.image.file_name == "sa_5.jpg");
  REQUIRE(back.annotations.size() == 1);
  const Annotation& b = back.annotations[0];
  CHECK(b.id == 42);
  CHECK(b.segmentation.kind == Segmentation::Kind::rle_string);
  CHECK(b.rle().counts == r.counts);
  CHECK(b.bbox == a.bbox);
  CHECK(b.area == a.area);
  CHECK(*b.predicted_iou == 0.93);
  CHECK((b.point_coords == a.point_coords));
  CHECK(nlohmann::json::parse(text)["annotations"][0]["area"].is_number_integer());

  // COCO: area = pixels, bbox with COCO's +1 widths, category 1 "object" when none is given, ids
  // renumbered when they collide.
  Annotation c = a;
  c.iscrowd = true;
  const auto coco = coco_instances_json({im}, {{a, c}}, {});
  CHECK(coco["categories"][0]["name"] == "object");
  CHECK(coco["annotations"][0]["id"] == 1);
  CHECK(coco["annotations"][1]["id"] == 2);
  CHECK(coco["annotations"][0]["category_id"] == 1);
  CHECK(coco["annotations"][1]["iscrowd"] == 1);
  CHECK(coco["annotations"][0]["bbox"] == nlohmann::json({2, 1, 7, 6}));
  const CocoSet set = parse_coco_instances(coco.dump(), "mem.json");
  REQUIRE(set.annotations.at(0).size() == 2);
  CHECK(set.annotations[0][0].rle().counts == r.counts);
  CHECK(set.annotations[0][0].area == double(sam::mask::rle_area(r)));
  CHECK(set.annotations[0][1].iscrowd);
}

TEST_CASE("export_coco: an interactive benchmark becomes a COCO file with the same masks") {
  const auto dir = sam_test::temp_dir("export");
  const auto root = sam_test::shared_data() / "GrabCut";
  auto ds = make_dataset("grabcut:" + root.string());
  CHECK(export_coco(*ds, (dir / "gc.json").string(), (root / "data_GT").string()).empty());
  auto back = open_coco((dir / "gc.json").string(), (root / "data_GT").string());
  REQUIRE(back->size() == 50);
  for (size_t i = 0; i < back->size(); i += 7) {
    const Sample a = ds->get(i), b = back->get(i);
    CHECK(b.image.path == a.image.path);
    CHECK(b.annotations.at(0).rle().counts == a.annotations.at(0).rle().counts);
    CHECK(b.annotations[0].area == a.annotations[0].area);
  }
  fs::remove_all(dir);
}

TEST_CASE("natural_less orders numbered names by number") {
  std::vector<std::string> v = {"sa_10", "sa_2", "sa_1", "sa_02", "b", "a10b", "a9b"};
  std::sort(v.begin(), v.end(), natural_less);
  CHECK(v == std::vector<std::string>{"a9b", "a10b", "b", "sa_1", "sa_2", "sa_02", "sa_10"});
}

namespace {
// n samples with ids "<name>/<i>" and image_id i: enough to see which part answered.
class CountingDataset : public Dataset {
 public:
  CountingDataset(std::string name, size_t n, std::vector<std::string> warnings = {})
      : name_(std::move(name)), n_(n), warnings_(std::move(warnings)) {}
  size_t size() const override { return n_; }
  std::string sample_id(size_t i) const override { return name_ + "/" + std::to_string(i); }
  Sample get(size_t i) const override {
    Sample s;
    s.id = sample_id(i);
    s.image_id = static_cast<int64_t>(i);
    return s;
  }
  std::string describe() const override { return name_; }
  std::vector<std::string> warnings() const override { return warnings_; }

 private:
  std::string name_;
  size_t n_;
  std::vector<std::string> warnings_;
};
}  // namespace

TEST_CASE("ConcatDataset: indices map to the part that holds them, empty parts skipped") {
  ConcatDataset all({std::make_shared<CountingDataset>("a", 3, std::vector<std::string>{"a: one bad"}),
                     std::make_shared<CountingDataset>("empty", 0),
                     std::make_shared<CountingDataset>("b", 1),
                     std::make_shared<CountingDataset>("c", 2, std::vector<std::string>{"c: x", "c: y"})});
  REQUIRE(all.size() == 6);
  const std::vector<std::string> ids{"a/0", "a/1", "a/2", "b/0", "c/0", "c/1"};
  for (size_t i = 0; i < ids.size(); ++i) {
    INFO("sample " << i);
    CHECK(all.sample_id(i) == ids[i]);
    CHECK(all.get(i).id == ids[i]);
  }
  CHECK(all.locate(3) == std::pair<size_t, size_t>{2, 0});  // part 1 is empty
  CHECK(all.locate(5) == std::pair<size_t, size_t>{3, 1});
  CHECK(all.describe() == "a + empty + b + c");
  CHECK(all.warnings() == std::vector<std::string>{"a: one bad", "c: x", "c: y"});
  CHECK_THROWS_AS(all.get(6), std::out_of_range);
  CHECK_THROWS_WITH(all.sample_id(99), Contains("99 >= 6"));
  CHECK(ConcatDataset({}).size() == 0);
  CHECK_THROWS_AS(ConcatDataset({nullptr}), std::invalid_argument);
  CHECK_THROWS_AS(make_datasets({}), std::invalid_argument);
}
