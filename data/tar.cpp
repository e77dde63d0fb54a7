// tar header walking (ustar, pax, GNU, v7) and in-place member reads.
#include "data/tar.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace sam::data {
namespace {

constexpr uint64_t kBlock = 512;
constexpr uint64_t kMaxMetaSize = 1
                                  << 20;  // pax / GNU long-name payloads larger than this are junk

std::string at(uint64_t off) {
  return "at byte " + std::to_string(off);
}

bool all_zero(const uint8_t* b) {
  for (size_t i = 0; i < kBlock; ++i)
    if (b[i]) return false;
  return true;
}

// A NUL-terminated field of at most n bytes.
std::string field(const uint8_t* p, size_t n) {
  size_t len = 0;
  while (len < n && p[len]) ++len;
  return std::string(reinterpret_cast<const char*>(p), len);
}

// Numeric header field: octal text (leading spaces, ended by space or NUL) or GNU base-256
// (high bit of the first byte set). False when malformed or negative or over 2^63.
bool parse_number(const uint8_t* p, size_t n, uint64_t& out) {
  out = 0;
  if (p[0] & 0x80) {
    if (p[0] == 0xFF) return false;  // negative
    uint64_t v = p[0] & 0x7F;
    for (size_t i = 1; i < n; ++i) {
      if (v >> 55) return false;
      v = (v << 8) | p[i];
    }
    out = v;
    return true;
  }
  size_t i = 0;
  while (i < n && p[i] == ' ') ++i;
  for (; i < n && p[i] >= '0' && p[i] <= '7'; ++i) {
    if (out >> 60) return false;
    out = out * 8 + (p[i] - '0');
  }
  for (; i < n; ++i)
    if (p[i] != ' ' && p[i] != 0) return false;
  return true;  // an all-blank field reads as 0 (some writers leave size blank for directories)
}

bool checksum_ok(const uint8_t* b) {
  uint64_t stored = 0;
  if (!parse_number(b + 148, 8, stored)) return false;
  uint64_t usum = 0;
  int64_t ssum = 0;
  for (size_t i = 0; i < kBlock; ++i) {
    const uint8_t c = (i >= 148 && i < 156) ? ' ' : b[i];
    usum += c;
    ssum += static_cast<int8_t>(c);
  }
  return stored == usum || static_cast<int64_t>(stored) == ssum;
}

std::string normalise(std::string name) {
  while (true) {
    if (name.rfind("./", 0) == 0)
      name.erase(0, 2);
    else if (!name.empty() && name[0] == '/')
      name.erase(0, 1);
    else
      break;
  }
  return name;
}

// pax extended header records "<len> <key>=<value>\n"; returns false on a malformed record.
bool parse_pax(const std::string& data, std::string& path, bool& has_size, uint64_t& size) {
  size_t pos = 0;
  while (pos < data.size()) {
    if (data[pos] == '\0') break;  // padding
    size_t len = 0, i = pos;
    while (i < data.size() && data[i] >= '0' && data[i] <= '9') {
      if (len > data.size()) return false;
      len = len * 10 + (data[i] - '0');
      ++i;
    }
    if (i == pos || i >= data.size() || data[i] != ' ' || len < 5 || len > data.size() - pos)
      return false;
    const size_t end = pos + len;  // one past '\n'
    if (data[end - 1] != '\n') return false;
    const std::string rec = data.substr(i + 1, end - 1 - (i + 1));
    const size_t eq = rec.find('=');
    if (eq == std::string::npos) return false;
    const std::string key = rec.substr(0, eq), value = rec.substr(eq + 1);
    if (key == "path") {
      path = value;
    } else if (key == "size") {
      uint64_t v = 0;
      if (value.empty()) return false;
      for (char c : value) {
        if (c < '0' || c > '9' || (v >> 59)) return false;
        v = v * 10 + (c - '0');
      }
      has_size = true;
      size = v;
    }
    pos = end;
  }
  return true;
}

}  // namespace

