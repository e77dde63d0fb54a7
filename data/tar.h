#pragma once
// Reading tar archives in place (SA-1B's released shards are plain .tar files of sa_<n>.jpg and
// sa_<n>.json): the headers are indexed once, members are then read at their offsets, without
// unpacking. Formats: POSIX ustar and pax (extended "x" headers: path, size), GNU (long names "L",
// base-256 sizes), old v7. Writing: POSIX ustar, with a pax header for long names and members
// of 8 GiB or more (what GNU tar and Python's tarfile read). Pure C++ (POSIX I/O).
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

/// Writes a tar archive member by member to "<path>.part", renamed to `path` by finish(): a
/// crash or an exception never leaves a half-written archive under the final name. Members are
/// regular files (mode 0644, owner 0:0, the given mtime); names are stored as given.
class TarWriter {
 public:
  /// Creates "<path>.part". Throws std::runtime_error("<path>: ...") when it cannot.
  explicit TarWriter(const std::string& path, int64_t mtime = 0);
  /// Removes "<path>.part" unless finish() was called.
  ~TarWriter();
  TarWriter(const TarWriter&) = delete;
  TarWriter& operator=(const TarWriter&) = delete;

  /// Appends one member. Throws std::invalid_argument for an empty name or one with a NUL byte,
  /// std::runtime_error("<path>: ...") on a write error.
  void add(const std::string& name, const void* data, uint64_t size);
  void add(const std::string& name, const std::vector<uint8_t>& bytes) {
    add(name, bytes.data(), bytes.size());
  }
  /// Writes the end-of-archive blocks, flushes to disk and renames "<path>.part" to `path`.
  void finish();
  uint64_t members() const { return members_; }
  uint64_t bytes_written() const { return written_; }

 private:
  void write_all(const void* p, uint64_t n);
  void header(const std::string& name, uint64_t size, char type);
  std::string path_;
  int fd_ = -1;
  int64_t mtime_ = 0;
  uint64_t members_ = 0;
  uint64_t written_ = 0;
  bool finished_ = false;
};

/// Reads [offset, offset + size) of the file at `path` (one open + pread); throws
/// std::runtime_error naming the path on failure or a short read.
std::vector<uint8_t> read_file_range(const std::string& path, uint64_t offset, uint64_t size);

}  // namespace sam::data
