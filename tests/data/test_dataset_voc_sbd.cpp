// The PASCAL VOC and SBD instance benchmarks (data/dataset.h pascalvoc:, sbd:) and the label maps
// under them (data/label_map.h), on constructed datasets: VOC's palette PNGs written byte by byte
// by a small Python PNG writer (zlib + struct, no imaging library between the ids and the file),
// SBD's .mat files by scipy.io.savemat. Sample lists, object masks and ignore masks are checked
// against the id maps they were made from.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <map>

#include <nlohmann/json.hpp>

#include "data/codec.h"
#include "data/dataset.h"
#include "data/image.h"
#include "data/label_map.h"
#include "scipy_peer.h"
#include "test_util.h"

using namespace sam::data;
namespace fs = std::filesystem;
using Catch::Matchers::Contains;
using nlohmann::json;

namespace {

// Writes palette PNGs (8-bit or packed 1/2/4-bit indices, non-interlaced) and, with scipy, SBD
// .mat files (GTinst with Segmentation, Boundaries as a cell of sparse logical masks, Categories),
// from a JSON list of id maps.
const char* kWriter = R"PY(
import json, struct, sys, zlib
spec = json.load(open(sys.argv[1]))
def chunk(t, d):
    return struct.pack('>I', len(d)) + t + d + struct.pack('>I', zlib.crc32(t + d) & 0xffffffff)
for p in spec.get('pngs', []):
    rows, depth = p['rows'], p['depth']
    h, w = len(rows), len(rows[0])
    raw = b''
    per = 8 // depth
    for r in rows:
        line = bytearray()
        for i in range(0, w, per):
            b = 0
            for k in range(per):
                v = r[i + k] if i + k < w else 0
                assert v < (1 << depth)
                b |= v << (8 - depth * (k + 1))
            line.append(b)
        raw += b'\x00' + bytes(line)          # filter type 0 (none) on every row
    ihdr = struct.pack('>IIBBBBB', w, h, depth, 3, 0, 0, 0)  # colour type 3: palette
    plte = b''.join(bytes(c) for c in p['palette'])
    open(p['path'], 'wb').write(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', ihdr) + chunk(b'PLTE', plte) +
                                chunk(b'IDAT', zlib.compress(raw)) + chunk(b'IEND', b''))
if spec.get('mats'):
    import numpy as np, scipy.io as sio, scipy.sparse as sp
    for m in spec['mats']:
        seg = np.array(m['rows'], dtype=np.uint8)
        n = int(seg.max())
        bounds = np.empty((n, 1), dtype=object)
        for k in range(n):
            bounds[k, 0] = sp.csc_matrix(seg == k + 1)
        gt = {'Segmentation': seg, 'Boundaries': bounds,
              'Categories': np.array(m['categories'], dtype=np.float64).reshape(-1, 1)}
        sio.savemat(m['path'], {'GTinst': gt}, do_compression=m['compress'])
)PY";

json rows_of(const cv::Mat& ids) {
  json rows = json::array();
  for (int y = 0; y < ids.rows; ++y) {
    json r = json::array();
    for (int x = 0; x < ids.cols; ++x) r.push_back(int(ids.at<uint8_t>(y, x)));
    rows.push_back(r);
  }
  return rows;
}

json voc_palette() {
  json p = json::array();
  for (int i = 0; i < 256; ++i) {
    const auto c = voc_colour(i);
    p.push_back({c[0], c[1], c[2]});
  }
  return p;
}

json png(const fs::path& path, const cv::Mat& ids, int depth = 8, json palette = voc_palette()) {
  return {{"path", path.string()}, {"rows", rows_of(ids)}, {"depth", depth}, {"palette", palette}};
}

void run_writer(const fs::path& dir, const json& spec) {
  std::ofstream(dir / "spec.json") << spec.dump();
  sam_test::run_python_script(dir, "write_maps.py", kWriter, (dir / "spec.json").string());
}

