#include "sam/predictor.h"

#include <ATen/Parallel.h>

#include "data/resample.h"

namespace sam {

namespace {

// What every resize receives: uint8 [H, W, 3], contiguous, on the CPU.
torch::Tensor checked_rgb(const torch::Tensor& image_hwc) {
  TORCH_CHECK(image_hwc.dim() == 3 && image_hwc.size(2) == 3 && image_hwc.scalar_type() == torch::kUInt8,
              "images must be uint8 [H, W, 3] RGB; got ", image_hwc.sizes(), " ",
              image_hwc.scalar_type());
  return image_hwc.to(torch::kCPU).contiguous();
}

}  // namespace

torch::Tensor resize_longest_side(const torch::Tensor& image_hwc, int64_t long_side) {
  const auto img = checked_rgb(image_hwc);
  const int h = static_cast<int>(img.size(0)), w = static_cast<int>(img.size(1));
  auto [nh, nw] = data::preprocess_shape(h, w, static_cast<int>(long_side));
  auto out = torch::empty({nh, nw, 3}, torch::kUInt8);
  const data::RowLoop torch_pool = [](int n, const std::function<void(int, int)>& body) {
    at::parallel_for(0, n, 16, [&](int64_t b, int64_t e) { body(static_cast<int>(b), static_cast<int>(e)); });
  };
  data::resize_pil_bilinear(data::PixelView{img.data_ptr<uint8_t>(), h, w, 3, size_t(w) * 3},
                            data::PixelSpan{out.data_ptr<uint8_t>(), nh, nw, 3, size_t(nw) * 3}, torch_pool);
  return out.permute({2, 0, 1}).unsqueeze(0).to(torch::kFloat).contiguous();
}

Predictor::Predictor(Sam model, torch::Device device) : model_(std::move(model)), device_(device) {
  model_->to(device_);
  model_->eval();
  torch::NoGradGuard ng;
  dense_pe_ = model_->prompt_encoder->get_dense_pe();
}

void Predictor::reset() {
  embedding_ = torch::Tensor();
  original_ = input_ = {0, 0};
}

void Predictor::set_image(const torch::Tensor& image_hwc, const ImageResizer& resize) {
  const int64_t S = model_->config.img_size;
  const auto img = checked_rgb(image_hwc);
  auto x = resize ? resize(img, S) : resize_longest_side(img, S);
  torch::NoGradGuard ng;
  auto input = model_->preprocess(x.to(device_));
  embedding_ = model_->image_encoder->forward(input);
  original_ = {image_hwc.size(0), image_hwc.size(1)};
  input_ = {x.size(2), x.size(3)};
  prepare_decoder();
}

void Predictor::prepare_decoder() {
  torch::NoGradGuard ng;
  auto none = model_->prompt_encoder->forward({}, {}, {}, {});  // the no-mask dense embedding
  decoder_cache_ = model_->mask_decoder->prepare_image(embedding_, dense_pe_, none.dense);
}

void Predictor::set_embedding(const torch::Tensor& embedding, int64_t orig_h, int64_t orig_w) {
  const auto& c = model_->config;
  const int64_t G = c.grid_size();
  TORCH_CHECK(embedding.dim() == 4 && embedding.size(0) == 1 && embedding.size(1) == c.prompt_dim &&
                  embedding.size(2) == G && embedding.size(3) == G,
              "image embedding must be [1, ", c.prompt_dim, ", ", G, ", ", G, "]; got ",
              embedding.sizes());
  TORCH_CHECK(orig_h > 0 && orig_w > 0, "original image size must be positive");
  embedding_ = embedding.to(device_, torch::kFloat);
  original_ = {orig_h, orig_w};
  prepare_decoder();
  auto [nh, nw] = data::preprocess_shape(static_cast<int>(orig_h), static_cast<int>(orig_w),
                                         c.img_size);
  input_ = {nh, nw};
}

torch::Tensor Predictor::transform_coords(const torch::Tensor& coords) const {
  // Ratios in double, as the reference computes them on float64 numpy arrays.
  auto c = coords.to(torch::kCPU, torch::kDouble).clone();
  const double sx = static_cast<double>(input_.second) / original_.second;
  const double sy = static_cast<double>(input_.first) / original_.first;
  c.select(-1, 0).mul_(sx);
  c.select(-1, 1).mul_(sy);
  return c.to(torch::kFloat);
}

Prediction Predictor::predict(const torch::Tensor& points, const torch::Tensor& labels,
                              const torch::Tensor& box, const torch::Tensor& mask_input,
                              const PredictOptions& opts) const {
  torch::Tensor p, l, b, m;
  if (points.defined()) {
    TORCH_CHECK(points.dim() == 2 && points.size(1) == 2, "points must be [N, 2]; got ", points.sizes());
    TORCH_CHECK(labels.defined() && labels.dim() == 1 && labels.size(0) == points.size(0),
                "point labels must be [N] with N = ", points.size(0));
    p = points.unsqueeze(0);
    l = labels.unsqueeze(0);
  }
  if (box.defined()) {
    TORCH_CHECK(box.numel() == 4, "box must have 4 values x0,y0,x1,y1; got ", box.sizes());
    b = box.reshape({1, 4});
  }
  if (mask_input.defined()) {
    const int64_t lr = model_->config.low_res_size();
    TORCH_CHECK(mask_input.dim() == 3 && mask_input.size(0) == 1 && mask_input.size(1) == lr &&
                    mask_input.size(2) == lr,
                "mask input must be [1, ", lr, ", ", lr, "] low-res logits; got ", mask_input.sizes());
    m = mask_input.unsqueeze(0);
  }
  return predict_batch(p, l, b, m, opts);
}

Prediction Predictor::predict_batch(const torch::Tensor& points, const torch::Tensor& labels,
                                    const torch::Tensor& boxes, const torch::Tensor& mask_input,
                                    const PredictOptions& opts) const {
  TORCH_CHECK(has_image(), "set an image (or an embedding) before predicting");
  torch::NoGradGuard ng;
  torch::Tensor coords, labs, bx, masks;
  if (points.defined()) {
    coords = transform_coords(points).to(device_);
    labs = labels.to(device_, torch::kLong);
  }
  if (boxes.defined()) bx = transform_coords(boxes.reshape({-1, 2, 2})).reshape({-1, 4}).to(device_);
  if (mask_input.defined()) masks = mask_input.to(device_, torch::kFloat);
  Sam model = model_;  // a shared handle: forward() is not const, but eval inference is re-entrant
  auto emb = model->prompt_encoder->forward(coords, labs, bx, masks);
  // The cached image-only work holds for prompts without a mask input.
  auto dec = model->mask_decoder->forward(embedding_, dense_pe_, emb.sparse, emb.dense,
                                           opts.multimask, masks.defined() ? nullptr : &decoder_cache_);
  Prediction out;
  out.low_res = dec.masks;
  out.iou = dec.iou;
  if (opts.upscale) {
    out.logits = model_->postprocess_masks(dec.masks, input_, original_, &out.masks, opts.logits);
  }
  return out;
}

}  // namespace sam
