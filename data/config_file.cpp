#include "data/config_file.h"

#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <cmath>
#include <limits>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace sam::cfg {
namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Interprets an untagged YAML scalar as JSON null/bool/integer/float, else string.
nlohmann::json scalar_to_json(const YAML::Node& n) {
  const std::string& s = n.Scalar();
  if (n.Tag() == "!") return s;  // quoted scalar: always a string
  if (s == "~" || s == "null" || s == "Null" || s == "NULL") return nullptr;
  if (s == "true" || s == "True" || s == "TRUE") return true;
  if (s == "false" || s == "False" || s == "FALSE") return false;
  if (!s.empty()) {
    char* end = nullptr;
    errno = 0;
    long long i = std::strtoll(s.c_str(), &end, 10);
    if (end && *end == '\0' && errno == 0) return i;
    double d = std::strtod(s.c_str(), &end);
    if (end && *end == '\0' && std::isfinite(d)) return d;
    if (s == ".inf" || s == "inf") return std::numeric_limits<double>::infinity();
  }
  return s;
}

nlohmann::json yaml_to_json(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      return nullptr;
    case YAML::NodeType::Scalar:
      return scalar_to_json(n);
    case YAML::NodeType::Sequence: {
      nlohmann::json a = nlohmann::json::array();
      for (const auto& e : n) a.push_back(yaml_to_json(e));
      return a;
    }
    case YAML::NodeType::Map: {
      nlohmann::json o = nlohmann::json::object();
      for (const auto& kv : n) o[kv.first.as<std::string>()] = yaml_to_json(kv.second);
      return o;
    }
  }
  return nullptr;
}

std::string join_keys(const nlohmann::json& obj) {
  std::string out;
  for (auto it = obj.begin(); it != obj.end(); ++it) out += (out.empty() ? "" : ", ") + it.key();
  return out;
}

}  // namespace

nlohmann::json parse_yaml(const std::string& text, const std::string& where) {
  try {
    return yaml_to_json(YAML::Load(text));
  } catch (const YAML::Exception& e) {
    throw std::runtime_error(where + ": invalid YAML: " + e.what());
  }
}

nlohmann::json load_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path + ": cannot open config file");
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();
  if (ends_with(path, ".json")) {
    try {
      return nlohmann::json::parse(text);
    } catch (const nlohmann::json::parse_error& e) {
      throw std::runtime_error(path + ": invalid JSON: " + e.what());
    }
  }
  if (ends_with(path, ".yaml") || ends_with(path, ".yml")) return parse_yaml(text, path);
  throw std::runtime_error(path + ": config files must end in .json, .yaml or .yml");
}

void apply_overrides(nlohmann::json& doc, const std::vector<std::string>& overrides,
                     bool allow_new) {
  for (const auto& ov : overrides) {
    const auto eq = ov.find('=');
    if (eq == std::string::npos || eq == 0)
      throw std::invalid_argument("override '" + ov + "' is not of the form key.sub=value");
    const std::string path = ov.substr(0, eq);
    nlohmann::json value = parse_yaml(ov.substr(eq + 1), "override '" + ov + "'");
    nlohmann::json* node = &doc;
    std::string done;
    size_t start = 0;
    while (true) {
      const auto dot = path.find('.', start);
      const std::string key = path.substr(start, dot == std::string::npos ? dot : dot - start);
      if (key.empty()) throw std::invalid_argument("override '" + ov + "': empty key");
      if (!node->is_object())
        throw std::invalid_argument("override '" + ov + "': '" + done + "' is not a section");
      if (!allow_new && !node->contains(key)) {
        throw std::invalid_argument("override '" + ov + "': unknown key '" +
                                    (done.empty() ? key : done + "." + key) +
                                    "'; valid keys" + (done.empty() ? "" : " in '" + done + "'") +
                                    ": " + join_keys(*node));
      }
      node = &(*node)[key];
      done += (done.empty() ? "" : ".") + key;
      if (dot == std::string::npos) break;
      start = dot + 1;
    }
    *node = std::move(value);
  }
}

namespace {
void merge_at(nlohmann::json& dst, const nlohmann::json& src, const std::string& where,
              const std::string& path) {
  if (!src.is_object())
    throw std::invalid_argument(where + ": '" + (path.empty() ? "(top level)" : path) +
                                "' must be a mapping of keys");
  for (auto it = src.begin(); it != src.end(); ++it) {
    const std::string key = path.empty() ? it.key() : path + "." + it.key();
    if (!dst.contains(it.key()))
      throw std::invalid_argument(where + ": unknown key '" + key + "'; valid keys" +
                                  (path.empty() ? "" : " in '" + path + "'") + ": " + join_keys(dst));
    auto& d = dst[it.key()];
    if (d.is_object() && !d.empty()) {
      merge_at(d, it.value(), where, key);
    } else {
      d = it.value();
    }
  }
}
}  // namespace

void merge_strict(nlohmann::json& defaults, const nlohmann::json& user, const std::string& where) {
  merge_at(defaults, user, where, "");
}

void check_keys(const nlohmann::json& obj, const std::vector<std::string>& valid,
                const std::string& where) {
  if (!obj.is_object()) throw std::invalid_argument(where + ": expected a mapping of keys");
  for (auto it = obj.begin(); it != obj.end(); ++it) {
    bool ok = false;
    for (const auto& v : valid) ok = ok || v == it.key();
    if (!ok) {
      std::string list;
      for (const auto& v : valid) list += (list.empty() ? "" : ", ") + v;
      throw std::invalid_argument(where + ": unknown key '" + it.key() + "'; valid keys: " + list);
    }
  }
}

namespace {

void flatten_into(const nlohmann::json& j, const std::string& prefix, nlohmann::json& out) {
  if (j.is_object() && !j.empty()) {
    for (auto it = j.begin(); it != j.end(); ++it)
      flatten_into(it.value(), prefix.empty() ? it.key() : prefix + "." + it.key(), out);
  } else {
    out[prefix] = j;
  }
}

}  // namespace

nlohmann::json flatten(const nlohmann::json& doc) {
  nlohmann::json out = nlohmann::json::object();
  flatten_into(doc, "", out);
  return out;
}

std::string first_difference(const nlohmann::json& before, const nlohmann::json& now) {
  const auto a = flatten(before), b = flatten(now);
  for (auto it = a.begin(); it != a.end(); ++it)
    if (!b.contains(it.key()) || b[it.key()] != it.value())
      return it.key() + ": " + it.value().dump() + " before, " + (b.contains(it.key()) ? b[it.key()].dump() : "absent") +
             " now";
  for (auto it = b.begin(); it != b.end(); ++it)
    if (!a.contains(it.key())) return it.key() + ": absent before, " + it.value().dump() + " now";
  return "";
}

}  // namespace sam::cfg
