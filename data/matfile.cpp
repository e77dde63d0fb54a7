// MATLAB Level 5 MAT-files (data/matfile.h). The layout follows MathWorks' "MAT-File Format"
// (matfile_format.pdf, Level 5): every size below is checked against the bytes that hold it
// before anything is allocated, so a damaged or hostile file fails with a message, not a crash.
#include "data/matfile.h"

#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <sstream>
#include <stdexcept>

namespace sam::data {
namespace {

// Data types of the tags (miINT8 = 1, ...).
enum : uint32_t {
  miINT8 = 1,
  miUINT8 = 2,
  miINT16 = 3,
  miUINT16 = 4,
  miINT32 = 5,
  miUINT32 = 6,
  miSINGLE = 7,
  miDOUBLE = 9,
  miINT64 = 12,
  miUINT64 = 13,
  miMATRIX = 14,
  miCOMPRESSED = 15,
  miUTF8 = 16,
  miUTF16 = 17,
  miUTF32 = 18,
};

// Nesting of cells and structs this reader follows (MATLAB's own limit is far lower in practice);
// deeper input is refused instead of exhausting the stack.
constexpr int kMaxDepth = 64;

const char* mi_name(uint32_t t) {
  switch (t) {
    case miINT8:
      return "miINT8";
    case miUINT8:
      return "miUINT8";
    case miINT16:
      return "miINT16";
    case miUINT16:
      return "miUINT16";
    case miINT32:
      return "miINT32";
    case miUINT32:
      return "miUINT32";
    case miSINGLE:
      return "miSINGLE";
    case miDOUBLE:
      return "miDOUBLE";
    case miINT64:
      return "miINT64";
    case miUINT64:
      return "miUINT64";
    case miMATRIX:
      return "miMATRIX";
    case miCOMPRESSED:
      return "miCOMPRESSED";
    case miUTF8:
      return "miUTF8";
    case miUTF16:
      return "miUTF16";
    case miUTF32:
      return "miUTF32";
    default:
      return nullptr;
  }
}

std::string type_name(uint32_t t) {
  const char* n = mi_name(t);
  return n ? n : "type " + std::to_string(t);
}

// Bytes per value of a numeric data type; 0 for the others.
size_t numeric_size(uint32_t t) {
  switch (t) {
    case miINT8:
    case miUINT8:
      return 1;
    case miINT16:
    case miUINT16:
      return 2;
    case miINT32:
    case miUINT32:
    case miSINGLE:
      return 4;
    case miDOUBLE:
    case miINT64:
    case miUINT64:
      return 8;
    default:
      return 0;
  }
}

// Little-endian loads, independent of the host's byte order.
uint16_t le16(const uint8_t* p) {
  return static_cast<uint16_t>(p[0] | (p[1] << 8));
}
uint32_t le32(const uint8_t* p) {
  return uint32_t(p[0]) | (uint32_t(p[1]) << 8) | (uint32_t(p[2]) << 16) | (uint32_t(p[3]) << 24);
}
uint64_t le64(const uint8_t* p) {
  return uint64_t(le32(p)) | (uint64_t(le32(p + 4)) << 32);
}

// One data element: its type and payload inside the buffer being parsed.
struct Element {
  uint32_t type = 0;
  const uint8_t* data = nullptr;
  size_t size = 0;
  size_t next = 0;  // where the following element starts
};

class Parser {
 public:
  explicit Parser(std::string what) : what_(std::move(what)) {}

  [[noreturn]] void fail(const std::string& where, const std::string& msg) const {
    throw std::runtime_error(what_ + ": " + (where.empty() ? "" : where + ": ") + msg);
  }

  MatFile file(const uint8_t* data, size_t size) {
    MatFile f;
    f.path = what_;
    header(data, size, f.description);
    size_t pos = 128;
    while (pos < size) {
      const std::string where = "the element at byte " + std::to_string(pos);
      if (size - pos < 8)
        fail(where, "truncated: " + std::to_string(size - pos) +
                        " byte(s) after the last variable, too few for a data element's tag");
      const Element e = element(data, pos, size, false, where);
      if (e.type == miCOMPRESSED) {
        const std::vector<uint8_t> plain = inflate(e.data, e.size, where);
        const Element inner = element(plain.data(), 0, plain.size(), false, where + " (inflated)");
        if (inner.type != miMATRIX)
          fail(where, "compressed data holds a " + type_name(inner.type) +
                          " element; a miMATRIX variable is expected");
        if (inner.next != plain.size())
          fail(where, "truncated: the compressed data inflates to " + std::to_string(plain.size()) +
                          " bytes, its element declares " + std::to_string(inner.next));
        f.variables.push_back(matrix(inner.data, inner.size, "", 0));
      } else if (e.type == miMATRIX) {
        f.variables.push_back(matrix(e.data, e.size, "", 0));
      } else {
        fail(where, "a " + type_name(e.type) +
                        " element at the top level; only miMATRIX and miCOMPRESSED are expected");
      }
      pos = e.next;
    }
    return f;
  }

