#pragma once
// Reading the annotation API's JSON requests: a body is size- and depth-checked before parsing,
// and each field is taken with its type and range; every problem is an HttpError carrying the
// status the server answers with (400, or 413 for a body too large) and a message naming the field.
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

namespace sam::annotate {

/// An error answered with `status` and {"error": message}.
struct HttpError : std::runtime_error {
  HttpError(int s, const std::string& m) : std::runtime_error(m), status(s) {}
  int status;
};

/// Throws HttpError(400) when `body` nests JSON arrays / objects deeper than `max_depth` (checked
/// on the text, before parsing: bounded work and stack; brackets inside strings do not count).
void check_json_depth(const std::string& body, int max_depth);

/// The body as a JSON object. HttpError 413 over `max_bytes`; 400 when nested deeper than
/// `max_depth`, not valid JSON, or not an object.
nlohmann::json parse_json_body(const std::string& body, size_t max_bytes, int max_depth);

/// j[key], or HttpError 400 "missing field 'key'".
const nlohmann::json& field(const nlohmann::json& j, const std::string& key);
/// A finite number in [lo, hi]; HttpError 400 naming `name` otherwise.
double number(const nlohmann::json& v, const std::string& name, double lo, double hi);
/// An integer in [lo, hi] (a fraction is refused); HttpError 400 naming `name` otherwise.
int64_t integer(const nlohmann::json& v, const std::string& name, int64_t lo, int64_t hi);
/// A string of at most `max_len` bytes; HttpError 400 naming `name` otherwise.
std::string text(const nlohmann::json& v, const std::string& name, size_t max_len);

/// Percent-encodes everything but RFC 3986's unreserved characters, for a URL path segment.
std::string url_encode(const std::string& s);

}  // namespace sam::annotate
