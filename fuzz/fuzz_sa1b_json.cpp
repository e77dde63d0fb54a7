// Fuzzes the SA-1B per-image JSON reader and what the loader does next: parse, decode every
// segmentation, write the record back and read it again. Bad input may only raise DataError.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "data/annotation.h"

using namespace sam::data;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  Sa1bRecord rec;
  try {
    rec = parse_sa1b_json(text, "fuzz.json");
  } catch (const DataError&) {
    return 0;
  }
  // Keep decoding affordable: the reader accepts any size up to 2^32 pixels.
  if (rec.image.height > (1 << 20) || rec.image.width > (1 << 20) ||
      rec.image.height * rec.image.width > (1 << 20))
    return 0;
  std::vector<Annotation> good;
  for (const Annotation& a : rec.annotations) {
    try {
      const sam::mask::Rle r = a.rle();
      if (r.h != rec.image.height || r.w != rec.image.width)
        std::abort();  // the reader checks sizes
      good.push_back(a);
    } catch (const DataError&) {
    }
  }
  const std::string out = sa1b_json(rec.image, good).dump();
  const Sa1bRecord back = parse_sa1b_json(out, "again.json");
  if (back.annotations.size() != good.size()) std::abort();
  for (size_t i = 0; i < good.size(); ++i)
    if (back.annotations[i].rle().counts != good[i].rle().counts) std::abort();
  return 0;
}