 private:
  void header(const uint8_t* data, size_t size, std::string& description) const {
    if (size < 128)
      fail("", "not a MATLAB 5 MAT-file: " + std::to_string(size) +
                   " bytes, shorter than the 128-byte header");
    const uint16_t version = le16(data + 124);
    const char e0 = static_cast<char>(data[126]), e1 = static_cast<char>(data[127]);
    if (e0 == 'M' && e1 == 'I')
      fail("", "a big-endian MAT-file (endian indicator 'MI'): not supported, only little-endian");
    if (e0 != 'I' || e1 != 'M')
      fail("",
           "not a MATLAB 5 MAT-file: no endian indicator 'IM' at bytes 126-127 (a v4 file, or "
           "not a MAT-file)");
    if (version == 0x0200)
      fail("", "a MATLAB 7.3 MAT-file (HDF5): not supported (save with -v7 or -v6)");
    if (version != 0x0100)
      fail("", "unknown MAT-file version 0x" + hex(version) + " (0x0100 expected)");
    size_t n = 116;
    while (n > 0 && (data[n - 1] == 0 || data[n - 1] == ' ')) --n;
    description.assign(reinterpret_cast<const char*>(data), n);
  }

  static std::string hex(unsigned v) {
    std::ostringstream s;
    s << std::hex << v;
    return s.str();
  }

  // The element whose tag starts at `pos` of [base, base + end). `pad`: the payload is followed by
  // padding to a multiple of 8 bytes (inside miMATRIX; top-level elements are not padded).
  Element element(const uint8_t* base, size_t pos, size_t end, bool pad,
                  const std::string& where) const {
    if (end - pos < 8)
      fail(where,
           "truncated: a data element's tag needs 8 bytes, " + std::to_string(end - pos) + " left");
    const uint8_t* p = base + pos;
    const uint32_t first = le32(p);
    Element e;
    if (first >> 16) {
      // Small data element: type in the low 16 bits, size in the high 16, data in bytes 4-7.
      e.type = first & 0xffff;
      e.size = first >> 16;
      if (e.size > 4)
        fail(where, "a small data element claims " + std::to_string(e.size) +
                        " bytes (at most 4 fit in its tag)");
      e.data = p + 4;
      e.next = pos + 8;
      return e;
    }
    e.type = first;
    e.size = le32(p + 4);
    if (e.size > end - pos - 8)
      fail(where, "truncated: a " + type_name(e.type) + " element of " + std::to_string(e.size) +
                      " bytes, only " + std::to_string(end - pos - 8) + " left");
    e.data = p + 8;
    size_t next = pos + 8 + e.size;
    if (pad) next += (8 - next % 8) % 8;
    // The padding of the last element may be left out by the writer; it is not data.
    e.next = std::min(next, end);
    return e;
  }

