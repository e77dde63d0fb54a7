#pragma once
// Geometric transforms for training: the reference's longest-side resize, large-scale jitter
// (LSJ) and horizontal flip, planned once per sample (a Geometry) and applied identically to the
// image, the masks, boxes and points.
//
// The mapping. An original image of H x W pixels is (1) mirrored left-right when `flip`, (2)
// scaled to scaled_h x scaled_w, (3) cropped to the window [crop_y, crop_y + out_h) x
// [crop_x, crop_x + out_w) of the scaled image, and (4) placed at the top-left of a
// canvas_h x canvas_w canvas whose remainder is zero (bottom/right padding, as SAM pads). A
// point at continuous original coordinates (x, y) (pixel (i, j) covers [i, i+1) x [j, j+1)) lands
// at ((flip ? W - x : x) * scaled_w / W - crop_x, y * scaled_h / H - crop_y).
//
// Masks use centre-aligned nearest sampling, computed straight from the RLE: output pixel (x, y)
// takes the original pixel containing its centre's pre-image. Why nearest and not area +
// threshold: it is what detectron2's LSJ and the SAM 2 trainer do, it keeps a mask binary without
// a threshold to pick, it shares the image resampler's centre alignment (OpenCV's INTER_AREA and
// INTER_LINEAR map centres, so mask and image edges agree to a fraction of an output pixel), and
// it never decodes the full-resolution mask: only the runs of the sampled columns are read, so
// 64 masks of a 1500x2250 image cost about what 64 output-sized memsets do. Objects thinner than
// the sampling step can vanish; the loader drops masks that come out empty.
#include <opencv2/core.hpp>

#include <array>
#include <cstdint>

#include "data/mask/rle.h"
#include "data/rng.h"

namespace sam::data {

/// A planned transform (see the file comment for the mapping).
struct Geometry {
  int src_h = 0, src_w = 0;        // original size
  int scaled_h = 0, scaled_w = 0;  // after resizing
  int crop_y = 0, crop_x = 0;      // window origin in the scaled image (>= 0)
  int out_h = 0, out_w = 0;        // window size (content of the output)
  int canvas_h = 0, canvas_w = 0;  // output size (content + zero padding)
  bool flip = false;
};

/// The reference's ResizeLongestSide: scaled = preprocess_shape(H, W, S) (at least 1 pixel per
/// side), no crop, canvas = content (h, w <= S; the model pads). `flip` mirrors left-right.
Geometry plan_resize_longest(int h, int w, int long_side, bool flip = false);

/// Large-scale jitter: the longest-side-resized size times a scale drawn uniformly in
/// [min_scale, max_scale], then a random window of at most S x S (offsets uniform over the valid
/// range), on an S x S canvas. `flip` mirrors left-right. Draws from `rng` (scale, then y, x).
Geometry plan_lsj(int h, int w, int long_side, double min_scale, double max_scale, bool flip,
                  Rng& rng);

/// Random resized crop (MAE's augmentation; torchvision's RandomResizedCrop with ratio 3/4 to
/// 4/3): a window of a share of the image's area drawn uniformly in [min_scale, 1] and a log-uniform
/// aspect ratio (10 tries, then the centred whole image within the ratio range), resized to
/// side x side (the two axes scaled apart). `flip` mirrors left-right. Draws from `rng`.
Geometry plan_random_resized_crop(int h, int w, int side, double min_scale, bool flip, Rng& rng);

/// The image through `g`: canvas_h x canvas_w, same type as `src` (any channel count), zero
/// padding. Uses data::resize_fast (INTER_AREA shrinking, INTER_LINEAR enlarging).
cv::Mat apply_image(const cv::Mat& src, const Geometry& g);

/// A mask given as an RLE of the original size through `g`: writes canvas_h * canvas_w bytes
/// (row-major, 0/1) to `out`. Throws std::invalid_argument when the RLE is not src_h x src_w.
/// Returns the number of set pixels.
int64_t apply_rle(const mask::Rle& r, const Geometry& g, uint8_t* out);

/// A dense uint8 mask (src_h x src_w, nonzero = set) through `g` with the same sampling as
/// apply_rle: canvas_h x canvas_w, 0/1.
cv::Mat apply_mask(const cv::Mat& mask, const Geometry& g);

/// A box {x0, y0, x1, y1} in continuous original coordinates (a mask's pixel extent is
/// {x, y, x + w, y + h} with COCO's w, h) through `g`, clipped to the content window. The
/// transformed mask of any mask inside the box lies inside the result. An empty result has
/// x1 <= x0 or y1 <= y0.
std::array<double, 4> apply_box(const std::array<double, 4>& xyxy, const Geometry& g);

/// A point (continuous original coordinates) through `g` (not clipped).
std::array<double, 2> apply_point(double x, double y, const Geometry& g);

}  // namespace sam::data
