// Synthetic scenes (data/synth.h): determinism down to the file bytes, and the masks' invariants
// (a mask is what is visible: wholes never share pixels, parts lie inside their whole, sibling
// parts are disjoint), read back through the SA-1B reader.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>

#include "data/dataset.h"
#include "data/synth.h"
#include "test_util.h"

using namespace sam::data;
namespace fs = std::filesystem;

namespace {

std::vector<uint8_t> decode(const Annotation& a) {
  const auto r = a.rle();
  std::vector<uint8_t> m(size_t(r.h * r.w));
  sam::mask::rle_decode(r, m.data());
  return m;
}

std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

SynthOptions small(uint64_t seed) {
  SynthOptions o;
  o.width = 160;
  o.height = 120;
  o.seed = seed;
  o.min_objects = 6;
  o.max_objects = 14;
  o.part_prob = 0.8;
  o.min_area = 4;
  return o;
}

// One whole object of the given radius (a fraction of the short side) per 320x240 image, always
// with parts, no ground.
SynthOptions one_whole_with_parts(double radius) {
  SynthOptions o;
  o.min_objects = o.max_objects = 1;
  o.size_min = o.size_max = radius;
  o.part_prob = 1;
  o.ground_prob = 0;
  o.width = 320;
  o.height = 240;
  return o;
}

}  // namespace

TEST_CASE("synth: the same seed and index give the same pixels and masks, another seed does not") {
  const SynthImage a = synth_image(small(7), 3), b = synth_image(small(7), 3);
  REQUIRE(a.rgb.size() == cv::Size(160, 120));
  CHECK(cv::norm(a.rgb, b.rgb, cv::NORM_INF) == 0);
  REQUIRE(a.annotations.size() == b.annotations.size());
  for (size_t i = 0; i < a.annotations.size(); ++i)
    CHECK(a.annotations[i].rle().counts == b.annotations[i].rle().counts);
  const SynthImage c = synth_image(small(8), 3), d = synth_image(small(7), 4);
  CHECK(cv::norm(a.rgb, c.rgb, cv::NORM_INF) > 0);
  CHECK(cv::norm(a.rgb, d.rgb, cv::NORM_INF) > 0);
}

TEST_CASE("synth: masks are exact visible regions (disjoint wholes, parts inside wholes)") {
  int64_t parts = 0, subparts = 0, border = 0, holes_or_occluded = 0;
  for (int64_t index = 1; index <= 12; ++index) {
    const SynthOptions o = small(11);
    const SynthImage im = synth_image(o, index);
    const size_t n = im.annotations.size();
    REQUIRE(im.level.size() == n);
    REQUIRE(im.parent.size() == n);
    std::vector<std::vector<uint8_t>> m(n);
    for (size_t i = 0; i < n; ++i) m[i] = decode(im.annotations[i]);
    for (size_t i = 0; i < n; ++i) {
      const Annotation& a = im.annotations[i];
      uint64_t area = 0;
      int x0 = o.width, y0 = o.height, x1 = -1, y1 = -1;
      for (int y = 0; y < o.height; ++y)
        for (int x = 0; x < o.width; ++x)
          if (m[i][size_t(y * o.width + x)]) {
            ++area;
            x0 = std::min(x0, x), x1 = std::max(x1, x), y0 = std::min(y0, y), y1 = std::max(y1, y);
          }
      CHECK(area >= uint64_t(o.min_area));
      CHECK(a.area == double(area));
      // SA-1B's box convention: x0, y0, x1 - x0, y1 - y0 with inclusive x1, y1.
      CHECK(a.bbox ==
            std::array<double, 4>{double(x0), double(y0), double(x1 - x0), double(y1 - y0)});
      REQUIRE(a.point_coords.size() == 1);
      const int px = int(a.point_coords[0][0]), py = int(a.point_coords[0][1]);
      CHECK(m[i][size_t(py * o.width + px)] == 1);  // the prompt point is on the mask
      border += (x0 == 0 || y0 == 0 || x1 == o.width - 1 || y1 == o.height - 1);
      // Bounding-box area well above the pixel count: a hole, a concave shape or an occluder.
      holes_or_occluded += double(area) < 0.6 * (x1 - x0 + 1) * (y1 - y0 + 1);
      if (im.parent[i] >= 0) {
        const size_t p = size_t(im.parent[i]);
        CHECK(p < i);
        CHECK(im.level[p] < im.level[i]);
        size_t outside = 0;
        for (size_t k = 0; k < m[i].size(); ++k) outside += m[i][k] && !m[p][k];
        CHECK(outside == 0);  // a part's pixels belong to its whole
        CHECK(m[i] != m[p]);  // never a duplicate of its parent
        (im.level[i] == 1 ? parts : subparts)++;
      } else {
        CHECK(im.level[i] == 0);
      }
    }
    // Instances neither of which contains the other never share a pixel: a pixel shows one surface.
    auto ancestor = [&](size_t a, size_t b) {  // is a an ancestor of b (or b itself)?
      for (int q = int(b); q >= 0; q = im.parent[size_t(q)])
        if (size_t(q) == a) return true;
      return false;
    };
    size_t shared = 0;
    for (size_t i = 0; i < n; ++i)
      for (size_t j = i + 1; j < n; ++j) {
        if (ancestor(i, j) || ancestor(j, i)) continue;
        for (size_t k = 0; k < m[i].size(); ++k) shared += m[i][k] && m[j][k];
      }
    CHECK(shared == 0);
  }
  // The generator exercises what it promises: parts, sub-parts, border objects, holes/occlusion.
  CHECK(parts > 10);
  CHECK(subparts > 2);
  CHECK(border > 5);
  CHECK(holes_or_occluded > 5);
}

