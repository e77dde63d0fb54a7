// Fuzzes the tar header walker: any bytes must give members that lie inside the archive, and
// never crash, hang or read out of bounds.
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "data/tar.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto idx = sam::data::tar_index(
      [&](uint64_t off, void* buf, size_t n) -> size_t {
        if (off >= size) return 0;
        const size_t k = n < size - off ? n : size - off;
        std::memcpy(buf, data + off, k);
        return k;
      },
      size);
  for (const auto& m : idx.members)
    if (m.offset > size || m.size > size - m.offset) std::abort();
  return 0;
}
