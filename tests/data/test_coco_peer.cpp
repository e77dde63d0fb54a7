// Our COCO RLE (data/mask/rle.h) against the real pycocotools, computed at test time on random
// cases (tests/peers/coco_rle.py): compressed strings byte for byte both ways, area, toBbox, merge,
// iou (crowd too), the uncompressed form, and polygon and box rasterisation (frPyObjects). The
// cases come from a fixed seed (SAM_PEER_SEED replaces it); a failure lists the differing cases
// with the seed and keeps the case folder.
#include <catch2/catch.hpp>

#include <filesystem>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "data/mask/rle.h"
#include "data/npy.h"
#include "peers.h"
#include "peers/peer_cases.h"

using namespace sam::mask;
using namespace sam_test::peer;

namespace {

std::vector<uint8_t> decoded(const Rle& r) {
  std::vector<uint8_t> m(static_cast<size_t>(r.h * r.w));
  if (!m.empty()) rle_decode(r, m.data());
  return m;
}

bool same_pixels(const Mask& m, const std::vector<uint8_t>& d) {
  if (d.size() != m.px.size()) return false;
  for (size_t i = 0; i < d.size(); ++i)
    if (d[i] != (m.px[i] ? 1 : 0)) return false;
  return true;
}

std::string bbox_str(const std::array<double, 4>& b) {
  return "[" + exact(b[0]) + "," + exact(b[1]) + "," + exact(b[2]) + "," + exact(b[3]) + "]";
}

std::string poly_str(const std::vector<double>& xy) {
  std::string s = "[";
  for (size_t i = 0; i < xy.size(); ++i) s += (i ? "," : "") + exact(xy[i]);
  return s + "]";
}

}  // namespace

