// The annotation server's request reading (engine/annotate/request.h) and access checks
// (engine/annotate/auth.h), without a server: body size and nesting limits with their statuses,
// fields by type and range, URL encoding, Host headers, cookies and the constant-time comparison.
#include <catch2/catch.hpp>

#include <string>

#include "engine/annotate/auth.h"
#include "engine/annotate/request.h"

using namespace sam::annotate;
using nlohmann::json;

namespace {
// The status and message of the HttpError `f` throws (0, "" when it throws none).
template <class F>
std::pair<int, std::string> error_of(F&& f) {
  try {
    f();
  } catch (const HttpError& e) {
    return {e.status, e.what()};
  }
  return {0, ""};
}
}  // namespace

TEST_CASE("annotate request: bodies are limited in size and nesting before parsing") {
  CHECK(parse_json_body(R"({"a": [1, {"b": 2}]})", 100, 3)["a"][1]["b"] == 2);
  CHECK(error_of([] { parse_json_body(std::string(101, ' '), 100, 16); }).first == 413);
  CHECK(error_of([] { parse_json_body("[[[[1]]]]", 100, 3); }) ==
        std::pair<int, std::string>{400, "JSON nested too deeply"});
  // Brackets inside strings (escaped quotes included) do not count.
  CHECK_NOTHROW(check_json_depth(R"({"s": "[[[[\"[[[["})", 2));
  CHECK(error_of([] { parse_json_body("{\"a\": ", 100, 16); }).first == 400);
  CHECK(error_of([] { parse_json_body("[1, 2]", 100, 16); }) ==
        std::pair<int, std::string>{400, "body must be a JSON object"});
}

TEST_CASE("annotate request: fields by type and range, each error naming the field") {
  const json j = {{"x", 3.5}, {"n", 4}, {"s", "abc"}};
  CHECK(number(field(j, "x"), "x", 0, 10) == 3.5);
  CHECK(integer(field(j, "n"), "n", 0, 10) == 4);
  CHECK(text(field(j, "s"), "s", 3) == "abc");
  CHECK(error_of([&] { field(j, "y"); }) == std::pair<int, std::string>{400, "missing field 'y'"});
  CHECK(error_of([&] { number(j["s"], "s", 0, 1); }) == std::pair<int, std::string>{400, "'s' must be a number"});
  CHECK(error_of([&] { number(j["x"], "x", 0, 1); }).second.find("'x' = 3.5 is outside") == 0);
  CHECK(error_of([&] { integer(j["x"], "x", 0, 10); }) ==
        std::pair<int, std::string>{400, "'x' must be an integer"});
  CHECK(error_of([&] { integer(j["n"], "n", 5, 10); }).first == 400);
  CHECK(error_of([&] { text(j["s"], "s", 2); }) == std::pair<int, std::string>{400, "'s' is too long"});
  CHECK(url_encode("a b/é~_-.") == "a%20b%2F%C3%A9~_-.");
}

TEST_CASE("annotate auth: host names, loopback, cookies, the constant-time comparison") {
  CHECK(host_name_of("[::1]:8080") == "::1");
  CHECK(host_name_of("example.org:80") == "example.org");
  CHECK(host_name_of("localhost") == "localhost");
  CHECK(is_loopback_host(host_name_of("127.0.0.1:8080")));
  CHECK_FALSE(is_loopback_host(host_name_of("10.0.0.1:8080")));
  CHECK(cookie_value("a=1; sam_token=xyz; b=2", "sam_token") == "xyz");
  CHECK(cookie_value("a=1;b=2", "b") == "2");
  CHECK(cookie_value("ab=1", "a") == "");
  CHECK(same_secret("0123", "0123"));
  CHECK_FALSE(same_secret("0123", "0124"));
  CHECK_FALSE(same_secret("0123", "012"));
  const std::string t = make_token();
  CHECK(t.size() == 32);
  CHECK(t.find_first_not_of("0123456789abcdef") == std::string::npos);
}