TEST_CASE("synth: written folder is byte-identical for the same seed and reads back exactly") {
  const auto dir = sam_test::temp_dir("synth_write");
  SynthOptions o = small(5);
  const auto s1 = synth_write((dir / "a").string(), o, 4, 1, true, 2);
  const auto s2 =
      synth_write((dir / "b").string(), o, 4, 1, true, 1);  // thread count does not matter
  CHECK(s1.images == 4);
  CHECK(s1.masks == s2.masks);
  for (const char* f : {"sa_1.jpg", "sa_1.json", "sa_1.png", "sa_4.jpg", "sa_4.json"})
    CHECK(slurp(dir / "a" / f) == slurp(dir / "b" / f));
  o.seed = 6;
  synth_write((dir / "c").string(), o, 1, 1, false, 1);
  CHECK(slurp(dir / "a" / "sa_1.json") != slurp(dir / "c" / "sa_1.json"));

  // Read back: masks equal the generator's, the PNG equals the generated pixels exactly.
  const auto ds = open_sa1b((dir / "a").string(), /*prefer_png=*/true);
  REQUIRE(ds->size() == 4);
  for (size_t i = 0; i < ds->size(); ++i) {
    const Sample s = ds->get(i);
    const SynthImage im = synth_image(small(5), int64_t(i) + 1);
    CHECK(s.id == "sa_" + std::to_string(i + 1));
    CHECK(s.image_id == int64_t(i) + 1);
    REQUIRE(s.annotations.size() == im.annotations.size());
    for (size_t k = 0; k < s.annotations.size(); ++k) {
      CHECK(s.annotations[k].rle().counts == im.annotations[k].rle().counts);
      CHECK(s.annotations[k].predicted_iou == 1.0);
      CHECK(s.annotations[k].crop_box == std::array<double, 4>{0, 0, 160, 120});
    }
    CHECK(cv::norm(s.load_image(), im.rgb, cv::NORM_INF) == 0);
  }
  fs::remove_all(dir);
}

TEST_CASE("synth: options are validated") {
  SynthOptions o;
  o.width = 8;
  CHECK_THROWS_WITH(synth_image(o, 1), Catch::Contains("image size"));
  o = SynthOptions{};
  o.min_objects = 5;
  o.max_objects = 2;
  CHECK_THROWS_WITH(synth_image(o, 1), Catch::Contains("min_objects"));
  o = SynthOptions{};
  o.size_min = 0.3;
  o.size_max = 0.2;
  CHECK_THROWS_WITH(synth_image(o, 1), Catch::Contains("size_min"));
  o = SynthOptions{};
  o.pattern_prob = 1.5;
  CHECK_THROWS_WITH(synth_image(o, 1), Catch::Contains("pattern_prob"));
  o = SynthOptions{};
  o.noise = -1;
  CHECK_THROWS_WITH(synth_image(o, 1), Catch::Contains("noise"));
}