// Whether /usr/bin/python3 runs (the palette PNG writer needs nothing else); `why` when not.
bool have_python(std::string* why) {
  std::string out;
  if (sam_test::run_command(sam_test::scipy_python() + " -c 'import zlib, struct, json'", &out) ==
      0)
    return true;
  *why = sam_test::scipy_python() + " cannot run the PNG writer: " + out.substr(0, 300);
  return false;
}

// A JPEG of the map's size for the image folder.
void write_image(const fs::path& path, int h, int w) {
  fs::create_directories(path.parent_path());
  cv::Mat img(h, w, CV_8UC3, cv::Scalar(40, 90, 160));
  image_write(path.string(), img);
}

size_t differing(const cv::Mat& a, const cv::Mat& b) {
  REQUIRE(a.size() == b.size());
  return size_t(cv::countNonZero(a != b));
}

cv::Mat is(const cv::Mat& ids, int v) {
  cv::Mat m = ids == v;
  return m & 1;
}

}  // namespace

TEST_CASE("label maps: palette PNGs give their indices, colour PNGs the VOC colour map's") {
  std::string why;
  if (!have_python(&why)) {
    sam_test::skip(why);
    return;
  }
  CHECK(voc_colour(0) == std::array<uint8_t, 3>{0, 0, 0});
  CHECK(voc_colour(1) == std::array<uint8_t, 3>{128, 0, 0});
  CHECK(voc_colour(16) == std::array<uint8_t, 3>{0, 64, 0});
  CHECK(voc_colour(255) == std::array<uint8_t, 3>{224, 224, 192});
  const auto dir = sam_test::temp_dir("label_maps");
  cv::Mat ids(9, 13, CV_8UC1, cv::Scalar(0));
  ids(cv::Rect(1, 1, 4, 3)).setTo(1);
  ids(cv::Rect(6, 2, 3, 5)).setTo(2);
  ids(cv::Rect(10, 0, 3, 9)).setTo(7);
  ids.row(8).setTo(255);
  cv::Mat small_ids = ids.clone();
  small_ids.setTo(3, ids == 255);  // values that fit 2 bits
  small_ids.setTo(2, ids == 7);
  // A palette whose entries are all one colour: only the indices tell the ids apart.
  json flat = json::array();
  for (int i = 0; i < 256; ++i) flat.push_back({10, 20, 30});
  run_writer(dir, {{"pngs",
                    {png(dir / "voc8.png", ids), png(dir / "flat.png", ids, 8, flat),
                     png(dir / "voc2.png", small_ids, 2)}}});
  if (label_maps_read_palette_indices()) {
    CHECK(differing(read_label_map((dir / "flat.png").string()), ids) == 0);
    // What the image readers make of it: every pixel one colour, the ids lost.
    const cv::Mat rgb = image_read_rgb((dir / "flat.png").string());
    CHECK(cv::norm(rgb, cv::Mat(ids.size(), CV_8UC3, cv::Scalar(10, 20, 30)), cv::NORM_INF) == 0);
  } else {
    sam_test::skip("this build has no libpng: palette indices are read through VOC's colours");
  }
  CHECK(differing(read_label_map((dir / "voc8.png").string()), ids) == 0);
  CHECK(differing(read_label_map((dir / "voc2.png").string()), small_ids) == 0);
  // VOC masks saved as RGB (OpenCV's BGR order in memory) map back through the colour map.
  cv::Mat bgr(ids.size(), CV_8UC3);
  for (int y = 0; y < ids.rows; ++y)
    for (int x = 0; x < ids.cols; ++x) {
      const auto c = voc_colour(ids.at<uint8_t>(y, x));
      bgr.at<cv::Vec3b>(y, x) = cv::Vec3b(c[2], c[1], c[0]);
    }
  image_write((dir / "rgb.png").string(), bgr);
  CHECK(differing(read_label_map((dir / "rgb.png").string()), ids) == 0);
  // Grey maps give their values.
  image_write((dir / "grey.png").string(), ids);
  CHECK(differing(read_label_map((dir / "grey.png").string()), ids) == 0);
  // Colours outside the map, damaged and missing files name the file.
  bgr.at<cv::Vec3b>(4, 5) = cv::Vec3b(1, 2, 3);
  image_write((dir / "odd.png").string(), bgr);
  CHECK_THROWS_WITH(read_label_map((dir / "odd.png").string()),
                    Contains("odd.png") && Contains("(3, 2, 1) at (x 5, y 4)") &&
                        Contains("not in the PASCAL VOC colour map"));
  std::string bytes;
  {
    std::ifstream f(dir / "voc8.png", std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
  }
  std::ofstream(dir / "cut.png", std::ios::binary) << bytes.substr(0, bytes.size() - 30);
  CHECK_THROWS_WITH(read_label_map((dir / "cut.png").string()), Contains("cut.png"));
  CHECK_THROWS_WITH(read_label_map((dir / "none.png").string()),
                    Contains("none.png") && Contains("not found"));
  fs::remove_all(dir);
}

TEST_CASE("pascalvoc: one sample per instance of the split's images, void 255 ignored") {
  std::string why;
  if (!have_python(&why)) {
    sam_test::skip(why);
    return;
  }
  const auto root = sam_test::temp_dir("voc") / "VOC2012";
  fs::create_directories(root / "SegmentationObject");
  fs::create_directories(root / "ImageSets" / "Segmentation");
  const int h = 24, w = 32;
  // a: instances 1 and 2, a void frame around 1. b: instances 1, 3 and 16 (16 has the grey of 1
  // under RITM's colour-to-grey reading; here they stay apart), a void run on the last row.
  // c: only in train.txt, written as a packed 4-bit palette PNG. e: void and background only.
  std::map<std::string, cv::Mat> maps;
  cv::Mat a(h, w, CV_8UC1, cv::Scalar(0));
  a(cv::Rect(1, 2, 8, 7)).setTo(255);
  a(cv::Rect(2, 3, 6, 5)).setTo(1);
  a(cv::Rect(20, 10, 5, 4)).setTo(2);
  cv::Mat b(h, w, CV_8UC1, cv::Scalar(0));
  b(cv::Rect(0, 0, 4, 4)).setTo(1);
  b(cv::Rect(10, 10, 3, 2)).setTo(16);
  b(cv::Rect(28, 20, 4, 4)).setTo(3);
  b(cv::Rect(0, 23, 10, 1)).setTo(255);
  cv::Mat c(h, w, CV_8UC1, cv::Scalar(0));
  c(cv::Rect(5, 5, 2, 2)).setTo(1);
  cv::Mat e(h, w, CV_8UC1, cv::Scalar(0));
  e(cv::Rect(3, 3, 5, 5)).setTo(255);
  maps["2007_000001"] = a;
  maps["2007_000002"] = b;
  maps["2007_000003"] = c;
  maps["2007_000005"] = e;
  json pngs = json::array();
  for (const auto& [name, m] : maps) {
    pngs.push_back(
        png(root / "SegmentationObject" / (name + ".png"), m, name == "2007_000003" ? 4 : 8));
    write_image(root / "JPEGImages" / (name + ".jpg"), h, w);
  }
  run_writer(root.parent_path(), {{"pngs", pngs}});
  // The list's order is kept; a blank line names nothing; 2007_000004 has no mask.
  std::ofstream(root / "ImageSets" / "Segmentation" / "val.txt")
      << "2007_000002\n2007_000001\n\n2007_000004\n 2007_000005 \n";
  std::ofstream(root / "ImageSets" / "Segmentation" / "train.txt") << "2007_000003\n";

  auto ds = make_dataset("pascalvoc:" + root.string());
  const std::vector<std::string> want_ids = {"2007_000002#1", "2007_000002#3", "2007_000002#16",
                                             "2007_000001#1", "2007_000001#2"};
  REQUIRE(ds->size() == want_ids.size());
  CHECK_THAT(ds->describe(), Contains("5 samples") && Contains("2 of 4 listed images"));
  const auto warnings = ds->warnings();
  REQUIRE(warnings.size() == 2);
  CHECK_THAT(warnings[0], Contains("2007_000004.png") && Contains("not found"));
  CHECK_THAT(warnings[1], Contains("1 listed image(s) without an instance"));
  // Pixel counts by hand: a#1 6x5 inside a frame of 8x7 - 30 = 26 void pixels, a#2 5x4; b#1 4x4,
  // b#3 4x4, b#16 3x2, 10 void pixels.
  const std::map<std::string, std::pair<int, int>> counts = {{"2007_000001#1", {30, 26}},
                                                             {"2007_000001#2", {20, 26}},
                                                             {"2007_000002#1", {16, 10}},
                                                             {"2007_000002#3", {16, 10}},
                                                             {"2007_000002#16", {6, 10}}};
  for (size_t i = 0; i < ds->size(); ++i) {
    const Sample s = ds->get(i);
    INFO(s.id);
    CHECK(s.id == want_ids[i]);
    CHECK(ds->sample_id(i) == s.id);
    const std::string name = s.id.substr(0, s.id.find('#'));
    const int id = std::stoi(s.id.substr(s.id.find('#') + 1));
    REQUIRE(s.annotations.size() == 1);
    CHECK(s.annotations[0].id == id);
    CHECK(s.image.path == (root / "JPEGImages" / (name + ".jpg")).string());
    CHECK(s.annotation_file == (root / "SegmentationObject" / (name + ".png")).string());
    CHECK(s.height == h);
    CHECK(s.width == w);
    const cv::Mat m = s.mask(0), ig = s.ignore_mask(0);
    CHECK(differing(m, is(maps[name], id)) == 0);
    CHECK(differing(ig, is(maps[name], 255)) == 0);
    CHECK(cv::countNonZero(m) == counts.at(s.id).first);
    CHECK(cv::countNonZero(ig) == counts.at(s.id).second);
    CHECK(s.annotations[0].ignore.has_value());
    CHECK(s.load_image().size() == m.size());
  }
  // The split option reads another list.
  auto train = make_dataset("pascalvoc:" + root.string() + "?split=train");
  REQUIRE(train->size() == 1);
  CHECK(train->sample_id(0) == "2007_000003#1");
  CHECK(cv::countNonZero(train->get(0).mask(0)) == 4);
  CHECK_FALSE(train->get(0).annotations[0].ignore.has_value());  // no void pixels in c
  CHECK(train->warnings().empty());
  CHECK_THROWS_WITH(make_dataset("pascalvoc:" + root.string() + "?split=test"),
                    Contains("test.txt") && Contains("pascalvoc"));
  CHECK_THROWS_WITH(make_dataset("pascalvoc:" + root.string() + "?year=2012"),
                    Contains("unknown option 'year'") && Contains("split"));
  CHECK_THROWS_WITH(make_dataset("pascalvoc:/no/such/VOC2012"), Contains("/no/such/VOC2012"));
  fs::remove_all(root.parent_path());
}

TEST_CASE("sbd: one sample per instance id of GTinst.Segmentation in scipy-written .mat files") {
  SAM_REQUIRE_SCIPY();
  const auto root = sam_test::temp_dir("sbd");
  fs::create_directories(root / "inst");
  const int h = 19, w = 27;  // odd sizes: MATLAB's column-major order must be undone
  // x (compressed): instances 1 and 2. y (not compressed): instances 1 and 3, no 2, categories
  // for three. z: only in train.txt. bad: listed in val.txt, not a MAT-file.
  std::map<std::string, cv::Mat> maps;
  cv::Mat x(h, w, CV_8UC1, cv::Scalar(0));
  x(cv::Rect(1, 1, 5, 4)).setTo(1);
  x(cv::Rect(10, 5, 6, 7)).setTo(2);
  cv::Mat y(h, w, CV_8UC1, cv::Scalar(0));
  y(cv::Rect(0, 0, 3, 3)).setTo(1);
  y(cv::Rect(20, 10, 4, 5)).setTo(3);
  y.at<uint8_t>(18, 26) = 3;  // the last pixel: row-major and column-major orders disagree here
  cv::Mat z(h, w, CV_8UC1, cv::Scalar(0));
  z(cv::Rect(2, 2, 2, 2)).setTo(1);
  maps["2008_000001"] = x;
  maps["2008_000002"] = y;
  maps["2008_000003"] = z;
  const std::map<std::string, std::vector<double>> categories = {
      {"2008_000001", {15, 7}}, {"2008_000002", {5, 0, 9}}, {"2008_000003", {1}}};
  json mats = json::array();
  for (const auto& [name, m] : maps) {
    mats.push_back({{"path", (root / "inst" / (name + ".mat")).string()},
                    {"rows", rows_of(m)},
                    {"categories", categories.at(name)},
                    {"compress", name != "2008_000002"}});
    write_image(root / "img" / (name + ".jpg"), h, w);
  }
  run_writer(root, {{"mats", mats}});
  std::ofstream(root / "inst" / "2008_000009.mat") << "not a MAT-file at all";
  std::ofstream(root / "val.txt") << "2008_000001\n2008_000002\n2008_000009\n";
  std::ofstream(root / "train.txt") << "2008_000003\n";

  auto ds = make_dataset("sbd:" + root.string());
  const std::vector<std::string> want_ids = {"2008_000001#1", "2008_000001#2", "2008_000002#1",
                                             "2008_000002#3"};
  REQUIRE(ds->size() == want_ids.size());
  REQUIRE(ds->warnings().size() == 1);
  CHECK_THAT(ds->warnings()[0], Contains("2008_000009.mat") && Contains("not a MATLAB 5 MAT-file"));
  CHECK_THAT(ds->describe(), Contains("4 samples") && Contains("2 of 3 listed images"));
  const std::map<std::string, std::pair<int, int64_t>> want = {
      {"2008_000001#1", {20, 15}},
      {"2008_000001#2", {42, 7}},
      {"2008_000002#1", {9, 5}},
      {"2008_000002#3", {21, 9}}};  // pixels, category
  for (size_t i = 0; i < ds->size(); ++i) {
    const Sample s = ds->get(i);
    INFO(s.id);
    CHECK(s.id == want_ids[i]);
    const std::string name = s.id.substr(0, s.id.find('#'));
    const int id = std::stoi(s.id.substr(s.id.find('#') + 1));
    REQUIRE(s.annotations.size() == 1);
    CHECK(s.image.path == (root / "img" / (name + ".jpg")).string());
    CHECK(s.annotation_file == (root / "inst" / (name + ".mat")).string());
    CHECK(s.height == h);
    CHECK(s.width == w);
    const cv::Mat m = s.mask(0);
    CHECK(differing(m, is(maps[name], id)) == 0);
    CHECK(cv::countNonZero(m) == want.at(s.id).first);
    CHECK(s.annotations[0].category_id == want.at(s.id).second);
    // RITM's SBD samples ignore nothing.
    CHECK_FALSE(s.annotations[0].ignore.has_value());
    CHECK(cv::countNonZero(s.ignore_mask(0)) == 0);
    CHECK(s.load_image().size() == m.size());
  }
  auto train = make_dataset("sbd:" + root.string() + "?split=train");
  REQUIRE(train->size() == 1);
  CHECK(train->sample_id(0) == "2008_000003#1");
  CHECK(cv::countNonZero(train->get(0).mask(0)) == 4);
  // A map changed after listing is reported with its file when the sample is read.
  fs::copy_file(root / "inst" / "2008_000003.mat", root / "inst" / "2008_000001.mat",
                fs::copy_options::overwrite_existing);
  std::string msg;
  try {
    ds->get(1);
  } catch (const DataError& e) {
    msg = e.what();
  }
  CHECK_THAT(msg, Contains("2008_000001.mat") && Contains("instance 2"));
  CHECK_THROWS_WITH(make_dataset("sbd:" + root.string() + "?split=../val"),
                    Contains("split must be a list's name"));
  CHECK_THROWS_WITH(make_dataset("sbd:/no/such/SBD"), Contains("/no/such/SBD"));
  fs::remove_all(root);
}
