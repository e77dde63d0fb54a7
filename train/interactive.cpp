#include "train/interactive.h"

#include <cmath>
#include <random>

#include "sam/amp.h"

namespace sam::train {

namespace F = torch::nn::functional;

namespace {

uint64_t mix(uint64_t x) {  // splitmix64 finaliser: decorrelates nearby seeds
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// Per-mask random draws, made on the CPU from a generator keyed by (seed, step, image key), so
// that a mask gets the same prompts whatever the rank layout.
struct MaskDraws {
  std::vector<uint8_t> is_box;
  std::vector<float> u0;               // initial point
  std::vector<float> noise;            // 4 per mask
  std::vector<std::vector<float>> u;   // per round (index r), one per mask
};

void draw_for_image(MaskDraws& d, int64_t k, uint64_t seed, int64_t step, int64_t key,
                    const PromptSimOptions& o) {
  std::mt19937_64 rng(mix(seed ^ mix(static_cast<uint64_t>(step) * 0x100000001b3ULL ^ mix(static_cast<uint64_t>(key)))));
  std::uniform_real_distribution<float> uni(0.f, 1.f), sym(-1.f, 1.f);
  std::normal_distribution<float> gauss(0.f, 1.f);
  for (int64_t i = 0; i < k; ++i) {
    d.is_box.push_back(uni(rng) < o.prob_box ? 1 : 0);
    d.u0.push_back(uni(rng));
    for (int j = 0; j < 4; ++j)
      d.noise.push_back(o.box_noise == BoxNoise::kGaussian ? gauss(rng) : sym(rng));
    for (int r = 0; r < o.rounds; ++r) d.u[r].push_back(uni(rng));
  }
}

}  // namespace

torch::Tensor preprocess_batch(const Sam& model, const std::vector<torch::Tensor>& images,
                               const torch::Device& device) {
  std::vector<torch::Tensor> xs;
  for (const auto& im : images) xs.push_back(model->preprocess(im.to(device).unsqueeze(0).to(torch::kFloat)));
  return torch::cat(xs, 0);
}

StepSums interactive_step_async(Sam& model, const StepBatch& batch, const StepOptions& o,
                                const torch::Device& device) {
  const int64_t S = model->config.img_size;
  const bool cached = !batch.embeddings.empty();
  const int64_t B = static_cast<int64_t>(cached ? batch.embeddings.size() : batch.images.size());
  TORCH_CHECK(B > 0 && static_cast<int64_t>(batch.masks.size()) == B && static_cast<int64_t>(batch.keys.size()) == B,
              "interactive_step: images (or embeddings), masks and keys must have the same length");
  const auto bopts = torch::TensorOptions().device(device).dtype(torch::kBool);
  // Host values go up without waiting for the device (the copy is staged at once; from pinned
  // memory, the loader's, it runs asynchronously).
  const auto up = [&](const torch::Tensor& t) { return t.to(device, /*non_blocking=*/true); };

  // Ground truth at S x S (zero padding like the image), the valid region, and per-mask draws.
  std::vector<torch::Tensor> gts, valids;
  std::vector<int64_t> img_of;
  MaskDraws draws;
  draws.u.resize(o.prompt.rounds);
  for (int64_t b = 0; b < B; ++b) {
    const auto& m = batch.masks[b];
    const int64_t k = m.size(0), h = m.size(1), w = m.size(2);
    TORCH_CHECK(h <= S && w <= S && (cached || (batch.images[b].size(1) == h && batch.images[b].size(2) == w)),
                "interactive_step: image and masks of sample ", b, " disagree or exceed ", S);
    gts.push_back(torch::constant_pad_nd(up(m).to(torch::kBool).to(torch::kUInt8), {0, S - w, 0, S - h}).to(torch::kBool));
    auto v = torch::zeros({S, S}, bopts);
    v.narrow(0, 0, h).narrow(1, 0, w).fill_(true);
    valids.push_back(v.unsqueeze(0).expand({k, S, S}));
    for (int64_t i = 0; i < k; ++i) img_of.push_back(b);
    draw_for_image(draws, k, o.seed, o.step, batch.keys[b], o.prompt);
  }
  auto gt = torch::cat(gts, 0);        // [N, S, S] bool
  auto valid = torch::cat(valids, 0);  // [N, S, S] bool
  const int64_t N = gt.size(0);
  std::vector<int64_t> hw;
  for (int64_t i = 0; i < N; ++i) {
    hw.push_back(batch.masks[img_of[i]].size(1));
    hw.push_back(batch.masks[img_of[i]].size(2));
  }
  auto valid_hw = up(torch::tensor(hw).view({N, 2}));

  // The round schedule is shared by every mask of the step (and every rank).
  std::mt19937_64 step_rng(mix(o.seed ^ mix(0x5eedULL + static_cast<uint64_t>(o.step))));
  const auto kinds = round_schedule(o.prompt, step_rng);

  // Encoder once; its output is detached so each round's graph can be freed right after its
  // backward pass, the gradient reaching the encoder once at the end.
  // With autocast, only the model's forward passes run in bf16: the losses, the fed-back logits
  // and the click sampling see fp32.
  const auto amp = [&] { return AutocastGuard(device.type(), o.autocast_bf16); };
  torch::Tensor emb;
  if (cached) {
    // The stored embeddings: what the encoder (frozen, in evaluation mode) gave for these images.
    std::vector<torch::Tensor> es;
    for (const auto& e : batch.embeddings) es.push_back(up(e).to(torch::kFloat));
    emb = torch::stack(es);
    const int64_t G = model->config.grid_size();
    TORCH_CHECK(emb.size(1) == model->config.prompt_dim && emb.size(2) == G && emb.size(3) == G,
                "interactive_step: embeddings of shape ", emb.sizes(), " for a model whose encoder gives [",
                model->config.prompt_dim, ", ", G, ", ", G, "]");
  } else {
    auto guard = amp();
    // Dense NCHW (the neck's convolutions may leave another layout), as stored embeddings are:
    // the decoder then sums in the same order whichever way the embedding came.
    emb = model->image_encoder->forward(preprocess_batch(model, batch.images, device)).contiguous();
  }
  // A frozen encoder (train.freeze) records no graph: the rounds then need no gradient of the
  // embedding either.
  const bool encoder_trains = emb.requires_grad();
  auto emb_leaf = encoder_trains ? emb.detach().requires_grad_(true) : emb;
  torch::Tensor dense_pe;
  {
    auto guard = amp();
    dense_pe = model->prompt_encoder->get_dense_pe();
  }
  const double norm = (o.global_masks > 0 ? o.global_masks : static_cast<double>(N)) * kinds.size();
  const int64_t lr = model->config.low_res_size();

  auto acc_loss = torch::zeros({}, torch::TensorOptions().device(device).dtype(torch::kDouble));
  auto acc_focal = acc_loss.clone(), acc_dice = acc_loss.clone(), acc_iou = acc_loss.clone();
  std::vector<torch::Tensor> acc_round_iou(kinds.size());

  auto img_of_t = up(torch::tensor(img_of));
  auto is_box_t = torch::tensor(std::vector<int64_t>(draws.is_box.begin(), draws.is_box.end()));
  auto u0 = up(torch::tensor(draws.u0));
  auto noise = up(torch::tensor(draws.noise).view({N, 4}));
  for (int group = 0; group < 2; ++group) {
    const bool box_group = group == 1;
    auto sel = torch::nonzero(is_box_t.eq(box_group ? 1 : 0)).view(-1);
    const int64_t n = sel.size(0);
    if (n == 0) continue;
    auto sel_d = up(sel);
    auto g_gt = gt.index_select(0, sel_d);
    auto g_valid = valid.index_select(0, sel_d);
    auto g_img = img_of_t.index_select(0, sel_d);
    auto g_target = g_gt.to(torch::kFloat);
    torch::Tensor target_low;
    if (!o.loss_full_resolution)
      target_low = F::interpolate(g_target.unsqueeze(1), F::InterpolateFuncOptions().size(std::vector<int64_t>{lr, lr}).mode(torch::kArea)).squeeze(1);
    torch::Tensor coords, labels, boxes, mask_in, pred;
    for (size_t r = 0; r < kinds.size(); ++r) {
      const auto kind = kinds[r];
      if (kind == RoundKind::kInitial) {
        if (box_group) {
          boxes = noisy_boxes(g_gt, noise.index_select(0, sel_d), valid_hw.index_select(0, sel_d), o.prompt);
        } else {
          coords = sample_uniform_pixels(g_gt & g_valid, u0.index_select(0, sel_d)).to(torch::kFloat).unsqueeze(1);
          labels = torch::ones({n, 1}, torch::TensorOptions().device(device).dtype(torch::kLong));
        }
      } else if (kind == RoundKind::kPoint) {
        auto u = up(torch::tensor(draws.u[r]).index_select(0, sel));
        auto [xy, lab] = error_clicks(g_gt, pred, g_valid, u);
        coords = coords.defined() ? torch::cat({coords, xy.unsqueeze(1)}, 1) : xy.unsqueeze(1);
        labels = labels.defined() ? torch::cat({labels, lab.unsqueeze(1)}, 1) : lab.unsqueeze(1);
      }
      const bool multimask = kind == RoundKind::kInitial && (!box_group || o.prompt.box_multimask);
      DecoderOutput dec;
      {
        auto guard = amp();
        auto pe = model->prompt_encoder->forward(coords, labels, boxes, mask_in);
        auto e = B == 1 ? emb_leaf : emb_leaf.index_select(0, g_img);
        dec = model->mask_decoder->forward(e, dense_pe, pe.sparse, pe.dense, multimask);
      }
      auto low = dec.masks.to(torch::kFloat);
      dec.iou = dec.iou.to(torch::kFloat);
      torch::Tensor full;
      if (o.loss_full_resolution) {
        full = F::interpolate(low, F::InterpolateFuncOptions().size(std::vector<int64_t>{S, S}).mode(torch::kBilinear).align_corners(false));
      }
      auto rl = round_loss(o.loss_full_resolution ? full : low, o.loss_full_resolution ? g_target : target_low, dec.iou, o.loss);
      (rl.total / norm).backward();
      acc_loss += rl.total.detach().to(torch::kDouble) / norm;
      acc_focal += rl.focal.to(torch::kDouble);
      acc_dice += rl.dice.to(torch::kDouble);
      acc_iou += rl.iou_mse.to(torch::kDouble);

      // The candidate with the highest predicted IoU is fed back and used to place clicks.
      torch::NoGradGuard ng;
      auto best = dec.iou.detach().argmax(1);
      auto pick = best.view({n, 1, 1, 1}).expand({n, 1, low.size(2), low.size(3)});
      mask_in = low.detach().gather(1, pick);  // [n, 1, lr, lr], unthresholded
      torch::Tensor best_full = o.loss_full_resolution
                                    ? full.detach().gather(1, best.view({n, 1, 1, 1}).expand({n, 1, S, S})).squeeze(1)
                                    : F::interpolate(mask_in, F::InterpolateFuncOptions().size(std::vector<int64_t>{S, S}).mode(torch::kBilinear).align_corners(false)).squeeze(1);
      pred = (best_full > 0) & g_valid;
      auto inter = (pred & g_gt).flatten(1).sum(1).to(torch::kDouble);
      auto uni = (pred | g_gt).flatten(1).sum(1).to(torch::kDouble).clamp_min(1);
      auto iou_sum = (inter / uni).sum();
      acc_round_iou[r] = acc_round_iou[r].defined() ? acc_round_iou[r] + iou_sum : iou_sum;
    }
  }
  if (o.before_encoder_backward) o.before_encoder_backward();
  if (encoder_trains && emb_leaf.grad().defined()) emb.backward(emb_leaf.grad());

  StepSums out;
  out.masks = N;
  out.rounds = static_cast<int64_t>(kinds.size());
  std::vector<torch::Tensor> parts{acc_loss, acc_focal, acc_dice, acc_iou};
  for (auto& t : acc_round_iou) parts.push_back(t.defined() ? t : torch::zeros_like(acc_loss));
  out.sums = torch::stack(parts);
  return out;
}

StepStats resolve(const StepSums& s) {
  auto v = s.sums.to(torch::kCPU).contiguous();
  const double* p = v.data_ptr<double>();
  StepStats st;
  st.masks = s.masks;
  st.rounds = s.rounds;
  st.loss = p[0];
  st.focal = p[1];
  st.dice = p[2];
  st.iou_mse = p[3];
  st.iou_per_round.assign(p + 4, p + 4 + s.rounds);
  st.finite = std::isfinite(st.loss);
  return st;
}

StepStats interactive_step(Sam& model, const StepBatch& batch, const StepOptions& o, const torch::Device& device) {
  return resolve(interactive_step_async(model, batch, o, device));
}

}  // namespace sam::train