TEST_CASE("synth: the difficulty options change what they name") {
  // One object, no parts, no ground: its mask's area follows size_min/size_max.
  SynthOptions one;
  one.min_objects = one.max_objects = 1;
  one.part_prob = 0;
  one.ground_prob = 0;
  one.hole_prob = 0;
  one.width = 320;
  one.height = 240;
  auto mean_area = [&](double lo, double hi) {
    SynthOptions o = one;
    o.size_min = lo;
    o.size_max = hi;
    double sum = 0;
    int n = 0;
    for (int i = 1; i <= 12; ++i) {
      const SynthImage im = synth_image(o, i);
      for (const auto& a : im.annotations) sum += a.area, ++n;
      // A radius of at most hi * 240 (blobs bulge by up to 42 %): the mask fits in that circle.
      for (const auto& a : im.annotations)
        CHECK(std::max(a.bbox[2], a.bbox[3]) <= 2 * 1.42 * hi * 240 + 3);
    }
    return n ? sum / n : 0.0;
  };
  const double small = mean_area(0.03, 0.06), large = mean_area(0.25, 0.3);
  CHECK(small > 0);
  CHECK(small < 0.25 * large);

  // No noise, no blur, no patterns and no objects: the image is the background alone, solid or a
  // gradient over the whole image, so neighbouring pixels differ by at most 2 levels per channel;
  // with the default noise (amplitude 1-6) they do not.
  auto max_step = [](const SynthOptions& o, int index) {
    const SynthImage im = synth_image(o, index);
    int worst = 0;
    for (int y = 0; y < o.height; ++y) {
      const uint8_t* p = im.rgb.ptr<uint8_t>(y);
      for (int i = 0; i + 3 < 3 * o.width; ++i) worst = std::max(worst, std::abs(p[i] - p[i + 3]));
    }
    return worst;
  };
  SynthOptions plain = one;
  plain.width = 160;
  plain.height = 120;
  plain.min_objects = plain.max_objects = 0;
  plain.noise = 0;
  plain.blur_prob = 0;
  plain.pattern_prob = 0;
  SynthOptions busy = plain;
  busy.noise = SynthOptions{}.noise;
  int plain_worst = 0, busy_worst = 0;
  for (int i = 1; i <= 6; ++i) {
    plain_worst = std::max(plain_worst, max_step(plain, i));
    busy_worst = std::max(busy_worst, max_step(busy, i));
  }
  CHECK(plain_worst <= 2);
  CHECK(busy_worst > 4);
}

TEST_CASE("synth: the part options bound the parts' number and size") {
  // One large object that always has parts, no holes, no ground; count each image's level-1
  // annotations and compare their area with their whole's.
  SynthOptions o = one_whole_with_parts(0.3);
  o.hole_prob = 0;
  o.min_area = 1;
  auto stats = [&](const SynthOptions& opt, int& max_parts, int& subparts, double& ratio_sum, int& n) {
    max_parts = subparts = n = 0;
    ratio_sum = 0;
    for (int i = 1; i <= 16; ++i) {
      const SynthImage im = synth_image(opt, i);
      int parts = 0;
      for (size_t a = 0; a < im.annotations.size(); ++a) {
        if (im.level[a] == 2) ++subparts;
        if (im.level[a] != 1 || im.parent[a] < 0) continue;
        ++parts;
        ratio_sum += im.annotations[a].area / im.annotations[static_cast<size_t>(im.parent[a])].area;
        ++n;
      }
      max_parts = std::max(max_parts, parts);
    }
  };
  int max_default, sub_default, n_default, max_one, sub_none, n_big;
  double r_default, r_big;
  stats(o, max_default, sub_default, r_default, n_default);
  SynthOptions one = o;
  one.max_parts = 1;
  one.subpart_prob = 0;
  int n_one;
  double r_one;
  stats(one, max_one, sub_none, r_one, n_one);
  CHECK(max_default > 1);
  CHECK(sub_default > 0);
  CHECK(max_one == 1);
  CHECK(sub_none == 0);
  SynthOptions big = one;
  big.part_size_min = big.part_size_max = 0.6;
  int max_big, sub_big;
  stats(big, max_big, sub_big, r_big, n_big);
  REQUIRE(n_one > 0);
  REQUIRE(n_big > 0);
  // Radius x4 (0.15-0.45 -> 0.6): the parts' share of their whole grows several times.
  CHECK(r_big / n_big > 2 * (r_one / n_one));
  SynthOptions bad = o;
  bad.max_parts = 0;
  CHECK_THROWS_WITH(synth_image(bad, 1), Catch::Contains("max_parts"));
  bad = o;
  bad.part_size_min = 0.5;
  bad.part_size_max = 0.4;
  CHECK_THROWS_WITH(synth_image(bad, 1), Catch::Contains("part_size_min"));
  bad = o;
  bad.subpart_prob = 2;
  CHECK_THROWS_WITH(synth_image(bad, 1), Catch::Contains("subpart_prob"));
}

