// The automatic mask generator against Meta's reference on the golden tiny model
// (../shared/golden/tiny/amg.json: one crop layer, hole/island cleanup at 20 px): at least 98% of
// the reference masks have a counterpart with IoU >= 0.99, the count is within 2% (one mask for
// small counts), and matched masks carry the same prompt, crop, box and scores. Also the paper's
// area filter, explicit grids and the records' JSON forms.
#include <catch2/catch.hpp>

#include <cmath>
#include <fstream>

#include <nlohmann/json.hpp>

#include "amg_match.h"
#include "data/image.h"
#include "sam/amg/amg_io.h"
#include "sam/amg/generator.h"
#include "sam/sam_model.h"
#include "test_util.h"

using namespace sam::amg;

namespace {

struct Fixture {
  sam::Sam model{nullptr};
  torch::Tensor image;
  nlohmann::json amg;
};

Fixture& fixture() {
  static Fixture f = [] {
    Fixture x;
    const auto dir = sam_test::golden_tiny();
    auto cfg = sam::model_config_resolve((dir / "config.json").string());
    x.model = sam::Sam(cfg);
    sam::load_checkpoint(x.model, (dir / "sam.pth").string());
    cv::Mat rgb = sam::data::image_read_rgb((dir / "image.jpg").string());
    x.image = torch::from_blob(rgb.data, {rgb.rows, rgb.cols, 3}, torch::kUInt8).clone();
    std::ifstream in(dir / "amg.json");
    x.amg = nlohmann::json::parse(in);
    return x;
  }();
  return f;
}

std::vector<AmgMask> generate(const AmgOptions& o, AmgTimings* t = nullptr) {
  sam::Predictor predictor(fixture().model);
  MaskGenerator gen(predictor, o);
  auto masks = gen.generate(fixture().image);
  if (t) *t = gen.last_timings();
  return masks;
}

}  // namespace

TEST_CASE("generator reproduces the golden amg.json", "[amg][golden]") {
  auto& f = fixture();
  const AmgOptions opts = amg_options_from_json(f.amg["params"], "amg.json params");
  CHECK(opts.crop_n_layers == 1);
  CHECK(opts.min_mask_region_area == 20);
  AmgTimings t;
  const auto ours = generate(opts, &t);
  std::vector<AmgMask> refs;
  for (const auto& r : f.amg["masks"]) refs.push_back(amg_mask_from_json(r));
  const size_t n_ref = refs.size();
  REQUIRE(n_ref > 20);

  // The generator rule, one-to-one, same prompt, crop and scores (tests/amg_match.h).
  sam_test::check_amg_match(ours, refs);

  // Every record is self-consistent.
  for (const auto& m : ours) {
    CHECK(m.segmentation.h == 480);
    CHECK(m.segmentation.w == 640);
    CHECK(m.area == static_cast<int64_t>(sam::mask::rle_area(m.segmentation)));
    const auto b = sam::mask::rle_bbox_inclusive(m.segmentation);
    CHECK(m.bbox == std::array<double, 4>{double(b[0]), double(b[1]), double(b[2] - b[0]),
                                          double(b[3] - b[1])});
  }
  CHECK(t.crops == 5);
  CHECK(t.prompts == 256 + 4 * 64);
  CHECK(t.kept_final == static_cast<int64_t>(ours.size()));
  CHECK(t.encoder_s > 0);
  CHECK(t.decoder_s > 0);
}

