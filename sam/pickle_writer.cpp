// pickle::Writer (sam/pickle.h): opcodes as Python's pickler writes them at protocol 2.
#include <vector>

#include "sam/pickle.h"

namespace sam::pickle {

void Writer::le32(uint32_t v) {
  for (int k = 0; k < 4; ++k) u8(v >> (8 * k));
}

void Writer::proto(unsigned version) {
  op('\x80');
  u8(version);
}

uint32_t Writer::put() {
  const uint32_t idx = memo_++;
  if (idx < 256) {
    op('q');
    u8(idx);
  } else {
    op('r');
    le32(idx);
  }
  return idx;
}

void Writer::get(uint32_t idx) {
  if (idx < 256) {
    op('h');
    u8(idx);
  } else {
    op('j');
    le32(idx);
  }
}

uint32_t Writer::str(const std::string& s) {
  op('X');
  le32(static_cast<uint32_t>(s.size()));
  out += s;
  return put();
}

uint32_t Writer::global(const std::string& module, const std::string& name) {
  op('c');
  out += module + "\n" + name + "\n";
  return put();
}

void Writer::cached(std::optional<uint32_t>& slot, const std::function<uint32_t()>& first) {
  if (slot)
    get(*slot);
  else
    slot = first();
}

void Writer::integer(int64_t v) {
  if (v >= 0 && v <= 0xff) {
    op('K');
    u8(static_cast<unsigned>(v));
  } else if (v >= 0 && v <= 0xffff) {
    op('M');
    u8(static_cast<unsigned>(v));
    u8(static_cast<unsigned>(v >> 8));
  } else if (v >= INT32_MIN && v <= INT32_MAX) {
    op('J');
    le32(static_cast<uint32_t>(static_cast<int32_t>(v)));
  } else {
    // encode_long: (bit_length >> 3) + 1 little-endian two's complement bytes, trimming a
    // redundant 0xff.
    const uint64_t mag = v < 0 ? ~static_cast<uint64_t>(v) + 1 : static_cast<uint64_t>(v);
    const int bits = 64 - __builtin_clzll(mag);
    const auto n = static_cast<size_t>(bits >> 3) + 1;
    std::vector<unsigned char> b(n);
    for (size_t k = 0; k < n; ++k)
      b[k] = k < 8 ? static_cast<unsigned char>(static_cast<uint64_t>(v) >> (8 * k))
                   : (v < 0 ? 0xff : 0x00);
    if (v < 0 && n > 1 && b[n - 1] == 0xff && (b[n - 2] & 0x80)) b.pop_back();
    op('\x8a');
    u8(static_cast<unsigned>(b.size()));
    out.append(reinterpret_cast<const char*>(b.data()), b.size());
  }
}

void Writer::int_tuple(const std::vector<int64_t>& v) {
  if (v.empty()) {
    op(')');
    return;
  }
  if (v.size() > 3) op('(');
  for (int64_t x : v) integer(x);
  if (v.size() > 3)
    op('t');
  else
    op(static_cast<char>(0x84 + v.size()));
  put();
}

}  // namespace sam::pickle
