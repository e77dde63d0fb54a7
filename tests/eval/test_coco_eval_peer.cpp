// Our COCOeval (eval/coco_eval.h) against the real pycocotools COCOeval, computed at test time on
// random small data sets (tests/peers/coco_eval.py): a few images of odd sizes, several
// categories, ground truth as polygons, compressed and uncompressed RLE, crowd regions, stored
// areas that differ from the mask's and areas on the range limits, detections near and far from
// the ground truth with tied scores, empty masks, more than 100 detections in an image, images
// without ground truth and cases without any detection. For iouType segm and bbox, useCats = 0
// (maxDets 10/100/1000) and image / category subsets, the 12 numbers of summarize() must agree to
// 1e-10 (np.mean sums pairwise, we in order: they differ by ~1e-14) and the precision and recall
// arrays exactly.
//
// Both sides read the same results lists, ours with coco_load_results (loadRes): mask results
// (some carrying a detector's "bbox", which makes loadRes take every area as w * h) and box
// results. The ground truth's "bbox" is a box of its own near the mask: fractional, integer,
// partly outside the image, of zero width or height, crowd ones included; box detections are
// jittered, cut (IoUs on the thresholds), shifted or degenerate copies of it and false boxes
// anywhere, some of exactly 32 x 32 or 96 x 96. Some runs cross the kinds (iouType bbox on mask
// results: toBbox's boxes, pixel-count areas; segm on box results: rasterised box polygons,
// w * h areas). The cases come from a fixed seed (SAM_PEER_SEED replaces it); a failure lists
// the differing runs and keeps the case folder.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "data/mask/rle.h"
#include "data/npy.h"
#include "eval/coco_eval.h"
#include "peers.h"
#include "peers/peer_cases.h"

using namespace sam::eval;
using namespace sam::mask;
using namespace sam_test::peer;
using nlohmann::json;

