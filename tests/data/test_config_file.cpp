// The one config loader (data/config_file.h): YAML to JSON, `key.sub=value` overrides, strict
// merging, and typed reads that name the key at fault.
#include <catch2/catch.hpp>

#include <cstdint>
#include <filesystem>
#include <fstream>

#include "data/config_file.h"
#include "test_util.h"

using namespace sam;

TEST_CASE("config: an integer key takes whole numbers only, naming the key otherwise", "[data][config]") {
  const auto doc = cfg::parse_yaml("iterations: 2.5\nsteps: 1e5\nbatch: 8\nlr: 3\nname: x\n", "t.yaml");
  int64_t n = 0;
  CHECK_THROWS_WITH(cfg::read(doc, "iterations", n, "t.yaml [train]"),
                    Catch::Contains("t.yaml [train]") && Catch::Contains("'iterations'") &&
                        Catch::Contains("whole number") && Catch::Contains("2.5"));
  cfg::read(doc, "steps", n, "t.yaml");
  CHECK(n == 100000);
  int b = 0;
  cfg::read(doc, "batch", b, "t.yaml");
  CHECK(b == 8);
  double lr = 0;
  cfg::read(doc, "lr", lr, "t.yaml");  // an integer for a real key is fine
  CHECK(lr == 3.0);
  CHECK_THROWS_WITH(cfg::read(doc, "name", b, "t.yaml"), Catch::Contains("'name'") && Catch::Contains("wrong type"));
  const auto big = cfg::parse_yaml("k: 1e12\n", "t.yaml");
  CHECK_THROWS_WITH(cfg::read(big, "k", b, "t.yaml"), Catch::Contains("whole number"));
  int missing = 7;
  cfg::read(doc, "absent", missing, "t.yaml");  // absent: left as it is
  CHECK(missing == 7);
}

TEST_CASE("config: overrides parse their values as YAML and refuse unknown keys", "[data][config]") {
  nlohmann::json doc = {{"train", {{"lr", 1.0}, {"steps", 10}, {"tags", nlohmann::json::array()}}}};
  cfg::apply_overrides(doc, {"train.lr=1e-4", "train.steps=20", "train.tags=[a, b]"});
  CHECK(doc["train"]["lr"].get<double>() == Approx(1e-4));
  CHECK(doc["train"]["steps"] == 20);
  CHECK(doc["train"]["tags"] == nlohmann::json::array({"a", "b"}));
  CHECK_THROWS_WITH(cfg::apply_overrides(doc, {"train.lrr=1"}), Catch::Contains("lrr") && Catch::Contains("lr"));
}

TEST_CASE("config: merge_strict names the unknown key and the valid ones", "[data][config]") {
  nlohmann::json defaults = {{"a", {{"x", 1}, {"y", 2}}}};
  CHECK_THROWS_WITH(cfg::merge_strict(defaults, {{"a", {{"z", 3}}}}, "f.yaml"),
                    Catch::Contains("f.yaml") && Catch::Contains("z") && Catch::Contains("x"));
  cfg::merge_strict(defaults, {{"a", {{"y", 5}}}}, "f.yaml");
  CHECK(defaults["a"]["x"] == 1);
  CHECK(defaults["a"]["y"] == 5);
  const auto dir = sam_test::temp_dir("config_file");
  {
    std::ofstream f(dir / "bad.yaml");
    f << "a: [1, 2\n";
  }
  CHECK_THROWS_WITH(cfg::load_file((dir / "bad.yaml").string()), Catch::Contains("bad.yaml"));
  std::filesystem::remove_all(dir);
}

TEST_CASE("config: flatten gives dotted keys, first_difference names the first key that changed", "[data][config]") {
  const auto a = nlohmann::json::parse(R"({"optim": {"lr": 0.001, "decay_steps": [10, 20]}, "seed": 1, "empty": {}})");
  const auto f = sam::cfg::flatten(a);
  CHECK(f.size() == 4);
  CHECK(f.at("optim.lr") == 0.001);
  CHECK(f.at("optim.decay_steps") == nlohmann::json::array({10, 20}));  // lists are values
  CHECK(f.at("empty") == nlohmann::json::object());
  CHECK(sam::cfg::first_difference(a, a).empty());
  auto b = a;
  b["optim"]["decay_steps"] = {10, 30};
  CHECK(sam::cfg::first_difference(a, b) == "optim.decay_steps: [10,20] before, [10,30] now");
  b = a;
  b["optim"].erase("lr");
  CHECK(sam::cfg::first_difference(a, b) == "optim.lr: 0.001 before, absent now");
  CHECK(sam::cfg::first_difference(b, a) == "optim.lr: absent before, 0.001 now");
  b = a;
  b["seed"] = 1.0;  // the same number
  CHECK(sam::cfg::first_difference(a, b).empty());
}
