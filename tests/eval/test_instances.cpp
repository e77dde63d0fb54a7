// Zero-shot instance segmentation's inputs (eval/instances.h): a detector's COCO results file
// read as given, and every malformed file refused with the file and the entry named.
#include <catch2/catch.hpp>

#include <filesystem>

#include "eval/instances.h"
#include "test_util.h"

using namespace sam::eval;
namespace fs = std::filesystem;
using Catch::Matchers::Contains;

TEST_CASE("read_detections: a COCO results list, other keys ignored, order kept") {
  const auto dir = sam_test::temp_dir("detections");
  const auto path = sam_test::write_text(dir / "dets.json", R"([
    {"image_id": 139, "category_id": 1, "bbox": [10.5, 20, 30.25, 40], "score": 0.9, "segmentation": []},
    {"image_id": 285, "category_id": 23, "bbox": [0, 0, 1, 1], "score": 0.05, "extra": "x"}
  ])");
  const auto d = read_detections(path);
  REQUIRE(d.size() == 2);
  CHECK(d[0].image_id == 139);
  CHECK(d[0].category_id == 1);
  CHECK(d[0].bbox == std::array<double, 4>{10.5, 20, 30.25, 40});
  CHECK(d[0].score == Approx(0.9));
  CHECK(d[1].image_id == 285);
  CHECK(d[1].category_id == 23);
  CHECK(d[1].score == Approx(0.05));
  CHECK(read_detections(sam_test::write_text(dir / "empty.json", "[]")).empty());
  fs::remove_all(dir);
}

TEST_CASE("read_detections: malformed files are refused naming the file and the entry") {
  const auto dir = sam_test::temp_dir("detections_bad");
  const auto missing = (dir / "none.json").string();
  CHECK_THROWS_WITH(read_detections(missing), Contains(missing) && Contains("cannot open"));
  const auto not_json = sam_test::write_text(dir / "a.json", "[{\"image_id\": 1,");
  CHECK_THROWS_WITH(read_detections(not_json), Contains(not_json) && Contains("not JSON"));
  const auto not_list = sam_test::write_text(dir / "b.json", R"({"image_id": 1})");
  CHECK_THROWS_WITH(read_detections(not_list), Contains("expected a list"));
  const auto no_score = sam_test::write_text(
      dir / "c.json",
      R"([{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 1},
          {"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1]}])");
  CHECK_THROWS_WITH(read_detections(no_score), Contains(no_score) && Contains("detection 1"));
  const auto short_box = sam_test::write_text(
      dir / "d.json", R"([{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1], "score": 1}])");
  CHECK_THROWS_WITH(read_detections(short_box), Contains("detection 0") && Contains("[x, y, w, h]"));
  const auto text_id = sam_test::write_text(
      dir / "e.json", R"([{"image_id": "139", "category_id": 1, "bbox": [0, 0, 1, 1], "score": 1}])");
  CHECK_THROWS_WITH(read_detections(text_id), Contains("detection 0"));
  fs::remove_all(dir);
}