  // The zlib stream of a miCOMPRESSED element, inflated: one data element (MATLAB and scipy
  // compress each variable on its own). The output grows with what the stream really holds, and
  // stops at the size the inflated tag declares, so a stream cannot inflate without bound.
  std::vector<uint8_t> inflate(const uint8_t* data, size_t size, const std::string& where) const {
    z_stream z{};
    if (inflateInit(&z) != Z_OK) fail(where, "zlib: cannot initialise");
    z.next_in = const_cast<Bytef*>(data);
    std::vector<uint8_t> out;
    size_t fed = 0, limit = std::numeric_limits<size_t>::max();
    constexpr size_t kStep = 1u << 16;
    auto stop = [&](const std::string& msg) {
      inflateEnd(&z);
      fail(where, msg);
    };
    for (;;) {
      if (z.avail_in == 0 && fed < size) {  // zlib's counters are 32-bit: feed in pieces
        const size_t chunk = std::min<size_t>(size - fed, 1u << 30);
        z.avail_in = static_cast<uInt>(chunk);
        fed += chunk;
      }
      const size_t have = out.size();
      out.resize(have + kStep);
      z.next_out = out.data() + have;
      z.avail_out = kStep;
      const int rc = ::inflate(&z, Z_NO_FLUSH);
      out.resize(have + kStep - z.avail_out);
      if (limit == std::numeric_limits<size_t>::max() && out.size() >= 8)
        limit = (le32(out.data()) >> 16) ? 8 : 8 + size_t(le32(out.data() + 4));
      if (out.size() > limit)
        stop("the compressed data inflates past the " + std::to_string(limit) +
             " bytes its element declares");
      if (rc == Z_STREAM_END) break;
      if (rc == Z_BUF_ERROR && z.avail_in == 0 && fed == size)
        stop("truncated: the compressed data ends before its zlib stream does");
      if (rc != Z_OK && rc != Z_BUF_ERROR)
        stop("bad compressed data (zlib: " +
             std::string(z.msg ? z.msg : "error " + std::to_string(rc)) + ")");
    }
    const size_t used = fed - z.avail_in;
    inflateEnd(&z);
    if (used != size)
      fail(where, std::to_string(size - used) + " byte(s) after the end of the zlib stream");
    return out;
  }

  // Values of a numeric element as doubles; `count` of them are expected.
  std::vector<double> numbers(const Element& e, int64_t count, const std::string& where,
                              const char* part) const {
    const size_t w = numeric_size(e.type);
    if (w == 0)
      fail(where, std::string(part) + " is a " + type_name(e.type) + " element, not numeric data");
    if (e.size % w != 0)
      fail(where, std::string(part) + ": " + std::to_string(e.size) + " bytes of " +
                      type_name(e.type) + " is not a whole number of values");
    const size_t n = e.size / w;
    if (static_cast<int64_t>(n) != count)
      fail(where, std::string(part) + " holds " + std::to_string(n) + " values, " +
                      std::to_string(count) + " expected");
    std::vector<double> v(n);
    const uint8_t* p = e.data;
    constexpr double kExact = 9007199254740992.0;  // 2^53: doubles hold every integer up to it
    for (size_t i = 0; i < n; ++i, p += w) {
      switch (e.type) {
        case miINT8:
          v[i] = static_cast<int8_t>(p[0]);
          break;
        case miUINT8:
          v[i] = p[0];
          break;
        case miINT16:
          v[i] = static_cast<int16_t>(le16(p));
          break;
        case miUINT16:
          v[i] = le16(p);
          break;
        case miINT32:
          v[i] = static_cast<int32_t>(le32(p));
          break;
        case miUINT32:
          v[i] = le32(p);
          break;
        case miSINGLE: {
          const uint32_t bits = le32(p);
          float f;
          std::memcpy(&f, &bits, 4);
          v[i] = f;
          break;
        }
        case miDOUBLE: {
          const uint64_t bits = le64(p);
          std::memcpy(&v[i], &bits, 8);
          break;
        }
        case miINT64:
        case miUINT64: {
          const uint64_t u = le64(p);
          const bool neg = e.type == miINT64 && static_cast<int64_t>(u) < 0;
          const double d =
              neg ? static_cast<double>(static_cast<int64_t>(u)) : static_cast<double>(u);
          if (std::fabs(d) > kExact)
            fail(where, std::string(part) +
                            ": a 64-bit integer beyond 2^53, which this reader "
                            "keeps as doubles, cannot be held exactly");
          v[i] = d;
          break;
        }
      }
    }
    return v;
  }

  static std::string utf8(uint32_t c) {
    std::string s;
    if (c < 0x80) {
      s += static_cast<char>(c);
    } else if (c < 0x800) {
      s += static_cast<char>(0xC0 | (c >> 6));
      s += static_cast<char>(0x80 | (c & 0x3F));
    } else if (c < 0x10000) {
      s += static_cast<char>(0xE0 | (c >> 12));
      s += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
      s += static_cast<char>(0x80 | (c & 0x3F));
    } else {
      s += static_cast<char>(0xF0 | (c >> 18));
      s += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
      s += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
      s += static_cast<char>(0x80 | (c & 0x3F));
    }
    return s;
  }

