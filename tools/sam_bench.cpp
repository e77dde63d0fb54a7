// sam_bench: speed and memory of the model on this machine (CPU or a GPU): image embedding time and
// per-prompt latency (prompt encoder + decoder + upscaling to the original size); with --device
// cuda also the encoder's throughput at a batch size (--encoder-batch), the decoder on a batch of
// prompts (--prompt-batch), and the training step at the paper's load (--train-step), each with
// model FLOPs utilisation against the GEMM rate measured in the same run (--gemm).
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <iostream>
#include <map>

#include <nlohmann/json.hpp>

#include "data/bench.h"
#include "sam/amp.h"
#include "sam/decoder_kernels.h"
#include "sam/device.h"
#include "sam/flops.h"
#include "sam/predictor.h"
#include "sam/sam_model.h"
#include "tools/tool_common.h"
#include "train/interactive.h"
#include "train/optim.h"

namespace {

using sam::tools::median;

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// One image (random pixels) with `masks` rectangles of varied sizes, at the model's input size.
sam::train::StepBatch synthetic_batch(int64_t S, int64_t masks) {
  sam::train::StepBatch b;
  auto img = torch::randint(0, 256, {3, S, S}, torch::kUInt8);
  auto m = torch::zeros({masks, S, S}, torch::kUInt8);
  for (int64_t k = 0; k < masks; ++k) {
    const int64_t h = S / 16 + (k * 37) % (S / 2), w = S / 16 + (k * 53) % (S / 2);
    const int64_t y = (k * 97) % (S - h), x = (k * 131) % (S - w);
    m[k].narrow(0, y, h).narrow(1, x, w).fill_(1);
  }
  b.images.push_back(img);
  b.masks.push_back(m);
  b.keys.push_back(0);
  return b;
}

// The training step: one image, `masks` masks, `rounds` prompt rounds (2 of them without a new
// click, as the paper), the optimiser's update included; a warm-up step, then `steps` timed.
nlohmann::json bench_train_step(const sam::ModelConfig& config, const torch::Device& device, bool bf16,
                                bool checkpointing, int64_t masks, int rounds, int steps, double gemm_tflops) {
  namespace st = sam::train;
  torch::manual_seed(0);
  sam::Sam model(config);
  model->to(device);
  model->train();
  model->image_encoder->set_activation_checkpointing(checkpointing);
  st::OptimOptions oo;
  st::AdamW opt(st::make_param_groups(*model, config.depth, oo), oo);
  auto batch = synthetic_batch(config.img_size, masks);
  st::StepOptions so;
  so.prompt.rounds = rounds;
  so.prompt.mask_only_rounds = rounds >= 3 ? 2 : 0;
  so.autocast_bf16 = bf16;
  auto skip = torch::zeros({}, torch::TensorOptions().device(device));
  std::vector<double> secs;
  for (int s = 0; s < steps + 1; ++s) {
    if (s == 1) {
      sam::device_synchronize(device);
      sam::device_reset_peak(device);
    }
    const double t0 = now_s();
    opt.zero_grad();
    so.step = s;
    st::interactive_step_async(model, batch, so, device);
    opt.step(1e-5, skip);
    sam::device_synchronize(device);
    if (s > 0) secs.push_back(now_s() - t0);
    std::cout << "train step " << s << (s == 0 ? " (warm-up)" : "") << ": " << now_s() - t0 << " s\n" << std::flush;
  }
  const double t = median(secs), flops = sam::train_step_flops(config, masks, rounds);
  nlohmann::json r = {{"masks", masks}, {"rounds", rounds}, {"activation_checkpointing", checkpointing},
                      {"dtype", bf16 ? "bf16" : "fp32"}, {"fused_adamw", opt.fused()}, {"sec_per_step", secs},
                      {"sec_per_step_median", t}, {"images_per_s", 1.0 / t}, {"model_tflop_per_step", flops / 1e12},
                      {"tflops", flops / t / 1e12}, {"peak_mib", sam::device_peak_mib(device)}};
  if (gemm_tflops > 0) r["mfu"] = flops / t / 1e12 / gemm_tflops;
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Benchmark SAM inference: embedding time, per-prompt latency, peak memory"};
  sam::tools::add_log_level_option(app);
  std::string model_name = "vit_b", checkpoint, json_out;
  int threads = 0, embeds = 1, embed_warmup = 0, prompts = 20, orig_h = 1500, orig_w = 2250, breakdown = 0;
  app.add_option("--model", model_name, "vit_b, vit_l, vit_h or an architecture file");
  app.add_option("--checkpoint", checkpoint, "weights (random initialisation when omitted)");
  app.add_option("--threads", threads, "CPU threads (0 = all cores)");
  app.add_option("--embeds", embeds, "image embeddings to time");
  app.add_option("--embed-warmup", embed_warmup,
                 "untimed embeddings first (the process's first one also faults its activations in)");
  app.add_option("--prompts", prompts, "point prompts to time");
  app.add_option("--orig-h", orig_h, "original image height (post-processing target)");
  app.add_option("--orig-w", orig_w, "original image width");
  app.add_option("--json", json_out, "also write the figures here");
  std::string device_name = "cpu", dtype = "fp32", ckpt = "both";
  int encoder_batch = 0, prompt_batch = 0, train_steps = 3, train_masks = 64, train_rounds = 11;
  bool gemm = false, train_step = false, skip_default = false;
  app.add_option("--device", device_name, "cpu or cuda[:i]");
  app.add_option("--dtype", dtype, "fp32 or bf16 (autocast) for the timed work")->check(CLI::IsMember({"fp32", "bf16"}));
  app.add_flag("--gemm", gemm, "measure the dense GEMM rate first (bf16 8192^3 on a GPU, fp32 2048^3 on the CPU): the MFU divisor");
  app.add_option("--encoder-batch", encoder_batch, "time the image encoder alone at this batch size (images/s, MFU)");
  app.add_option("--prompt-batch", prompt_batch, "time the decoder on this many point prompts at once on one embedding");
  app.add_flag("--train-step", train_step, "time the training step at the paper's load");
  app.add_option("--train-masks", train_masks, "masks per image in --train-step");
  app.add_option("--train-rounds", train_rounds, "prompt rounds in --train-step");
  app.add_option("--train-steps", train_steps, "timed steps of --train-step (after one warm-up)");
  app.add_option("--checkpointing", ckpt, "activation checkpointing in --train-step: on, off or both")
      ->check(CLI::IsMember({"on", "off", "both"}));
  app.add_flag("--only-extra", skip_default, "skip the default embedding and single-prompt timings");
  bool unfused = false;
  app.add_flag("--unfused-decoder", unfused,
               "the decoder's tensor-op formulation instead of its fused inference kernels");
  app.add_option("--breakdown", breakdown,
                 "then time this many more prompts stage by stage (prompt encoder, decoder "
                 "transformer, upscaling with the mask products, post-processing with the threshold)");
  CLI11_PARSE(app, argc, argv);
  return sam::tools::run_main("sam_bench", [&]() {
    sam::tools::set_threads(threads);
    sam::set_decoder_kernels_enabled(!unfused);
    const torch::Device device = sam::tools::parse_device(device_name);
    const bool bf16 = dtype == "bf16";
    const auto sync = [&] { sam::device_synchronize(device); };
    nlohmann::json r;
    r["model"] = model_name;
    r["device"] = sam::device_description(device);
    r["torch"] = TORCH_VERSION;
    r["dtype"] = dtype;
    // The CPU's GEMM kernels (tools/process_env.h): OpenBLAS's core, "" with another BLAS.
    const char* blas_core = sam::tools::openblas_core_name();
    r["blas_core"] = blas_core != nullptr ? blas_core : "";
    double gemm_tflops = 0;
    const auto measure_gemm = [&] {
      return device.is_cuda() ? sam::measure_gemm_tflops(device, torch::kBFloat16, 8192, 20)
                              : sam::measure_gemm_tflops(device, torch::kFloat, 2048, 3);
    };
    if (gemm) {
      gemm_tflops = measure_gemm();
      r["gemm_tflops"] = gemm_tflops;
      r["gemm"] = device.is_cuda() ? "bf16 8192^3" : "fp32 2048^3";
      std::cout << "GEMM: " << gemm_tflops << " TFLOP/s"
                << (blas_core != nullptr ? std::string(" (OpenBLAS ") + blas_core + ")" : std::string()) << "\n"
                << std::flush;
    }
    torch::manual_seed(0);
    auto config = sam::model_config_resolve(model_name);
    sam::Sam model(config);
    if (!checkpoint.empty()) sam::load_checkpoint(model, checkpoint);
    sam::Predictor predictor(model, device);
    const double rss_model = sam::data::peak_rss_mib();
    // The timed inference runs under autocast with --dtype bf16.
    sam::AutocastGuard autocast(device.type(), bf16);
    if (encoder_batch > 0) {
      torch::NoGradGuard ng;
      auto x = torch::randn({encoder_batch, 3, config.img_size, config.img_size}, torch::TensorOptions().device(device));
      std::vector<double> secs;
      for (int i = 0; i < std::max(embeds, 1) + 1; ++i) {
        sync();
        const double t0 = now_s();
        auto e = model->image_encoder->forward(x);
        sync();
        if (i > 0) secs.push_back(now_s() - t0);
      }
      const double t = median(secs), flops = sam::encoder_forward_flops(config) * encoder_batch;
      auto& j = r["encoder_batch"];
      j = {{"batch", encoder_batch}, {"sec_per_batch", secs}, {"images_per_s", encoder_batch / t},
           {"tflops", flops / t / 1e12}, {"peak_mib", sam::device_peak_mib(device)}};
      if (gemm_tflops > 0) j["mfu"] = flops / t / 1e12 / gemm_tflops;
      std::cout << "encoder batch " << encoder_batch << ": " << encoder_batch / t << " images/s\n" << std::flush;
    }
    if (prompt_batch > 0) {
      auto image = torch::randint(0, 256, {orig_h, orig_w, 3}, torch::kUInt8);
      predictor.set_image(image);
      auto pts = torch::stack({torch::randint(0, orig_w, {prompt_batch, 1}), torch::randint(0, orig_h, {prompt_batch, 1})}, 2)
                     .to(torch::kFloat);
      auto labels = torch::ones({prompt_batch, 1}, torch::kLong);
      std::vector<double> ms;
      for (int i = 0; i < prompts + 2; ++i) {
        sync();
        const double t0 = now_s();
        auto p = predictor.predict_batch(pts, labels, {}, {});
        sync();
        if (i >= 2) ms.push_back((now_s() - t0) * 1e3);
      }
      r["prompt_batch"] = {{"prompts", prompt_batch}, {"ms_per_batch_median", median(ms)},
                           {"ms_per_prompt", median(ms) / prompt_batch}, {"original_size", {orig_h, orig_w}}};
      std::cout << "prompt batch " << prompt_batch << ": " << median(ms) << " ms\n" << std::flush;
    }
    if (train_step) {
      for (bool on : {false, true}) {
        if ((on && ckpt == "off") || (!on && ckpt == "on")) continue;
        r[on ? "train_step_checkpointing" : "train_step"] =
            bench_train_step(config, device, bf16, on, train_masks, train_rounds, train_steps, gemm_tflops);
      }
    }
    const auto report = [&] {
      std::cout << r.dump(2) << "\n";
      if (!json_out.empty()) std::ofstream(json_out) << r.dump(2) << "\n";
      return 0;
    };
    if (skip_default) return report();

    // A deterministic image of the original size.
    auto image = torch::randint(0, 256, {orig_h, orig_w, 3}, torch::kUInt8);
    for (int i = 0; i < embed_warmup; ++i) predictor.set_image(image);
    // With --gemm the GEMM rate is measured again right before each timed embedding (0.3 s), so
    // that each embedding is compared with the floor of its own minute (a shared machine's speed
    // drifts by 10-20 % within minutes).
    std::vector<double> embed_s, embed_floor_ratio;
    for (int i = 0; i < embeds; ++i) {
      const double floor_s = gemm_tflops > 0 ? sam::encoder_forward_flops(config) / 1e12 / measure_gemm() : 0;
      sync();
      const double t0 = now_s();
      predictor.set_image(image);
      sync();
      embed_s.push_back(now_s() - t0);
      if (floor_s > 0) embed_floor_ratio.push_back(embed_s.back() / floor_s);
      std::cout << "embed " << i + 1 << "/" << embeds << ": " << embed_s.back() << " s\n" << std::flush;
    }
    // A prompt returns what the reference's predict() returns by default: the thresholded masks
    // at the original size, the predicted IoUs and the low-res logits (no full-size logits).
    sam::PredictOptions popts;
    popts.logits = false;
    std::vector<double> prompt_ms;
    for (int i = 0; i < prompts + 2; ++i) {
      const float x = static_cast<float>((37 * i) % orig_w), y = static_cast<float>((53 * i) % orig_h);
      const double t0 = now_s();
      auto p = predictor.predict(torch::tensor({{x, y}}), torch::tensor({int64_t{1}}), {}, {}, popts);
      sync();
      if (i >= 2) prompt_ms.push_back((now_s() - t0) * 1e3);  // two warm-up calls
    }
    // Stage by stage, as Predictor::predict runs them (multimask, the per-image decoder cache).
    std::map<std::string, std::vector<double>> stage_ms;
    {
      torch::NoGradGuard ng;
      auto& dec = *model->mask_decoder;
      const auto pe = model->prompt_encoder->get_dense_pe();
      const auto& cache = predictor.decoder_cache();
      const auto emb = predictor.embedding();
      const int64_t G = emb.size(2);
      for (int i = 0; breakdown > 0 && i < breakdown + 2; ++i) {
        const float x = static_cast<float>((37 * i) % orig_w), y = static_cast<float>((53 * i) % orig_h);
        std::vector<std::pair<std::string, double>> t;
        double t0 = now_s();
        auto lap = [&](const char* name) {
          sync();
          const double t1 = now_s();
          t.emplace_back(name, (t1 - t0) * 1e3);
          t0 = t1;
        };
        auto coords = predictor.transform_coords(torch::tensor({{{x, y}}}));
        auto pr = model->prompt_encoder->forward(coords, torch::tensor({{int64_t{1}}}), {}, {});
        lap("prompt_encoder");
        auto [hs, keys] = dec.transformer->forward(emb, pe, dec.tokens(pr.sparse), &cache);
        lap("transformer");
        auto all = dec.heads(hs, keys, G, G);  // multimask: masks 1..M-1, as MaskDecoderImpl::forward
        auto masks = all.masks.narrow(1, 1, dec.num_mask_tokens - 1);
        lap("upscale_masks_and_iou");
        torch::Tensor bin;
        model->postprocess_masks(masks, predictor.input_size(), predictor.original_size(), &bin, false);
        lap("postprocess_and_threshold");
        if (i >= 2)
          for (const auto& [name, ms] : t) stage_ms[name].push_back(ms);
      }
    }
    r["threads"] = torch::get_num_threads();
    r["decoder_kernels"] = unfused ? "tensor ops" : "fused";
    r["img_size"] = config.img_size;
    r["original_size"] = {orig_h, orig_w};
    r["embed_s"] = embed_s;
    r["embed_warmup"] = embed_warmup;
    r["embed_s_median"] = median(embed_s);
    // The embedding's floor: its arithmetic at the dense GEMM rate of this run.
    r["embed_tflop"] = sam::encoder_forward_flops(config) / 1e12;
    if (gemm_tflops > 0) r["embed_gemm_floor_s"] = sam::encoder_forward_flops(config) / 1e12 / gemm_tflops;
    if (!embed_floor_ratio.empty()) {
      r["embed_floor_ratio"] = embed_floor_ratio;  // each embedding / the floor measured just before
      r["embed_floor_ratio_median"] = median(embed_floor_ratio);
    }
    r["prompt_outputs"] = "masks (bool, original size), iou, low-res logits";
    r["prompt_ms_median"] = median(prompt_ms);
    r["prompt_ms_min"] = prompt_ms.empty() ? 0 : *std::min_element(prompt_ms.begin(), prompt_ms.end());
    if (breakdown > 0) {
      auto& b = r["prompt_stage_ms_median"];
      double total = 0;
      for (const auto& [name, v] : stage_ms) {
        b[name] = median(v);
        total += median(v);
      }
      b["sum"] = total;
    }
    r["peak_rss_mib_model"] = rss_model;
    r["peak_rss_mib"] = sam::data::peak_rss_mib();
    return report();
  });
}
