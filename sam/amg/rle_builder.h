#pragma once
// Builds a column-major COCO RLE (data/mask/rle.h) from runs given in pixel order; used to
// encode masks straight from the generator's column-major scans without a dense mask.
#include <cstdint>
#include <vector>

#include "data/mask/rle.h"

namespace sam::amg {

class RunBuilder {
 public:
  /// Appends n pixels of value v (0 or 1); runs of the same value merge.
  void add(uint8_t v, uint64_t n) {
    if (n == 0) return;
    if (v == cur_) {
      len_ += n;
    } else {
      counts_.push_back(static_cast<uint32_t>(len_));
      cur_ = v;
      len_ = n;
    }
  }
  /// The RLE of an h x w mask whose h*w pixels were added in column-major order.
  mask::Rle finish(int64_t h, int64_t w) {
    counts_.push_back(static_cast<uint32_t>(len_));
    mask::Rle r{h, w, std::move(counts_)};
    counts_.clear();
    cur_ = 0;
    len_ = 0;
    return r;
  }

 private:
  std::vector<uint32_t> counts_;
  uint8_t cur_ = 0;
  uint64_t len_ = 0;
};

}  // namespace sam::amg