  std::string characters(const Element& e, int64_t count, const std::string& where) const {
    std::string s;
    if (e.type == miUTF8 || e.type == miINT8 || e.type == miUINT8) {
      s.assign(reinterpret_cast<const char*>(e.data), e.size);
      // UTF-8 may take several bytes per character; the one-byte types must match the count.
      if (e.type != miUTF8 && static_cast<int64_t>(e.size) != count)
        fail(where, "char data holds " + std::to_string(e.size) + " characters, " +
                        std::to_string(count) + " expected");
      return s;
    }
    if (e.type == miUINT16 || e.type == miUTF16) {
      if (e.size % 2) fail(where, "char data: an odd number of bytes of UTF-16");
      if (e.type == miUINT16 && static_cast<int64_t>(e.size / 2) != count)
        fail(where, "char data holds " + std::to_string(e.size / 2) + " characters, " +
                        std::to_string(count) + " expected");
      for (size_t i = 0; i < e.size; i += 2) {
        uint32_t c = le16(e.data + i);
        if (c >= 0xD800 && c < 0xDC00 && i + 3 < e.size) {
          const uint32_t lo = le16(e.data + i + 2);
          if (lo >= 0xDC00 && lo < 0xE000) {
            c = 0x10000 + ((c - 0xD800) << 10) + (lo - 0xDC00);
            i += 2;
          }
        }
        s += utf8(c);
      }
      return s;
    }
    if (e.type == miUTF32 || e.type == miUINT32 || e.type == miINT32) {
      if (e.size % 4) fail(where, "char data: not a whole number of UTF-32 characters");
      for (size_t i = 0; i < e.size; i += 4) s += utf8(le32(e.data + i));
      return s;
    }
    fail(where, "char data is a " + type_name(e.type) + " element");
  }

  // Integer-valued index data of a sparse array (ir, jc).
  std::vector<int64_t> indices(const Element& e, const std::string& where, const char* part) const {
    const size_t w = numeric_size(e.type);
    if (w == 0 || e.type == miSINGLE || e.type == miDOUBLE)
      fail(where, std::string(part) + " is a " + type_name(e.type) + " element, not integers");
    const std::vector<double> d = numbers(e, static_cast<int64_t>(e.size / w), where, part);
    return std::vector<int64_t>(d.begin(), d.end());
  }

