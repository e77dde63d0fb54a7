#include "sam/amg/amg_utils.h"

#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "sam/amg/rle_builder.h"

namespace sam::amg {

std::vector<Point> build_point_grid(int n) {
  if (n < 1)
    throw std::invalid_argument("build_point_grid: points per side must be >= 1, got " +
                                std::to_string(n));
  // numpy.linspace: i * step + start, the last value set to stop exactly.
  const double offset = 1.0 / (2.0 * n);
  const double start = offset, stop = 1.0 - offset;
  std::vector<double> side(n);
  if (n == 1) {
    side[0] = start;
  } else {
    const double step = (stop - start) / (n - 1);
    for (int i = 0; i < n; ++i) side[i] = static_cast<double>(i) * step + start;
    side[n - 1] = stop;
  }
  std::vector<Point> pts;
  pts.reserve(static_cast<size_t>(n) * n);
  for (int r = 0; r < n; ++r)
    for (int c = 0; c < n; ++c) pts.push_back({side[c], side[r]});
  return pts;
}

std::vector<std::vector<Point>> build_all_layer_point_grids(int n_per_side, int n_layers,
                                                            int scale_per_layer) {
  if (n_layers < 0 || scale_per_layer < 1)
    throw std::invalid_argument("build_all_layer_point_grids: need n_layers >= 0 and scale >= 1");
  std::vector<std::vector<Point>> out;
  for (int i = 0; i <= n_layers; ++i) {
    const int n = static_cast<int>(n_per_side / std::pow(static_cast<double>(scale_per_layer), i));
    if (n < 1)
      throw std::invalid_argument("crop layer " + std::to_string(i) + " gets int(" +
                                  std::to_string(n_per_side) + " / " +
                                  std::to_string(scale_per_layer) + "^" + std::to_string(i) +
                                  ") = 0 points per side; lower crop_n_layers or the downscale");
    out.push_back(build_point_grid(n));
  }
  return out;
}

std::vector<CropBox> generate_crop_boxes(int64_t h, int64_t w, int n_layers, double overlap_ratio) {
  if (h <= 0 || w <= 0 || n_layers < 0)
    throw std::invalid_argument("generate_crop_boxes: need a non-empty image and n_layers >= 0");
  std::vector<CropBox> boxes{{0, 0, w, h, 0}};
  const int64_t short_side = std::min(h, w);
  auto crop_len = [](int64_t orig, int64_t n, int64_t overlap) {
    return static_cast<int64_t>(std::ceil(static_cast<double>(overlap * (n - 1) + orig) / n));
  };
  for (int layer = 0; layer < n_layers; ++layer) {
    const int64_t n = int64_t{1} << (layer + 1);
    // Python evaluates ratio * short_side * (2 / n) left to right, then int() truncates.
    const auto overlap = static_cast<int64_t>(overlap_ratio * short_side * (2.0 / n));
    const int64_t cw = crop_len(w, n, overlap), ch = crop_len(h, n, overlap);
    for (int64_t i = 0; i < n; ++i) {
      const int64_t x0 = (cw - overlap) * i;
      for (int64_t j = 0; j < n; ++j) {
        const int64_t y0 = (ch - overlap) * j;
        boxes.push_back({x0, y0, std::min(x0 + cw, w), std::min(y0 + ch, h), layer + 1});
      }
    }
  }
  return boxes;
}

torch::Tensor calculate_stability_score(const torch::Tensor& logits, double mask_threshold,
                                        double offset) {
  TORCH_CHECK(logits.dim() >= 2, "stability score needs logits [..., H, W]; got ", logits.sizes());
  auto inter = (logits > (mask_threshold + offset)).sum({-2, -1}, false, torch::kInt);
  auto uni = (logits > (mask_threshold - offset)).sum({-2, -1}, false, torch::kInt);
  return inter.to(torch::kFloat) / uni.to(torch::kFloat);
}

torch::Tensor batched_mask_to_box(const torch::Tensor& masks) {
  TORCH_CHECK(masks.dim() >= 2, "masks must be [..., H, W]; got ", masks.sizes());
  auto lead = masks.sizes().vec();
  const int64_t h = masks.size(-2), w = masks.size(-1);
  lead.resize(lead.size() - 2);
  auto out_shape = lead;
  out_shape.push_back(4);
  if (masks.numel() == 0) return torch::zeros(out_shape, torch::kLong);
  auto m = masks.to(torch::kBool).reshape({-1, h, w}).to(torch::kCPU).contiguous();
  auto out = torch::zeros({m.size(0), 4}, torch::kLong);
  auto acc = out.accessor<int64_t, 2>();
  for (int64_t i = 0; i < m.size(0); ++i) {
    const auto box = mask_to_box(reinterpret_cast<const uint8_t*>(m[i].data_ptr<bool>()), h, w);
    for (int k = 0; k < 4; ++k) acc[i][k] = box[k];
  }
  return out.reshape(out_shape);
}

BoxI mask_to_box(const uint8_t* mask, int64_t h, int64_t w) {
  int64_t x0 = w, y0 = h, x1 = -1, y1 = -1;
  for (int64_t y = 0; y < h; ++y) {
    const uint8_t* row = mask + y * w;
    int64_t first = -1, last = -1;
    for (int64_t x = 0; x < w; ++x)
      if (row[x]) {
        first = x;
        break;
      }
    if (first < 0) continue;
    for (int64_t x = w - 1; x >= first; --x)
      if (row[x]) {
        last = x;
        break;
      }
    y0 = std::min(y0, y);
    y1 = y;
    x0 = std::min(x0, first);
    x1 = std::max(x1, last);
  }
  if (x1 < 0) return {0, 0, 0, 0};
  return {x0, y0, x1, y1};
}

bool is_box_near_crop_edge(const BoxI& box, const CropBox& crop, int64_t img_w, int64_t img_h,
                           double atol) {
  const BoxI b = uncrop_box(box, crop);
  const int64_t cb[4] = {crop.x0, crop.y0, crop.x1, crop.y1};
  const int64_t ib[4] = {0, 0, img_w, img_h};
  for (int k = 0; k < 4; ++k) {
    const bool near_crop = std::abs(static_cast<double>(b[k] - cb[k])) <= atol;
    const bool near_image = std::abs(static_cast<double>(b[k] - ib[k])) <= atol;
    if (near_crop && !near_image) return true;
  }
  return false;
}

BoxI uncrop_box(const BoxI& box, const CropBox& crop) {
  return {box[0] + crop.x0, box[1] + crop.y0, box[2] + crop.x0, box[3] + crop.y0};
}

Point uncrop_point(const Point& p, const CropBox& crop) {
  return {p[0] + static_cast<double>(crop.x0), p[1] + static_cast<double>(crop.y0)};
}

mask::Rle uncrop_rle(const mask::Rle& crop_rle, const CropBox& crop, int64_t img_h, int64_t img_w) {
  mask::rle_validate(crop_rle);
  if (crop_rle.h != crop.height() || crop_rle.w != crop.width())
    throw std::invalid_argument("uncrop_rle: RLE is " + std::to_string(crop_rle.h) + "x" +
                                std::to_string(crop_rle.w) + " but the crop is " +
                                std::to_string(crop.height()) + "x" + std::to_string(crop.width()));
  if (crop.x0 < 0 || crop.y0 < 0 || crop.x1 > img_w || crop.y1 > img_h)
    throw std::invalid_argument("uncrop_rle: crop box outside the image");
  const uint64_t H = static_cast<uint64_t>(img_h), ch = static_cast<uint64_t>(crop_rle.h);
  RunBuilder rb;
  rb.add(0, static_cast<uint64_t>(crop.x0) * H);
  // Walk the crop's runs column by column, inserting the padding above and below each column.
  size_t ci = 0;
  uint64_t left = crop_rle.counts.empty() ? 0 : crop_rle.counts[0];
  uint8_t val = 0;
  for (int64_t x = 0; x < crop_rle.w; ++x) {
    rb.add(0, static_cast<uint64_t>(crop.y0));
    uint64_t need = ch;
    while (need > 0) {
      while (left == 0) {
        ++ci;
        left = crop_rle.counts[ci];
        val ^= 1;
      }
      const uint64_t take = std::min(need, left);
      rb.add(val, take);
      need -= take;
      left -= take;
    }
    rb.add(0, H - static_cast<uint64_t>(crop.y1));
  }
  rb.add(0, static_cast<uint64_t>(img_w - crop.x1) * H);
  return rb.finish(img_h, img_w);
}

std::vector<int64_t> batched_nms(const std::vector<BoxF>& boxes, const std::vector<float>& scores,
                                 double iou_threshold) {
  const int64_t n = static_cast<int64_t>(boxes.size());
  if (static_cast<int64_t>(scores.size()) != n)
    throw std::invalid_argument("batched_nms: " + std::to_string(n) + " boxes but " +
                                std::to_string(scores.size()) + " scores");
  if (n == 0) return {};
  // The order comes from torch's own sort so that ties break exactly as in torchvision.
  auto score_t = torch::from_blob(const_cast<float*>(scores.data()), {n}, torch::kFloat).clone();
  auto order_t = std::get<1>(score_t.sort(0, /*descending=*/true)).contiguous();
  const int64_t* order = order_t.data_ptr<int64_t>();
  std::vector<float> areas(n);
  for (int64_t i = 0; i < n; ++i)
    areas[i] = (boxes[i][2] - boxes[i][0]) * (boxes[i][3] - boxes[i][1]);
  std::vector<uint8_t> suppressed(n, 0);
  std::vector<int64_t> keep;
  for (int64_t a = 0; a < n; ++a) {
    const int64_t i = order[a];
    if (suppressed[i]) continue;
    keep.push_back(i);
    const BoxF& bi = boxes[i];
    for (int64_t b = a + 1; b < n; ++b) {
      const int64_t j = order[b];
      if (suppressed[j]) continue;
      const BoxF& bj = boxes[j];
      const float xx1 = std::max(bi[0], bj[0]), yy1 = std::max(bi[1], bj[1]);
      const float xx2 = std::min(bi[2], bj[2]), yy2 = std::min(bi[3], bj[3]);
      const float iw = std::max(0.0f, xx2 - xx1), ih = std::max(0.0f, yy2 - yy1);
      const float inter = iw * ih;
      const float ovr = inter / (areas[i] + areas[j] - inter);
      if (static_cast<double>(ovr) > iou_threshold) suppressed[j] = 1;
    }
  }
  if (4 * n <= 4000) return keep;
  // torchvision's CPU path for more than 4000 box coordinates: survivors in index order, then
  // re-sorted by score (the same unstable sort, so ties may come out in another order).
  std::sort(keep.begin(), keep.end());
  const int64_t k = static_cast<int64_t>(keep.size());
  auto sub = torch::empty({k}, torch::kFloat);
  for (int64_t i = 0; i < k; ++i) sub[i] = scores[keep[i]];
  auto perm_t = std::get<1>(sub.sort(0, /*descending=*/true)).contiguous();
  const int64_t* perm = perm_t.data_ptr<int64_t>();
  std::vector<int64_t> out(k);
  for (int64_t i = 0; i < k; ++i) out[i] = keep[perm[i]];
  return out;
}

std::pair<cv::Mat, bool> remove_small_regions(const cv::Mat& mask, double area_thresh,
                                              RegionMode mode) {
  CV_Assert(mask.type() == CV_8UC1);
  const bool holes = mode == RegionMode::kHoles;
  cv::Mat working;
  if (holes)
    cv::compare(mask, 0, working, cv::CMP_EQ);  // 255 where the mask is empty
  else
    cv::compare(mask, 0, working, cv::CMP_NE);
  cv::Mat labels, stats, centroids;
  const int n = cv::connectedComponentsWithStats(working, labels, stats, centroids, 8, CV_32S);
  std::vector<uint8_t> is_small(n, 0);
  bool any_small = false;
  for (int l = 1; l < n; ++l)
    if (stats.at<int>(l, cv::CC_STAT_AREA) < area_thresh) is_small[l] = any_small = true;
  if (!any_small) return {mask.clone(), false};
  // Label 0 is the mask itself (holes) or the background (islands).
  std::vector<uint8_t> fill(n, 0);
  if (holes) {
    fill[0] = 1;
    for (int l = 1; l < n; ++l) fill[l] = is_small[l];
  } else {
    bool any = false;
    for (int l = 1; l < n; ++l) any |= (fill[l] = !is_small[l]) != 0;
    if (!any) {
      int best = 1;
      for (int l = 2; l < n; ++l)
        if (stats.at<int>(l, cv::CC_STAT_AREA) > stats.at<int>(best, cv::CC_STAT_AREA)) best = l;
      fill[best] = 1;
    }
  }
  cv::Mat out(mask.size(), CV_8UC1);
  for (int y = 0; y < mask.rows; ++y) {
    const int* lab = labels.ptr<int>(y);
    uint8_t* o = out.ptr<uint8_t>(y);
    for (int x = 0; x < mask.cols; ++x) o[x] = fill[lab[x]];
  }
  return {out, true};
}

namespace {

// Row-major 0/1 bytes of the window [wx0, wx0+ww) x [wy0, wy0+wh) of an RLE.
cv::Mat decode_window(const mask::Rle& r, int64_t wx0, int64_t wy0, int64_t ww, int64_t wh) {
  cv::Mat out = cv::Mat::zeros(static_cast<int>(wh), static_cast<int>(ww), CV_8UC1);
  const uint64_t H = static_cast<uint64_t>(r.h);
  uint64_t pos = 0;
  for (size_t i = 0; i < r.counts.size(); ++i) {
    const uint64_t end = pos + r.counts[i];
    if (i % 2 == 1) {
      for (uint64_t s = pos; s < end;) {
        const int64_t x = static_cast<int64_t>(s / H);
        const uint64_t col_end = std::min(end, (static_cast<uint64_t>(x) + 1) * H);
        if (x >= wx0 && x < wx0 + ww) {
          const int64_t ys = static_cast<int64_t>(s - x * H),
                        ye = static_cast<int64_t>(col_end - x * H);
          for (int64_t y = std::max(ys, wy0); y < std::min(ye, wy0 + wh); ++y)
            out.at<uint8_t>(static_cast<int>(y - wy0), static_cast<int>(x - wx0)) = 1;
        }
        s = col_end;
      }
    }
    pos = end;
  }
  return out;
}

// The h x w RLE of a mask that is zero outside the window whose row-major bytes are `win`.
mask::Rle encode_window(const cv::Mat& win, int64_t wx0, int64_t wy0, int64_t h, int64_t w) {
  RunBuilder rb;
  const uint64_t H = static_cast<uint64_t>(h);
  rb.add(0, static_cast<uint64_t>(wx0) * H);
  for (int x = 0; x < win.cols; ++x) {
    rb.add(0, static_cast<uint64_t>(wy0));
    for (int y = 0; y < win.rows; ++y) rb.add(win.at<uint8_t>(y, x) ? 1 : 0, 1);
    rb.add(0, H - static_cast<uint64_t>(wy0 + win.rows));
  }
  rb.add(0, static_cast<uint64_t>(w - wx0 - win.cols) * H);
  return rb.finish(h, w);
}

CleanResult clean_full_image(const mask::Rle& rle, double min_area) {
  cv::Mat m(static_cast<int>(rle.h), static_cast<int>(rle.w), CV_8UC1);
  mask::rle_decode(rle, m.data);
  auto [m1, ch] = remove_small_regions(m, min_area, RegionMode::kHoles);
  auto [m2, ci] = remove_small_regions(m1, min_area, RegionMode::kIslands);
  CleanResult r;
  r.changed = ch || ci;
  if (r.changed) {
    r.rle = mask::rle_encode(m2.data, rle.h, rle.w);
    r.box = mask_to_box(m2.data, rle.h, rle.w);
  }
  return r;
}

}  // namespace

CleanResult clean_small_regions(const mask::Rle& rle, double min_area) {
  mask::rle_validate(rle);
  const int64_t H = rle.h, W = rle.w;
  if (mask::rle_area(rle) == 0) return clean_full_image(rle, min_area);
  const auto bb = mask::rle_bbox_inclusive(rle);
  // Window = box plus a one-pixel background ring, its origin on even coordinates so that
  // OpenCV's 2x2-block labelling sees the same block grid as on the whole image.
  const int64_t wx0 = std::max<int64_t>(0, bb[0] - 1) & ~int64_t{1};
  const int64_t wy0 = std::max<int64_t>(0, bb[1] - 1) & ~int64_t{1};
  const int64_t wx1 = std::min(W, bb[2] + 2), wy1 = std::min(H, bb[3] + 2);
  const int64_t ww = wx1 - wx0, wh = wy1 - wy0;
  if (ww * wh * 2 > H * W) return clean_full_image(rle, min_area);
  cv::Mat m = decode_window(rle, wx0, wy0, ww, wh);

  // Holes: components of the complement. Those touching an open side of the window (one not on
  // the image border) continue outside it; their true area is at least the window part plus the
  // background strip beyond that side. Only if that bound is below the threshold is the exact
  // answer in doubt, and then the whole image is labelled instead.
  cv::Mat working, labels, stats, centroids;
  cv::compare(m, 0, working, cv::CMP_EQ);
  int n = cv::connectedComponentsWithStats(working, labels, stats, centroids, 8, CV_32S);
  std::vector<int64_t> bound(n, 0);
  std::vector<uint8_t> open(n, 0);
  for (int l = 1; l < n; ++l) bound[l] = stats.at<int>(l, cv::CC_STAT_AREA);
  auto touch = [&](int y, int x, int64_t beyond) {
    const int l = labels.at<int>(y, x);
    if (l == 0) throw std::logic_error("clean_small_regions: window ring is not background");
    open[l] = 1;
    bound[l] += beyond;
  };
  if (wy0 > 0) touch(0, 0, wy0 * ww);
  if (wy1 < H) touch(static_cast<int>(wh - 1), 0, (H - wy1) * ww);
  if (wx0 > 0) touch(0, 0, wx0 * wh);
  if (wx1 < W) touch(0, static_cast<int>(ww - 1), (W - wx1) * wh);
  std::vector<uint8_t> fill(n, 0);
  bool holes_changed = false;
  for (int l = 1; l < n; ++l) {
    if (bound[l] >= min_area) continue;
    if (open[l]) return clean_full_image(rle, min_area);
    fill[l] = 1;
    holes_changed = true;
  }
  if (holes_changed)
    for (int y = 0; y < m.rows; ++y) {
      const int* lab = labels.ptr<int>(y);
      uint8_t* row = m.ptr<uint8_t>(y);
      for (int x = 0; x < m.cols; ++x) row[x] |= fill[lab[x]];
    }

  // Islands lie inside the box, so the window labelling is exact.
  auto [m2, islands_changed] = remove_small_regions(m, min_area, RegionMode::kIslands);
  CleanResult r;
  r.changed = holes_changed || islands_changed;
  if (r.changed) {
    r.rle = encode_window(m2, wx0, wy0, H, W);
    const BoxI b = mask_to_box(m2.data, wh, ww);
    r.box = {b[0] + wx0, b[1] + wy0, b[2] + wx0, b[3] + wy0};
  }
  return r;
}

}  // namespace sam::amg
