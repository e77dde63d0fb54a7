#pragma once
// The automatic mask generator's rule against Meta's reference (../shared/golden/README.md): at
// least 98% of the reference masks have a counterpart with IoU >= 0.99, the number of masks is
// within 2% (one mask for small counts), counterparts are one-to-one, and a matched pair carries
// the same prompt, crop box and scores (area and box too when the masks are identical). Shared by
// the golden suite (tests/engine/test_amg_golden.cpp) and the live peer suite.
#include <algorithm>
#include <cmath>
#include <vector>

#include <catch2/catch.hpp>

#include "data/mask/rle.h"
#include "sam/amg/generator.h"

namespace sam_test {

struct AmgMatchStats {
  size_t n_ref = 0, n_ours = 0;
  size_t matched = 0;   ///< reference masks with a counterpart (IoU >= 0.99)
  size_t exact = 0;     ///< of those, identical masks
  double worst = 1.0;   ///< the lowest best-IoU over the reference masks
};

/// Compares `ours` with the reference records `refs` by the generator rule. A reference mask's
/// counterpart is our mask of highest IoU; with `same_prompt`, among our masks of the same point
/// and crop only (for outputs where masks of neighbouring prompts may be near-identical).
inline AmgMatchStats check_amg_match(const std::vector<sam::amg::AmgMask>& ours,
                                     const std::vector<sam::amg::AmgMask>& refs, bool same_prompt = false) {
  AmgMatchStats s;
  s.n_ref = refs.size();
  s.n_ours = ours.size();
  std::vector<int> used(ours.size(), 0);
  for (const auto& ref : refs) {
    double best = -1;
    size_t bi = 0;
    for (size_t i = 0; i < ours.size(); ++i) {
      if (same_prompt && (std::abs(ours[i].point_coords[0] - ref.point_coords[0]) > 1e-9 ||
                          std::abs(ours[i].point_coords[1] - ref.point_coords[1]) > 1e-9 ||
                          ours[i].crop_box != ref.crop_box))
        continue;
      const double iou = sam::mask::rle_iou(ours[i].segmentation, ref.segmentation, false);
      if (iou > best) best = iou, bi = i;
    }
    s.worst = std::min(s.worst, best);
    if (best < 0.99) {
      WARN("reference mask at point (" << ref.point_coords[0] << ", " << ref.point_coords[1]
                                       << ") has no counterpart (best IoU " << best << ")");
      continue;
    }
    ++s.matched;
    s.exact += best == 1.0;
    ++used[bi];
    const sam::amg::AmgMask& m = ours[bi];
    INFO("reference point " << ref.point_coords[0] << ", " << ref.point_coords[1]);
    CHECK(m.point_coords[0] == Approx(ref.point_coords[0]).margin(1e-9));
    CHECK(m.point_coords[1] == Approx(ref.point_coords[1]).margin(1e-9));
    CHECK(m.crop_box == ref.crop_box);
    CHECK(m.predicted_iou == Approx(ref.predicted_iou).margin(2e-3));
    CHECK(m.stability_score == Approx(ref.stability_score).margin(5e-3));
    if (best == 1.0) {
      CHECK(m.area == ref.area);
      CHECK(m.bbox == ref.bbox);
    }
  }
  const double n_ref = static_cast<double>(s.n_ref);
  WARN("reference " << s.n_ref << " masks, ours " << s.n_ours << ", matched " << s.matched
                    << " (identical " << s.exact << ")");
  CHECK(static_cast<double>(s.matched) >= std::ceil(0.98 * n_ref));
  const double allowed = std::max(1.0, std::floor(0.02 * n_ref));
  CHECK(std::abs(static_cast<double>(s.n_ours) - n_ref) <= allowed);
  for (int u : used) CHECK(u <= 1);  // one-to-one
  return s;
}

}  // namespace sam_test
