// A training run's curves (eval/report/training_curves.h) from a hand-written metrics.jsonl: the
// loss and IoU plots are written, a line cut short by a kill is skipped, the validation series
// appear only when the run validated, and a run folder without metrics is named in the error.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include "eval/report/training_curves.h"
#include "test_text.h"
#include "test_util.h"

using Catch::Matchers::Contains;
namespace fs = std::filesystem;

TEST_CASE("training curves: loss and IoU plots from metrics.jsonl") {
  const auto dir = sam_test::temp_dir("curves");
  {
    std::ofstream m(dir / "metrics.jsonl");
    m << R"({"event":"train","step":1,"loss":2.5,"iou_round":[0.2,0.3,0.35]})" << "\n"
      << R"({"event":"train","step":2,"loss":1.5,"iou_round":[0.4,0.5,0.55]})" << "\n"
      << R"({"event":"train","step":3,"lo)" << "\n";  // cut short by a kill
  }
  sam::eval::write_training_curves(dir.string());
  const std::string loss = sam_test::read_text(dir / "loss.svg"), iou = sam_test::read_text(dir / "iou.svg");
  CHECK(loss.rfind("<svg", 0) == 0);
  CHECK_THAT(loss, Contains("Training loss"));
  CHECK_THAT(iou, Contains("IoU after round 1"));
  CHECK_THAT(iou, Contains("IoU after the last round"));
  CHECK_THAT(iou, !Contains("validation"));
  {
    std::ofstream m(dir / "metrics.jsonl", std::ios::app);
    m << R"({"event":"val","step":2,"miou_1click":0.61,"ema_miou_1click":0.63})" << "\n";
  }
  sam::eval::write_training_curves(dir.string());
  const std::string iou2 = sam_test::read_text(dir / "iou.svg");
  CHECK_THAT(iou2, Contains("validation 1-click mIoU"));
  CHECK_THAT(iou2, Contains("validation, weight average"));
  for (const auto& e : fs::directory_iterator(dir)) CHECK(e.path().filename().string().find(".tmp") == std::string::npos);
  fs::remove_all(dir);
  CHECK_THROWS_WITH(sam::eval::write_training_curves(dir.string()), Contains("metrics.jsonl"));
}