TEST_CASE("RLE encode, decode, area, bbox, merge and iou equal pycocotools on random masks",
          "[rle][peers]") {
  SAM_REQUIRE_PEERS(py);
  const uint64_t seed = base_seed(20240611);
  INFO("seed " << seed << " (SAM_PEER_SEED=" << seed << " reproduces these cases)");
  const auto dir = sam_test::temp_dir("coco_peer_rle");
  Rng rng(seed);

  // Fixed odd sizes, empty ones, then random sizes.
  std::vector<std::pair<int64_t, int64_t>> sizes = {
      {1, 1},    {1, 2},    {2, 1},   {1, 37},    {37, 1}, {7, 5}, {5, 7},
      {37, 101}, {101, 37}, {64, 64}, {480, 641}, {0, 5},  {5, 0}, {0, 0}};
  for (int i = 0; i < 8; ++i) sizes.push_back({rng.range(1, 90), rng.range(1, 90)});

  struct Entry {
    Mask mask;
    Rle ours;
    std::string what;
  };
  std::vector<Entry> masks;
  nlohmann::json in = {{"masks", nlohmann::json::array()},
                       {"pairs", nlohmann::json::array()},
                       {"groups", nlohmann::json::array()},
                       {"polygons", nlohmann::json::array()}};
  std::vector<std::vector<size_t>> by_size;
  for (const auto& [h, w] : sizes) {
    std::vector<size_t> members;
    for (const auto& kind : mask_kinds()) {
      if (h * w == 0 && kind != "zeros") continue;
      Entry e;
      e.mask = random_mask(rng, h, w, kind);
      e.ours = encode(e.mask);
      e.what = "mask #" + std::to_string(masks.size()) + " " + std::to_string(h) + "x" +
               std::to_string(w) + " " + kind;
      const std::string file = "m" + std::to_string(masks.size()) + ".npy";
      auto t = torch::from_blob(e.mask.px.data(), {h, w}, torch::kUInt8).clone();
      sam::npy::write((dir / file).string(), t);
      in["masks"].push_back({{"file", file},
                             {"h", h},
                             {"w", w},
                             {"ours", rle_to_string(e.ours)},
                             {"ours_counts", rle_to_json(e.ours, false)["counts"]}});
      members.push_back(masks.size());
      masks.push_back(std::move(e));
    }
    by_size.push_back(members);
  }
  // Pairs: every two masks of the same (non-empty) size, about a third also in the other order
  // (iou and crowd iou are not symmetric).
  std::vector<std::array<size_t, 2>> pairs;
  std::vector<std::vector<size_t>> group_dt, group_gt;
  std::vector<std::vector<int>> group_crowd;
  for (const auto& members : by_size) {
    if (members.size() < 2) continue;
    for (size_t a = 0; a < members.size(); ++a)
      for (size_t b = 0; b < members.size(); ++b)
        if (a != b && (a < b || rng.chance(0.3))) pairs.push_back({members[a], members[b]});
    // Two groups per size: a dt x gt iou matrix with random crowd flags, and merges of all.
    for (int g = 0; g < 2; ++g) {
      auto shuffled = members;
      rng.shuffle(shuffled);
      const size_t nd =
          static_cast<size_t>(rng.range(1, static_cast<int64_t>(shuffled.size()) - 1));
      const size_t ng =
          static_cast<size_t>(rng.range(1, static_cast<int64_t>(shuffled.size() - nd)));
      std::vector<size_t> dt(shuffled.begin(), shuffled.begin() + nd),
          gt(shuffled.begin() + nd, shuffled.begin() + nd + ng);
      std::vector<int> crowd;
      for (size_t j = 0; j < ng; ++j) crowd.push_back(rng.chance(0.4) ? 1 : 0);
      group_dt.push_back(dt), group_gt.push_back(gt), group_crowd.push_back(crowd);
      in["groups"].push_back({{"dt", dt}, {"gt", gt}, {"crowd", crowd}});
    }
  }
  for (const auto& p : pairs) in["pairs"].push_back({p[0], p[1]});

  const auto out = run_peer(py, "coco_rle.py", dir, "rle", in);
  REQUIRE(out["masks"].size() == masks.size());
  REQUIRE(out["pairs"].size() == pairs.size());
  REQUIRE(out["groups"].size() == group_dt.size());

  Mismatches mm;
  for (size_t i = 0; i < masks.size(); ++i) {
    const auto& e = masks[i];
    const auto& o = out["masks"][i];
    const std::string theirs = o["counts"];
    const std::string ours = rle_to_string(e.ours);
    mm.expect(ours == theirs, e.what + ": encode '" + ours.substr(0, 80) + "' vs pycocotools '" +
                                  theirs.substr(0, 80) + "'");
    // Our decoding of pycocotools' string is the mask; pycocotools decodes ours to the mask.
    bool decodes = false;
    try {
      decodes = same_pixels(e.mask, decoded(rle_from_string(theirs, e.mask.h, e.mask.w)));
    } catch (const std::exception& ex) {
      mm.expect(false, e.what + ": rle_from_string of pycocotools' string throws " + ex.what());
    }
    mm.expect(decodes, e.what + ": our decoding of pycocotools' string differs from the mask");
    mm.expect(o["decodes_ours"].get<bool>(),
              e.what + ": pycocotools' decoding of our string differs");
    mm.expect(o["from_uncompressed"].get<std::string>() == theirs,
              e.what + ": frPyObjects of our uncompressed counts gives '" +
                  o["from_uncompressed"].get<std::string>().substr(0, 80) + "'");
    mm.expect(rle_area(e.ours) == o["area"].get<uint64_t>(),
              e.what + ": area " + std::to_string(rle_area(e.ours)) + " vs " + o["area"].dump());
    const auto bb = rle_bbox_coco(e.ours);
    const auto tb = o["bbox"].get<std::array<double, 4>>();
    mm.expect(bb == tb, e.what + ": toBbox " + bbox_str(bb) + " vs " + bbox_str(tb));
  }
  for (size_t p = 0; p < pairs.size(); ++p) {
    const auto& a = masks[pairs[p][0]];
    const auto& b = masks[pairs[p][1]];
    const auto& o = out["pairs"][p];
    const std::string what = "pair (" + a.what + ", " + b.what + ")";
    mm.expect(rle_to_string(rle_merge({a.ours, b.ours}, false)) == o["union"].get<std::string>(),
              what + ": union");
    mm.expect(rle_to_string(rle_merge({a.ours, b.ours}, true)) == o["inter"].get<std::string>(),
              what + ": intersection");
    const double iou = rle_iou(a.ours, b.ours, false), iou_c = rle_iou(a.ours, b.ours, true);
    mm.expect(iou == o["iou"].get<double>(),
              what + ": iou " + exact(iou) + " vs " + o["iou"].dump());
    mm.expect(iou_c == o["iou_crowd"].get<double>(),
              what + ": crowd iou " + exact(iou_c) + " vs " + o["iou_crowd"].dump());
  }
  size_t iou_entries = 0, partial = 0;
  for (size_t p = 0; p < pairs.size(); ++p) {
    const double v = out["pairs"][p]["iou"].get<double>();
    partial += v > 0 && v < 1;
  }
  for (size_t g = 0; g < group_dt.size(); ++g) {
    const auto& o = out["groups"][g];
    std::vector<Rle> all;
    for (size_t d = 0; d < group_dt[g].size(); ++d) {
      all.push_back(masks[group_dt[g][d]].ours);
      for (size_t j = 0; j < group_gt[g].size(); ++j) {
        const double v =
            rle_iou(masks[group_dt[g][d]].ours, masks[group_gt[g][j]].ours, group_crowd[g][j] != 0);
        const double t = o["iou"][d][j];
        ++iou_entries;
        mm.expect(v == t, "group " + std::to_string(g) + " iou[" + std::to_string(d) + "][" +
                              std::to_string(j) + "] (" + masks[group_dt[g][d]].what + " vs " +
                              masks[group_gt[g][j]].what + ", crowd " +
                              std::to_string(group_crowd[g][j]) + "): " + exact(v) + " vs " +
                              exact(t));
      }
    }
    for (size_t j : group_gt[g]) all.push_back(masks[j].ours);
    mm.expect(rle_to_string(rle_merge(all, false)) == o["union"].get<std::string>(),
              "group " + std::to_string(g) + ": union of " + std::to_string(all.size()));
    mm.expect(rle_to_string(rle_merge(all, true)) == o["inter"].get<std::string>(),
              "group " + std::to_string(g) + ": intersection of " + std::to_string(all.size()));
  }
  std::cout << "coco peer RLE: " << masks.size() << " masks, " << pairs.size() << " pairs ("
            << partial << " with 0 < iou < 1), " << group_dt.size() << " groups (" << iou_entries
            << " iou entries), " << mm.checks << " comparisons" << std::endl;
  mm.check_none(dir);
}