TarIndex tar_index(const TarReadFn& read, uint64_t total_size) {
  TarIndex idx;
  uint8_t b[kBlock];
  uint64_t off = 0;
  std::string next_path;  // from a pax "x" or GNU "L" header, for the next member
  bool next_has_size = false;
  uint64_t next_size = 0;
  while (true) {
    if (off + kBlock > total_size) {
      if (off < total_size || idx.members.empty())
        idx.problems.push_back("archive ends without an end-of-archive marker " + at(off) +
                               " (truncated?)");
      else
        idx.problems.push_back("archive ends without an end-of-archive marker (truncated?)");
      break;
    }
    if (read(off, b, kBlock) != kBlock) {
      idx.problems.push_back("short read " + at(off));
      break;
    }
    if (all_zero(b)) break;  // end of archive
    if (!checksum_ok(b)) {
      idx.problems.push_back("bad header checksum " + at(off) + " (corrupt or not a tar file)");
      break;
    }
    uint64_t size = 0;
    if (!parse_number(b + 124, 12, size)) {
      idx.problems.push_back("bad size field " + at(off));
      break;
    }
    const char type = static_cast<char>(b[156]);
    if (next_has_size && type != 'x' && type != 'g' && type != 'L' && type != 'K') size = next_size;
    const uint64_t data_off = off + kBlock;
    if (size > total_size || data_off > total_size - size) {
      idx.problems.push_back("member " + at(off) + " (" + field(b, 100) + ", " +
                             std::to_string(size) +
                             " bytes) runs past the end of the archive (truncated)");
      break;
    }
    const uint64_t next = data_off + (size + kBlock - 1) / kBlock * kBlock;
    if (type == 'x' || type == 'g' || type == 'L' || type == 'K') {
      if (size > kMaxMetaSize) {
        idx.problems.push_back("oversized extended header " + at(off));
        break;
      }
      std::string data(size, '\0');
      if (size && read(data_off, data.data(), size) != size) {
        idx.problems.push_back("short read " + at(data_off));
        break;
      }
      if (type == 'x') {
        if (!parse_pax(data, next_path, next_has_size, next_size)) {
          idx.problems.push_back("malformed pax header " + at(off));
          break;
        }
      } else if (type == 'L') {
        next_path = data.substr(0, data.find('\0'));
      }
      // 'g' (global pax) and 'K' (long link name) carry nothing a reader of files needs.
      off = next;
      continue;
    }
    std::string name;
    if (!next_path.empty()) {
      name = next_path;
    } else {
      name = field(b, 100);
      const bool posix = std::memcmp(b + 257, "ustar\0", 6) == 0;  // GNU writes "ustar  \0"
      const std::string prefix = posix ? field(b + 345, 155) : std::string();
      if (!prefix.empty()) name = prefix + "/" + name;
    }
    next_path.clear();
    next_has_size = false;
    if (type == '0' || type == '\0' || type == '7') {
      TarMember m;
      m.name = normalise(name);
      m.offset = data_off;
      m.size = size;
      if (!m.name.empty()) idx.members.push_back(std::move(m));
    } else if (type == 'S') {
      idx.problems.push_back("GNU sparse member " + name + " " + at(off) +
                             " skipped (not supported)");
    }
    // Directories, links, devices: nothing to read.
    off = next;
  }
  return idx;
}

TarArchive::TarArchive(const std::string& path) : path_(path) {
  fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0) throw std::runtime_error(path + ": cannot open (" + std::strerror(errno) + ")");
  struct stat st;
  if (::fstat(fd_, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd_);
    throw std::runtime_error(path + ": not a regular file");
  }
  const uint64_t total = static_cast<uint64_t>(st.st_size);
  uint8_t magic[6] = {0};
  const ssize_t got = ::pread(fd_, magic, sizeof magic, 0);
  auto starts = [&](std::initializer_list<uint8_t> m) {
    if (got < static_cast<ssize_t>(m.size())) return false;
    size_t i = 0;
    for (uint8_t c : m)
      if (magic[i++] != c) return false;
    return true;
  };
  if (starts({0x1f, 0x8b}) || starts({'B', 'Z', 'h'}) || starts({0xfd, '7', 'z', 'X', 'Z', 0}) ||
      starts({0x28, 0xb5, 0x2f, 0xfd})) {
    ::close(fd_);
    throw std::runtime_error(
        path + ": compressed archive; decompress it first (SA-1B shards are plain .tar)");
  }
  const int fd = fd_;
  index_ = tar_index(
      [fd](uint64_t off, void* buf, size_t n) -> size_t {
        size_t done = 0;
        while (done < n) {
          const ssize_t r =
              ::pread(fd, static_cast<char*>(buf) + done, n - done, static_cast<off_t>(off + done));
          if (r < 0 && errno == EINTR) continue;
          if (r <= 0) break;
          done += static_cast<size_t>(r);
        }
        return done;
      },
      total);
}

TarArchive::~TarArchive() {
  if (fd_ >= 0) ::close(fd_);
}