  // The contents of one miMATRIX element. `where` names it for messages ("" for a variable, which
  // is named once its name is read).
  MatArray matrix(const uint8_t* data, size_t size, std::string where, int depth) const {
    MatArray a;
    if (size == 0) {  // MATLAB writes empty cell elements and fields as empty miMATRIX elements
      a.dims = {0, 0};
      return a;
    }
    if (depth > kMaxDepth)
      fail(where, "cells and structs nested deeper than " + std::to_string(kMaxDepth) + " levels");
    const std::string here = where.empty() ? "a variable" : where;
    size_t pos = 0;
    auto next = [&](const char* what) {
      if (pos >= size) fail(here, std::string("truncated: the array ends before its ") + what);
      const Element e = element(data, pos, size, true, here);
      pos = e.next;
      return e;
    };
    // Array flags: class in byte 0, flag bits in byte 1, then nzmax (sparse arrays).
    const Element flags = next("array flags");
    if (flags.type != miUINT32 || flags.size != 8)
      fail(here, "array flags: a " + type_name(flags.type) + " element of " +
                     std::to_string(flags.size) + " bytes, 8 bytes of miUINT32 expected");
    const uint32_t word = le32(flags.data);
    const unsigned cls = word & 0xff, bits = (word >> 8) & 0xff;
    const int64_t nzmax = le32(flags.data + 4);
    a.complex = (bits & 0x08) != 0;
    a.global = (bits & 0x04) != 0;
    a.logical = (bits & 0x02) != 0;
    const Element dims = next("dimensions");
    if (dims.type != miINT32 || dims.size % 4 != 0 || dims.size < 8)
      fail(here, "dimensions: a " + type_name(dims.type) + " element of " +
                     std::to_string(dims.size) + " bytes, at least 2 miINT32 values expected");
    for (size_t i = 0; i < dims.size; i += 4) {
      const int32_t d = static_cast<int32_t>(le32(dims.data + i));
      if (d < 0) fail(here, "a negative dimension (" + std::to_string(d) + ")");
      a.dims.push_back(d);
    }
    const Element name = next("name");
    if (name.type != miINT8 && name.type != miUINT8 && name.type != miUTF8)
      fail(here, "array name: a " + type_name(name.type) + " element, miINT8 expected");
    a.name.assign(reinterpret_cast<const char*>(name.data), name.size);
    if (where.empty()) where = "variable '" + a.name + "'";
    // The element count, refused past 2^48 (no real array is that large; it keeps products of
    // counts below from overflowing).
    int64_t numel = 1;
    for (int64_t d : a.dims) {
      if (d != 0 && numel > (int64_t(1) << 48) / d)
        fail(where, "dimensions " + dims_text(a.dims) + " describe too many elements");
      numel *= d;
    }
    if (cls < 1 || cls > 17) fail(where, "unknown array class " + std::to_string(cls));
    a.cls = static_cast<MatClass>(cls);
    // One element of a cell or struct array: a whole miMATRIX of its own.
    auto sub_matrix = [&](const std::string& sub) {
      if (pos >= size) fail(sub, "truncated: missing");
      const Element e = element(data, pos, size, true, sub);
      if (e.type != miMATRIX) fail(sub, "a " + type_name(e.type) + " element, miMATRIX expected");
      a.elements.push_back(matrix(e.data, e.size, sub, depth + 1));
      pos = e.next;
    };
    switch (a.cls) {
      case MatClass::object:
      case MatClass::function:
      case MatClass::opaque:
        // Not read; the element's size says where the next one starts.
        a.skipped = std::string("a MATLAB ") + mat_class_name(a.cls) + ", which this reader skips";
        return a;
      case MatClass::character:
        a.text = characters(next("char data"), numel, where);
        break;
      case MatClass::sparse: {
        if (a.dims.size() != 2) fail(where, "a sparse array with " + dims_text(a.dims));
        a.sparse_rows = indices(next("row indices"), where, "row indices (ir)");
        a.sparse_col_starts = indices(next("column starts"), where, "column starts (jc)");
        const int64_t rows = a.dims[0], cols = a.dims[1];
        const auto& jc = a.sparse_col_starts;
        if (static_cast<int64_t>(jc.size()) != cols + 1)
          fail(where, "sparse column starts (jc): " + std::to_string(jc.size()) + " values, " +
                          std::to_string(cols + 1) + " expected");
        for (int64_t c = 0; c < cols; ++c)
          if (jc[size_t(c)] > jc[size_t(c) + 1]) fail(where, "sparse column starts (jc) decrease");
        const int64_t nnz = jc.back();
        if (jc.front() != 0 || nnz > static_cast<int64_t>(a.sparse_rows.size()) ||
            nnz > std::max<int64_t>(nzmax, 0))
          fail(where, "sparse column starts (jc) do not fit the " +
                          std::to_string(a.sparse_rows.size()) + " row indices (nzmax " +
                          std::to_string(nzmax) + ")");
        a.sparse_rows.resize(size_t(nnz));  // MATLAB may store nzmax > nnz entries
        for (int64_t r : a.sparse_rows)
          if (r < 0 || r >= rows) fail(where, "a sparse row index out of range");
        // Values: at least nnz of them (MATLAB writes nzmax), of which the first nnz count.
        const Element pr = next("values");
        const size_t w = numeric_size(pr.type);
        if (w == 0) fail(where, "sparse values are a " + type_name(pr.type) + " element");
        const int64_t stored = static_cast<int64_t>(pr.size / w);
        if (stored < nnz)
          fail(where, "sparse values: " + std::to_string(stored) + ", fewer than the " +
                          std::to_string(nnz) + " nonzeros");
        a.real = numbers(pr, stored, where, "sparse values");
        a.real.resize(size_t(nnz));
        if (a.complex) {
          a.imag = numbers(next("imaginary values"), stored, where, "sparse imaginary values");
          a.imag.resize(size_t(nnz));
        }
        break;
      }
      case MatClass::cell: {
        if (numel > static_cast<int64_t>((size - pos) / 8))
          fail(where, "truncated: " + std::to_string(numel) + " cell elements do not fit in " +
                          std::to_string(size - pos) + " bytes");
        a.elements.reserve(size_t(numel));
        for (int64_t i = 0; i < numel; ++i) {
          sub_matrix(where + " cell {" + std::to_string(i + 1) + "}");
        }
        break;
      }
      case MatClass::structure: {
        const Element len = next("field name length");
        if ((len.type != miINT32 && len.type != miUINT32) || len.size != 4)
          fail(where, "field name length: a " + type_name(len.type) + " element of " +
                          std::to_string(len.size) + " bytes, one miINT32 expected");
        const size_t L = le32(len.data);
        const Element names = next("field names");
        if (names.type != miINT8 && names.type != miUINT8)
          fail(where, "field names: a " + type_name(names.type) + " element, miINT8 expected");
        if (L == 0 ? names.size != 0 : names.size % L != 0)
          fail(where, "field names: " + std::to_string(names.size) +
                          " bytes are not whole names of " + std::to_string(L) + " bytes");
        for (size_t i = 0; L && i < names.size; i += L) {
          const char* s = reinterpret_cast<const char*>(names.data + i);
          a.fields.emplace_back(s, strnlen(s, L));
        }
        const int64_t total = numel * static_cast<int64_t>(a.fields.size());
        if (total > static_cast<int64_t>((size - pos) / 8))
          fail(where, "truncated: " + std::to_string(total) + " field values do not fit in " +
                          std::to_string(size - pos) + " bytes");
        a.elements.reserve(size_t(total));
        for (int64_t i = 0; i < numel; ++i)
          for (const std::string& fn : a.fields) {
            sub_matrix(where + (numel > 1 ? "(" + std::to_string(i + 1) + ")" : "") + "." + fn);
          }
        break;
      }
      default:  // numeric classes (logical arrays are uint8 with the logical flag)
        // The stored type may be narrower than the class (MATLAB saves a double array of small
        // integers as miUINT8); the values are what count.
        a.real = numbers(next("real part"), numel, where, "real part");
        if (a.complex) a.imag = numbers(next("imaginary part"), numel, where, "imaginary part");
        break;
    }
    if (pos < size)
      fail(where, std::to_string(size - pos) + " unexpected byte(s) after the " +
                      mat_class_name(a.cls) + " array's data");
    return a;
  }

