// The semi stage's box detector: target assignment on constructed boxes (hand-computed cells),
// training lowers its loss and finds the boxes it was trained on, save/load round trip.
#include <catch2/catch.hpp>

#include <filesystem>

#include "engine/box_detector.h"
#include "test_util.h"

using namespace sam::engine;

TEST_CASE("detector targets: centre cells, centre sampling, smaller box wins",
          "[engine][detector]") {
  // S = 64, G = 4: cells of 16 px, centres at 8, 24, 40, 56.
  SECTION("a box claims the cells whose centres are inside it and near its centre") {
    const auto t = detector_targets({{0, 0, 48, 32}}, 4, 64, 1.5);  // centre (24, 16)
    const auto o = t.objectness;
    // Columns with centres 8, 24, 40 (inside, within 24 px of x=24); rows 8, 24.
    for (int i = 0; i < 4; ++i)
      for (int j = 0; j < 4; ++j) CHECK(o[i][j].item<float>() == ((i < 2 && j < 3) ? 1.f : 0.f));
    // Cell (0, 1): centre (24, 8): distances 24, 8, 24, 24 -> log(d / 16).
    CHECK(t.ltrb[0][0][1].item<float>() == Approx(std::log(24.0 / 16)));
    CHECK(t.ltrb[1][0][1].item<float>() == Approx(std::log(8.0 / 16)));
    CHECK(t.ltrb[2][0][1].item<float>() == Approx(std::log(24.0 / 16)));
    CHECK(t.ltrb[3][0][1].item<float>() == Approx(std::log(24.0 / 16)));
  }
  SECTION("a box smaller than a cell still gets the cell holding its centre") {
    const auto t = detector_targets({{50, 50, 54, 54}}, 4, 64, 1.5);
    CHECK(t.objectness.sum().item<float>() == 1.f);
    CHECK(t.objectness[3][3].item<float>() == 1.f);
  }
  SECTION("where boxes compete, the smaller one wins the cell") {
    const auto t = detector_targets({{0, 0, 64, 64}, {16, 16, 32, 32}}, 4, 64, 1.5);
    // Cell (1, 1), centre (24, 24): the small box's distances are all 8.
    CHECK(t.ltrb[0][1][1].item<float>() == Approx(std::log(0.5)));
    CHECK(t.ltrb[2][1][1].item<float>() == Approx(std::log(0.5)));
    // Cell (2, 2) belongs to the big box: distances 40, 40, 24, 24.
    CHECK(t.ltrb[0][2][2].item<float>() == Approx(std::log(40.0 / 16)));
  }
}

TEST_CASE("detector training lowers the loss and finds the training boxes", "[engine][detector]") {
  torch::manual_seed(0);
  const int64_t D = 16, G = 8;
  const double S = 128;
  // Embeddings whose features mark the objects: channel 0 is 1 inside each box's cells.
  std::vector<torch::Tensor> embs;
  std::vector<std::vector<BoxXYXY>> boxes = {
      {{16, 16, 64, 64}}, {{64, 32, 112, 96}, {0, 96, 32, 128}}, {{32, 64, 96, 112}}};
  for (const auto& bs : boxes) {
    auto e = 0.1 * torch::randn({1, D, G, G});
    for (const auto& b : bs)
      e.index_put_({0, 0, torch::indexing::Slice(int64_t(b[1] / 16), int64_t(b[3] / 16)),
                    torch::indexing::Slice(int64_t(b[0] / 16), int64_t(b[2] / 16))},
                   1.0);
    embs.push_back(e);
  }
  DetectorOptions o;
  o.hidden = 32;
  o.epochs = 100;
  o.lr = 5e-3;
  o.score_thresh = 0.3;
  BoxDetector det(D, o.hidden);
  const auto losses = train_detector(det, embs, boxes, S, o);
  REQUIRE(losses.size() == 100);
  INFO("first loss " << losses.front() << ", last " << losses.back());
  CHECK(losses.back() < 0.3 * losses.front());

  auto iou = [](const BoxXYXY& a, const BoxXYXY& b) {
    const double iw = std::max(0.0, std::min(a[2], b[2]) - std::max(a[0], b[0]));
    const double ih = std::max(0.0, std::min(a[3], b[3]) - std::max(a[1], b[1]));
    const double u = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - iw * ih;
    return iw * ih / u;
  };
  for (size_t k = 0; k < embs.size(); ++k) {
    const auto dets = detect(det, embs[k], S, S, S, o);
    for (const auto& b : boxes[k]) {
      double best = 0;
      for (const auto& d : dets) best = std::max(best, iou(d.box, b));
      INFO("image " << k << " box " << b[0] << "," << b[1] << "," << b[2] << "," << b[3]);
      CHECK(best > 0.7);
    }
  }

  const auto dir = sam_test::temp_dir("engine_detector");
  save_detector(det, (dir / "det.pt").string());
  BoxDetector again(D, o.hidden);
  load_detector(again, (dir / "det.pt").string());
  torch::NoGradGuard ng;
  CHECK(torch::allclose(det->forward(embs[0]).first, again->forward(embs[0]).first));
  std::filesystem::remove_all(dir);
}
