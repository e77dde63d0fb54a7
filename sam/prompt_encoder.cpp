#include "sam/prompt_encoder.h"

#include <cmath>

#include "sam/amp.h"

namespace sam {

PositionEmbeddingRandomImpl::PositionEmbeddingRandomImpl(int64_t num_pos_feats, double scale) {
  positional_encoding_gaussian_matrix = register_buffer(
      "positional_encoding_gaussian_matrix", torch::randn({2, num_pos_feats}) * scale);
}

torch::Tensor PositionEmbeddingRandomImpl::encode(const torch::Tensor& coords) const {
  auto c = 2 * coords - 1;
  c = sam::matmul(c, positional_encoding_gaussian_matrix);
  c = 2 * M_PI * c;
  return torch::cat({torch::sin(c), torch::cos(c)}, -1);
}

torch::Tensor PositionEmbeddingRandomImpl::grid(int64_t h, int64_t w) const {
  auto opts = positional_encoding_gaussian_matrix.options();
  auto ones = torch::ones({h, w}, opts);
  auto y = (ones.cumsum(0) - 0.5) / h;
  auto x = (ones.cumsum(1) - 0.5) / w;
  return encode(torch::stack({x, y}, -1)).permute({2, 0, 1});
}

torch::Tensor PositionEmbeddingRandomImpl::forward_with_coords(const torch::Tensor& coords,
                                                               int64_t H, int64_t W) const {
  auto x = coords.select(-1, 0) / W;
  auto y = coords.select(-1, 1) / H;
  return encode(torch::stack({x, y}, -1).to(torch::kFloat));
}

PromptEncoderImpl::PromptEncoderImpl(const ModelConfig& c)
    : config(c), embed_dim(c.prompt_dim), grid(c.grid_size()), input_size(c.img_size) {
  pe_layer = register_module("pe_layer", PositionEmbeddingRandom(embed_dim / 2));
  for (int i = 0; i < 4; ++i) point_embeddings->push_back(torch::nn::Embedding(1, embed_dim));
  register_module("point_embeddings", point_embeddings);
  not_a_point_embed = register_module("not_a_point_embed", torch::nn::Embedding(1, embed_dim));
  const int64_t mc = c.mask_in_chans;
  mask_downscaling = register_module(
      "mask_downscaling",
      torch::nn::Sequential(
          torch::nn::Conv2d(torch::nn::Conv2dOptions(1, mc / 4, 2).stride(2)),
          LayerNorm2d(mc / 4, 1e-6), torch::nn::GELU(),
          torch::nn::Conv2d(torch::nn::Conv2dOptions(mc / 4, mc, 2).stride(2)),
          LayerNorm2d(mc, 1e-6), torch::nn::GELU(),
          torch::nn::Conv2d(torch::nn::Conv2dOptions(mc, embed_dim, 1))));
  no_mask_embed = register_module("no_mask_embed", torch::nn::Embedding(1, embed_dim));
}

torch::Tensor PromptEncoderImpl::get_dense_pe() const {
  return pe_layer->grid(grid, grid).unsqueeze(0);
}

torch::Tensor PromptEncoderImpl::embed_points(const torch::Tensor& coords,
                                              const torch::Tensor& labels, bool pad) {
  auto pts = coords.to(torch::kFloat) + 0.5;  // shift to the pixel centre
  auto lab = labels.to(pts.device());
  if (pad) {
    const int64_t B = pts.size(0);
    pts = torch::cat({pts, torch::zeros({B, 1, 2}, pts.options())}, 1);
    lab = torch::cat({lab, -torch::ones({B, 1}, lab.options())}, 1);
  }
  auto emb = pe_layer->forward_with_coords(pts, input_size, input_size);  // [B, N, D]
  // Select the learned type embedding per label without data-dependent indexing. Label -1
  // replaces the positional part by not_a_point_embed; 0..3 add point_embeddings[label].
  auto lab3 = lab.unsqueeze(-1);
  auto is_pad = lab3.eq(-1).to(emb.dtype());
  emb = emb * (1 - is_pad) + is_pad * not_a_point_embed->weight.view({1, 1, -1});
  for (int64_t k = 0; k < 4; ++k) {
    auto sel = lab3.eq(k).to(emb.dtype());
    emb = emb + sel * point_embeddings[k]->as<torch::nn::Embedding>()->weight.view({1, 1, -1});
  }
  return emb;
}

torch::Tensor PromptEncoderImpl::embed_boxes(const torch::Tensor& boxes) {
  auto b = boxes.to(torch::kFloat) + 0.5;
  auto corners = b.reshape({-1, 2, 2});
  auto emb = pe_layer->forward_with_coords(corners, input_size, input_size);  // [B, 2, D]
  auto tl = point_embeddings[2]->as<torch::nn::Embedding>()->weight;
  auto br = point_embeddings[3]->as<torch::nn::Embedding>()->weight;
  return emb + torch::stack({tl.squeeze(0), br.squeeze(0)}, 0).unsqueeze(0);
}

PromptEmbeddings PromptEncoderImpl::forward(const torch::Tensor& coords, const torch::Tensor& labels,
                                            const torch::Tensor& boxes, const torch::Tensor& masks) {
  int64_t B = 1;
  if (coords.defined()) B = coords.size(0);
  else if (boxes.defined()) B = boxes.size(0);
  else if (masks.defined()) B = masks.size(0);
  auto device = pe_layer->positional_encoding_gaussian_matrix.device();
  auto fopts = torch::TensorOptions().dtype(torch::kFloat).device(device);
  std::vector<torch::Tensor> sparse;
  if (coords.defined()) {
    TORCH_CHECK(labels.defined() && labels.dim() == 2 && coords.dim() == 3 &&
                    coords.size(2) == 2 && labels.size(0) == B && labels.size(1) == coords.size(1),
                "points must be coords [B, N, 2] with labels [B, N]; got ", coords.sizes(), " and ",
                labels.defined() ? labels.sizes() : torch::IntArrayRef{});
    sparse.push_back(embed_points(coords.to(device), labels, !boxes.defined()));
  }
  if (boxes.defined()) {
    TORCH_CHECK(boxes.numel() == B * 4, "boxes must be [B, 4] with B = ", B, "; got ",
                boxes.sizes());
    sparse.push_back(embed_boxes(boxes.to(device)));
  }
  PromptEmbeddings out;
  out.sparse = sparse.empty() ? torch::empty({B, 0, embed_dim}, fopts)
               : sparse.size() == 1 ? sparse[0] : torch::cat(sparse, 1);
  if (masks.defined()) {
    const int64_t lr = 4 * grid;
    TORCH_CHECK(masks.dim() == 4 && masks.size(1) == 1 && masks.size(2) == lr &&
                    masks.size(3) == lr && masks.size(0) == B,
                "mask prompts must be [B, 1, ", lr, ", ", lr, "] with B = ", B, "; got ",
                masks.sizes());
    out.dense = mask_downscaling->forward(masks.to(fopts));
  } else {
    out.dense = no_mask_embed->weight.view({1, -1, 1, 1}).expand({B, embed_dim, grid, grid});
  }
  return out;
}

}  // namespace sam