TEST_CASE("generator: the paper's area filter and explicit point grids", "[amg]") {
  AmgOptions o;
  o.points_per_side = 8;
  o.points_per_batch = 20;
  o.pred_iou_thresh = 0.0;
  o.stability_score_thresh = 0.5;
  const auto plain = generate(o);
  REQUIRE(plain.size() > 3);
  int64_t largest = 0;
  for (const auto& m : plain) largest = std::max(largest, m.area);
  const double frac = static_cast<double>(largest) / (480.0 * 640.0);
  REQUIRE(largest > 100);

  // Masks covering >= frac of the image are dropped (before NMS), everything else remains.
  AmgOptions f = o;
  f.max_area_frac = frac * (1 - 1e-9);
  const auto filtered = generate(f);
  for (const auto& m : filtered)
    CHECK(static_cast<double>(m.area) < f.max_area_frac * 480.0 * 640.0);
  CHECK(filtered.size() >= plain.size() - 1);

  // The same grid given explicitly gives the same masks.
  AmgOptions g = o;
  g.points_per_side = 0;
  g.point_grids = {build_point_grid(8)};
  const auto explicit_grid = generate(g);
  REQUIRE(explicit_grid.size() == plain.size());
  for (size_t i = 0; i < plain.size(); ++i)
    CHECK(explicit_grid[i].segmentation.counts == plain[i].segmentation.counts);

  AmgOptions bad = o;
  bad.point_grids = {build_point_grid(4)};
  CHECK_THROWS_AS(bad.validate(), std::invalid_argument);
  bad = o;
  bad.max_area_frac = 1.5;
  CHECK_THROWS_AS(bad.validate(), std::invalid_argument);
}

TEST_CASE("records: JSON forms round-trip and options JSON is strict", "[amg]") {
  AmgMask m;
  const uint8_t px[6] = {0, 1, 1, 0, 1, 0};
  m.segmentation = sam::mask::rle_encode(px, 2, 3);
  m.area = 3;
  m.bbox = {1, 0, 1, 1};
  m.predicted_iou = 0.75;
  m.point_coords = {1.5, 0.25};
  m.stability_score = 0.5;
  m.crop_box = {0, 0, 3, 2};
  auto coco = amg_mask_to_json(m, true);
  CHECK(coco["segmentation"]["counts"] == "231");  // SAM_SPEC 9: [2,3,1] -> "231"
  auto raw = amg_mask_to_json(m, false);
  CHECK(raw["segmentation"]["counts"] == nlohmann::json({2, 3, 1}));
  for (const auto& j : {coco, raw}) {
    auto back = amg_mask_from_json(j);
    CHECK(back.segmentation.counts == m.segmentation.counts);
    CHECK(back.bbox == m.bbox);
    CHECK(back.point_coords == m.point_coords);
    CHECK(back.crop_box == m.crop_box);
  }
  auto sa1b = amg_to_sa1b({m, m}, 7, 3, 2, "x.jpg");
  CHECK(sa1b["image"]["image_id"] == 7);
  CHECK(sa1b["image"]["width"] == 3);
  CHECK(sa1b["annotations"].size() == 2);
  CHECK(sa1b["annotations"][1]["id"] == 1);
  CHECK(amg_metadata_csv({m}) ==
        "id,area,bbox_x0,bbox_y0,bbox_w,bbox_h,point_input_x,point_input_y,predicted_iou,"
        "stability_score,crop_box_x0,crop_box_y0,crop_box_w,crop_box_h\n"
        "0,3,1.0,0.0,1.0,1.0,1.5,0.25,0.75,0.5,0,0,3,2");
  CHECK_THROWS_AS(amg_mask_from_json(nlohmann::json{{"area", 1}}), std::invalid_argument);

  auto o = amg_options_from_json({{"points_per_side", 16}, {"output_mode", "coco_rle"}}, "t");
  CHECK(o.points_per_side == 16);
  CHECK(o.pred_iou_thresh == 0.88);
  CHECK_THROWS_WITH(amg_options_from_json({{"points_per_sid", 16}}, "t"),
                    Catch::Matchers::Contains("points_per_sid"));
  // A fraction for the grid side is an error naming the file and the key once; null means
  // "explicit grids" as in the reference.
  try {
    amg_options_from_json({{"points_per_side", 16.5}}, "cfg.json");
    FAIL("no error");
  } catch (const std::invalid_argument& e) {
    CHECK(std::string(e.what()) == "cfg.json: generator.points_per_side: must be an integer or null, got 16.5");
  }
  CHECK(amg_options_from_json({{"points_per_side", nullptr}, {"point_grids", {{{0.5, 0.5}}}}}, "t")
            .points_per_side == 0);
  auto round = amg_options_from_json(amg_options_to_json(o), "t");
  CHECK(round.points_per_side == 16);
  CHECK(round.crop_overlap_ratio == o.crop_overlap_ratio);
}
