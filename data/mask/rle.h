#pragma once
// COCO run-length encoding (RLE), byte-exact with cocoapi `common/maskApi.c`, plus polygon and
// box rasterisation (`rleFrPoly`, `rleFrBbox`). Pure C++ (no libtorch, no OpenCV).
//
// Layout conventions used throughout:
//  - A dense mask is row-major H x W, one byte per pixel (nonzero = set on input, 0/1 on output).
//  - RLE counts run over the pixels in column-major (Fortran) order, i.e. flat index x*H + y,
//    alternating 0-runs and 1-runs and starting with a 0-run (which is 0 when pixel (0,0) is set).
//  - Sizes are limited to H*W <= 2^32-1 (cocoapi stores counts and positions as 32-bit uint).
//
// Errors: functions that take an Rle validate it (rle_validate) unless noted, and every malformed
// input raises std::invalid_argument whose message says what is wrong (callers add the file name).
#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace sam::mask {

/// A COCO RLE: h x w mask, column-major runs, counts[0] = first run of zeros (may be 0).
struct Rle {
  int64_t h = 0, w = 0;
  std::vector<uint32_t> counts;
};

/// Throws std::invalid_argument unless h,w >= 0, h*w <= 2^32-1 and the counts sum to exactly h*w.
void rle_validate(const Rle& r);

/// cocoapi rleEncode: `mask` row-major h x w bytes (nonzero = set) -> column-major runs. h*w == 0
/// gives counts {0}, as cocoapi does. Throws on negative sizes or h*w > 2^32-1.
Rle rle_encode(const uint8_t* mask, int64_t h, int64_t w);

/// cocoapi rleDecode after rle_validate: writes r.h*r.w bytes to `out`, row-major h x w, 0/1.
void rle_decode(const Rle& r, uint8_t* out);

/// cocoapi rleToString exactly (chars 48..111, 5 data bits + continuation bit,
/// counts[i]-counts[i-2] for i > 2). Does not validate: any counts vector has a string.
std::string rle_to_string(const Rle& r);

/// cocoapi rleFrString plus strict checks: throws on characters outside 48..111, a truncated last
/// count, more than 7 characters in one count, a count outside 0..2^32-1, or counts not summing to
/// h*w.
Rle rle_from_string(std::string_view s, int64_t h, int64_t w);

/// cocoapi rleArea: number of set pixels (sum of counts[1], counts[3], ...). Does not validate.
uint64_t rle_area(const Rle& r);

/// cocoapi rleToBbox / pycocotools toBbox: {x, y, w, h} with w = xe-xs+1, h = ye-ys+1 (pixel
/// extent); all zeros for an empty mask. Zero-length 1-runs are ignored (cocoapi would count a
/// phantom pixel next to them; canonical RLEs have none).
std::array<double, 4> rle_bbox_coco(const Rle& r);

/// SAM `batched_mask_to_box`: {x0, y0, x1, y1} with inclusive max indices; empty mask -> {0,0,0,0}.
std::array<int64_t, 4> rle_bbox_inclusive(const Rle& r);

/// cocoapi rleIou(dt=a, gt=b): |a&b| / |a|b|, or |a&b| / |a| when b_is_crowd; 0 when |a&b| = 0.
/// Throws on different sizes (cocoapi would return -1 when the boxes overlap, 0 otherwise).
double rle_iou(const Rle& a, const Rle& b, bool b_is_crowd);

/// cocoapi rleMerge: union (intersect=false) or intersection of same-size RLEs, canonical runs;
/// no input -> Rle{} (0x0, no counts); one input -> a copy. Throws on different sizes (cocoapi
/// silently returns an empty 0x0 RLE).
Rle rle_merge(const std::vector<Rle>& rles, bool intersect);

/// cocoapi rleFrPoly exactly: xy = {x0,y0,x1,y1,...} in pixel coordinates (pixel (x,y) covers
/// [x,x+1)x[y,y+1), set iff its centre is inside on a 5x upsampled boundary) -> h x w RLE. An empty
/// polygon gives an empty mask. Throws on an odd length or a non-finite or |coordinate| > 1e8.
Rle rle_from_polygon(const std::vector<double>& xy, int64_t h, int64_t w);

/// cocoapi rleFrBbox: the box {x, y, bw, bh} rasterised as the polygon (x,y),(x,y+bh),(x+bw,y+bh),
/// (x+bw,y) with rle_from_polygon.
Rle rle_from_bbox(double x, double y, double bw, double bh, int64_t h, int64_t w);

/// {"size":[h,w],"counts":"<rle_to_string>"} if compressed, else {"size":[h,w],"counts":[...]};
/// does not validate.
nlohmann::json rle_to_json(const Rle& r, bool compressed = true);

/// Inverse of rle_to_json, both forms (counts string or array of non-negative integers); throws on
/// a missing/mistyped "size" or "counts", negative or non-integer values, or invalid counts.
Rle rle_from_json(const nlohmann::json& j);

}  // namespace sam::mask
