// Fuzzes the COCO compressed-RLE string decoder (mask::rle_from_string): any bytes must either be
// rejected with std::invalid_argument or give counts that sum to h*w, re-encode, and decode to a
// mask with the same area. Input: 2 bytes h, 2 bytes w (little-endian, each taken mod 257), then
// the string.
#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string_view>
#include <vector>

#include "data/mask/rle.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 4) return 0;
  const int64_t h = (data[0] | (data[1] << 8)) % 257, w = (data[2] | (data[3] << 8)) % 257;
  const std::string_view s(reinterpret_cast<const char*>(data + 4), size - 4);
  sam::mask::Rle r;
  try {
    r = sam::mask::rle_from_string(s, h, w);
  } catch (const std::invalid_argument&) {
    return 0;
  }
  uint64_t sum = 0;
  for (uint32_t c : r.counts) sum += c;
  if (sum != uint64_t(h * w)) std::abort();
  const sam::mask::Rle again = sam::mask::rle_from_string(sam::mask::rle_to_string(r), h, w);
  if (again.counts != r.counts) std::abort();
  std::vector<uint8_t> m(size_t(h * w) + 1, 7);
  sam::mask::rle_decode(r, m.data());
  if (m.back() != 7) std::abort();  // wrote past h*w
  uint64_t set = 0;
  for (size_t i = 0; i + 1 < m.size(); ++i) set += m[i];
  if (set != sam::mask::rle_area(r)) std::abort();
  const sam::mask::Rle enc = sam::mask::rle_encode(m.data(), h, w);
  if (sam::mask::rle_area(enc) != set) std::abort();
  return 0;
}