  static std::string dims_text(const std::vector<int64_t>& dims) {
    std::string s;
    for (size_t i = 0; i < dims.size(); ++i) s += (i ? "x" : "") + std::to_string(dims[i]);
    return s;
  }

  std::string what_;
};

}  // namespace

const char* mat_class_name(MatClass c) {
  switch (c) {
    case MatClass::cell:
      return "cell";
    case MatClass::structure:
      return "struct";
    case MatClass::object:
      return "object";
    case MatClass::character:
      return "char";
    case MatClass::sparse:
      return "sparse";
    case MatClass::float64:
      return "double";
    case MatClass::float32:
      return "single";
    case MatClass::int8:
      return "int8";
    case MatClass::uint8:
      return "uint8";
    case MatClass::int16:
      return "int16";
    case MatClass::uint16:
      return "uint16";
    case MatClass::int32:
      return "int32";
    case MatClass::uint32:
      return "uint32";
    case MatClass::int64:
      return "int64";
    case MatClass::uint64:
      return "uint64";
    case MatClass::function:
      return "function_handle";
    case MatClass::opaque:
      return "opaque object";
  }
  return "unknown";
}

int64_t MatArray::numel() const {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  return n;
}

bool MatArray::has_field(const std::string& f) const {
  if (cls != MatClass::structure) return false;
  for (const auto& x : fields)
    if (x == f) return true;
  return false;
}

const MatArray& MatArray::field(const std::string& f, int64_t index) const {
  if (cls != MatClass::structure)
    throw std::out_of_range("field '" + f + "' of a " + describe() + ", not a struct");
  size_t k = 0;
  while (k < fields.size() && fields[k] != f) ++k;
  if (k == fields.size()) {
    std::string list;
    for (const auto& x : fields) list += (list.empty() ? "" : ", ") + x;
    throw std::out_of_range("no field '" + f + "' in the struct (fields: " +
                            (list.empty() ? std::string("none") : list) + ")");
  }
  if (index < 0 || index >= numel())
    throw std::out_of_range("struct element " + std::to_string(index) + " of a " + describe());
  return elements.at(size_t(index) * fields.size() + k);
}

const MatArray& MatArray::cell(int64_t index) const {
  if (cls != MatClass::cell) throw std::out_of_range("cell element of a " + describe());
  if (index < 0 || index >= numel())
    throw std::out_of_range("cell element " + std::to_string(index) + " of a " + describe());
  return elements.at(size_t(index));
}

std::string MatArray::describe() const {
  std::string s;
  for (size_t i = 0; i < dims.size(); ++i) s += (i ? "x" : "") + std::to_string(dims[i]);
  s += " ";
  if (logical)
    s += cls == MatClass::sparse ? "sparse logical" : "logical";
  else
    s += mat_class_name(cls);
  if (complex) s += " complex";
  return s;
}

const MatArray* MatFile::find(const std::string& name) const {
  for (const auto& v : variables)
    if (v.name == name) return &v;
  return nullptr;
}

const MatArray& MatFile::get(const std::string& dotted) const {
  size_t dot = dotted.find('.');
  const std::string first = dotted.substr(0, dot);
  const MatArray* a = find(first);
  if (!a) {
    std::string list;
    for (const auto& v : variables) list += (list.empty() ? "" : ", ") + v.name;
    throw std::runtime_error(path + ": no variable '" + first +
                             "' (variables: " + (list.empty() ? std::string("none") : list) + ")");
  }
  std::string so_far = first;
  while (dot != std::string::npos) {
    const size_t end = dotted.find('.', dot + 1);
    const std::string f = dotted.substr(dot + 1, end == std::string::npos ? end : end - dot - 1);
    if (a->cls != MatClass::structure || a->numel() != 1)
      throw std::runtime_error(path + ": " + so_far + " is a " + a->describe() +
                               ", not a 1x1 struct with a field '" + f + "'");
    try {
      a = &a->field(f);
    } catch (const std::out_of_range& e) {
      throw std::runtime_error(path + ": " + so_far + ": " + e.what());
    }
    so_far += "." + f;
    dot = end;
  }
  return *a;
}

MatFile parse_mat_file(const uint8_t* data, size_t size, const std::string& what) {
  return Parser(what).file(data, size);
}

MatFile read_mat_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error(path + ": cannot open the file");
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (f.bad()) throw std::runtime_error(path + ": read error");
  return parse_mat_file(bytes.data(), bytes.size(), path);
}

