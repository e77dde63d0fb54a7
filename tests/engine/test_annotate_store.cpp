// The annotation database: round trips, validation, durability settings, deletes and the exports
// (COCO, SA-1B, ZIP), checked against hand-computed masks, boxes and areas.
#include <catch2/catch.hpp>

#include <sqlite3.h>

#include <fstream>
#include <regex>

#include "engine/annotate/export.h"
#include "engine/annotate/store.h"
#include "test_util.h"

using sam::annotate::Annotation;
using sam::annotate::AnnotationStore;

namespace {

// A row-major h x w mask with the rectangle [x0, x1) x [y0, y1) set.
sam::mask::Rle rect_rle(int64_t h, int64_t w, int64_t x0, int64_t y0, int64_t x1, int64_t y1) {
  std::vector<uint8_t> m(static_cast<size_t>(h * w), 0);
  for (int64_t y = y0; y < y1; ++y)
    for (int64_t x = x0; x < x1; ++x) m[y * w + x] = 1;
  return sam::mask::rle_encode(m.data(), h, w);
}

Annotation make(const std::string& image, sam::mask::Rle rle) {
  Annotation a;
  a.image = image;
  a.rle = std::move(rle);
  a.clicks = {{"points", {{3.5, 2.0, 1}, {1.0, 1.0, 0}}}, {"box", nullptr}};
  a.seconds = 4.25;
  a.predicted_iou = 0.875;
  a.user = "ann";
  return a;
}

std::string sql_one(const std::string& db, const std::string& sql) {
  sqlite3* h = nullptr;
  REQUIRE(sqlite3_open_v2(db.c_str(), &h, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK);
  sqlite3_stmt* s = nullptr;
  REQUIRE(sqlite3_prepare_v2(h, sql.c_str(), -1, &s, nullptr) == SQLITE_OK);
  std::string out;
  if (sqlite3_step(s) == SQLITE_ROW) out = reinterpret_cast<const char*>(sqlite3_column_text(s, 0));
  sqlite3_finalize(s);
  sqlite3_close(h);
  return out;
}

}  // namespace

TEST_CASE("store: an accepted mask reads back with its area, box, clicks and provenance",
          "[annotate][store]") {
  const auto dir = sam_test::temp_dir("annotate_store_rt");
  const std::string db = (dir / "a.sqlite").string();
  int64_t id = 0;
  {
    AnnotationStore store(db);
    const int64_t img = store.register_image("b.jpg", 6, 8);
    CHECK(store.register_image("b.jpg", 6, 8) == img);  // idempotent
    // 3 x 2 rectangle at x 2..4, y 1..2: area 6, COCO bbox [2, 1, 3, 2].
    id = store.add(make("b.jpg", rect_rle(6, 8, 2, 1, 5, 3)));
    CHECK(id > 0);
  }
  AnnotationStore store(db, /*read_only=*/true);  // reopened: it was written durably
  auto images = store.list_images();
  REQUIRE(images.size() == 1);
  CHECK(images[0].file_name == "b.jpg");
  CHECK(images[0].width == 8);
  CHECK(images[0].height == 6);
  CHECK(images[0].num_annotations == 1);
  auto anns = store.annotations_for("b.jpg");
  REQUIRE(anns.size() == 1);
  const auto& a = anns[0];
  CHECK(a.id == id);
  CHECK(a.area == 6);
  CHECK(a.bbox == std::array<double, 4>{2, 1, 3, 2});
  CHECK(a.rle.counts == rect_rle(6, 8, 2, 1, 5, 3).counts);
  CHECK(a.clicks["points"][0][0].get<double>() == 3.5);
  CHECK(a.clicks["points"][1][2].get<int>() == 0);
  CHECK(a.seconds == 4.25);
  CHECK(a.predicted_iou == 0.875);
  CHECK(a.user == "ann");
  CHECK(std::regex_match(a.created_at, std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)")));
  CHECK(store.annotations_for("unknown.jpg").empty());
  CHECK(store.integrity_check() == "ok");
}

TEST_CASE("store: WAL journal, schema, and bad masks refused", "[annotate][store]") {
  const auto dir = sam_test::temp_dir("annotate_store_bad");
  const std::string db = (dir / "a.sqlite").string();
  AnnotationStore store(db);
  store.register_image("a.png", 4, 5);
  CHECK(sql_one(db, "PRAGMA journal_mode") == "wal");
  CHECK(sql_one(db, "SELECT value FROM meta WHERE key='schema_version'") == "1");

  CHECK_THROWS_WITH(store.add(make("nope.png", rect_rle(4, 5, 0, 0, 1, 1))),
                    Catch::Contains("unknown image"));
  CHECK_THROWS_WITH(store.add(make("a.png", rect_rle(5, 4, 0, 0, 1, 1))),
                    Catch::Contains("4x5") && Catch::Contains("5x4"));
  CHECK_THROWS_WITH(store.add(make("a.png", rect_rle(4, 5, 0, 0, 0, 0))), Catch::Contains("empty"));
  auto nan = make("a.png", rect_rle(4, 5, 0, 0, 1, 1));
  nan.seconds = std::nan("");
  CHECK_THROWS_WITH(store.add(nan), Catch::Contains("seconds"));
  auto broken = make("a.png", rect_rle(4, 5, 0, 0, 1, 1));
  broken.rle.counts.push_back(3);  // counts no longer sum to h*w
  CHECK_THROWS(store.add(broken));
  CHECK_THROWS_WITH(store.register_image("a.png", 4, 6), Catch::Contains("registered as 5x4"));
  CHECK(store.list_images()[0].num_annotations == 0);  // nothing half-written

  // Delete: once true, then false.
  const int64_t id = store.add(make("a.png", rect_rle(4, 5, 1, 1, 2, 3)));
  CHECK(store.annotation(id).has_value());
  CHECK(store.remove(id));
  CHECK_FALSE(store.remove(id));
  CHECK_FALSE(store.annotation(id).has_value());

  // A file that is not one of ours.
  { std::ofstream(dir / "junk.sqlite") << "not a database at all, just text"; }
  CHECK_THROWS_WITH(AnnotationStore((dir / "junk.sqlite").string()),
                    Catch::Contains("junk.sqlite"));
  CHECK_THROWS_WITH(AnnotationStore((dir / "missing.sqlite").string(), true),
                    Catch::Contains("missing.sqlite"));
}

TEST_CASE("store: a reader sees what a writer committed while both are open", "[annotate][store]") {
  const auto dir = sam_test::temp_dir("annotate_store_readers");
  const std::string db = (dir / "a.sqlite").string();
  AnnotationStore writer(db);
  writer.register_image("x.jpg", 3, 3);
  AnnotationStore reader(db, true);
  CHECK(reader.annotations_for("x.jpg").empty());
  writer.add(make("x.jpg", rect_rle(3, 3, 0, 0, 3, 3)));
  REQUIRE(reader.annotations_for("x.jpg").size() == 1);
  CHECK(reader.annotations_for("x.jpg")[0].area == 9);
}

TEST_CASE("export: COCO instances and SA-1B documents", "[annotate][export]") {
  const auto dir = sam_test::temp_dir("annotate_export");
  AnnotationStore store((dir / "a.sqlite").string());
  store.register_image("one.jpg", 6, 8);
  store.register_image("two.jpg", 4, 4);
  const int64_t a1 = store.add(make("one.jpg", rect_rle(6, 8, 2, 1, 5, 3)));
  const int64_t a2 = store.add(make("one.jpg", rect_rle(6, 8, 0, 0, 1, 6)));

  std::vector<std::string> asked;
  auto coco = sam::annotate::export_coco(store, {"one.jpg", "three.jpg", "two.jpg", "corrupt.jpg"},
                                         [&](const std::string& n) {
                                           asked.push_back(n);
                                           if (n == "corrupt.jpg") throw std::runtime_error("bad");
                                           return std::pair<int64_t, int64_t>{10, 20};
                                         });
  // Only the images the DB never saw are sized; one that cannot be is left out.
  CHECK(asked == std::vector<std::string>{"corrupt.jpg", "three.jpg"});
  REQUIRE(coco["images"].size() == 3);
  CHECK(coco["images"][0]["file_name"] == "one.jpg");
  CHECK(coco["images"][0]["width"] == 8);
  CHECK(coco["images"][1]["file_name"] == "three.jpg");
  CHECK(coco["images"][1]["height"] == 10);
  CHECK(coco["images"][1]["id"] == 3);  // after the largest known id
  CHECK(coco["categories"][0]["id"] == 1);
  REQUIRE(coco["annotations"].size() == 2);
  const auto& c0 = coco["annotations"][0];
  CHECK(c0["id"] == a1);
  CHECK(c0["image_id"] == coco["images"][0]["id"]);
  CHECK(c0["area"] == 6);
  CHECK(c0["bbox"] == nlohmann::json({2.0, 1.0, 3.0, 2.0}));
  CHECK(c0["iscrowd"] == 0);
  CHECK(c0["segmentation"]["size"] == nlohmann::json({6, 8}));
  auto back = sam::mask::rle_from_json(c0["segmentation"]);
  CHECK(back.counts == rect_rle(6, 8, 2, 1, 5, 3).counts);
  CHECK(coco["annotations"][1]["bbox"] == nlohmann::json({0.0, 0.0, 1.0, 6.0}));
  CHECK(coco["annotations"][1]["id"] == a2);

  auto sa = sam::annotate::export_sa1b_image(store, "one.jpg");
  CHECK(sa["image"]["file_name"] == "one.jpg");
  CHECK(sa["image"]["width"] == 8);
  REQUIRE(sa["annotations"].size() == 2);
  CHECK(sa["annotations"][0]["point_coords"] == nlohmann::json({{3.5, 2.0}}));  // positives only
  CHECK(sa["annotations"][0]["crop_box"] == nlohmann::json({0, 0, 8, 6}));
  CHECK(sa["annotations"][0]["predicted_iou"] == 0.875);
  CHECK(sam::annotate::sa1b_json_name("sa_223750.jpg") == "sa_223750.json");
  CHECK_THROWS(sam::annotate::export_sa1b_image(store, "nope.jpg"));

  const auto out = dir / "sa1b";
  CHECK(sam::annotate::export_sa1b_folder(store, out.string()) == 1);  // two.jpg has no masks
  std::ifstream f(out / "one.json");
  CHECK(nlohmann::json::parse(f) == sa);
}

TEST_CASE("export: the ZIP archive passes Python's zipfile CRC check, byte for byte",
          "[annotate][export]") {
  const auto dir = sam_test::temp_dir("annotate_zip");
  std::string big(100000, 'x');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>((i * 7919) % 251);
  const std::string zip =
      sam::annotate::zip_store({{"a.json", "{\"k\": 1}\n"}, {"b.bin", big}, {"empty.txt", ""}});
  { std::ofstream(dir / "t.zip", std::ios::binary) << zip; }
  std::string out;
  REQUIRE(sam_test::run_command("cd " + dir.string() + " && python3 -m zipfile -t t.zip", &out) ==
          0);
  INFO(out);
  REQUIRE(sam_test::run_command("cd " + dir.string() + " && python3 -m zipfile -e t.zip x", &out) ==
          0);
  REQUIRE(sam_test::run_command("cd " + dir.string() +
                                    " && python3 -c \"import zipfile; "
                                    "z = zipfile.ZipFile('t.zip'); print(z.namelist())\"",
                                &out) == 0);
  CHECK_THAT(out, Catch::Contains("['a.json', 'b.bin', 'empty.txt']"));
  std::ifstream b(dir / "x" / "b.bin", std::ios::binary);
  std::string got((std::istreambuf_iterator<char>(b)), std::istreambuf_iterator<char>());
  CHECK(got == big);
  CHECK_THROWS(sam::annotate::zip_store({{"../evil", "x"}}));
  CHECK_THROWS(sam::annotate::zip_store({{"/abs", "x"}}));
}
