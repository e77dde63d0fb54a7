// The image folder (what is listed and what a URL name may reach), loopback detection, and the
// embedded page being the files in engine/annotate/web/.
#include <catch2/catch.hpp>

#include <fstream>

#include "engine/annotate/image_folder.h"
#include "engine/annotate/server.h"
#include "engine/annotate/web_assets.h"
#include "test_util.h"

namespace fs = std::filesystem;
using sam::annotate::ImageFolder;

TEST_CASE("folder: lists image files only and resolves nothing outside", "[annotate][folder]") {
  const auto base = sam_test::temp_dir("annotate_folder");
  const auto dir = base / "images";
  fs::create_directories(dir / "sub");
  for (const char* n : {"b.jpg", "a.PNG", "c.webp", ".hidden.jpg", "notes.txt", "sub/inner.jpg",
                        "bad\xff\xfename.jpg", "caf\xc3\xa9.jpg"})
    std::ofstream(dir / n) << "x";
  std::ofstream(base / "secret.jpg") << "secret";
  fs::create_symlink(base / "secret.jpg", dir / "escape.jpg");  // leads outside: never listed
  fs::create_symlink(dir / "b.jpg", dir / "alias.jpg");         // stays inside: fine
  fs::create_directories(dir / "folder.jpg");                   // a folder named like an image

  ImageFolder folder(dir.string());
  // Not listed: hidden, not an image, in a sub-folder, escaping symlink, a folder, not UTF-8.
  CHECK(folder.names() ==
        std::vector<std::string>{"a.PNG", "alias.jpg", "b.jpg", "c.webp", "caf\xc3\xa9.jpg"});
  CHECK(folder.index_of("b.jpg") == 2u);
  CHECK_FALSE(folder.index_of("escape.jpg"));
  REQUIRE(folder.resolve("b.jpg"));
  CHECK(*folder.resolve("b.jpg") == fs::canonical(dir / "b.jpg"));
  for (const char* bad :
       {"../secret.jpg", "escape.jpg", "/etc/passwd", "sub/inner.jpg", "sub/../b.jpg", "./b.jpg",
        "", ".", "..", "notes.txt", "b.jpg/", "B.JPG", "%2e%2e/secret.jpg"}) {
    INFO(bad);
    CHECK_FALSE(folder.resolve(bad));
  }
  // A listed file swapped for an escaping symlink after start-up is refused at serve time.
  fs::remove(dir / "c.webp");
  fs::create_symlink(base / "secret.jpg", dir / "c.webp");
  CHECK_FALSE(folder.resolve("c.webp"));
  CHECK_THROWS_WITH(ImageFolder((base / "missing").string()), Catch::Contains("missing"));
  CHECK(sam::annotate::image_mime_type("x.JPG") == "image/jpeg");
  CHECK(sam::annotate::image_mime_type("x.png") == "image/png");
}

TEST_CASE("server: loopback hosts and tokens", "[annotate][server]") {
  using sam::annotate::is_loopback_host;
  for (const char* h : {"127.0.0.1", "127.1.2.3", "localhost", "::1", "[::1]"})
    CHECK(is_loopback_host(h));
  for (const char* h : {"0.0.0.0", "10.0.0.1", "192.168.1.1", "example.com", "127.0.0.1.evil.com",
                        "::", "", "128.0.0.1", "localhost.evil.com"})
    CHECK_FALSE(is_loopback_host(h));
  const auto t1 = sam::annotate::make_token(), t2 = sam::annotate::make_token();
  CHECK(t1.size() == 32);
  CHECK(t1.find_first_not_of("0123456789abcdef") == std::string::npos);
  CHECK(t1 != t2);
}

TEST_CASE("web assets: the embedded page is exactly engine/annotate/web/", "[annotate][web]") {
  const auto web = sam_test::source_dir() / "engine" / "annotate" / "web";
  REQUIRE(sam::annotate::web_assets().size() == 4);
  for (const auto& a : sam::annotate::web_assets()) {
    INFO(a.path << " (the build regenerates the embedding when web/ changes)");
    std::ifstream in(web / a.path, std::ios::binary);
    REQUIRE(in.good());
    std::string disk((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    CHECK(disk == std::string(a.body));
  }
  REQUIRE(sam::annotate::find_web_asset("index.html"));
  CHECK(std::string(sam::annotate::find_web_asset("index.html")->mime).rfind("text/html", 0) == 0);
  CHECK(sam::annotate::find_web_asset("../store.cpp") == nullptr);
}
