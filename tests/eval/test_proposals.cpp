// Object proposals (eval/proposals.h) on the golden tiny model and image (../shared/golden/tiny),
// against expectations derived by hand from the generator's own masks: when the ground truth is
// the generator's masks themselves, each proposal's twin is a ground-truth mask at IoU 1, so
//  - with a budget at least the number of masks, every ground-truth mask is found at every IoU
//    threshold: average recall 1;
//  - with a budget of one, only the proposal of the highest predicted IoU is kept, which finds its
//    twin alone: average recall 1 / (number of masks);
// and a ground truth of masks the generator does not produce (the image's four quadrants, none
// of which it proposes exactly) gives a recall below 1 at the strict thresholds.
#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "data/dataset.h"
#include "data/image.h"
#include "data/mask/rle.h"
#include "sam/amg/amg_io.h"
#include "sam/amg/generator.h"
#include "eval/proposals.h"
#include "sam/config.h"
#include "sam/sam_model.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace sam;

namespace {

amg::AmgOptions small_generator() {
  amg::AmgOptions o;
  o.points_per_side = 8;
  o.points_per_batch = 64;
  o.pred_iou_thresh = 0;  // every candidate the model makes, ranked by its predicted IoU
  o.stability_score_thresh = 0.5;
  return o;
}

struct Golden {
  Sam model{nullptr};
  fs::path image;
};

const Golden& golden() {
  static const Golden g = [] {
    Golden x;
    const auto dir = sam_test::golden_tiny();
    x.model = Sam(model_config_resolve((dir / "config.json").string()));
    load_checkpoint(x.model, (dir / "sam.pth").string());
    x.image = dir / "image.jpg";
    return x;
  }();
  return g;
}

// An SA-1B folder of the golden image (its JPEG bytes, unchanged) with `doc` as its annotations.
fs::path sa1b_folder(const std::string& name, nlohmann::json doc) {
  const auto dir = sam_test::temp_dir(name);
  fs::copy_file(golden().image, dir / "sa_1.jpg", fs::copy_options::overwrite_existing);
  doc["image"]["file_name"] = "sa_1.jpg";
  sam_test::write_text(dir / "sa_1.json", doc.dump());
  return dir;
}

}  // namespace

TEST_CASE("proposals: the generator's own masks as ground truth give AR 1, and 1/N at a budget of one",
          "[eval][proposals]") {
  const cv::Mat rgb = data::image_read_rgb(golden().image.string());
  amg::MaskGenerator gen(golden().model, small_generator());
  const auto masks = gen.generate(torch::from_blob(rgb.data, {rgb.rows, rgb.cols, 3}, torch::kUInt8));
  const int64_t n = static_cast<int64_t>(masks.size());
  INFO("generator masks: " << n);
  REQUIRE(n >= 3);
  const auto dir = sa1b_folder("proposals_own", amg::amg_to_sa1b(masks, 1, rgb.cols, rgb.rows, "sa_1.jpg"));
  const auto ds = data::make_dataset("sa1b:" + dir.string());
  REQUIRE(ds->size() == 1);

  eval::ProposalsOptions o;
  o.amg = small_generator();
  o.max_dets = {1, static_cast<int>(n) + 10};
  const auto r = eval::evaluate_proposals(golden().model, *ds, o);
  CHECK(r.images == 1);
  CHECK(r.mean_proposals == Approx(static_cast<double>(n)));
  CHECK(r.ar(static_cast<int>(n) + 10, "all") == Approx(1.0));
  CHECK(r.ar(1, "all") == Approx(1.0 / static_cast<double>(n)));
  const auto j = r.to_json();
  CHECK(j["images"] == 1);
  CHECK(j["ar"].contains(std::to_string(n + 10)));
}

TEST_CASE("proposals: ground truth the generator does not propose exactly is recalled below 1",
          "[eval][proposals]") {
  const cv::Mat rgb = data::image_read_rgb(golden().image.string());
  const int h = rgb.rows, w = rgb.cols;
  // The four quadrants as masks (SA-1B JSON written by the same writer: AmgMask records).
  std::vector<amg::AmgMask> quads;
  for (int q = 0; q < 4; ++q) {
    std::vector<uint8_t> m(static_cast<size_t>(h) * w, 0);  // column-major, as COCO RLE
    const int x0 = (q % 2) * (w / 2), y0 = (q / 2) * (h / 2);
    for (int x = x0; x < x0 + w / 2; ++x)
      for (int y = y0; y < y0 + h / 2; ++y) m[static_cast<size_t>(x) * h + y] = 1;
    amg::AmgMask a;
    a.segmentation = mask::rle_encode(m.data(), h, w);
    a.area = static_cast<int64_t>(w / 2) * (h / 2);
    a.bbox = {double(x0), double(y0), double(w / 2 - 1), double(h / 2 - 1)};  // inclusive box
    a.predicted_iou = 1;
    a.stability_score = 1;
    a.crop_box = {0, 0, w, h};
    a.point_coords = {double(x0 + w / 4), double(y0 + h / 4)};
    quads.push_back(a);
  }
  const auto dir = sa1b_folder("proposals_quads", amg::amg_to_sa1b(quads, 1, w, h, "sa_1.jpg"));
  const auto ds = data::make_dataset("sa1b:" + dir.string());
  eval::ProposalsOptions o;
  o.amg = small_generator();
  o.max_dets = {1000};
  const auto r = eval::evaluate_proposals(golden().model, *ds, o);
  CHECK(r.ar(1000, "all") >= 0);
  CHECK(r.ar(1000, "all") < 1.0);
}
