// Declarative configuration sections (data/config_schema.h) on a made-up struct: the defaults
// document from the members' initialisers, reading with every kind of error named (unknown key,
// wrong type, a fraction for an integer, a range, a choice, a converted key), docs rows and the
// Markdown table, and the replacement of a marked table in a document.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "data/config_schema.h"

using Catch::Matchers::Contains;
namespace cfg = sam::cfg;

namespace {
struct Base {
  double rate = 0.5;
};
struct Fruit : Base {
  int count = 3;
  std::string kind = "apple";
  std::vector<double> sizes{1.0, 2.0};
  bool ripe = false;
  int twice = 4;  // stored as twice the document's value
};

const cfg::Section<Fruit>& schema() {
  static const cfg::Section<Fruit> s =
      cfg::Section<Fruit>("fruit")
          .key("count", &Fruit::count, "how many", cfg::at_least(1))
          .key("kind", &Fruit::kind, "which", cfg::one_of({"apple", "pear"}))
          .key("rate", &Base::rate, "a member of the base", cfg::in_range_open_hi(0, 1))
          .key("sizes", &Fruit::sizes, "each positive", cfg::above(0))
          .key("ripe", &Fruit::ripe, "ready")
          .key_as(
              "half", [](const Fruit& f) { return nlohmann::json(f.twice / 2); },
              [](const nlohmann::json& v, Fruit& f) {
                if (!v.is_number_integer()) throw std::invalid_argument("needs an integer, got " + v.dump());
                f.twice = 2 * v.get<int>();
              },
              "half of twice");
  return s;
}
}  // namespace

TEST_CASE("config schema: defaults come from the struct, reading replaces what is given") {
  const auto d = schema().to_json(Fruit{});
  CHECK(d == nlohmann::json{{"count", 3}, {"kind", "apple"}, {"rate", 0.5}, {"sizes", {1.0, 2.0}},
                            {"ripe", false}, {"half", 2}});
  CHECK(schema().keys() == std::vector<std::string>{"count", "kind", "rate", "sizes", "ripe", "half"});
  Fruit f;
  schema().read({{"count", 1e2}, {"kind", "pear"}, {"half", 5}, {"rate", 0}}, f, "f.yaml");
  CHECK(f.count == 100);
  CHECK(f.kind == "pear");
  CHECK(f.twice == 10);
  CHECK(f.rate == 0.0);
  CHECK(f.sizes == std::vector<double>{1.0, 2.0});  // absent: kept
}

TEST_CASE("config schema: every problem names the file and the dotted key") {
  Fruit f;
  const auto bad = [&](const nlohmann::json& j) { schema().read(j, f, "f.yaml"); };
  CHECK_THROWS_WITH(bad({{"cuont", 1}}), Contains("f.yaml") && Contains("cuont") && Contains("valid keys"));
  CHECK_THROWS_WITH(bad({{"count", 2.5}}), Contains("f.yaml") && Contains("fruit.count") && Contains("whole number"));
  CHECK_THROWS_WITH(bad({{"count", 0}}), Contains("f.yaml: fruit.count must be >= 1, got 0"));
  CHECK_THROWS_WITH(bad({{"count", "many"}}), Contains("fruit.count") && Contains("wrong type"));
  CHECK_THROWS_WITH(bad({{"kind", "plum"}}), Contains("fruit.kind must be one of `apple`, `pear`, got \"plum\""));
  CHECK_THROWS_WITH(bad({{"rate", 1}}), Contains("fruit.rate must be [0, 1)"));
  CHECK_THROWS_WITH(bad({{"sizes", {1.0, -2.0}}}), Contains("fruit.sizes must be > 0"));
  CHECK_THROWS_WITH(bad({{"half", 1.5}}), Contains("f.yaml: fruit.half: needs an integer, got 1.5"));
  CHECK_THROWS_WITH(bad({{"ripe", "yes"}}), Contains("fruit.ripe") && Contains("wrong type"));
  CHECK(f.count == 3);  // nothing was stored by a failed key
}

TEST_CASE("config schema: docs rows, the Markdown table and a marked table in a document") {
  const auto rows = schema().docs();
  REQUIRE(rows.size() == 6);
  CHECK(rows[0].key == "fruit.count");
  CHECK(rows[0].default_value == "3");
  CHECK(rows[0].allowed == ">= 1");
  CHECK(rows[1].default_value == "`apple`");
  CHECK(rows[1].allowed == "`apple`, `pear`");
  CHECK(rows[3].default_value == "[1.0, 2.0]");
  CHECK(cfg::doc_value("") == "`\"\"`");
  const std::string table = cfg::markdown_table({rows[0]});
  CHECK(table == "| key | default | allowed | meaning |\n|---|---|---|---|\n| `fruit.count` | 3 | >= 1 | how many |\n");
  const std::string doc = "# T\n\n<!-- schema: fruit -->\n| old |\n|---|\n| row |\n\nafter\n";
  const std::string done = cfg::replace_marked_table(doc, "fruit", table);
  CHECK(done == "# T\n\n<!-- schema: fruit -->\n" + table + "\nafter\n");
  CHECK(cfg::replace_marked_table(done, "fruit", table) == done);
  CHECK_THROWS_WITH(cfg::replace_marked_table(doc, "veg", table), Contains("schema: veg"));
}