TEST_CASE("synth: default 640x480 scenes have a useful number of masks") {
  SynthOptions o;
  int64_t masks = 0;
  for (int i = 1; i <= 4; ++i) masks += int64_t(synth_image(o, i).annotations.size());
  CHECK(masks / 4 >= 8);
  CHECK(masks / 4 <= 80);
}

TEST_CASE("synth: with kinds, every whole is a moved, turned and scaled copy of one of the kinds") {
  // One whole per image at a fixed radius, plain textures, no noise or blur: instances of one kind
  // have the same area (up to rasterisation), mean colour and number of annotated parts, in sets
  // made with different seeds; without kinds they do not; another kinds_seed gives other kinds.
  SynthOptions o = one_whole_with_parts(0.2);
  o.max_parts = 2;
  o.subpart_prob = 0;
  o.noise = 0;
  o.blur_prob = 0;
  o.pattern_prob = 0;
  o.outline_prob = 0;
  o.min_area = 4;
  struct Whole {
    double area = 0, r = 0, g = 0, b = 0;
    size_t annotations = 0;
  };
  auto wholes = [&](const SynthOptions& opt) {
    std::vector<Whole> out;
    for (uint64_t seed : {3u, 9u})
      for (int i = 1; i <= 8; ++i) {
        SynthOptions s = opt;
        s.seed = seed;
        const SynthImage im = synth_image(s, i);
        REQUIRE(!im.annotations.empty());
        const Annotation& a = im.annotations[0];
        REQUIRE(im.level[0] == 0);
        const bool inside = a.bbox[0] > 0 && a.bbox[1] > 0 && a.bbox[0] + a.bbox[2] < s.width - 1 &&
                            a.bbox[1] + a.bbox[3] < s.height - 1;
        if (!inside) continue;  // cut by the border
        const auto m = decode(a);
        Whole w;
        w.area = a.area;
        w.annotations = im.annotations.size();
        for (int y = 0; y < s.height; ++y)
          for (int x = 0; x < s.width; ++x)
            if (m[size_t(y) * s.width + x]) {
              const uint8_t* p = im.rgb.ptr<uint8_t>(y) + 3 * x;
              w.r += p[0], w.g += p[1], w.b += p[2];
            }
        w.r /= w.area, w.g /= w.area, w.b /= w.area;
        out.push_back(w);
      }
    return out;
  };
  auto spread = [](const std::vector<Whole>& ws, double Whole::*f) {
    double lo = 1e18, hi = -1e18;
    for (const Whole& w : ws) lo = std::min(lo, w.*f), hi = std::max(hi, w.*f);
    return std::pair{lo, hi};
  };
  SynthOptions one = o;
  one.kinds = 1;
  const auto same = wholes(one);
  REQUIRE(same.size() >= 6);
  const auto [alo, ahi] = spread(same, &Whole::area);
  CHECK(ahi <= 1.04 * alo);
  for (double Whole::*c : {&Whole::r, &Whole::g, &Whole::b}) {
    const auto [lo, hi] = spread(same, c);
    CHECK(hi - lo <= 4);
  }
  for (const Whole& w : same) CHECK(w.annotations == same[0].annotations);

  const auto free = wholes(o);  // kinds = 0: every whole drawn anew
  REQUIRE(free.size() >= 6);
  const auto [flo, fhi] = spread(free, &Whole::area);
  CHECK(fhi > 1.2 * flo);
  double colour_range = 0;
  for (double Whole::*c : {&Whole::r, &Whole::g, &Whole::b}) {
    const auto [lo, hi] = spread(free, c);
    colour_range = std::max(colour_range, hi - lo);
  }
  CHECK(colour_range > 40);

  SynthOptions other = one;
  other.kinds_seed = 5;
  const auto moved = wholes(other);
  REQUIRE(!moved.empty());
  CHECK(std::abs(moved[0].r - same[0].r) + std::abs(moved[0].g - same[0].g) +
            std::abs(moved[0].b - same[0].b) > 20);

  // Two kinds: both occur, and the wholes fall into two groups by area and colour.
  SynthOptions two = one;
  two.kinds = 2;
  std::set<long> groups;
  for (const Whole& w : wholes(two)) groups.insert(std::lround(w.r / 16) * 1000 + std::lround(w.g / 16));
  CHECK(groups.size() >= 2);
  CHECK(groups.size() <= 4);  // rounding may split a group in two

  SynthOptions bad = o;
  bad.kinds = -1;
  CHECK_THROWS_WITH(synth_image(bad, 1), Catch::Contains("kinds"));
}