MatIntGrid mat_int_grid(const MatArray& a, const std::string& what) {
  auto fail = [&](const std::string& msg) -> void { throw std::runtime_error(what + ": " + msg); };
  if (!a.skipped.empty()) fail(a.skipped);
  const bool sparse = a.cls == MatClass::sparse;
  if (a.cls == MatClass::cell || a.cls == MatClass::structure || a.cls == MatClass::character)
    fail("a " + a.describe() + ", not a numeric 2-D array");
  if (a.complex) fail("a " + a.describe() + " array; real values expected");
  // MATLAB drops trailing singleton dimensions; a writer may keep them.
  std::vector<int64_t> dims = a.dims;
  while (dims.size() > 2 && dims.back() == 1) dims.pop_back();
  if (dims.size() != 2) fail("a " + a.describe() + " array; 2 dimensions expected");
  MatIntGrid g;
  g.rows = dims[0];
  g.cols = dims[1];
  g.values.assign(size_t(g.rows * g.cols), 0);
  auto put = [&](int64_t r, int64_t c, double v) {
    if (!(v == std::floor(v)) || v < std::numeric_limits<int32_t>::min() ||
        v > std::numeric_limits<int32_t>::max())
      fail("value " + std::to_string(v) + " at (" + std::to_string(r + 1) + ", " +
           std::to_string(c + 1) + ") is not an int32 integer");
    g.values[size_t(r * g.cols + c)] = static_cast<int32_t>(v);
  };
  if (sparse) {
    for (int64_t c = 0; c < g.cols; ++c)
      for (int64_t k = a.sparse_col_starts[size_t(c)]; k < a.sparse_col_starts[size_t(c) + 1]; ++k)
        put(a.sparse_rows[size_t(k)], c, a.real[size_t(k)]);
  } else {
    // Column-major storage: element (r, c) is real[c * rows + r].
    for (int64_t c = 0; c < g.cols; ++c)
      for (int64_t r = 0; r < g.rows; ++r) put(r, c, a.real[size_t(c * g.rows + r)]);
  }
  return g;
}

MatIntGrid read_sbd_instances(const std::string& path) {
  const MatFile f = read_mat_file(path);
  return mat_int_grid(f.get("GTinst.Segmentation"), path + ": GTinst.Segmentation");
}

}  // namespace sam::data