std::vector<uint8_t> TarArchive::read(const TarMember& m) const {
  std::vector<uint8_t> out(m.size);
  size_t done = 0;
  while (done < m.size) {
    const ssize_t r =
        ::pread(fd_, out.data() + done, m.size - done, static_cast<off_t>(m.offset + done));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0)
      throw std::runtime_error(
          path_ + ":" + m.name + ": short read (" +
          (r < 0 ? std::string(std::strerror(errno)) : std::string("end of file")) + ")");
    done += static_cast<size_t>(r);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Writing.

namespace {

// Writes `v` as `n - 1` octal digits and a NUL into p[0..n).
void put_octal(uint8_t* p, size_t n, uint64_t v) {
  for (size_t i = n - 1; i-- > 0;) {
    p[i] = static_cast<uint8_t>('0' + (v & 7));
    v >>= 3;
  }
  p[n - 1] = 0;
}

// One pax record "<len> key=value\n", where <len> counts the whole record, its own digits too.
std::string pax_record(const std::string& key, const std::string& value) {
  const size_t body = key.size() + value.size() + 3;  // ' ', '=', '\n'
  size_t len = body + 1;
  while (std::to_string(len).size() + body != len) len = std::to_string(len).size() + body;
  return std::to_string(len) + " " + key + "=" + value + "\n";
}

constexpr uint64_t kMaxOctalSize = (uint64_t(1) << 33) - 1;  // 11 octal digits

}  // namespace

TarWriter::TarWriter(const std::string& path, int64_t mtime) : path_(path), mtime_(mtime) {
  const std::string part = path_ + ".part";
  fd_ = ::open(part.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0)
    throw std::runtime_error(path_ + ": cannot create " + part + " (" + std::strerror(errno) + ")");
}

TarWriter::~TarWriter() {
  if (fd_ >= 0) ::close(fd_);
  if (!finished_) ::unlink((path_ + ".part").c_str());
}

void TarWriter::write_all(const void* p, uint64_t n) {
  if (fd_ < 0) throw std::runtime_error(path_ + ": archive already finished");
  const char* c = static_cast<const char*>(p);
  while (n > 0) {
    const ssize_t w = ::write(fd_, c, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0)
      throw std::runtime_error(path_ + ": write failed at byte " + std::to_string(written_) +
                               " (" + std::strerror(errno) + ")");
    c += w;
    n -= static_cast<uint64_t>(w);
    written_ += static_cast<uint64_t>(w);
  }
}

void TarWriter::header(const std::string& name, uint64_t size, char type) {
  uint8_t b[kBlock];
  std::memset(b, 0, sizeof b);
  std::memcpy(b, name.data(), std::min<size_t>(name.size(), 100));
  put_octal(b + 100, 8, 0644);
  put_octal(b + 108, 8, 0);
  put_octal(b + 116, 8, 0);
  put_octal(b + 124, 12, size <= kMaxOctalSize ? size : 0);
  put_octal(b + 136, 12, static_cast<uint64_t>(std::max<int64_t>(mtime_, 0)));
  b[156] = static_cast<uint8_t>(type);
  std::memcpy(b + 257, "ustar", 6);
  std::memcpy(b + 263, "00", 2);
  std::memset(b + 148, ' ', 8);
  uint64_t sum = 0;
  for (uint8_t c : b) sum += c;
  put_octal(b + 148, 7, sum);  // six digits, NUL, and the space left in place
  write_all(b, kBlock);
}

void TarWriter::add(const std::string& name, const void* data, uint64_t size) {
  if (name.empty()) throw std::invalid_argument(path_ + ": empty member name");
  if (name.find('\0') != std::string::npos)
    throw std::invalid_argument(path_ + ": member name with a NUL byte");
  static const uint8_t zeros[kBlock] = {0};
  if (name.size() > 100 || size > kMaxOctalSize) {
    std::string pax;
    if (name.size() > 100) pax += pax_record("path", name);
    if (size > kMaxOctalSize) pax += pax_record("size", std::to_string(size));
    header("PaxHeaders/" + name.substr(0, 80), pax.size(), 'x');
    write_all(pax.data(), pax.size());
    write_all(zeros, (kBlock - pax.size() % kBlock) % kBlock);
  }
  header(name, size, '0');
  write_all(data, size);
  write_all(zeros, (kBlock - size % kBlock) % kBlock);
  ++members_;
}

void TarWriter::finish() {
  static const uint8_t zeros[2 * kBlock] = {0};
  write_all(zeros, sizeof zeros);
  if (::fsync(fd_) != 0)
    throw std::runtime_error(path_ + ": fsync failed (" + std::strerror(errno) + ")");
  ::close(fd_);
  fd_ = -1;
  if (::rename((path_ + ".part").c_str(), path_.c_str()) != 0)
    throw std::runtime_error(path_ + ": cannot rename the finished archive (" +
                             std::strerror(errno) + ")");
  finished_ = true;
}

std::vector<uint8_t> read_file_range(const std::string& path, uint64_t offset, uint64_t size) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error(path + ": cannot open (" + std::strerror(errno) + ")");
  std::vector<uint8_t> out(size);
  size_t done = 0;
  while (done < size) {
    const ssize_t r =
        ::pread(fd, out.data() + done, size - done, static_cast<off_t>(offset + done));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      ::close(fd);
      throw std::runtime_error(path + ": short read at byte " + std::to_string(offset + done));
    }
    done += static_cast<size_t>(r);
  }
  ::close(fd);
  return out;
}

}  // namespace sam::data