namespace {

struct Image {
  int64_t id, h, w;
};

// One evaluation of a case, on both sides.
struct Run {
  std::string what;
  CocoIouType iou_type = CocoIouType::segm;
  bool box_results = false;  // which results list: the box results or the mask results
  std::vector<int64_t> img_ids, cat_ids;
  CocoEvalParams params;
  json peer;  // the run's entry of IN.json
};

struct Case {
  json dataset;
  std::vector<Image> images;
  std::map<int64_t, std::array<int64_t, 2>> image_hw;
  std::vector<int64_t> cat_ids;
  std::vector<CocoGt> gts;  // mask and box
  json res_segm = json::array(), res_bbox = json::array();
  std::vector<Run> runs;
  size_t crowd = 0, polygon_gts = 0;
};

Mask decode_mask(const Rle& r) {
  Mask m(r.h, r.w);
  if (!m.px.empty()) rle_decode(r, m.px.data());
  return m;
}

Mask shifted(const Mask& m, int64_t dx, int64_t dy) {
  Mask s(m.h, m.w);
  for (int64_t y = 0; y < m.h; ++y)
    for (int64_t x = 0; x < m.w; ++x) {
      const int64_t sx = x - dx, sy = y - dy;
      if (sx >= 0 && sy >= 0 && sx < m.w && sy < m.h)
        s.at(y, x) = m.px[static_cast<size_t>(sy * m.w + sx)];
    }
  return s;
}

Mask rect_mask(int64_t h, int64_t w, const std::array<int64_t, 4>& b) {
  Mask m(h, w);
  fill_rect(m, b[0], b[1], b[0] + b[2], b[1] + b[3]);
  return m;
}

// A value as a case writes its boxes: integer, on a quarter-pixel grid, or any double.
double styled(double v, int style) {
  if (style == 0) return std::round(v);
  if (style == 1) return std::round(v * 4) / 4;
  return v;
}

// The ground truth's own box near its mask's box `bb` (COCO's, integer) in an h x w image.
CocoBox gt_box(Rng& rng, const std::array<double, 4>& bb, int64_t h, int64_t w) {
  if (rng.chance(0.3)) return bb;
  const int style = static_cast<int>(rng.below(3));
  CocoBox b{bb[0] + rng.uniform(-3, 3), bb[1] + rng.uniform(-3, 3),
            std::max(0.0, bb[2] * rng.uniform(0.7, 1.3) + rng.uniform(-1, 1)),
            std::max(0.0, bb[3] * rng.uniform(0.7, 1.3) + rng.uniform(-1, 1))};
  const double pick = rng.uniform();
  if (pick < 0.08)  // across the left / top border
    b[0] = -rng.uniform(0, 0.6) * b[2], b[1] = -rng.uniform(0, 0.6) * b[3];
  else if (pick < 0.16)  // across the right / bottom border
    b[0] = static_cast<double>(w) - rng.uniform(0.2, 1) * b[2],
    b[1] = static_cast<double>(h) - rng.uniform(0.2, 1) * b[3];
  else if (pick < 0.21)
    b[2] = 0;
  else if (pick < 0.26)
    b[3] = 0;
  for (auto& v : b) v = styled(v, style);
  return b;
}

// A box detection near the ground-truth box g.
CocoBox near_box(Rng& rng, const CocoBox& g) {
  const double pick = rng.uniform();
  if (pick < 0.1) return g;  // IoU 1
  if (pick < 0.3) {          // cut to a fraction of its width or height: IoU on a threshold
    const double f = 0.5 + 0.05 * static_cast<double>(rng.range(0, 9));
    CocoBox b = g;
    b[rng.chance(0.5) ? 2 : 3] *= f;
    return b;
  }
  if (pick < 0.34) return {g[0] + rng.uniform(0, g[2]), g[1], 0, g[3]};            // zero width
  if (pick < 0.36) return {g[0] + g[2], g[1], -g[2] * rng.uniform(0.2, 1), g[3]};  // negative
  const int style = static_cast<int>(rng.below(3));
  const double j = rng.log_uniform(0.05, 0.5);
  CocoBox b{g[0] + rng.uniform(-j, j) * (g[2] + 2), g[1] + rng.uniform(-j, j) * (g[3] + 2),
            std::max(0.0, g[2] * rng.uniform(1 - j, 1 + j)),
            std::max(0.0, g[3] * rng.uniform(1 - j, 1 + j))};
  for (auto& v : b) v = styled(v, style);
  return b;
}

// A false box anywhere in (or across the border of) an h x w image.
CocoBox false_box(Rng& rng, int64_t h, int64_t w) {
  const double pick = rng.uniform();
  const double W = static_cast<double>(w), H = static_cast<double>(h);
  if (pick < 0.15 && w >= 32 && h >= 32) {  // area exactly 32^2 (or 96^2): on a range limit
    const double s = w >= 96 && h >= 96 && rng.chance(0.5) ? 96 : 32;
    return {std::floor(rng.uniform(0, W - s)), std::floor(rng.uniform(0, H - s)), s, s};
  }
  return random_box(rng, h, w);
}

Case make_case(Rng& rng, bool many, bool no_box_results, bool segm_with_boxes) {
  Case c;
  // Images: distinct random ids, odd sizes up to large-object range.
  const int64_t nimg = rng.range(1, 5);
  std::vector<int64_t> ids;
  while (static_cast<int64_t>(ids.size()) < nimg) {
    const int64_t id = rng.range(1, 500);
    if (std::find(ids.begin(), ids.end(), id) == ids.end()) ids.push_back(id);
  }
  c.dataset = {
      {"images", json::array()}, {"annotations", json::array()}, {"categories", json::array()}};
  for (int64_t id : ids) {
    const Image im{id, rng.range(9, 220), rng.range(9, 220)};
    c.images.push_back(im);
    c.image_hw[im.id] = {im.h, im.w};
    c.dataset["images"].push_back({{"id", im.id}, {"height", im.h}, {"width", im.w}});
  }
  const int64_t ncat = rng.range(1, 4);
  while (static_cast<int64_t>(c.cat_ids.size()) < ncat) {
    const int64_t id = rng.range(1, 90);
    if (std::find(c.cat_ids.begin(), c.cat_ids.end(), id) == c.cat_ids.end())
      c.cat_ids.push_back(id);
  }
  for (int64_t id : c.cat_ids)
    c.dataset["categories"].push_back({{"id", id}, {"name", "c" + std::to_string(id)}});
  auto any_cat = [&] { return c.cat_ids[rng.below(c.cat_ids.size())]; };
  const bool ties = rng.chance(0.4);  // scores on a 0.05 grid: many equal scores
  auto score = [&] {
    return ties ? static_cast<double>(rng.range(1, 20)) * 0.05 : rng.uniform(0.001, 1.0);
  };

  // Ground truth, then detections, gathered per object and shuffled across images.
  struct Gt {
    json ann;
    CocoGt gt;
  };
  std::vector<Gt> gts;
  std::vector<json> dts_segm, dts_bbox;
  auto add_segm_dt = [&](const Image& im, int64_t cat, const Mask& m) {
    const Rle rle = encode(m);
    json r = {{"image_id", im.id},
              {"category_id", cat},
              {"segmentation", rle_to_json(rle)},
              {"score", score()}};
    if (segm_with_boxes) {  // a detector's box next to its mask (Detectron's results)
      auto b = rle_bbox_coco(rle);
      if (rng.chance(0.5))
        for (auto& v : b) v += rng.uniform(-2, 2);
      r["bbox"] = b;
    }
    dts_segm.push_back(std::move(r));
  };
  auto add_bbox_dt = [&](const Image& im, int64_t cat, const CocoBox& b) {
    dts_bbox.push_back(
        {{"image_id", im.id}, {"category_id", cat}, {"bbox", b}, {"score", score()}});
  };
  const std::vector<std::string> gt_polygon_kinds = {"star",    "star_int", "star_tenths",
                                                     "tangled", "border",   "tiny"};
  for (const auto& im : c.images) {
    const int64_t ngt = rng.range(0, 6);
    for (int64_t g = 0; g < ngt; ++g) {
      Gt o;
      const int64_t cat = any_cat();
      const double kind = rng.uniform();
      Rle rle;
      json seg;
      bool crowd = false;
      bool exact_area = false;
      if (kind < 0.35) {  // polygons
        std::vector<std::vector<double>> polys;
        for (int64_t q = 0, n = rng.range(1, 2); q < n; ++q)
          polys.push_back(random_polygon(rng, im.h, im.w,
                                         gt_polygon_kinds[rng.below(gt_polygon_kinds.size())]));
        rle = polygons_rle(polys, im.h, im.w);
        seg = polys;
        ++c.polygon_gts;
      } else if (kind < 0.55) {  // rectangles, some of exactly 32 x 32 or 96 x 96 pixels
        int64_t bw = rng.range(1, im.w), bh = rng.range(1, im.h);
        const double pick = rng.uniform();
        if (pick < 0.3 && im.w >= 32 && im.h >= 32)
          bw = bh = 32, exact_area = true;
        else if (pick < 0.45 && im.w >= 96 && im.h >= 96)
          bw = bh = 96, exact_area = true;
        const int64_t x = rng.range(0, im.w - bw), y = rng.range(0, im.h - bh);
        rle = encode(rect_mask(im.h, im.w, {x, y, bw, bh}));
        seg = rle_to_json(rle, true);
      } else {  // blobs: compressed RLE, or a crowd region as uncompressed RLE
        crowd = kind > 0.82;
        rle = encode(random_mask(rng, im.h, im.w, rng.chance(0.7) ? "blobs" : "rects"));
        seg = rle_to_json(rle, !crowd);
        c.crowd += crowd;
      }
      double area = static_cast<double>(rle_area(rle));
      if (!exact_area && rng.chance(0.25))
        area *= rng.uniform(0.7, 1.3);  // a stored area of its own
      const CocoBox box = gt_box(rng, rle_bbox_coco(rle), im.h, im.w);
      o.gt = {im.id, cat, rle, area, crowd, box};
      o.ann = {{"image_id", im.id}, {"category_id", cat}, {"segmentation", seg},
               {"area", area},      {"bbox", box},        {"iscrowd", crowd ? 1 : 0}};
      // Detections near this object: shifted, grown or cut copies, some of another category.
      const Mask m = decode_mask(rle);
      for (int64_t d = 0, n = rng.chance(0.8) ? rng.range(1, 3) : 0; d < n; ++d) {
        const int64_t s = rng.range(0, 4);
        Mask dm = shifted(m, rng.range(-s, s), rng.range(-s, s));
        if (rng.chance(0.3))
          fill_ellipse(dm, rng.uniform(0, 1) * im.w, rng.uniform(0, 1) * im.h,
                       rng.log_uniform(1, 40), rng.log_uniform(1, 40));
        if (rng.chance(0.3)) {
          const int64_t x = rng.range(0, im.w - 1), y = rng.range(0, im.h - 1);
          fill_rect(dm, x, y, x + rng.range(1, im.w), y + rng.range(1, im.h), 0);
        }
        add_segm_dt(im, rng.chance(0.85) ? cat : any_cat(), dm);
        add_bbox_dt(im, rng.chance(0.85) ? cat : any_cat(), near_box(rng, box));
      }
      gts.push_back(std::move(o));
    }
    // False positives, empty masks and zero-size boxes among them.
    for (int64_t f = 0, n = rng.range(0, 4); f < n; ++f) {
      const double kind = rng.uniform();
      add_segm_dt(im, any_cat(),
                  kind < 0.1 ? Mask(im.h, im.w)
                             : random_mask(rng, im.h, im.w, kind < 0.6 ? "blobs" : "rects"));
      add_bbox_dt(im, any_cat(), false_box(rng, im.h, im.w));
    }
  }
  if (many) {  // more than 100 detections of one category in one image: the maxDet cut
    const auto& im = c.images[rng.below(c.images.size())];
    const int64_t cat = any_cat();
    for (int64_t d = 0, n = rng.range(101, 130); d < n; ++d) {
      const int64_t x = rng.range(0, im.w - 1), y = rng.range(0, im.h - 1);
      const int64_t bw = std::min(im.w - x, rng.range(1, 40)),
                    bh = std::min(im.h - y, rng.range(1, 40));
      add_segm_dt(im, cat, rect_mask(im.h, im.w, {x, y, bw, bh}));
      add_bbox_dt(im, cat,
                  {x + rng.uniform(-1, 1), y + rng.uniform(-1, 1), double(bw), double(bh)});
    }
  }
  // loadRes needs at least one mask result (the peer reads an empty box list by hand).
  if (dts_segm.empty())
    add_segm_dt(c.images[0], any_cat(), random_mask(rng, c.images[0].h, c.images[0].w, "blobs"));
  if (no_box_results) dts_bbox.clear();

  rng.shuffle(gts);
  rng.shuffle(dts_segm);
  rng.shuffle(dts_bbox);
  int64_t next_id = 1;
  for (auto& o : gts) {
    o.ann["id"] = next_id++;
    c.dataset["annotations"].push_back(o.ann);
    c.gts.push_back(o.gt);
  }
  for (auto& d : dts_segm) c.res_segm.push_back(d);
  for (auto& d : dts_bbox) c.res_bbox.push_back(d);
  return c;
}

void add_runs(Rng& rng, Case& c, size_t index) {
  std::vector<int64_t> all_imgs;
  for (const auto& im : c.images) all_imgs.push_back(im.id);
  auto run = [&](CocoIouType type, bool box_results, const std::string& what) {
    Run r;
    r.iou_type = type;
    r.box_results = box_results;
    r.params.iou_type = type;
    r.what = std::string(type == CocoIouType::bbox ? "bbox" : "segm") +
             (box_results == (type == CocoIouType::bbox) ? ""
              : box_results                              ? " on box results"
                                                         : " on mask results") +
             what;
    r.img_ids = all_imgs;
    r.cat_ids = c.cat_ids;
    return r;
  };
  c.runs.push_back(run(CocoIouType::segm, false, ""));
  c.runs.push_back(run(CocoIouType::bbox, true, ""));
  if (index % 3 == 0)  // proposals: useCats = 0, maxDets 10 / 100 / 1000
    for (auto type : {CocoIouType::segm, CocoIouType::bbox}) {
      Run r = run(type, type == CocoIouType::bbox, " useCats=0");
      r.params = CocoEvalParams::proposals();
      r.params.iou_type = type;
      r.peer = {{"use_cats", 0}, {"max_dets", {10, 100, 1000}}};
      c.runs.push_back(r);
    }
  if (index % 4 == 1 && (c.images.size() > 1 || c.cat_ids.size() > 1)) {  // subsets
    for (auto type : {CocoIouType::segm, CocoIouType::bbox}) {
      Run r = run(type, type == CocoIouType::bbox, " on subsets");
      r.img_ids.clear();
      r.cat_ids.clear();
      for (int64_t id : all_imgs)
        if (all_imgs.size() == 1 || rng.chance(0.6)) r.img_ids.push_back(id);
      if (r.img_ids.empty()) r.img_ids.push_back(all_imgs.back());
      for (int64_t id : c.cat_ids)
        if (c.cat_ids.size() == 1 || rng.chance(0.6)) r.cat_ids.push_back(id);
      if (r.cat_ids.empty()) r.cat_ids.push_back(c.cat_ids.front());
      r.peer = {{"img_ids", r.img_ids}, {"cat_ids", r.cat_ids}};
      c.runs.push_back(r);
    }
  }
  if (index % 5 == 2) {  // crossed: boxes of the mask results, masks of the box results
    c.runs.push_back(run(CocoIouType::bbox, false, ""));
    c.runs.push_back(run(CocoIouType::segm, true, ""));
  }
  for (size_t k = 0; k < c.runs.size(); ++k) {
    auto& r = c.runs[k];
    r.peer["iou_type"] = r.iou_type == CocoIouType::bbox ? "bbox" : "segm";
    r.peer["results"] = r.box_results ? c.res_bbox : c.res_segm;
    r.peer["precision_file"] = "p" + std::to_string(index) + "_" + std::to_string(k) + ".npy";
  }
}

}  // namespace

