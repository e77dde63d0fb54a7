#include "data/config_schema.h"

#include "data/atomic_file.h"

#include <cmath>
#include <fstream>
#include <iterator>
#include <sstream>
#include <stdexcept>

namespace sam::cfg {
namespace {

std::string number_text(double v) {
  std::ostringstream o;
  o << v;
  return o.str();
}

}  // namespace

std::string Allowed::text() const {
  if (!choices.empty()) {
    std::string s;
    for (const auto& c : choices) s += (s.empty() ? "`" : ", `") + c + "`";
    return s;
  }
  if (lo && hi)
    return std::string(lo_open ? "(" : "[") + number_text(*lo) + ", " + number_text(*hi) + (hi_open ? ")" : "]");
  if (lo) return std::string(lo_open ? "> " : ">= ") + number_text(*lo);
  if (hi) return std::string(hi_open ? "< " : "<= ") + number_text(*hi);
  return "";
}

bool Allowed::admits(double v) const {
  if (std::isnan(v)) return !lo && !hi;
  if (lo && (lo_open ? !(v > *lo) : !(v >= *lo))) return false;
  if (hi && (hi_open ? !(v < *hi) : !(v <= *hi))) return false;
  return true;
}

bool Allowed::admits(const std::string& s) const {
  if (choices.empty()) return true;
  for (const auto& c : choices)
    if (c == s) return true;
  return false;
}

Allowed at_least(double lo) {
  Allowed a;
  a.lo = lo;
  return a;
}
Allowed above(double lo) {
  Allowed a;
  a.lo = lo;
  a.lo_open = true;
  return a;
}
Allowed in_range(double lo, double hi) {
  Allowed a;
  a.lo = lo;
  a.hi = hi;
  return a;
}
Allowed in_range_open_hi(double lo, double hi) {
  Allowed a = in_range(lo, hi);
  a.hi_open = true;
  return a;
}
Allowed in_range_open_lo(double lo, double hi) {
  Allowed a = in_range(lo, hi);
  a.lo_open = true;
  return a;
}
Allowed one_of(std::vector<std::string> choices) {
  Allowed a;
  a.choices = std::move(choices);
  return a;
}

std::string doc_value(const nlohmann::json& v) {
  if (v.is_string()) return v.get<std::string>().empty() ? "`\"\"`" : "`" + v.get<std::string>() + "`";
  std::string s = v.dump();
  // Lists as the docs write them: [0.9, 0.999].
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    out += s[i];
    if (s[i] == ',' && v.is_array()) out += ' ';
  }
  return out;
}

std::string markdown_table(const std::vector<KeyDoc>& keys) {
  std::string t = "| key | default | allowed | meaning |\n|---|---|---|---|\n";
  for (const auto& k : keys)
    t += "| `" + k.key + "` | " + k.default_value + " | " + k.allowed + " | " + k.doc + " |\n";
  return t;
}

std::string replace_marked_table(const std::string& doc, const std::string& id, const std::string& table) {
  const std::string marker = "<!-- schema: " + id + " -->\n";
  const size_t at = doc.find(marker);
  if (at == std::string::npos) throw std::invalid_argument("no '" + marker.substr(0, marker.size() - 1) + "' line");
  const size_t begin = at + marker.size();
  size_t end = begin;
  while (end < doc.size() && doc[end] == '|') {
    const size_t nl = doc.find('\n', end);
    end = nl == std::string::npos ? doc.size() : nl + 1;
  }
  return doc.substr(0, begin) + table + doc.substr(end);
}

std::string marked_tables(const std::string& prefix, const std::vector<std::string>& sections,
                          const std::function<std::string(const std::string&)>& table) {
  std::string out;
  for (const auto& sec : sections) out += "<!-- schema: " + prefix + "." + sec + " -->\n" + table(sec) + "\n";
  return out;
}

void write_marked_tables(const std::string& path, const std::string& prefix, const std::vector<std::string>& sections,
                         const std::function<std::string(const std::string&)>& table) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path + ": cannot read");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  for (const auto& sec : sections) {
    try {
      text = replace_marked_table(text, prefix + "." + sec, table(sec));
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument(path + ": " + e.what());
    }
  }
  data::write_file_atomic(path, text);
}

void check_allowed(const Allowed& allowed, const nlohmann::json& v, const std::string& where,
                   const std::string& key) {
  const auto fail = [&] {
    throw std::invalid_argument(where + ": " + key + " must be " +
                                (allowed.choices.empty() ? allowed.text() : "one of " + allowed.text()) +
                                ", got " + v.dump());
  };
  if (v.is_number() && !allowed.admits(v.get<double>())) fail();
  if (v.is_string() && !allowed.admits(v.get<std::string>())) fail();
  if (v.is_array())
    for (const auto& x : v)
      if (x.is_number() && !allowed.admits(x.get<double>())) fail();
}

}  // namespace sam::cfg
