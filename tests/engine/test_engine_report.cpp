// The data engine's stage summary by model round and its one-line summary, on hand-made image
// records whose figures are computed here by hand: the accepted share, clicks and seconds per
// annotated mask, masks per image and the share of the work done by the model, per retraining
// round of the model that processed each image.
#include <catch2/catch.hpp>

#include "engine/stage_report.h"

using namespace sam::engine;

namespace {

MaskRecord manual(bool accepted, int clicks, double seconds) {
  MaskRecord m;
  m.source = "manual";
  m.accepted = accepted;
  m.brushed = !accepted;
  m.clicks = clicks;
  m.seconds = seconds;
  return m;
}

MaskRecord by_model(const std::string& source) {
  MaskRecord m;
  m.source = source;
  return m;
}

}  // namespace

TEST_CASE("stage summary per model round: accepted share, effort, masks per image, the model's share",
          "[engine][report]") {
  ImageRecord a, b, c, skipped;
  a.id = "a";
  a.model_round = 0;
  a.gt_objects = 4;
  a.masks = {manual(true, 3, 12), manual(false, 9, 36)};
  b.id = "b";
  b.model_round = 1;
  b.gt_objects = 5;
  b.gt_prefilled = 1;
  b.masks = {manual(true, 2, 9), manual(true, 1, 6), by_model("prefill")};
  c.id = "c";
  c.model_round = 1;
  c.gt_objects = 5;
  c.gt_prefilled = 2;
  c.masks = {by_model("prefill"), by_model("prefill"), by_model("auto")};
  skipped.id = "d";
  skipped.skipped = true;
  skipped.problem = "corrupt_image";
  const auto s = stage_summary("semi", {a, b, skipped, c}, {}, 0.9);
  CHECK(s["images_done"] == 3);
  CHECK(s["annotated_masks"] == 4);
  CHECK(s["accepted_share"].get<double>() == Approx(0.75));
  const auto& r = s["per_model_round"];
  REQUIRE(r.size() == 2);
  CHECK(r[0]["model_round"] == 0);
  CHECK(r[0]["images"] == 1);
  CHECK(r[0]["masks_per_image"].get<double>() == Approx(2.0));
  CHECK(r[0]["annotated_masks"] == 2);
  CHECK(r[0]["accepted"] == 1);
  CHECK(r[0]["accepted_share"].get<double>() == Approx(0.5));
  CHECK(r[0]["brushed"] == 1);
  CHECK(r[0]["seconds_per_mask"].get<double>() == Approx(24.0));
  CHECK(r[0]["clicks_per_mask"].get<double>() == Approx(6.0));
  CHECK(r[0]["model_share"].get<double>() == Approx(0.0));
  CHECK(r[1]["model_round"] == 1);
  CHECK(r[1]["images"] == 2);
  CHECK(r[1]["masks_per_image"].get<double>() == Approx(3.0));
  CHECK(r[1]["annotated_masks"] == 2);
  CHECK(r[1]["accepted_share"].get<double>() == Approx(1.0));
  CHECK(r[1]["seconds_per_mask"].get<double>() == Approx(7.5));
  CHECK(r[1]["clicks_per_mask"].get<double>() == Approx(1.5));
  CHECK(r[1]["model_masks"] == 4);
  CHECK(r[1]["model_share"].get<double>() == Approx(4.0 / 6.0));
  CHECK(r[1]["gt_prefilled_share"].get<double>() == Approx(0.3));

  const std::string line = stage_summary_line(s);
  CHECK_THAT(line, Catch::StartsWith("semi: 3 image(s) (1 skipped), 8 masks (2.7 per image), 3 pre-filled"));
  CHECK_THAT(line, Catch::Contains("annotated 4: 75% accepted at the target IoU, 3.8 clicks and 15.8 s per mask"));
  CHECK_THAT(line, Catch::Contains("(model round 0 -> 1: accepted 50% -> 100%, 24.0 -> 7.5 s per mask)"));
  CHECK_THAT(line, Catch::Contains("21% pre-filled"));  // 3 of 14 ground-truth objects

  // The page draws the rounds (Figure 5-style plots and the table).
  const std::string html = stage_report_html(s, {a, b, skipped, c}, {});
  CHECK_THAT(html, Catch::Contains("share of the work by retraining round"));
  CHECK_THAT(html, Catch::Contains("By model round"));
}

TEST_CASE("stage summary line of a stage without annotation or ground truth", "[engine][report]") {
  ImageRecord a;
  a.id = "a";
  a.masks = {by_model("auto"), by_model("auto")};
  const auto s = stage_summary("auto", {a}, {}, 0.9);
  CHECK(stage_summary_line(s) == "auto: 1 image(s), 2 masks (2.0 per image)");
}
