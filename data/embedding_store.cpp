#include "data/embedding_store.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "data/annotation.h"
#include "data/atomic_file.h"

namespace sam::data {

namespace fs = std::filesystem;

namespace {

nlohmann::json read_json_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error(path + ": cannot open (no such file?)");
  try {
    return nlohmann::json::parse(in);
  } catch (const std::exception& e) {
    throw std::runtime_error(path + ": not valid JSON: " + e.what());
  }
}

}  // namespace

std::string image_key(const ImageRef& ref) {
  std::error_code ec;
  fs::path p = fs::absolute(fs::path(ref.path), ec);
  if (ec) p = fs::path(ref.path);
  const std::string path = p.lexically_normal().string();
  return ref.member.empty() ? path : path + ":" + ref.member;
}

torch::ScalarType embedding_dtype(const std::string& name) {
  if (name == "fp16") return torch::kHalf;
  if (name == "bf16") return torch::kBFloat16;
  if (name == "fp32") return torch::kFloat;
  throw std::invalid_argument("embedding dtype '" + name + "': expected fp16, bf16 or fp32");
}

std::string embedding_shard_stem(const std::string& dir, int64_t index) {
  char name[32];
  std::snprintf(name, sizeof name, "shard-%06lld", static_cast<long long>(index));
  return (fs::path(dir) / name).string();
}

void write_embedding_shard(const std::string& dir, const EmbeddingShard& s, const torch::Tensor& data) {
  const std::string stem = embedding_shard_stem(dir, s.index);
  TORCH_CHECK(data.device().is_cpu() && data.is_contiguous() && data.size(0) == static_cast<int64_t>(s.records.size()),
              stem, ": the records must be a contiguous CPU tensor with one row per record");
  // The records (up to hundreds of MiB) go straight to the temporary file, not through a string.
  const std::string bin = stem + ".bin", tmp = bin + ".tmp" + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw std::runtime_error(tmp + ": cannot create");
    out.write(static_cast<const char*>(data.data_ptr()), static_cast<std::streamsize>(data.nbytes()));
    if (!out) throw std::runtime_error(tmp + ": write failed (disk full?)");
  }
  publish_file(tmp, bin);
  nlohmann::json recs = nlohmann::json::array();
  for (const auto& r : s.records)
    recs.push_back({{"key", r.key}, {"height", r.height}, {"width", r.width}, {"sample", r.sample}});
  const nlohmann::json j = {{"shard", s.index}, {"first", s.first}, {"count", s.count},
                            {"records", recs},  {"skipped", s.skipped}, {"bytes", data.nbytes()}};
  write_file_atomic(stem + ".json", j.dump() + "\n");
}

bool embedding_shard_done(const std::string& dir, int64_t index) {
  std::error_code ec;
  return fs::is_regular_file(embedding_shard_stem(dir, index) + ".json", ec);
}

EmbeddingShard read_embedding_shard(const std::string& dir, int64_t index) {
  const std::string path = embedding_shard_stem(dir, index) + ".json";
  const auto j = read_json_file(path);
  EmbeddingShard s;
  try {
    s.index = j.at("shard").get<int64_t>();
    s.first = j.at("first").get<int64_t>();
    s.count = j.at("count").get<int64_t>();
    for (const auto& r : j.at("records"))
      s.records.push_back({r.at("key").get<std::string>(), r.at("height").get<int64_t>(), r.at("width").get<int64_t>(),
                           r.value("sample", std::string())});
    s.skipped = j.at("skipped");
  } catch (const std::exception& e) {
    throw std::runtime_error(path + ": not a shard index: " + e.what());
  }
  if (s.index != index) throw std::runtime_error(path + ": holds shard " + std::to_string(s.index));
  return s;
}

nlohmann::json embedding_manifest_header(const nlohmann::json& m) {
  nlohmann::json h = nlohmann::json::object();
  for (const char* k : {"format", "version", "dtype", "shape", "image_size", "shard_size", "samples", "datasets", "identity"})
    if (m.contains(k)) h[k] = m[k];
  return h;
}

