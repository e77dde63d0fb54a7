#pragma once
// Declarative configuration sections. Each key of a section is declared once, by one line that
// binds its name, the struct member holding it (whose type and initialiser are the key's type and
// default), what it may hold and a one-line doc. Reading (unknown keys, wrong types, a fraction
// for an integer key, values out of range or not among the choices), the defaults document, the
// resolved document and the docs' key tables all come from that line. No libtorch, no OpenCV
// (samlib_base).
//
//   struct Fruit { int count = 3; std::string kind = "apple"; };
//   const cfg::Section<Fruit> schema = cfg::Section<Fruit>("fruit")
//       .key("count", &Fruit::count, "how many", cfg::at_least(1))
//       .key("kind", &Fruit::kind, "which", cfg::one_of({"apple", "pear"}));
//   Fruit f; schema.read(doc["fruit"], f, "my.yaml");   // "my.yaml: fruit.count must be >= 1, got 0"
#include <functional>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/config_file.h"

namespace sam::cfg {

/// What a key may hold beyond its type: a numeric range (for numbers, and for each number of a
/// list) or a set of choices (for strings). Empty: anything of the type.
struct Allowed {
  std::optional<double> lo, hi;
  bool lo_open = false, hi_open = false;
  std::vector<std::string> choices;
  /// As the docs and errors show it: ">= 1", "[0, 1)", "`auto`, `off`", "" for anything.
  std::string text() const;
  bool admits(double v) const;
  bool admits(const std::string& s) const;
};
Allowed at_least(double lo);                        ///< >= lo
Allowed above(double lo);                           ///< > lo
Allowed in_range(double lo, double hi);             ///< [lo, hi]
Allowed in_range_open_hi(double lo, double hi);     ///< [lo, hi)
Allowed in_range_open_lo(double lo, double hi);     ///< (lo, hi]
Allowed one_of(std::vector<std::string> choices);

/// One key as the docs' tables show it.
struct KeyDoc {
  std::string key;            ///< dotted: section.key
  std::string default_value;  ///< doc_value of the default
  std::string allowed;        ///< Allowed::text()
  std::string doc;
};

/// A value as the docs show it: strings in backticks (`""` when empty), anything else as JSON.
std::string doc_value(const nlohmann::json& v);
/// The Markdown table "| key | default | allowed | meaning |" of `keys`, one row each.
std::string markdown_table(const std::vector<KeyDoc>& keys);
/// `doc` (a Markdown document) with the table that follows the line "<!-- schema: ID -->" (a run
/// of lines starting with '|') replaced by `table`. Throws std::invalid_argument naming the marker
/// when the document has none. A document is up to date when this returns it unchanged.
std::string replace_marked_table(const std::string& doc, const std::string& id, const std::string& table);
/// Every table of `sections`, each after its "<!-- schema: <prefix>.<section> -->" line (what
/// `config-docs` prints).
std::string marked_tables(const std::string& prefix, const std::vector<std::string>& sections,
                          const std::function<std::string(const std::string&)>& table);
/// Rewrites the tables marked "<prefix>.<section>" of the Markdown file `path` with
/// table(section) for each of `sections` (atomically). Throws naming the file.
void write_marked_tables(const std::string& path, const std::string& prefix, const std::vector<std::string>& sections,
                         const std::function<std::string(const std::string&)>& table);
/// Throws std::invalid_argument("<where>: <key> must be <allowed>, got <value>") unless `v` (a
/// number, a string or a list of numbers) is allowed.
void check_allowed(const Allowed& allowed, const nlohmann::json& v, const std::string& where,
                   const std::string& key);

template <class S>
class Section {
 public:
  /// `name`: the section's key in the document ("" for top-level keys); errors and docs show the
  /// keys as name.key.
  explicit Section(std::string name) : name_(std::move(name)) {}
  const std::string& name() const { return name_; }

  /// A key held by the member `m` of S (or of a base of S): read with cfg::read's type rules.
  template <class T, class B>
  Section& key(const char* key, T B::*m, std::string doc, Allowed allowed = {}) {
    static_assert(std::is_base_of_v<B, S>, "the member must belong to the section's struct");
    Entry e{key, std::move(doc), std::move(allowed), {}, {}};
    e.to = [m](const S& s) { return nlohmann::json(s.*m); };
    e.from = [m](const nlohmann::json& v, S& s, const std::string& where, const std::string& dotted) {
      nlohmann::json holder{{dotted, v}};
      T out = s.*m;
      cfg::read(holder, dotted.c_str(), out, where);
      s.*m = std::move(out);
    };
    entries_.push_back(std::move(e));
    return *this;
  }

  /// A key whose document value differs from what the struct holds (an enum as its name, two
  /// members as one list): `to` gives the document value, `from` stores one (throwing
  /// std::invalid_argument with the problem, which is then prefixed with where and the key).
  Section& key_as(const char* key, std::function<nlohmann::json(const S&)> to,
                  std::function<void(const nlohmann::json&, S&)> from, std::string doc, Allowed allowed = {}) {
    Entry e{key, std::move(doc), std::move(allowed), std::move(to), {}};
    e.from = [from = std::move(from)](const nlohmann::json& v, S& s, const std::string& where,
                                      const std::string& dotted) {
      try {
        from(v, s);
      } catch (const std::invalid_argument& ex) {
        throw std::invalid_argument(where + ": " + dotted + ": " + ex.what());
      } catch (const nlohmann::json::exception&) {
        throw std::invalid_argument(where + ": key '" + dotted + "' has the wrong type (" + v.dump() + ")");
      }
    };
    entries_.push_back(std::move(e));
    return *this;
  }

  /// The keys in declaration order.
  std::vector<std::string> keys() const {
    std::vector<std::string> out;
    for (const auto& e : entries_) out.push_back(e.key);
    return out;
  }
  /// Every key with its value in `s` (declaration order); the defaults document is to_json(S{}).
  nlohmann::json to_json(const S& s) const {
    nlohmann::json j = nlohmann::json::object();
    for (const auto& e : entries_) j[e.key] = e.to(s);
    return j;
  }
  /// Reads the keys present in `obj` into `s` (absent ones keep their values). An unknown key, a
  /// wrong type, a fraction for an integer key, or a value not allowed throws
  /// std::invalid_argument naming `where`, the dotted key and the problem.
  void read(const nlohmann::json& obj, S& s, const std::string& where) const {
    check_keys(obj, keys(), name_.empty() ? where : where + " [" + name_ + "]");
    for (const auto& e : entries_) {
      auto it = obj.find(e.key);
      if (it == obj.end()) continue;
      const std::string dotted = name_.empty() ? e.key : name_ + "." + e.key;
      check_allowed(e.allowed, *it, where, dotted);
      e.from(*it, s, where, dotted);
    }
  }
  /// The keys as the docs show them, defaults from `defaults`.
  std::vector<KeyDoc> docs(const S& defaults = S{}) const {
    std::vector<KeyDoc> out;
    for (const auto& e : entries_)
      out.push_back({name_.empty() ? e.key : name_ + "." + e.key, doc_value(e.to(defaults)), e.allowed.text(),
                     e.doc});
    return out;
  }

 private:
  struct Entry {
    std::string key, doc;
    Allowed allowed;
    std::function<nlohmann::json(const S&)> to;
    std::function<void(const nlohmann::json&, S&, const std::string& where, const std::string& dotted)> from;
  };
  std::string name_;
  std::vector<Entry> entries_;
};

}  // namespace sam::cfg