TEST_CASE("polygon and box rasterisation equal pycocotools frPyObjects on random shapes",
          "[rle][peers]") {
  SAM_REQUIRE_PEERS(py);
  const uint64_t seed = base_seed(20240612);
  INFO("seed " << seed << " (SAM_PEER_SEED=" << seed << " reproduces these cases)");
  const auto dir = sam_test::temp_dir("coco_peer_poly");
  Rng rng(seed);

  std::vector<std::pair<int64_t, int64_t>> sizes = {{1, 1}, {1, 7},    {7, 1},    {7, 5},
                                                    {5, 7}, {37, 101}, {101, 37}, {480, 641}};
  for (int i = 0; i < 8; ++i) sizes.push_back({rng.range(1, 120), rng.range(1, 120)});

  struct Object {
    int64_t h, w;
    std::vector<std::vector<double>> polys;
    std::vector<std::array<double, 4>> boxes;
    std::vector<std::string> kinds;
  };
  std::vector<Object> objects;
  nlohmann::json in = {{"masks", nlohmann::json::array()},
                       {"pairs", nlohmann::json::array()},
                       {"groups", nlohmann::json::array()},
                       {"polygons", nlohmann::json::array()}};
  for (const auto& [h, w] : sizes) {
    // Each kind alone three times, then objects of 2-3 polygons of mixed kinds (merged as annToRLE
    // does).
    const auto& kinds = polygon_kinds();
    for (size_t o = 0; o < 3 * kinds.size() + 6; ++o) {
      Object ob{h, w, {}, {}, {}};
      const size_t n = o < 3 * kinds.size() ? 1 : static_cast<size_t>(rng.range(2, 3));
      for (size_t q = 0; q < n; ++q) {
        const std::string& kind =
            o < 3 * kinds.size() ? kinds[o % kinds.size()] : kinds[rng.below(kinds.size())];
        ob.polys.push_back(random_polygon(rng, h, w, kind));
        ob.kinds.push_back(kind);
      }
      for (int b = 0, nb = static_cast<int>(rng.range(0, 3)); b < nb; ++b)
        ob.boxes.push_back(random_box(rng, h, w));
      in["polygons"].push_back({{"h", h}, {"w", w}, {"polys", ob.polys}, {"boxes", ob.boxes}});
      objects.push_back(std::move(ob));
    }
  }

  const auto out = run_peer(py, "coco_rle.py", dir, "poly", in);
  REQUIRE(out["polygons"].size() == objects.size());
  Mismatches mm;
  size_t npolys = 0, nboxes = 0, nonempty = 0;
  for (size_t i = 0; i < objects.size(); ++i) {
    const auto& ob = objects[i];
    const auto& o = out["polygons"][i];
    const std::string what =
        "object #" + std::to_string(i) + " in " + std::to_string(ob.h) + "x" + std::to_string(ob.w);
    REQUIRE(o["polys"].size() == ob.polys.size());
    std::vector<Rle> parts;
    for (size_t q = 0; q < ob.polys.size(); ++q, ++npolys) {
      parts.push_back(rle_from_polygon(ob.polys[q], ob.h, ob.w));
      nonempty += rle_area(parts.back()) > 0;
      const std::string ours = rle_to_string(parts.back()), theirs = o["polys"][q];
      mm.expect(ours == theirs, what + " polygon " + std::to_string(q) + " (" + ob.kinds[q] + ") " +
                                    poly_str(ob.polys[q]) + ": '" + ours.substr(0, 60) +
                                    "' vs pycocotools '" + theirs.substr(0, 60) + "'");
    }
    mm.expect(rle_to_string(polygons_rle(ob.polys, ob.h, ob.w)) == o["merged"].get<std::string>(),
              what + ": merged polygons");
    REQUIRE(o["boxes"].size() == ob.boxes.size());
    for (size_t b = 0; b < ob.boxes.size(); ++b, ++nboxes) {
      const auto& x = ob.boxes[b];
      const std::string ours = rle_to_string(rle_from_bbox(x[0], x[1], x[2], x[3], ob.h, ob.w));
      mm.expect(ours == o["boxes"][b].get<std::string>(),
                what + " box " + bbox_str(x) + ": '" + ours + "' vs pycocotools '" +
                    o["boxes"][b].get<std::string>() + "'");
    }
  }
  std::cout << "coco peer polygons: " << objects.size() << " objects, " << npolys << " polygons ("
            << nonempty << " not empty), " << nboxes << " boxes, " << mm.checks << " comparisons"
            << std::endl;
  mm.check_none(dir);
}
