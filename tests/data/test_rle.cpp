// COCO RLE (data/mask/rle.h): cocoapi string format, SAM golden values, round trips, set
// operations, polygon rasterisation (hand-derived cases and COCO_Tiny), and malformed input.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "data/mask/rle.h"
#include "test_util.h"

using namespace sam::mask;
using Catch::Matchers::Contains;

namespace {

Rle make(int64_t h, int64_t w, std::vector<uint32_t> counts) {
  Rle r;
  r.h = h;
  r.w = w;
  r.counts = std::move(counts);
  return r;
}

// Row-major mask from rows of '#' (set) and '.' (clear).
std::vector<uint8_t> from_rows(const std::vector<std::string>& rows) {
  std::vector<uint8_t> m;
  for (const auto& row : rows)
    for (char c : row) m.push_back(c == '#' ? 1 : 0);
  return m;
}

// Decoded RLE as rows of '#'/'.'.
std::vector<std::string> to_rows(const Rle& r) {
  std::vector<uint8_t> m(static_cast<size_t>(r.h * r.w));
  rle_decode(r, m.data());
  std::vector<std::string> rows;
  for (int64_t y = 0; y < r.h; ++y) {
    std::string s;
    for (int64_t x = 0; x < r.w; ++x) s.push_back(m[static_cast<size_t>(y * r.w + x)] ? '#' : '.');
    rows.push_back(s);
  }
  return rows;
}

// Straightforward column-major encoder (the definition), to compare the fast one against.
std::vector<uint32_t> naive_counts(const std::vector<uint8_t>& m, int64_t h, int64_t w) {
  std::vector<uint32_t> c;
  uint32_t run = 0;
  bool cur = false;
  for (int64_t x = 0; x < w; ++x)
    for (int64_t y = 0; y < h; ++y) {
      const bool v = m[static_cast<size_t>(y * w + x)] != 0;
      if (v != cur) c.push_back(run), run = 0, cur = v;
      ++run;
    }
  c.push_back(run);
  return c;
}

// The message of the std::invalid_argument thrown by f (any other exception propagates).
template <class F>
std::string invalid_argument_message(F&& f) {
  try {
    f();
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "<no std::invalid_argument thrown>";
}

struct Shoelace {
  double area = 0, perimeter = 0;
};
Shoelace shoelace(const std::vector<double>& xy) {
  Shoelace s;
  const size_t k = xy.size() / 2;
  double twice = 0;
  for (size_t j = 0; j < k; ++j) {
    const size_t n = (j + 1) % k;
    twice += xy[2 * j] * xy[2 * n + 1] - xy[2 * n] * xy[2 * j + 1];
    s.perimeter += std::hypot(xy[2 * n] - xy[2 * j], xy[2 * n + 1] - xy[2 * j + 1]);
  }
  s.area = std::fabs(twice) / 2;
  return s;
}

void fnv1a(uint64_t& hash, const std::string& s) {
  for (unsigned char c : s) hash = (hash ^ c) * 1099511628211ULL;
  hash = (hash ^ static_cast<unsigned char>('\n')) * 1099511628211ULL;
}

nlohmann::json load_json(const std::filesystem::path& p) {
  INFO(p.string());
  REQUIRE(std::filesystem::exists(p));
  std::ifstream f(p);
  return nlohmann::json::parse(f);
}

}  // namespace

TEST_CASE("cocoapi compressed strings, both directions", "[rle]") {
  struct Case {
    int64_t h, w;
    std::vector<uint32_t> counts;
    std::string s;
  };
  const std::vector<Case> cases = {
      {2, 3, {2, 3, 1}, "231"},
      {2, 3, {0, 1, 1, 1, 3}, "01102"},
      {3, 4, {1, 2, 2, 3, 4}, "12212"},
      {27, 81, {100, 50, 2000, 30, 7}, R"(T3b1`n1\OgQN)"},
      {100, 1999, {100000, 37, 5, 200, 99658}, "PeQ3U15S5UZQ3"},
  };
  for (const auto& c : cases) {
    INFO(c.s);
    CHECK(rle_to_string(make(c.h, c.w, c.counts)) == c.s);
    const Rle r = rle_from_string(c.s, c.h, c.w);
    CHECK(r.h == c.h);
    CHECK(r.w == c.w);
    CHECK(r.counts == c.counts);
  }
  CHECK(std::string(R"(T3b1`n1\OgQN)") == "T3b1`n1\\OgQN");  // one backslash, 12 characters
  CHECK(std::string(R"(T3b1`n1\OgQN)").size() == 12);
  // Empty image: cocoapi encodes a 0-pixel mask as counts {0} -> "0".
  CHECK(rle_to_string(rle_encode(nullptr, 0, 5)) == "0");
  CHECK(rle_from_string("", 0, 0).counts.empty());
}

TEST_CASE("SAM mask_to_rle golden values (SAM_SPEC section 9)", "[rle]") {
  const auto a = from_rows({".##", ".#."});
  const Rle ra = rle_encode(a.data(), 2, 3);
  CHECK(ra.h == 2);
  CHECK(ra.w == 3);
  CHECK(ra.counts == std::vector<uint32_t>{2, 3, 1});
  CHECK(rle_area(ra) == 3);
  CHECK(rle_bbox_inclusive(ra) == std::array<int64_t, 4>{1, 0, 2, 1});
  CHECK(rle_to_json(ra, false) == nlohmann::json::parse(R"({"size":[2,3],"counts":[2,3,1]})"));
  CHECK(rle_to_json(ra) == nlohmann::json::parse(R"({"size":[2,3],"counts":"231"})"));

  const auto b = from_rows({"##.", "..."});
  const Rle rb = rle_encode(b.data(), 2, 3);
  CHECK(rb.counts == std::vector<uint32_t>{0, 1, 1, 1, 3});
  CHECK(rle_to_string(rb) == "01102");

  const std::vector<uint8_t> empty(6, 0);
  CHECK(rle_bbox_inclusive(rle_encode(empty.data(), 2, 3)) == std::array<int64_t, 4>{0, 0, 0, 0});
  // Nonzero bytes other than 1 count as set; decode writes 0/1.
  const std::vector<uint8_t> odd = {0, 255, 7, 0, 2, 0};
  CHECK(rle_encode(odd.data(), 2, 3).counts == std::vector<uint32_t>{2, 3, 1});
  std::vector<uint8_t> out(6, 9);
  rle_decode(ra, out.data());
  CHECK(out == a);
}

TEST_CASE("round trips on random masks of odd sizes", "[rle]") {
  std::mt19937 rng(12345);
  const std::vector<std::pair<int64_t, int64_t>> sizes = {
      {1, 1},   {1, 17},  {1, 64},  {23, 1}, {64, 1},  {37, 53},    {64, 64},
      {65, 63}, {129, 7}, {7, 129}, {2, 3},  {100, 9}, {1500, 2250}};
  for (const auto& [h, w] : sizes) {
    for (const char* kind : {"zeros", "ones", "sparse", "half", "dense", "blobs"}) {
      INFO(h << "x" << w << " " << kind);
      std::vector<uint8_t> m(static_cast<size_t>(h * w), 0);
      const std::string k = kind;
      if (k == "ones") std::fill(m.begin(), m.end(), 1);
      const unsigned pct = k == "sparse" ? 3 : k == "half" ? 50 : k == "dense" ? 97 : 0;
      if (pct)
        for (auto& v : m) v = (rng() % 100) < pct ? static_cast<uint8_t>(1 + rng() % 255) : 0;
      if (k == "blobs")
        for (int b = 0; b < 4; ++b) {
          const double cx = rng() % w, cy = rng() % h, rad = 1 + rng() % (1 + std::max(h, w) / 3);
          for (int64_t y = 0; y < h; ++y)
            for (int64_t x = 0; x < w; ++x)
              if ((x - cx) * (x - cx) + (y - cy) * (y - cy) <= rad * rad)
                m[static_cast<size_t>(y * w + x)] = 1;
        }
      const Rle r = rle_encode(m.data(), h, w);
      REQUIRE(r.counts == naive_counts(m, h, w));
      REQUIRE_NOTHROW(rle_validate(r));
      std::vector<uint8_t> back(m.size(), 7);
      rle_decode(r, back.data());
      bool same = true;
      for (size_t i = 0; i < m.size(); ++i) same = same && back[i] == (m[i] ? 1 : 0);
      CHECK(same);
      const std::string s = rle_to_string(r);
      CHECK(rle_from_string(s, h, w).counts == r.counts);
      CHECK(rle_from_json(rle_to_json(r, true)).counts == r.counts);
      CHECK(rle_from_json(rle_to_json(r, false)).counts == r.counts);
      uint64_t set = 0;
      for (auto v : m) set += v != 0;
      CHECK(rle_area(r) == set);
      if (k == "zeros") CHECK(r.counts == std::vector<uint32_t>{static_cast<uint32_t>(h * w)});
      if (k == "ones") CHECK(r.counts == std::vector<uint32_t>{0, static_cast<uint32_t>(h * w)});
    }
  }
}

TEST_CASE("area, bbox, iou and merge on hand-computed masks", "[rle]") {
  // h=3, w=4.  A: 2x2 at the top left.  B: columns 1..2, all rows.
  const auto ma = from_rows({"##..", "##..", "...."});
  const auto mb = from_rows({".##.", ".##.", ".##."});
  const Rle a = rle_encode(ma.data(), 3, 4), b = rle_encode(mb.data(), 3, 4);
  CHECK(a.counts == std::vector<uint32_t>{0, 2, 1, 2, 7});
  CHECK(b.counts == std::vector<uint32_t>{3, 6, 3});
  CHECK(rle_area(a) == 4);
  CHECK(rle_area(b) == 6);
  CHECK(rle_bbox_coco(a) == std::array<double, 4>{0, 0, 2, 2});
  CHECK(rle_bbox_inclusive(a) == std::array<int64_t, 4>{0, 0, 1, 1});
  CHECK(rle_bbox_coco(b) == std::array<double, 4>{1, 0, 2, 3});
  CHECK(rle_bbox_inclusive(b) == std::array<int64_t, 4>{1, 0, 2, 2});

  // |A&B| = 2 (column 1, rows 0..1), |A|B| = 8.
  CHECK(rle_iou(a, b, false) == Approx(0.25));
  CHECK(rle_iou(b, a, false) == Approx(0.25));
  CHECK(rle_iou(a, b, true) == Approx(2.0 / 4.0));  // crowd: divide by |a|
  CHECK(rle_iou(b, a, true) == Approx(2.0 / 6.0));
  CHECK(rle_iou(a, a, false) == 1.0);

  const Rle u = rle_merge({a, b}, false), i = rle_merge({a, b}, true);
  CHECK(to_rows(u) == std::vector<std::string>{"###.", "###.", ".##."});
  CHECK(u.counts == std::vector<uint32_t>{0, 2, 1, 6, 3});
  CHECK(to_rows(i) == std::vector<std::string>{".#..", ".#..", "...."});
  CHECK(i.counts == std::vector<uint32_t>{3, 2, 7});
  CHECK(rle_bbox_coco(u) == std::array<double, 4>{0, 0, 3, 3});

  const auto mc = from_rows({"...#", "....", "...#"});
  const Rle c = rle_encode(mc.data(), 3, 4);
  const Rle abc = rle_merge({a, b, c}, false);
  CHECK(to_rows(abc) == std::vector<std::string>{"####", "###.", ".###"});
  CHECK(abc.counts == std::vector<uint32_t>{0, 2, 1, 7, 1, 1});
  CHECK(rle_merge({a, b, c}, true).counts == std::vector<uint32_t>{12});
  CHECK(rle_iou(a, c, false) == 0.0);  // disjoint
  CHECK(rle_iou(c, a, true) == 0.0);

  // No input -> 0x0 with no counts; one input -> a copy.
  const Rle none = rle_merge({}, false);
  CHECK(none.h == 0);
  CHECK(none.w == 0);
  CHECK(none.counts.empty());
  CHECK(rle_merge({a}, true).counts == a.counts);

  // A run crossing a column end covers row h-1 of one column and row 0 of the next.
  const Rle wrap = make(4, 3, {3, 2, 7});
  CHECK(rle_bbox_coco(wrap) == std::array<double, 4>{0, 0, 2, 4});
  CHECK(rle_bbox_inclusive(wrap) == std::array<int64_t, 4>{0, 0, 1, 3});

  // Empty masks.
  const Rle z = make(3, 4, {12});
  CHECK(rle_area(z) == 0);
  CHECK(rle_bbox_coco(z) == std::array<double, 4>{0, 0, 0, 0});
  CHECK(rle_bbox_inclusive(z) == std::array<int64_t, 4>{0, 0, 0, 0});
  CHECK(rle_iou(z, z, false) == 0.0);
  CHECK(rle_iou(z, a, true) == 0.0);
  // Full mask and a non-canonical (zero-length interior run) input.
  CHECK(rle_bbox_coco(make(3, 4, {0, 12})) == std::array<double, 4>{0, 0, 4, 3});
  CHECK(rle_merge({make(3, 4, {0, 2, 0, 0, 1, 2, 7}), z}, false).counts ==
        std::vector<uint32_t>{0, 2, 1, 2, 7});

  // Size mismatches are errors, not cocoapi's silent -1 / empty result.
  const Rle other = make(4, 3, {12});
  CHECK_THAT(invalid_argument_message([&] { rle_iou(a, other, false); }), Contains("sizes differ"));
  CHECK_THAT(invalid_argument_message([&] {
               rle_merge({a, other}, false);
             }),
             Contains("sizes differ"));
}

TEST_CASE("polygon rasterisation: hand-derived cases (cocoapi rleFrPoly semantics)", "[rle]") {
  // Pixel (x, y) covers [x, x+1) x [y, y+1); it is set iff its centre (x+.5, y+.5) is inside the
  // polygon as drawn on a 5x upsampled grid (vertices rounded to multiples of 0.2). Per pixel
  // column the boundary crossings at the column's centre line give the first row that is in/out.
  SECTION("axis-aligned square (1,1)-(3,3): centres 1.5 and 2.5 are inside") {
    const Rle r = rle_from_polygon({1, 1, 3, 1, 3, 3, 1, 3}, 5, 5);
    CHECK(to_rows(r) == std::vector<std::string>{".....", ".##..", ".##..", ".....", "....."});
    CHECK(r.counts == std::vector<uint32_t>{6, 2, 3, 2, 12});
    CHECK(rle_to_string(r) == "62309");
    CHECK(rle_area(r) == 4);  // = the geometric area
    CHECK(rle_from_bbox(1, 1, 2, 2, 5, 5).counts == r.counts);
  }
  SECTION("right triangle (0,0),(4,0),(0,4): centres on the hypotenuse x+y=4 are out") {
    // At column centre x+.5 the hypotenuse is at y = 3.5-x; cocoapi takes the upper of the two
    // upsampled boundary samples (v = 17-5x), so the first excluded row is ceil((17.5-5x)/5-.5)
    // = 3-x: rows 0..2-x are set, i.e. the centres with x+y < 3 (6 pixels; geometric area 8).
    const Rle r = rle_from_polygon({0, 0, 4, 0, 0, 4}, 5, 5);
    CHECK(to_rows(r) == std::vector<std::string>{"###..", "##...", "#....", ".....", "....."});
    CHECK(r.counts == std::vector<uint32_t>{0, 3, 2, 2, 3, 1, 14});
    CHECK(rle_to_string(r) == "032O1O;");
  }
  SECTION("vertices exactly on pixel centres: left/top edge out, right/bottom edge in") {
    // 0.5 -> upsampled (int)(2.5+.5) = 3 > 2.5, so centre 0.5 is outside; 2.5 -> 13 > 12.5, so
    // centre 2.5 is inside. Rows: top ceil((3.5)/5-.5) = 1, bottom ceil(13.5/5-.5) = 3.
    const Rle r = rle_from_polygon({0.5, 0.5, 2.5, 0.5, 2.5, 2.5, 0.5, 2.5}, 5, 5);
    CHECK(to_rows(r) == std::vector<std::string>{".....", ".##..", ".##..", ".....", "....."});
    CHECK(r.counts == std::vector<uint32_t>{6, 2, 3, 2, 12});
    // Diamond with all four vertices on centres: same tie-breaking, 8 of the 13 boundary-or-inside
    // centres are set (column 0 and rows 0/4 out, column 4 in).
    const Rle d = rle_from_polygon({2.5, 0.5, 4.5, 2.5, 2.5, 4.5, 0.5, 2.5}, 5, 5);
    CHECK(to_rows(d) == std::vector<std::string>{".....", "..##.", ".####", "..##.", "....."});
    CHECK(d.counts == std::vector<uint32_t>{7, 1, 3, 3, 2, 3, 3, 1, 2});
  }
  SECTION("clipping to the image") {
    const Rle r = rle_from_polygon({-1, -1, 2, -1, 2, 2, -1, 2}, 4, 4);
    CHECK(to_rows(r) == std::vector<std::string>{"##..", "##..", "....", "...."});
    CHECK(r.counts == std::vector<uint32_t>{0, 2, 2, 2, 10});
    const Rle all = rle_from_polygon({-3, -3, 9, -3, 9, 9, -3, 9}, 4, 4);
    CHECK(all.counts == std::vector<uint32_t>{0, 16});
  }
  SECTION("orientation and starting vertex do not matter") {
    const std::vector<std::vector<double>> polys = {{0, 0, 4, 0, 0, 4},
                                                    {2.5, 0.5, 4.5, 2.5, 2.5, 4.5, 0.5, 2.5},
                                                    {0.3, 1.7, 4.1, 0.2, 3.3, 4.6}};
    for (const auto& p : polys) {
      const auto ref = rle_from_polygon(p, 5, 5).counts;
      std::vector<double> rev, rot(p.begin() + 2, p.end());
      for (size_t j = p.size(); j >= 2; j -= 2) rev.push_back(p[j - 2]), rev.push_back(p[j - 1]);
      rot.push_back(p[0]);
      rot.push_back(p[1]);
      CHECK(rle_from_polygon(rev, 5, 5).counts == ref);
      CHECK(rle_from_polygon(rot, 5, 5).counts == ref);
    }
  }
  SECTION("degenerate polygons give empty masks") {
    CHECK(rle_from_polygon({}, 5, 5).counts == std::vector<uint32_t>{25});
    CHECK(rle_from_polygon({1.2, 3.4}, 5, 5).counts == std::vector<uint32_t>{25});
    CHECK(rle_from_polygon({0, 0, 4, 4}, 5, 5).counts == std::vector<uint32_t>{25});
    CHECK(rle_from_polygon({1, 1, 1, 1, 3, 1, 3, 1, 3, 3, 1, 3}, 5, 5).counts ==
          std::vector<uint32_t>{6, 2, 3, 2, 12});  // repeated vertices are harmless
    CHECK(rle_from_polygon({0, 0, 4, 0, 0, 4}, 0, 5).counts == std::vector<uint32_t>{0});
  }
  SECTION("bad input") {
    CHECK_THAT(invalid_argument_message([] {
                 rle_from_polygon({1, 2, 3}, 5, 5);
               }),
               Contains("odd number of coordinates"));
    CHECK_THAT(invalid_argument_message([] {
                 rle_from_polygon({1, 2, NAN, 4, 5, 6}, 5, 5);
               }),
               Contains("not finite"));
    CHECK_THAT(invalid_argument_message([] {
                 rle_from_polygon({1, 2, 3, 4, 5, 6}, -1, 5);
               }),
               Contains("negative size"));
  }
}

TEST_CASE("COCO_Tiny polygons and crowd RLEs", "[rle][coco]") {
  // Golden values computed with cocoapi's own maskApi.c (rleFrPoly/rleFrBbox/rleToString/rleArea,
  // compiled from source outside this repository): FNV-1a 64 of every polygon's (and every stored
  // bbox's) compressed string in file order, each followed by '\n', and the summed areas.
  struct Golden {
    const char* file;
    size_t polys;
    uint64_t poly_area, poly_hash;
    size_t boxes;
    uint64_t box_area, box_hash;
  };
  const Golden goldens[] = {
      {"instances_val2017.json", 888, 7962541, 0xb4301f50c53ef470ULL, 815, 13503715,
       0x4ea6419f1b2b7a4aULL},
      {"instances_train2017.json", 771, 6341190, 0x54d9f033c475fed8ULL, 705, 11343610,
       0x0dcc7783adecb3bbULL},
  };
  for (const auto& g : goldens) {
    INFO(g.file);
    const auto d = load_json(sam_test::shared_data() / "COCO_Tiny" / "annotations" / g.file);
    std::map<int64_t, std::pair<int64_t, int64_t>> sizes;
    for (const auto& im : d.at("images"))
      sizes[im.at("id").get<int64_t>()] = {im.at("height").get<int64_t>(),
                                           im.at("width").get<int64_t>()};
    uint64_t poly_hash = 1469598103934665603ULL, box_hash = poly_hash, poly_area = 0, box_area = 0;
    size_t polys = 0, boxes = 0, crowds = 0, crowd_area_equal = 0;
    double worst_ratio = 0;
    for (const auto& ann : d.at("annotations")) {
      INFO("annotation " << ann.at("id").dump());
      const auto [h, w] = sizes.at(ann.at("image_id").get<int64_t>());
      const double stored_area = ann.at("area").get<double>();
      const auto bbox = ann.at("bbox").get<std::vector<double>>();
      const auto& seg = ann.at("segmentation");
      if (seg.is_array()) {
        // Stored `area` is the polygons' geometric (shoelace) area; the rasterised pixel count
        // differs by boundary pixels only: |pixels - area| <= perimeter / 2 (observed <= 0.2).
        CHECK(ann.at("iscrowd").get<int>() == 0);
        std::vector<Rle> parts;
        double geo = 0, perimeter = 0;
        for (const auto& p : seg) {
          const auto xy = p.get<std::vector<double>>();
          const Rle r = rle_from_polygon(xy, h, w);
          REQUIRE_NOTHROW(rle_validate(r));  // counts sum to h*w
          const auto sl = shoelace(xy);
          const double pixels = static_cast<double>(rle_area(r));
          CHECK(std::fabs(pixels - sl.area) <= 0.5 * sl.perimeter);
          worst_ratio = std::max(worst_ratio, std::fabs(pixels - sl.area) / sl.perimeter);
          geo += sl.area;
          perimeter += sl.perimeter;
          fnv1a(poly_hash, rle_to_string(r));
          poly_area += rle_area(r);
          ++polys;
          parts.push_back(r);
        }
        CHECK(std::fabs(geo - stored_area) <= 1e-9 * std::max(1.0, stored_area));
        const Rle all = rle_merge(parts, false);
        const double pixels = static_cast<double>(rle_area(all));
        CHECK(std::fabs(pixels - stored_area) <= 0.5 * perimeter);
        // Set pixels have centres within 0.2 px (upsampling) of the polygons' extent = bbox.
        if (rle_area(all) > 0) {
          const auto e = rle_bbox_inclusive(all);
          CHECK(e[0] + 0.5 >= bbox[0] - 0.2);
          CHECK(e[1] + 0.5 >= bbox[1] - 0.2);
          CHECK(e[2] + 0.5 <= bbox[0] + bbox[2] + 0.2);
          CHECK(e[3] + 0.5 <= bbox[1] + bbox[3] + 0.2);
        }
      } else {
        // Crowd regions: uncompressed RLE of the whole image.
        CHECK(ann.at("iscrowd").get<int>() == 1);
        ++crowds;
        const Rle r = rle_from_json(seg);  // validates: counts sum to h*w
        CHECK(r.h == h);
        CHECK(r.w == w);
        const uint64_t area = rle_area(r);
        // The stored crowd `area` is not always the pixel count (it is >= it; equal for some),
        // but the stored bbox is exactly the inclusive pixel extent as x0, y0, x1-x0, y1-y0.
        CHECK(static_cast<double>(area) <= stored_area);
        crowd_area_equal += static_cast<double>(area) == stored_area;
        const auto e = rle_bbox_inclusive(r);
        CHECK(bbox == std::vector<double>{static_cast<double>(e[0]), static_cast<double>(e[1]),
                                          static_cast<double>(e[2] - e[0]),
                                          static_cast<double>(e[3] - e[1])});
        const auto coco = rle_bbox_coco(r);
        CHECK(coco[2] == bbox[2] + 1);
        CHECK(coco[3] == bbox[3] + 1);
        CHECK(rle_from_string(rle_to_string(r), h, w).counts == r.counts);
        std::vector<uint8_t> m(static_cast<size_t>(h * w));
        rle_decode(r, m.data());
        CHECK(rle_encode(m.data(), h, w).counts == r.counts);
      }
      const Rle box = rle_from_bbox(bbox[0], bbox[1], bbox[2], bbox[3], h, w);
      fnv1a(box_hash, rle_to_string(box));
      box_area += rle_area(box);
      ++boxes;
    }
    // Observed: worst ratio 0.16 (val) / 0.20 (train); crowd area == pixel count for 3 of 11
    // (val) and 0 of 6 (train) crowd annotations.
    CAPTURE(worst_ratio, crowd_area_equal);
    CHECK(polys == g.polys);
    CHECK(poly_area == g.poly_area);
    CHECK(poly_hash == g.poly_hash);
    CHECK(boxes == g.boxes);
    CHECK(box_area == g.box_area);
    CHECK(box_hash == g.box_hash);
    CHECK(crowds > 0);
  }
}

TEST_CASE("malformed RLE input is rejected with a clear message", "[rle]") {
  auto from_string = [](std::string s, int64_t h, int64_t w) {
    return invalid_argument_message([&] { rle_from_string(s, h, w); });
  };
  // Counts not summing to h*w (string and vector forms).
  CHECK_THAT(from_string("231", 2, 2), Contains("counts sum to 6") && Contains("4 pixels"));
  CHECK_THAT(from_string("", 2, 2), Contains("counts sum to 0"));
  CHECK_THAT(invalid_argument_message([] {
               rle_validate(make(2, 3, {2, 3}));
             }),
             Contains("counts sum to 5") && Contains("2x3"));
  CHECK_THAT(invalid_argument_message([] {
               std::vector<uint8_t> out(6);
               rle_decode(make(2, 3, {2, 3, 2}), out.data());
             }),
             Contains("counts sum to 7") && Contains("6 pixels"));
  CHECK_THAT(invalid_argument_message([] { rle_validate(make(-2, 3, {})); }),
             Contains("negative size"));
  CHECK_THAT(invalid_argument_message([] { rle_validate(make(1 << 20, 1 << 20, {})); }),
             Contains("more than 2^32-1 pixels"));
  // Characters outside 48..111.
  CHECK_THAT(from_string("23 1", 2, 3), Contains("invalid character (code 32) at offset 2"));
  CHECK_THAT(from_string("23p", 2, 3), Contains("invalid character (code 112)"));
  CHECK_THAT(from_string(std::string("2\0"
                                     "1",
                                     3),
                         2, 3),
             Contains("invalid character (code 0)"));
  // Truncated: the last character still has the continuation bit ('P' = 48+32).
  CHECK_THAT(from_string("2P", 2, 3), Contains("truncated"));
  // Negative runs: '@' is a single group with the sign bit (-16); "231K" has delta -5 from 3.
  CHECK_THAT(from_string("@", 2, 3), Contains("negative run length -16"));
  CHECK_THAT(from_string("231K", 2, 3), Contains("negative run length -2") && Contains("#3"));
  // Overflow: more than 7 characters in one count, or a 7-character count above 2^32-1.
  CHECK_THAT(from_string("oooooooo0", 2, 3), Contains("overflow") && Contains("more than 7"));
  CHECK_THAT(from_string("PPPPPP8", 2, 3), Contains("overflow") && Contains("8589934592"));
  // The largest legal count round-trips through 7 characters.
  const Rle big = make(65537, 65535, {0xFFFFFFFFu});
  CHECK(rle_to_string(big).size() == 7);
  CHECK(rle_from_string(rle_to_string(big), 65537, 65535).counts == big.counts);
}

TEST_CASE("RLE JSON helpers", "[rle]") {
  const Rle r = make(2, 3, {2, 3, 1});
  CHECK(rle_to_json(r).dump() == R"({"counts":"231","size":[2,3]})");
  CHECK(rle_to_json(r, false).dump() == R"({"counts":[2,3,1],"size":[2,3]})");
  CHECK(rle_from_json(nlohmann::json::parse(R"({"size":[2,3],"counts":"231"})")).counts ==
        r.counts);
  CHECK(rle_from_json(nlohmann::json::parse(R"({"size":[2,3],"counts":[2,3,1]})")).counts ==
        r.counts);
  auto bad = [](const char* text) {
    return invalid_argument_message([&] { rle_from_json(nlohmann::json::parse(text)); });
  };
  CHECK_THAT(bad("[1,2]"), Contains("expected an object"));
  CHECK_THAT(bad(R"({"counts":"231"})"), Contains("missing \"size\""));
  CHECK_THAT(bad(R"({"size":[2,3]})"), Contains("missing \"counts\""));
  CHECK_THAT(bad(R"({"size":[2],"counts":"231"})"), Contains("\"size\" must be"));
  CHECK_THAT(bad(R"({"size":[2,-3],"counts":"231"})"), Contains("\"size\" must be"));
  CHECK_THAT(bad(R"({"size":[2,3.5],"counts":"231"})"), Contains("\"size\" must be"));
  CHECK_THAT(bad(R"({"size":"2x3","counts":"231"})"), Contains("\"size\" must be"));
  CHECK_THAT(bad(R"({"size":[2,3],"counts":5})"), Contains("must be a string or an array"));
  CHECK_THAT(bad(R"({"size":[2,3],"counts":[2,-3,7]})"), Contains("counts[1] = -3"));
  CHECK_THAT(bad(R"({"size":[2,3],"counts":[2,3.0,1]})"), Contains("counts[1]"));
  CHECK_THAT(bad(R"({"size":[2,3],"counts":[2,4294967296]})"), Contains("0..2^32-1"));
  CHECK_THAT(bad(R"({"size":[2,3],"counts":[2,3]})"), Contains("counts sum to 5"));
  CHECK_THAT(bad(R"({"size":[2,3],"counts":"23!"})"), Contains("invalid character"));
}
