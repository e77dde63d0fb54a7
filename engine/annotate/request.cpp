#include "engine/annotate/request.h"

#include <cctype>
#include <cmath>

namespace sam::annotate {

using nlohmann::json;

void check_json_depth(const std::string& body, int max_depth) {
  int depth = 0;
  bool in_string = false, escaped = false;
  for (char c : body) {
    if (in_string) {
      if (escaped)
        escaped = false;
      else if (c == '\\')
        escaped = true;
      else if (c == '"')
        in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max_depth) throw HttpError(400, "JSON nested too deeply");
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
}

json parse_json_body(const std::string& body, size_t max_bytes, int max_depth) {
  if (body.size() > max_bytes)
    throw HttpError(413, "request body over " + std::to_string(max_bytes) + " bytes");
  check_json_depth(body, max_depth);
  json j;
  try {
    j = json::parse(body);
  } catch (const json::exception& e) {
    throw HttpError(400, std::string("body is not valid JSON: ") + e.what());
  }
  if (!j.is_object()) throw HttpError(400, "body must be a JSON object");
  return j;
}

const json& field(const json& j, const std::string& key) {
  auto it = j.find(key);
  if (it == j.end()) throw HttpError(400, "missing field '" + key + "'");
  return *it;
}

double number(const json& v, const std::string& name, double lo, double hi) {
  if (!v.is_number()) throw HttpError(400, "'" + name + "' must be a number");
  const double d = v.get<double>();
  if (!std::isfinite(d) || d < lo || d > hi)
    throw HttpError(400, "'" + name + "' = " + v.dump() + " is outside [" + std::to_string(lo) +
                             ", " + std::to_string(hi) + "]");
  return d;
}

int64_t integer(const json& v, const std::string& name, int64_t lo, int64_t hi) {
  if (!v.is_number_integer()) throw HttpError(400, "'" + name + "' must be an integer");
  const int64_t i = v.get<int64_t>();
  if (i < lo || i > hi)
    throw HttpError(400, "'" + name + "' = " + std::to_string(i) + " is outside [" +
                             std::to_string(lo) + ", " + std::to_string(hi) + "]");
  return i;
}

std::string text(const json& v, const std::string& name, size_t max_len) {
  if (!v.is_string()) throw HttpError(400, "'" + name + "' must be a string");
  std::string s = v.get<std::string>();
  if (s.size() > max_len) throw HttpError(400, "'" + name + "' is too long");
  return s;
}

std::string url_encode(const std::string& s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(hex[c >> 4]);
      out.push_back(hex[c & 15]);
    }
  }
  return out;
}

}  // namespace sam::annotate
