#pragma once
// The auto stage's release format: SA-1B's tar shards (shards/sa_000000.tar, sa_000001.tar, ...),
// packed from the stage's loose SA-1B folder.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace sam::engine {

/// Packs the finished images `stems` of the stage folder `dir` into tar shards of
/// `images_per_shard` images each (<stem>.<ext> then <stem>.json, in the order of `stems`), and
/// lists them in dir/shards.json ({"shard_images", "shards": [{"file", "images", "bytes"}]}). The
/// members come from the loose folder (dir/data/) or from the previous shards when an earlier run
/// packed them and removed the folder. New shards are written beside the old ones (shards.tmp/)
/// and swapped in by renames, and the loose files are removed (unless `keep_folder`) only after
/// that, so an interruption at any point loses nothing: the next call packs again. A listing that
/// already matches (same stems, same shard size, every shard present) is kept as it is. Returns
/// the listing; `log` (may be empty) hears what was packed. Throws when a finished image's files
/// are in neither place.
nlohmann::json pack_shards(const std::filesystem::path& dir, const std::vector<std::string>& stems,
                           int64_t images_per_shard, bool keep_folder,
                           const std::function<void(const std::string&)>& log = {});

}  // namespace sam::engine
