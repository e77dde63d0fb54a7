#pragma once
// Reading tar archives in place (SA-1B's released shards are plain .tar files of sa_<n>.jpg and
// sa_<n>.json): the headers are indexed once, members are then read at their offsets, without
// unpacking. Formats: POSIX ustar and pax (extended "x" headers: path, size), GNU (long names "L",
// base-256 sizes), old v7. Pure C++ (POSIX pread).
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace sam::data {

/// A regular file inside an archive: its data occupies [offset, offset + size) of the archive.
struct TarMember {
  std::string name;  // path inside the archive, "./" prefix removed
  uint64_t offset = 0;
  uint64_t size = 0;
};

/// Result of indexing: the regular-file members in archive order, and whatever went wrong (a
/// truncated or corrupt archive keeps the members read before the damage).
struct TarIndex {
  std::vector<TarMember> members;
  std::vector<std::string> problems;
};

/// Reads `n` bytes at `offset` into `buf`, returning how many were read (fewer at the end).
using TarReadFn = std::function<size_t(uint64_t offset, void* buf, size_t n)>;

/// Walks the headers of an archive of `total_size` bytes through `read` (data blocks are skipped,
/// not read). Never throws on bad data: header checksum errors, impossible sizes, malformed pax
/// records and truncation end the walk with a message in `problems` naming the byte offset.
TarIndex tar_index(const TarReadFn& read, uint64_t total_size);

/// An open archive with its index; thread-safe reads (pread).
class TarArchive {
 public:
  /// Opens and indexes `path`. Throws std::runtime_error("<path>: ...") when it cannot be opened
  /// or is compressed (gzip/bzip2/xz/zstd magic: SA-1B shards are plain tar).
  explicit TarArchive(const std::string& path);
  ~TarArchive();
  TarArchive(const TarArchive&) = delete;
  TarArchive& operator=(const TarArchive&) = delete;

  const std::string& path() const { return path_; }
  const TarIndex& index() const { return index_; }
  /// The member's bytes. Throws std::runtime_error("<path>:<member>: ...") on a short read.
  std::vector<uint8_t> read(const TarMember& m) const;

 private:
  std::string path_;
  int fd_ = -1;
  TarIndex index_;
};

/// Reads [offset, offset + size) of the file at `path` (one open + pread); throws
/// std::runtime_error naming the path on failure or a short read.
std::vector<uint8_t> read_file_range(const std::string& path, uint64_t offset, uint64_t size);

}  // namespace sam::data
