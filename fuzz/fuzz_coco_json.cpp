// Fuzzes the COCO instances reader: parse, rasterise every segmentation (polygons, boxes, RLE),
// write a COCO file of what decoded and read it back. Bad input may only raise DataError.
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "data/annotation.h"

using namespace sam::data;

namespace {
// Polygon rasterisation costs grow with the coordinates' range; keep each run short.
bool affordable(const Annotation& a) {
  const Segmentation& s = a.segmentation;
  if (s.h > (1 << 18) || s.w > (1 << 18) || s.h * s.w > (1 << 18)) return false;
  for (const auto& p : s.polygons)
    for (double v : p)
      if (std::fabs(v) > 4096) return false;
  return true;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  CocoSet set;
  try {
    set = parse_coco_instances(text, "fuzz.json");
  } catch (const DataError&) {
    return 0;
  }
  if (set.annotations.size() != set.images.size()) std::abort();
  std::vector<std::vector<Annotation>> good(set.images.size());
  for (size_t i = 0; i < set.images.size(); ++i)
    for (const Annotation& a : set.annotations[i]) {
      if (!affordable(a)) continue;
      try {
        const sam::mask::Rle r = a.rle();
        if (r.h != set.images[i].height || r.w != set.images[i].width) std::abort();
        good[i].push_back(a);
      } catch (const DataError&) {
      }
    }
  const std::string out = coco_instances_json(set.images, good, set.categories).dump();
  const CocoSet back = parse_coco_instances(out, "again.json");
  for (size_t i = 0; i < good.size(); ++i) {
    if (back.annotations.at(i).size() != good[i].size()) std::abort();
    for (size_t k = 0; k < good[i].size(); ++k)
      if (back.annotations[i][k].rle().counts != good[i][k].rle().counts) std::abort();
  }
  return 0;
}
