#pragma once
// A folder of image-encoder embeddings of a dataset (issue 21: decoder training on cached
// embeddings). `sam_data embed` (train/embed.h) writes it; the training loader reads it instead of
// decoding the images, and the trainer checks its identity against the run's model.
//
// Layout of DIR:
//   manifest.json            {"format": "sam-embeddings", "version": 1, "status": "building" or
//                            "complete", "dtype": "fp16" | "bf16" | "fp32", "shape": [C, G, G],
//                            "image_size": S, "shard_size": n, "shards": count, "samples": the
//                            dataset's size, "datasets": [specs], "identity": {...}, "images",
//                            "skipped"}
//   shard-000012.bin         the records of shard 12, one after another: C*G*G values each, in
//                            the stored dtype, native byte order (little-endian on every host we
//                            build for)
//   shard-000012.json        {"shard", "first", "count": the dataset samples [first, first+count)
//                            it covers, "records": [{"key", "height", "width", "sample"}],
//                            "skipped": [{"sample", "problem", "message"}]}; written after the
//                            .bin, so a shard with a .json is complete
// A record is the embedding of one image (samples that share an image share it), keyed by
// image_key(): the image's absolute path (and ":member" inside a tar archive). Its height and
// width are the original image's, checked against the sample's when it is read.
#include <torch/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/dataset.h"

namespace sam::data {

/// The manifest's "format" and "version" (what sam_data embed writes and EmbeddingStore reads).
inline constexpr const char* kEmbeddingFormat = "sam-embeddings";
inline constexpr int kEmbeddingVersion = 1;

/// The key of an image in a store: its absolute, normalised path; "path:member" for a member of
/// a tar archive.
std::string image_key(const ImageRef& ref);

/// "fp16", "bf16", "fp32" -> the dtype; throws std::invalid_argument naming the others.
torch::ScalarType embedding_dtype(const std::string& name);

struct EmbeddingRecord {
  std::string key;
  int64_t height = 0, width = 0;  ///< the original image's size
  std::string sample;             ///< the id of the first sample that uses it (for messages)
};

/// One shard's index (the .json beside its records).
struct EmbeddingShard {
  int64_t index = 0;             ///< shard number
  int64_t first = 0, count = 0;  ///< the dataset samples [first, first + count) it covers
  std::vector<EmbeddingRecord> records;
  nlohmann::json skipped = nlohmann::json::array();  ///< [{"sample", "problem", "message"}]
};

/// "DIR/shard-000012" (without extension).
std::string embedding_shard_stem(const std::string& dir, int64_t index);

/// Writes shard `s` with `data` ([records, C, G, G], contiguous, on the CPU): the .bin, then the
/// .json (each atomically). Throws naming the file it cannot write.
void write_embedding_shard(const std::string& dir, const EmbeddingShard& s, const torch::Tensor& data);

/// Whether shard `index` is complete (its .json exists).
bool embedding_shard_done(const std::string& dir, int64_t index);

/// The index of shard `index`; throws std::runtime_error naming the file when missing or malformed.
EmbeddingShard read_embedding_shard(const std::string& dir, int64_t index);

/// The manifest keys that say what the records are: format, version, dtype, shape, image size,
/// shard size, datasets and identity (the keys a resumed build must agree on).
nlohmann::json embedding_manifest_header(const nlohmann::json& manifest);

/// A complete store opened for reading (thread-safe reads).
class EmbeddingStore {
 public:
  /// Reads DIR/manifest.json and every shard index. Throws std::runtime_error naming the file:
  /// missing, malformed, not complete ("building": sam_data embed did not finish), a shard index
  /// missing or a .bin of the wrong size.
  explicit EmbeddingStore(const std::string& dir);
  ~EmbeddingStore();
  EmbeddingStore(const EmbeddingStore&) = delete;
  EmbeddingStore& operator=(const EmbeddingStore&) = delete;

  const std::string& dir() const { return dir_; }
  const nlohmann::json& manifest() const { return manifest_; }
  /// [C, G, G]
  const std::vector<int64_t>& shape() const { return shape_; }
  torch::ScalarType dtype() const { return dtype_; }
  /// Number of images stored.
  size_t size() const { return index_.size(); }
  /// The record of the image with `key`, or nullptr.
  const EmbeddingRecord* find(const std::string& key) const;
  /// The embedding of the image with `key`: [C, G, G] in the stored dtype. Throws DataError
  /// (missing_embedding) naming the image when the store has none, (size_mismatch) when the
  /// stored image size is not height x width.
  torch::Tensor read(const std::string& key, int64_t height, int64_t width) const;

 private:
  struct Where {
    size_t shard;
    int64_t slot;
    EmbeddingRecord record;
  };
  std::string dir_;
  nlohmann::json manifest_;
  std::vector<int64_t> shape_;
  torch::ScalarType dtype_ = torch::kHalf;
  int64_t record_bytes_ = 0;
  std::vector<int> fds_;  ///< one open .bin per shard (pread is thread-safe)
  std::vector<std::string> bins_;
  std::unordered_map<std::string, Where> index_;
};

}  // namespace sam::data