TEST_CASE("COCOeval stats, precision and recall equal pycocotools on random data sets",
          "[eval][coco][peers]") {
  SAM_REQUIRE_PEERS(py);
  const uint64_t seed = base_seed(20240613);
  INFO("seed " << seed << " (SAM_PEER_SEED=" << seed << " reproduces these cases)");
  const auto dir = sam_test::temp_dir("coco_peer_eval");
  Rng rng(seed);

  constexpr size_t kCases = 60;
  std::vector<Case> cases;
  json in = {{"cases", json::array()}};
  for (size_t i = 0; i < kCases; ++i) {
    cases.push_back(make_case(rng, i % 6 == 5, i % 10 == 7, i % 7 == 3));
    add_runs(rng, cases.back(), i);
    json runs = json::array();
    for (const auto& r : cases.back().runs) runs.push_back(r.peer);
    in["cases"].push_back({{"dataset", cases.back().dataset}, {"runs", runs}});
  }
  const auto out = run_peer(py, "coco_eval.py", dir, "eval", in);
  REQUIRE(out["cases"].size() == cases.size());

  Mismatches mm;
  size_t nruns = 0, nbbox = 0, ngt = 0, ndt = 0, crowd = 0, polys = 0, defined = 0;
  double max_stat_diff = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    const auto& c = cases[i];
    ngt += c.gts.size();
    ndt += c.res_segm.size() + c.res_bbox.size();
    const auto dts_segm = coco_load_results(c.res_segm, c.image_hw),
               dts_bbox = coco_load_results(c.res_bbox, c.image_hw);
    crowd += c.crowd;
    polys += c.polygon_gts;
    REQUIRE(out["cases"][i]["runs"].size() == c.runs.size());
    for (size_t k = 0; k < c.runs.size(); ++k, ++nruns) {
      const auto& r = c.runs[k];
      const auto& o = out["cases"][i]["runs"][k];
      const std::string what =
          "case " + std::to_string(i) + " run " + std::to_string(k) + " (" + r.what + ")";
      nbbox += r.iou_type == CocoIouType::bbox;
      const auto res =
          coco_evaluate(r.img_ids, r.cat_ids, c.gts, r.box_results ? dts_bbox : dts_segm, r.params);
      const auto stats = res.stats();
      const auto theirs = o["stats"].get<std::vector<double>>();
      REQUIRE(theirs.size() == 12);
      for (size_t s = 0; s < 12; ++s) {
        const double d = std::fabs(stats[s] - theirs[s]);
        max_stat_diff = std::max(max_stat_diff, d);
        defined += theirs[s] > -1;
        mm.expect(d <= 1e-10, what + ": stats[" + std::to_string(s) + "] " + exact(stats[s]) +
                                  " vs " + exact(theirs[s]));
      }
      const auto shape = o["shape"].get<std::vector<size_t>>();
      mm.expect(shape == std::vector<size_t>{res.T, res.R, res.K, res.A, res.M},
                what + ": array shape");
      if (shape != std::vector<size_t>{res.T, res.R, res.K, res.A, res.M}) continue;
      const auto recall = o["recall"].get<std::vector<double>>();
      size_t bad = 0;
      for (size_t q = 0; q < recall.size(); ++q) bad += recall[q] != res.recall[q];
      mm.expect(bad == 0, what + ": " + std::to_string(bad) + " of " +
                              std::to_string(recall.size()) + " recall entries differ");
      const auto prec = sam::npy::read((dir / r.peer["precision_file"].get<std::string>()).string())
                            .to(torch::kFloat64)
                            .contiguous();
      REQUIRE(static_cast<size_t>(prec.numel()) == res.precision.size());
      const double* p = prec.data_ptr<double>();
      bad = 0;
      for (size_t q = 0; q < res.precision.size(); ++q) bad += p[q] != res.precision[q];
      mm.expect(bad == 0, what + ": " + std::to_string(bad) + " of " +
                              std::to_string(res.precision.size()) + " precision entries differ");
    }
  }
  std::cout << "coco peer eval: " << cases.size() << " data sets, " << nruns << " runs (" << nbbox
            << " bbox), " << ngt << " ground truths (" << crowd << " crowd, " << polys
            << " polygons), " << ndt << " detections, " << defined
            << " defined stats, max |stat difference| " << max_stat_diff << ", " << mm.checks
            << " comparisons" << std::endl;
  mm.check_none(dir);
}
