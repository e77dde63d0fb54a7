#pragma once
// Byte-level helpers of the binary formats the project writes: the table-driven reflected CRC-32
// (ZIP's, in the annotation tool's export, engine/annotate/export.cpp; TFRecord's CRC-32C, in the
// TensorBoard event files, train/tensorboard.cpp) and little-endian integers.
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

namespace sam::data {

/// The CRC-32 of `size` bytes with the reflected polynomial `kPoly` (initial value and final xor
/// all ones); `crc` continues an earlier one.
template <uint32_t kPoly>
uint32_t crc32_reflected(const void* data, size_t size, uint32_t crc = 0) {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ kPoly : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  const auto* p = static_cast<const unsigned char*>(data);
  crc = ~crc;
  for (size_t i = 0; i < size; ++i) crc = table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
  return ~crc;
}

/// CRC-32 of ZIP, PNG and gzip (IEEE 802.3, 0x04C11DB7 reflected).
inline uint32_t crc32(const void* data, size_t size, uint32_t crc = 0) {
  return crc32_reflected<0xEDB88320u>(data, size, crc);
}

/// CRC-32C (Castagnoli, 0x1EDC6F41 reflected), TFRecord's checksum.
inline uint32_t crc32c(const void* data, size_t size, uint32_t crc = 0) {
  return crc32_reflected<0x82F63B78u>(data, size, crc);
}

/// Appends the low `bytes` bytes of `v`, least significant first.
inline void put_le(std::string& s, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

}  // namespace sam::data