EmbeddingStore::EmbeddingStore(const std::string& dir) : dir_(dir) {
  const std::string mpath = (fs::path(dir) / "manifest.json").string();
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw std::runtime_error(dir + ": no such embedding folder (sam_data embed writes one)");
  manifest_ = read_json_file(mpath);
  try {
    if (manifest_.at("format").get<std::string>() != kEmbeddingFormat || manifest_.at("version").get<int>() != kEmbeddingVersion)
      throw std::runtime_error("format " + manifest_.at("format").dump() + " version " + manifest_.at("version").dump() +
                               ", expected \"" + kEmbeddingFormat + "\" version " + std::to_string(kEmbeddingVersion));
    if (manifest_.at("status").get<std::string>() != "complete")
      throw std::runtime_error("status \"" + manifest_.at("status").get<std::string>() +
                               "\": sam_data embed has not finished (run it again: it resumes)");
    dtype_ = embedding_dtype(manifest_.at("dtype").get<std::string>());
    shape_ = manifest_.at("shape").get<std::vector<int64_t>>();
    if (shape_.size() != 3) throw std::runtime_error("shape must be [C, G, G]");
  } catch (const std::exception& e) {
    throw std::runtime_error(mpath + ": " + e.what());
  }
  record_bytes_ = shape_[0] * shape_[1] * shape_[2] * static_cast<int64_t>(c10::elementSize(dtype_));
  const int64_t shards = manifest_.value("shards", int64_t{0});
  for (int64_t k = 0; k < shards; ++k) {
    auto s = read_embedding_shard(dir, k);
    const std::string bin = embedding_shard_stem(dir, k) + ".bin";
    const auto want = static_cast<uintmax_t>(record_bytes_) * s.records.size();
    const auto have = fs::file_size(bin, ec);
    if (ec || have != want)
      throw std::runtime_error(bin + ": " + (ec ? std::string("missing") : std::to_string(have) + " bytes") + ", expected " +
                               std::to_string(want) + " (" + std::to_string(s.records.size()) + " records)");
    const int fd = ::open(bin.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw std::runtime_error(bin + ": cannot open: " + std::strerror(errno));
    fds_.push_back(fd);
    bins_.push_back(bin);
    for (size_t i = 0; i < s.records.size(); ++i)
      index_.emplace(s.records[i].key, Where{static_cast<size_t>(k), static_cast<int64_t>(i), s.records[i]});
  }
}

EmbeddingStore::~EmbeddingStore() {
  for (int fd : fds_) ::close(fd);
}

const EmbeddingRecord* EmbeddingStore::find(const std::string& key) const {
  auto it = index_.find(key);
  return it == index_.end() ? nullptr : &it->second.record;
}

torch::Tensor EmbeddingStore::read(const std::string& key, int64_t height, int64_t width) const {
  auto it = index_.find(key);
  if (it == index_.end())
    throw DataError(Problem::missing_embedding, key, "no embedding in " + dir_ + " (made from another dataset?)");
  const auto& w = it->second;
  if (w.record.height != height || w.record.width != width)
    throw DataError(Problem::size_mismatch, key,
                    "the embedding in " + dir_ + " is of a " + std::to_string(w.record.height) + "x" +
                        std::to_string(w.record.width) + " image, the sample's is " + std::to_string(height) + "x" +
                        std::to_string(width));
  auto out = torch::empty(shape_, torch::TensorOptions().dtype(dtype_));
  auto* p = static_cast<char*>(out.data_ptr());
  int64_t done = 0;
  const auto base = static_cast<off_t>(w.slot * record_bytes_);
  while (done < record_bytes_) {
    const ssize_t n = ::pread(fds_[w.shard], p + done, static_cast<size_t>(record_bytes_ - done), base + done);
    if (n <= 0) throw DataError(Problem::missing_embedding, key, bins_[w.shard] + ": read failed");
    done += n;
  }
  return out;
}

}  // namespace sam::data
