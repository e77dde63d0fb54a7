// sam_annotate through its HTTP API, as a browser or script would use it: the page, the images and
// every path escape we could think of, clicks -> masks, accept/read back/delete, exports (page and
// command line), the token and same-origin guards, a stream of garbage that must not crash it, and
// the browser test of tests/e2e in headless Chromium.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fcntl.h>
#include <chrono>
#include <fstream>
#include <random>
#include <regex>
#include <thread>
#include <tuple>

#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>

#include "data/mask/rle.h"
#include "engine/annotate/http.h"
#include "annotate_server.h"
#include "test_util.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// sam_annotate running in a child process on a free loopback port.
struct Server {
  pid_t pid = -1;
  int port = 0;
  fs::path log;

  Server(const fs::path& dir, const std::vector<std::string>& extra = {}) {
    log = dir / ("server_" + std::to_string(std::rand()) + ".log");
    std::vector<std::string> args = {"--user", "tester"};
    args.insert(args.end(), extra.begin(), extra.end());
    std::tie(pid, port) = sam_test::start_annotate_server(dir, log.filename().string(), args);
  }
  ~Server() {
    if (pid <= 0) return;
    kill(pid, SIGTERM);
    for (int i = 0; i < 100; ++i) {
      if (waitpid(pid, nullptr, WNOHANG) == pid) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
  }
  bool alive() const { return pid > 0 && waitpid(pid, nullptr, WNOHANG) == 0; }
  httplib::Client client() const {
    httplib::Client c("127.0.0.1", port);
    c.set_read_timeout(120);
    return c;
  }
};

// Sends `request` byte for byte (no client-side normalisation) and returns the whole answer.
std::string raw_http(int port, const std::string& request, bool half_close = false) {
  const int s = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(connect(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  timeval tv{30, 0};
  setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  size_t sent = 0;
  while (sent < request.size()) {
    const ssize_t n = send(s, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) break;
    sent += static_cast<size_t>(n);
  }
  // For garbage: no more request bytes, so a server waiting for them sees the end now (a
  // well-formed request is answered before that).
  if (half_close) shutdown(s, SHUT_WR);
  std::string out;
  char buf[65536];
  for (ssize_t n; (n = recv(s, buf, sizeof buf, 0)) > 0;) out.append(buf, static_cast<size_t>(n));
  close(s);
  return out;
}

int status_of(const std::string& response) {
  std::smatch m;
  if (std::regex_search(response, m, std::regex(R"(^HTTP/1\.[01] (\d{3}))")))
    return std::stoi(m[1]);
  return 0;
}

// The test folder: the golden photo, a small PNG, a name that needs URL encoding, a file that is
// not an image, and an escaping symlink; a secret beside the folder.
fs::path make_folder(const std::string& name) {
  const auto dir = sam_test::temp_dir(name);
  fs::create_directories(dir / "images");
  fs::copy_file(sam_test::golden_tiny() / "image.jpg", dir / "images" / "image.jpg");
  cv::Mat small(30, 40, CV_8UC3, cv::Scalar(20, 120, 220));
  small(cv::Rect(10, 8, 20, 14)).setTo(cv::Scalar(250, 250, 250));
  cv::imwrite((dir / "images" / "small.png").string(), small);
  cv::imwrite((dir / "images" / "name with space#1.png").string(), small);
  std::ofstream(dir / "images" / "corrupt.jpg") << "this is not a JPEG";
  std::ofstream(dir / "secret.jpg") << "TOP-SECRET-CONTENT";
  fs::create_symlink(dir / "secret.jpg", dir / "images" / "escape.jpg");
  return dir;
}

json post(httplib::Client& c, const std::string& path, const json& body, int* status) {
  auto r = c.Post(path.c_str(), body.dump(), "application/json");
  REQUIRE(r);
  *status = r->status;
  return json::parse(r->body);
}

json rect_segmentation(int64_t h, int64_t w, int x0, int y0, int x1, int y1) {
  std::vector<uint8_t> m(static_cast<size_t>(h * w), 0);
  for (int y = y0; y < y1; ++y)
    for (int x = x0; x < x1; ++x) m[static_cast<size_t>(y * w + x)] = 1;
  return sam::mask::rle_to_json(sam::mask::rle_encode(m.data(), h, w));
}

}  // namespace

TEST_CASE("sam_annotate: page, images, and no way out of the image folder", "[tools][annotate]") {
  const auto dir = make_folder("annotate_api_files");
  Server server(dir);
  auto c = server.client();

  auto page = c.Get("/");
  REQUIRE(page);
  CHECK(page->status == 200);
  CHECK(page->get_header_value("Content-Type").rfind("text/html", 0) == 0);
  CHECK_THAT(page->body, Catch::Contains("SAM annotate") && Catch::Contains("app.js"));
  CHECK_THAT(page->get_header_value("Content-Security-Policy"),
             Catch::Contains("default-src 'self'"));
  auto js = c.Get("/app.js");
  REQUIRE(js);
  CHECK(js->status == 200);
  CHECK_THAT(js->body, Catch::Contains("rleCountsFromString"));

  auto img = c.Get("/images/image.jpg");
  REQUIRE(img);
  CHECK(img->status == 200);
  CHECK(img->get_header_value("Content-Type") == "image/jpeg");
  CHECK(img->body == read_file(dir / "images" / "image.jpg"));
  const std::string spaced = raw_http(server.port,
                                      "GET /images/name%20with%20space%231.png HTTP/1.1\r\n"
                                      "Host: 127.0.0.1\r\nConnection: close\r\n\r\n");
  CHECK(status_of(spaced) == 200);

  for (const char* path :
       {"/images/../secret.jpg", "/images/%2e%2e/secret.jpg", "/images/..%2fsecret.jpg",
        "/images/%2E%2E%2Fsecret.jpg", "/images/%252e%252e%252fsecret.jpg", "/images//etc/passwd",
        "/images/%2Fetc%2Fpasswd", "/images/escape.jpg", "/images/..%5csecret.jpg",
        "/images/image.jpg%00.png", "/images/.", "/images/..", "/images/%2e%2e", "/../secret.jpg",
        "/images/image.jpg/..", "/images/IMAGE.JPG", "/images/nope.jpg",
        "/%2e%2e/%2e%2e/etc/passwd"}) {
    INFO(path);
    const std::string r =
        raw_http(server.port, std::string("GET ") + path +
                                  " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    const int st = status_of(r);
    CHECK(st >= 400);
    CHECK(st < 500);
    CHECK(r.find("TOP-SECRET") == std::string::npos);
    CHECK(r.find("root:") == std::string::npos);
  }
  auto missing = c.Get("/nothing-here");
  REQUIRE(missing);
  CHECK(missing->status == 404);
  CHECK(json::parse(missing->body).contains("error"));

  auto list = json::parse(c.Get("/api/images")->body);
  std::vector<std::string> names;
  for (const auto& i : list["images"]) names.push_back(i["name"]);
  CHECK(names ==
        std::vector<std::string>{"corrupt.jpg", "image.jpg", "name with space#1.png", "small.png"});
  CHECK(server.alive());
}

TEST_CASE("sam_annotate: clicks give masks, bad prompts get 4xx with a message",
          "[tools][annotate]") {
  const auto dir = make_folder("annotate_api_predict");
  Server server(dir);
  auto c = server.client();
  int st = 0;
  auto r = post(c, "/api/predict", {{"image", "image.jpg"}, {"points", {{407.66, 129.5, 1}}}}, &st);
  REQUIRE(st == 200);
  REQUIRE(r["candidates"].size() == 3);
  CHECK(r["width"] == 640);
  CHECK(r["height"] == 480);
  CHECK(r["best"].get<int>() >= 0);
  CHECK(r["best"].get<int>() < 3);
  for (const auto& cand : r["candidates"]) {
    auto rle = sam::mask::rle_from_json(cand["segmentation"]);
    CHECK(rle.h == 480);
    CHECK(rle.w == 640);
    CHECK(static_cast<int64_t>(sam::mask::rle_area(rle)) == cand["area"].get<int64_t>());
  }
  CHECK(r["timing_ms"]["total"].get<double>() > 0);
  auto emb = json::parse(c.Get("/api/embedding?image=image.jpg")->body);
  CHECK(emb["state"] == "ready");

  struct Bad {
    std::string body;
    int status;
    const char* says;
  };
  std::vector<Bad> bad = {
      {"{", 400, "not valid JSON"},
      {"[1, 2]", 400, "JSON object"},
      {R"({"points": [[1, 1, 1]]})", 400, "missing field 'image'"},
      {R"({"image": 5, "points": [[1, 1, 1]]})", 400, "'image' must be a string"},
      {R"({"image": "nope.jpg", "points": [[1, 1, 1]]})", 404, "unknown image"},
      {R"({"image": "../secret.jpg", "points": [[1, 1, 1]]})", 404, "unknown image"},
      {R"({"image": "image.jpg"})", 400, "give 'points' or a 'box'"},
      {R"({"image": "image.jpg", "points": []})", 400, "give 'points' or a 'box'"},
      {R"({"image": "image.jpg", "points": "1,1"})", 400, "'points' must be an array"},
      {R"({"image": "image.jpg", "points": [[1, 1]]})", 400, "[x, y, label]"},
      {R"({"image": "image.jpg", "points": [[-1, 1, 1]]})", 400, "points[0].x"},
      {R"({"image": "image.jpg", "points": [[641, 1, 1]]})", 400, "points[0].x"},
      {R"({"image": "image.jpg", "points": [[1, 480.5, 1]]})", 400, "points[0].y"},
      {R"({"image": "image.jpg", "points": [[1e999, 1, 1]]})", 400, ""},
      {R"({"image": "image.jpg", "points": [[null, 1, 1]]})", 400, "must be a number"},
      {R"({"image": "image.jpg", "points": [[1, 1, 2]]})", 400, "label"},
      {R"({"image": "image.jpg", "points": [[1, 1, 0.5]]})", 400, "label"},
      {R"({"image": "image.jpg", "points": [[1, 1, "1"]]})", 400, "label"},
      {R"({"image": "image.jpg", "box": [10, 10, 5, 20]})", 400, "x0 < x1"},
      {R"({"image": "image.jpg", "box": [10, 10, 20]})", 400, "'box' must be"},
      {R"({"image": "image.jpg", "box": [0, 0, 700, 20]})", 400, "box[2]"},
      {R"({"image": "corrupt.jpg", "points": [[1, 1, 1]]})", 422, "corrupt.jpg"},
      {std::string(200, '[') + std::string(200, ']'), 400, "nested too deeply"},
      {R"({"image": "image.jpg", "points": [)" + std::string(100000, ' ') + "[1,1,1]]}", 413,
       "request body"},
  };
  json many = json::array();
  for (int i = 0; i < 65; ++i) many.push_back({1, 1, 1});
  bad.push_back({json{{"image", "image.jpg"}, {"points", many}}.dump(), 400, "at most 64"});
  for (const auto& b : bad) {
    INFO(b.body.substr(0, 120));
    auto res = c.Post("/api/predict", b.body, "application/json");
    REQUIRE(res);
    CHECK(res->status == b.status);
    auto j = json::parse(res->body);
    REQUIRE(j.contains("error"));
    CHECK_THAT(j["error"].get<std::string>(), Catch::Contains(b.says));
  }
  auto wrong_type =
      c.Post("/api/predict", R"({"image": "image.jpg", "points": [[1, 1, 1]]})", "text/plain");
  REQUIRE(wrong_type);
  CHECK(wrong_type->status == 415);
  auto huge = c.Post("/api/predict", std::string(40 << 20, 'x'), "application/json");
  if (huge) CHECK(huge->status == 413);  // or the connection is cut: either way, no crash
  CHECK(server.alive());
  CHECK(post(c, "/api/predict", {{"image", "image.jpg"}, {"box", {128, 120, 448, 384}}},
             &st)["best"] == 0);
  CHECK(st == 200);
}

TEST_CASE("sam_annotate: distilled students (a small ViT, a TinyViT-style hybrid) serve clicks",
          "[tools][annotate][distill]") {
  // Each student distilled for 2 steps from the golden tiny model (its teacher) on synthetic
  // scenes by sam_train; the server takes the run's model.json and model.pth as they are.
  const auto dir = make_folder("annotate_api_student");
  const std::string data =
      sam_test::synth_sa1b("annotate_student_synth", "--images 4 --seed 5 --size 160x120 --min-objects 2 --max-objects 3");
  for (const std::string& student : std::vector<std::string>{"model_tiny_student.json", "model_tiny_hybrid.json"}) {
    DYNAMIC_SECTION(student) {
      const auto run = dir / ("distill_" + student);
      std::string out;
      const int rc = sam_test::run_command(
          (sam_test::bin_dir() / "sam_train").string() + " --config " +
              (sam_test::source_dir() / "configs" / "distill_tiny.yaml").string() + " --run-dir " + run.string() +
              " data.train=[sa1b:" + data + "] 'data.val=\"\"' data.hflip=false train.iterations=2 train.batch_size=2" +
              " train.threads=1 train.val_every=0 optim.warmup_iters=1 model.arch=" +
              (sam_test::source_dir() / "configs" / student).string() +
              " distill.teacher_arch=" + (sam_test::golden_tiny() / "config.json").string() +
              " distill.teacher_checkpoint=" + (sam_test::golden_tiny() / "sam.pth").string(),
          &out);
      INFO(out);
      REQUIRE(rc == 0);
      Server server(dir, {"--model", (run / "model.json").string(), "--checkpoint", (run / "model.pth").string()});
      auto c = server.client();
      int st = 0;
      auto r = post(c, "/api/predict", {{"image", "image.jpg"}, {"points", {{407.66, 129.5, 1}}}}, &st);
      INFO(r.dump().substr(0, 400));
      REQUIRE(st == 200);
      REQUIRE(r["candidates"].size() == 3);
      for (const auto& cand : r["candidates"]) {
        auto rle = sam::mask::rle_from_json(cand["segmentation"]);
        CHECK(rle.h == 480);
        CHECK(rle.w == 640);
        CHECK(static_cast<int64_t>(sam::mask::rle_area(rle)) == cand["area"].get<int64_t>());
      }
      CHECK(post(c, "/api/predict", {{"image", "image.jpg"}, {"box", {128, 120, 448, 384}}}, &st)["best"] == 0);
      CHECK(st == 200);
      CHECK(server.alive());
      // The server says which model it runs: the student's architecture, not the teacher's.
      std::ifstream log(server.log);
      const std::string text((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
      INFO(text);
      CHECK_THAT(text, Catch::Contains((run / "model.json").string()));
    }
  }
}

TEST_CASE("sam_annotate: accept, read back, delete, next unannotated, exports",
          "[tools][annotate]") {
  const auto dir = make_folder("annotate_api_accept");
  Server server(dir);
  auto c = server.client();
  int st = 0;
  auto pred = post(c, "/api/predict", {{"image", "small.png"}, {"points", {{20, 15, 1}}}}, &st);
  REQUIRE(st == 200);
  const json seg = rect_segmentation(30, 40, 10, 8, 31, 23);
  json body = {{"image", "small.png"},
               {"segmentation", seg},
               {"seconds", 7.5},
               {"predicted_iou", pred["candidates"][0]["iou"]},
               {"clicks",
                {{"points", {{20, 15, 1}}},
                 {"box", nullptr},
                 {"candidate", 0},
                 {"token", 1},
                 {"strokes", {{{"mode", "brush"}, {"radius", 2.5}, {"points", {{1, 1}, {3, 4}}}}}},
                 {"ignored_key", "dropped"}}}};
  auto saved = post(c, "/api/annotations", body, &st);
  REQUIRE(st == 201);
  const int64_t id = saved["id"];
  CHECK(saved["area"] == 21 * 15);
  CHECK(saved["bbox"] == json({10.0, 8.0, 21.0, 15.0}));
  CHECK(saved["user"] == "tester");
  CHECK(saved["segmentation"]["counts"] == seg["counts"]);
  CHECK_FALSE(saved["clicks"].contains("ignored_key"));

  auto info = json::parse(c.Get("/api/images/small.png")->body);
  CHECK(info["width"] == 40);
  CHECK(info["height"] == 30);
  REQUIRE(info["annotations"].size() == 1);
  CHECK(info["annotations"][0]["id"] == id);
  CHECK(info["annotations"][0]["seconds"] == 7.5);
  CHECK(info["annotations"][0]["clicks"]["strokes"][0]["mode"] == "brush");
  auto next = json::parse(c.Get("/api/next-unannotated?after=name%20with%20space%231.png")->body);
  CHECK(next["name"] == "corrupt.jpg");  // wraps past small.png, which now has a mask

  struct Bad {
    json patch;
    int status;
    const char* says;
  };
  std::vector<Bad> bad = {
      {{{"image", "nope.png"}}, 404, "unknown image"},
      {{{"segmentation", rect_segmentation(40, 30, 0, 0, 5, 5)}}, 400, "40x30"},
      {{{"segmentation", {{"size", {30, 40}}, {"counts", "!!!"}}}}, 400, "COCO RLE"},
      {{{"segmentation", {{"size", {30, 40}}, {"counts", {5, 6}}}}}, 400, "COCO RLE"},
      {{{"segmentation", rect_segmentation(30, 40, 0, 0, 0, 0)}}, 400, "empty"},
      {{{"segmentation", "x"}}, 400, "COCO RLE"},
      {{{"seconds", -1}}, 400, "'seconds'"},
      {{{"seconds", "5"}}, 400, "'seconds'"},
      {{{"predicted_iou", 1e300}}, 400, "predicted_iou"},
      {{{"clicks", {{"points", {{50, 1, 1}}}}}}, 400, "clicks.points.x"},
      {{{"clicks", {{"box", {1, 2, 3}}}}}, 400, "clicks.box"},
      {{{"clicks", {{"candidate", 7}}}}, 400, "clicks.candidate"},
      {{{"clicks", {{"strokes", {{{"mode", "paint"}, {"radius", 2}, {"points", {{1, 1}}}}}}}}},
       400,
       "mode"},
      {{{"clicks", {{"strokes", {{{"mode", "erase"}, {"radius", 0}, {"points", {{1, 1}}}}}}}}},
       400,
       "radius"},
      {{{"clicks", "yes"}}, 400, "'clicks' must be an object"},
  };
  for (const auto& b : bad) {
    INFO(b.patch.dump());
    json bb = body;
    bb.update(b.patch);
    auto j = post(c, "/api/annotations", bb, &st);
    CHECK(st == b.status);
    CHECK_THAT(j["error"].get<std::string>(), Catch::Contains(b.says));
  }
  json no_seg = body;
  no_seg.erase("segmentation");
  CHECK_THAT(post(c, "/api/annotations", no_seg, &st)["error"].get<std::string>(),
             Catch::Contains("missing field 'segmentation'"));
  CHECK(json::parse(c.Get("/api/images/small.png")->body)["annotations"].size() == 1);

  // Exports from the page.
  auto coco = c.Get("/api/export?format=coco");
  REQUIRE(coco);
  CHECK_THAT(coco->get_header_value("Content-Disposition"),
             Catch::Contains("annotations_coco.json"));
  auto cj = json::parse(coco->body);
  CHECK(cj["images"].size() == 3);  // corrupt.jpg cannot be sized: left out
  REQUIRE(cj["annotations"].size() == 1);
  CHECK(cj["annotations"][0]["segmentation"]["counts"] == seg["counts"]);
  auto sa = json::parse(c.Get("/api/export?format=sa1b&image=small.png")->body);
  CHECK(sa["image"]["width"] == 40);
  CHECK(sa["annotations"][0]["point_coords"] == json({{20.0, 15.0}}));
  auto zip = c.Get("/api/export?format=sa1b");
  REQUIRE(zip);
  CHECK(zip->body.rfind("PK\x03\x04", 0) == 0);
  CHECK(zip->body.find("small.json") != std::string::npos);
  CHECK(c.Get("/api/export?format=xml")->status == 400);
  CHECK(c.Get("/api/export?format=sa1b&image=../secret.jpg")->status == 404);

  // Exports from the command line, while the server runs (WAL: readers do not block it).
  const std::string bin = (sam_test::bin_dir() / "sam_annotate").string();
  std::string out;
  REQUIRE(sam_test::run_command(bin + " export --db " + (dir / "a.sqlite").string() + " --images " +
                                    (dir / "images").string() + " --format coco --out " +
                                    (dir / "out" / "coco.json").string(),
                                &out) == 0);
  auto cli = json::parse(read_file(dir / "out" / "coco.json"));
  CHECK(cli["annotations"] == cj["annotations"]);
  REQUIRE(sam_test::run_command(bin + " export --db " + (dir / "a.sqlite").string() +
                                    " --format sa1b --out " + (dir / "out" / "sa1b").string(),
                                &out) == 0);
  CHECK(json::parse(read_file(dir / "out" / "sa1b" / "small.json"))["annotations"].size() == 1);
  CHECK(sam_test::run_command(
            bin + " export --db " + (dir / "a.sqlite").string() + " --format xml --out x", &out) ==
        1);
  CHECK_THAT(out, Catch::Contains("--format xml"));
  CHECK(sam_test::run_command(
            bin + " export --db " + (dir / "none.sqlite").string() + " --format coco --out x",
            &out) == 1);

  // Delete: once, then 404.
  auto del = c.Delete(("/api/annotations/" + std::to_string(id)).c_str());
  REQUIRE(del);
  CHECK(del->status == 200);
  CHECK(c.Delete(("/api/annotations/" + std::to_string(id)).c_str())->status == 404);
  CHECK(c.Delete("/api/annotations/abc")->status == 404);
  CHECK(json::parse(c.Get("/api/images/small.png")->body)["annotations"].empty());
}

TEST_CASE("sam_annotate: token, Host and Origin guards", "[tools][annotate]") {
  const auto dir = make_folder("annotate_api_guards");
  {
    Server server(dir);
    // DNS rebinding: a page from elsewhere reaching the loopback server under a foreign name.
    auto r =
        raw_http(server.port,
                 "GET /api/info HTTP/1.1\r\nHost: evil.example:8080\r\nConnection: close\r\n\r\n");
    CHECK(status_of(r) == 403);
    auto ok = raw_http(server.port,
                       "GET /api/info HTTP/1.1\r\nHost: localhost:1\r\nConnection: close\r\n\r\n");
    CHECK(status_of(ok) == 200);
    // Cross-site writes.
    const std::string body = R"({"image": "small.png", "points": [[1, 1, 1]]})";
    auto cross =
        raw_http(server.port,
                 "POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(server.port) +
                     "\r\nOrigin: http://evil.example\r\nContent-Type: application/json\r\n"
                     "Content-Length: " +
                     std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body);
    CHECK(status_of(cross) == 403);
    auto same = raw_http(
        server.port,
        "POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(server.port) +
            "\r\nOrigin: http://127.0.0.1:" + std::to_string(server.port) +
            "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
            "\r\nConnection: close\r\n\r\n" + body);
    CHECK(status_of(same) == 200);
  }
  Server server(dir, {"--token", "s3cret-token-42"});
  CHECK_THAT(read_file(server.log), Catch::Contains("?token=s3cret-token-42"));
  auto c = server.client();
  CHECK(c.Get("/api/info")->status == 401);
  CHECK(c.Get("/images/image.jpg")->status == 401);
  CHECK(c.Get("/api/info", {{"Authorization", "Bearer wrong-token-000"}})->status == 401);
  CHECK(c.Get("/api/info", {{"Authorization", "Bearer s3cret-token-42"}})->status == 200);
  CHECK(c.Get("/api/info", {{"Cookie", "a=b; sam_token=s3cret-token-42"}})->status == 200);
  auto page = c.Get("/?token=s3cret-token-42");
  REQUIRE(page);
  CHECK(page->status == 200);
  CHECK_THAT(page->get_header_value("Set-Cookie"),
             Catch::Contains("sam_token=s3cret-token-42") && Catch::Contains("HttpOnly"));
  auto info = json::parse(c.Get("/api/info", {{"X-Sam-Token", "s3cret-token-42"}})->body);
  CHECK(info["token_required"] == true);
}

TEST_CASE("sam_annotate: a stream of garbage never brings it down", "[tools][annotate]") {
  const auto dir = make_folder("annotate_api_garbage");
  Server server(dir);
  std::mt19937 rng(1234);
  auto random_bytes = [&](size_t n) {
    std::string s(n, '\0');
    for (auto& ch : s) ch = static_cast<char>(rng() & 0xFF);
    return s;
  };
  const std::vector<std::string> paths = {"/api/predict",          "/api/annotations",
                                          "/api/images/small.png", "/api/export?format=coco",
                                          "/images/small.png",     "/"};
  const std::vector<std::string> fragments = {R"({"image": "small.png", "points": [[)",
                                              R"({"image": "small.png", "box": [)",
                                              "1e308",
                                              "-0",
                                              "null",
                                              "true",
                                              R"("\u0000")",
                                              "[]",
                                              "{}",
                                              "]]",
                                              "}",
                                              ",",
                                              "NaN",
                                              "18446744073709551617",
                                              R"({"segmentation": )"};
  int answered = 0;
  for (int i = 0; i < 250; ++i) {
    std::string req;
    const int kind = static_cast<int>(rng() % 4);
    if (kind == 0) {
      req = random_bytes(1 + rng() % 300);  // not HTTP at all
    } else {
      std::string body;
      for (int k = 0, n = 1 + static_cast<int>(rng() % 8); k < n; ++k)
        body += fragments[rng() % fragments.size()];
      if (kind == 3) body += random_bytes(rng() % 50);
      const std::string& path = paths[rng() % paths.size()];
      req = std::string(kind == 1 ? "GET " : "POST ") + path +
            " HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Content-Type: application/json\r\nContent-Length: " +
            std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
    }
    const std::string r = raw_http(server.port, req, /*half_close=*/kind == 0);
    if (status_of(r) > 0) ++answered;
    if (status_of(r) >= 500)
      FAIL_CHECK("5xx for: " << req.substr(0, 200) << "\n-> " << r.substr(0, 300));
  }
  CHECK(answered > 150);
  REQUIRE(server.alive());
  auto c = server.client();
  CHECK(c.Get("/api/info")->status == 200);
}

// The issue's browser check, tests/e2e/annotate_e2e.py, in the suite: headless Chromium (Debian's
// chromium and chromium-driver, driven by python3-selenium) opens the page, clicks, picks, brushes,
// accepts, reloads, exports, and leaves a screenshot of the page as a kept test artefact,
// <build>/test-artefacts/annotate.png. Without those packages (scripts/setup.sh installs them) or
// without the shared fixtures it is reported as skipped, and fails under CI=true.
TEST_CASE("sam_annotate: the page in headless Chromium (tests/e2e)", "[tools][e2e]") {
  std::string missing;
  const auto lacks = [&](const std::string& what) { missing += (missing.empty() ? "" : ", ") + what; };
  if (!fs::exists("/usr/bin/chromium")) lacks("/usr/bin/chromium (package chromium)");
  if (!fs::exists("/usr/bin/chromedriver")) lacks("/usr/bin/chromedriver (package chromium-driver)");
  if (sam_test::run_command("/usr/bin/python3 -c 'import selenium'") != 0)
    lacks("selenium for /usr/bin/python3 (package python3-selenium)");
  if (!missing.empty()) {
    sam_test::skip("the browser test needs " + missing + ": run scripts/setup.sh");
    return;
  }
  sam_test::golden_tiny();  // without the shared fixtures: skipped, naming the folder

  const auto quoted = [](const fs::path& p) { return "'" + p.string() + "'"; };
  const fs::path script = sam_test::source_dir() / "tests" / "e2e" / "annotate_e2e.py";
  const fs::path artefacts = sam_test::bin_dir().parent_path() / "test-artefacts";
  fs::create_directories(artefacts);
  const fs::path shot = artefacts / "annotate.png";
  fs::remove(shot);  // the check below is on this run's screenshot
  std::string out;
  const int rc = sam_test::run_command("/usr/bin/python3 " + quoted(script) + " --bin " +
                                           quoted(sam_test::bin_dir() / "sam_annotate") + " --shared " +
                                           quoted(sam_test::shared_dir()) + " --screenshot " + quoted(shot),
                                       &out);
  INFO(out);
  CHECK(out.find("not ok") == std::string::npos);
  CHECK(out.find(" passed, 0 failed") != std::string::npos);
  CHECK(rc == 0);

  // The screenshot: a PNG of the whole page, not an empty or truncated file.
  INFO("screenshot " << shot);
  REQUIRE(fs::exists(shot));
  CHECK(fs::file_size(shot) > 10 * 1024);
  const std::string png = read_file(shot);
  CHECK(png.compare(0, 8, std::string("\x89PNG\r\n\x1a\n", 8)) == 0);
}
