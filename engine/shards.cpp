#include "engine/shards.h"

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <map>
#include <memory>
#include <set>
#include <stdexcept>

#include "data/atomic_file.h"
#include "data/tar.h"
#include "engine/stage_io.h"

namespace fs = std::filesystem;

namespace sam::engine {

namespace {

// Removes the loose SA-1B files of `stems` (and the folder when nothing else is left in it).
void remove_loose(const fs::path& loose, const std::vector<std::string>& stems) {
  if (!fs::exists(loose)) return;
  const std::set<std::string> keep(stems.begin(), stems.end());
  for (const auto& e : fs::directory_iterator(loose))
    if (e.is_regular_file() && keep.count(e.path().stem().string())) fs::remove(e.path());
  if (fs::is_empty(loose)) fs::remove(loose);
}

}  // namespace

nlohmann::json pack_shards(const fs::path& dir, const std::vector<std::string>& stems,
                           int64_t images_per_shard, bool keep_folder,
                           const std::function<void(const std::string&)>& log) {
  if (images_per_shard <= 0)
    throw std::invalid_argument("pack_shards: images_per_shard must be positive");
  const fs::path shards = dir / "shards", tmp = dir / "shards.tmp", old = dir / "shards.old";
  const fs::path listing = dir / "shards.json", loose = dir / "data";
  if (!fs::exists(shards) && fs::exists(old)) fs::rename(old, shards);  // an interrupted swap
  fs::remove_all(tmp);
  fs::remove_all(old);
  const int64_t per = images_per_shard;
  nlohmann::json prev;
  if (fs::exists(listing)) prev = read_json_file(listing);
  auto listed = [&](const nlohmann::json& l) {
    std::vector<std::string> v;
    for (const auto& sh : l.at("shards"))
      for (const auto& st : sh.at("images")) v.push_back(st.get<std::string>());
    return v;
  };
  if (!prev.is_null() && prev.value("shard_images", int64_t(-1)) == per && listed(prev) == stems) {
    bool complete = true;
    for (const auto& sh : prev.at("shards"))
      complete = complete && fs::exists(shards / sh.at("file").get<std::string>());
    if (complete) {
      if (!keep_folder) remove_loose(loose, stems);
      return prev;
    }
  }
  // Where each member is now: a loose file, or a member of an old shard.
  std::map<std::string, fs::path> on_disk;
  if (fs::exists(loose))
    for (const auto& e : fs::directory_iterator(loose))
      if (e.is_regular_file()) on_disk[e.path().filename().string()] = e.path();
  std::vector<std::unique_ptr<data::TarArchive>> archives;
  std::map<std::string, std::pair<const data::TarArchive*, data::TarMember>> in_tar;
  if (fs::exists(shards))
    for (const auto& e : fs::directory_iterator(shards)) {
      if (e.path().extension() != ".tar") continue;
      archives.push_back(std::make_unique<data::TarArchive>(e.path().string()));
      for (const auto& m : archives.back()->index().members)
        in_tar[m.name] = {archives.back().get(), m};
    }
  std::map<std::string, std::vector<std::string>> by_stem;  // stem -> member names, once
  for (const auto& [name, p] : on_disk) by_stem[fs::path(name).stem().string()].push_back(name);
  for (const auto& [name, src] : in_tar) by_stem[fs::path(name).stem().string()].push_back(name);
  auto members_of = [&](const std::string& stem) {
    std::map<std::string, std::vector<uint8_t>> out;  // name -> bytes
    auto take = [&](const std::string& name) {
      if (out.count(name)) return;
      const auto d = on_disk.find(name);
      if (d != on_disk.end()) {
        out[name] = data::read_file_range(d->second.string(), 0, fs::file_size(d->second));
        return;
      }
      const auto t = in_tar.find(name);
      if (t != in_tar.end()) out[name] = t->second.first->read(t->second.second);
    };
    const auto named = by_stem.find(stem);
    if (named != by_stem.end())
      for (const auto& name : named->second) take(name);
    if (!out.count(stem + ".json") || out.size() < 2)
      throw std::runtime_error(dir.string() + ": the outputs of finished image " + stem +
                               " are missing from " + loose.string() + " and " + shards.string() +
                               "; remove records/" + stem + ".json to redo it");
    return out;
  };
  fs::create_directories(tmp);
  nlohmann::json doc = {{"shard_images", per}, {"shards", nlohmann::json::array()}};
  for (size_t first = 0, n = 0; first < stems.size(); first += size_t(per), ++n) {
    char name[32];
    std::snprintf(name, sizeof name, "sa_%06zu.tar", n);
    data::TarWriter w((tmp / name).string(), std::time(nullptr));
    nlohmann::json list = nlohmann::json::array();
    for (size_t i = first; i < std::min(stems.size(), first + size_t(per)); ++i) {
      const auto members = members_of(stems[i]);
      for (const auto& [m, bytes] : members)  // the image before its JSON, as SA-1B's shards
        if (m != stems[i] + ".json") w.add(m, bytes);
      w.add(stems[i] + ".json", members.at(stems[i] + ".json"));
      list.push_back(stems[i]);
    }
    w.finish();
    doc["shards"].push_back({{"file", name}, {"images", list}, {"bytes", w.bytes_written()}});
  }
  archives.clear();
  if (fs::exists(shards)) fs::rename(shards, old);
  fs::rename(tmp, shards);
  data::write_file_atomic(listing.string(), doc.dump(2) + "\n");
  fs::remove_all(old);
  if (!keep_folder) remove_loose(loose, stems);
  if (log)
    log("auto: packed " + std::to_string(stems.size()) + " image(s) into " +
        std::to_string(doc["shards"].size()) + " shard(s) in " + shards.string());
  return doc;
}

}  // namespace sam::engine
