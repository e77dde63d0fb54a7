#pragma once
// Config documents: one JSON/YAML loader for every config in the project (model architectures,
// training runs, the data engine), `key.sub=value` overrides, and strict key checking.
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include <nlohmann/json.hpp>

namespace sam::cfg {

/// Reads a .json, .yaml or .yml file into JSON (YAML scalars become numbers/bools/null where they
/// parse as such). Throws std::runtime_error("<path>: <problem>").
nlohmann::json load_file(const std::string& path);
/// Parses YAML text into JSON; `where` names the source in errors.
nlohmann::json parse_yaml(const std::string& text, const std::string& where);
/// Applies "a.b.c=value" overrides in order. The value is parsed as YAML (so 3, 1e-4, true, [1,2],
/// "text" all work). A path that does not exist in `doc` is rejected with the valid keys at that
/// level listed, unless `allow_new` is set.
void apply_overrides(nlohmann::json& doc, const std::vector<std::string>& overrides,
                     bool allow_new = false);
/// Merges `user` over `defaults` recursively: every key of `user` must exist in `defaults` (else
/// std::invalid_argument naming `where`, the dotted key and the valid keys at that level); mappings
/// merge, any other value replaces the default.
void merge_strict(nlohmann::json& defaults, const nlohmann::json& user, const std::string& where);
/// Throws std::invalid_argument when `obj` has a key outside `valid`, naming the key, `where`, and
/// listing the valid keys.
void check_keys(const nlohmann::json& obj, const std::vector<std::string>& valid,
                const std::string& where);

/// `doc` as dotted keys -> values (nested mappings flattened; lists are values, not descended into).
nlohmann::json flatten(const nlohmann::json& doc);
/// The first dotted key (as flatten gives them) whose value differs between `before` and `now`, as
/// "key: <before> before, <now> now" ("absent" for a missing key); "" when they are equal.
std::string first_difference(const nlohmann::json& before, const nlohmann::json& now);

/// Typed field access with a message naming `where` and the key on a type mismatch. An integer
/// key takes a whole number only: 3 or 1e5 (YAML reads it as a float) but not 2.5, which would
/// otherwise be truncated silently.
template <typename T>
void read(const nlohmann::json& obj, const char* key, T& out, const std::string& where) {
  auto it = obj.find(key);
  if (it == obj.end()) return;
  if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
    if (it->is_number_float()) {
      const double v = it->template get<double>();
      if (!(v == std::floor(v)) || v < double(std::numeric_limits<T>::min()) ||
          v > double(std::numeric_limits<T>::max()))
        throw std::invalid_argument(where + ": key '" + key + "' needs a whole number, got " +
                                    it->dump());
      out = static_cast<T>(v);
      return;
    }
  }
  try {
    out = it->template get<T>();
  } catch (const nlohmann::json::exception& e) {
    throw std::invalid_argument(where + ": key '" + key + "' has the wrong type (" +
                                it->dump() + ")");
  }
}

}  // namespace sam::cfg
