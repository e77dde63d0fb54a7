// sam_bench: inference speed and memory of the model on this machine: image embedding time and
// per-prompt latency (prompt encoder + decoder + upscaling to the original size).
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <iostream>
#include <map>

#include <nlohmann/json.hpp>

#include "sam/decoder_kernels.h"
#include "sam/predictor.h"
#include "sam/sam_model.h"
#include "tools/tool_common.h"

namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Peak resident memory of this process in MiB (VmHWM).
double peak_rss_mib() {
  std::ifstream in("/proc/self/status");
  std::string key;
  while (in >> key) {
    if (key == "VmHWM:") {
      double kb;
      in >> kb;
      return kb / 1024.0;
    }
    in.ignore(1 << 20, '\n');
  }
  return 0;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Benchmark SAM inference: embedding time, per-prompt latency, peak memory"};
  std::string model_name = "vit_b", checkpoint, json_out;
  int threads = 0, embeds = 1, prompts = 20, orig_h = 1500, orig_w = 2250, breakdown = 0;
  app.add_option("--model", model_name, "vit_b, vit_l, vit_h or an architecture file");
  app.add_option("--checkpoint", checkpoint, "weights (random initialisation when omitted)");
  app.add_option("--threads", threads, "CPU threads (0 = all cores)");
  app.add_option("--embeds", embeds, "image embeddings to time");
  app.add_option("--prompts", prompts, "point prompts to time");
  app.add_option("--orig-h", orig_h, "original image height (post-processing target)");
  app.add_option("--orig-w", orig_w, "original image width");
  app.add_option("--json", json_out, "also write the figures here");
  bool unfused = false;
  app.add_flag("--unfused-decoder", unfused,
               "the decoder's tensor-op formulation instead of its fused inference kernels");
  app.add_option("--breakdown", breakdown,
                 "then time this many more prompts stage by stage (prompt encoder, decoder "
                 "transformer, upscaling and mask products, post-processing, threshold)");
  CLI11_PARSE(app, argc, argv);
  return sam::tools::run_main("sam_bench", [&]() {
    sam::tools::set_threads(threads);
    sam::set_decoder_kernels_enabled(!unfused);
    torch::manual_seed(0);
    auto config = sam::model_config_resolve(model_name);
    sam::Sam model(config);
    if (!checkpoint.empty()) sam::load_checkpoint(model, checkpoint);
    sam::Predictor predictor(model);
    const double rss_model = peak_rss_mib();

    // A deterministic image of the original size.
    auto image = torch::randint(0, 256, {orig_h, orig_w, 3}, torch::kUInt8);
    std::vector<double> embed_s;
    for (int i = 0; i < embeds; ++i) {
      const double t0 = now_s();
      predictor.set_image(image);
      embed_s.push_back(now_s() - t0);
      std::cout << "embed " << i + 1 << "/" << embeds << ": " << embed_s.back() << " s\n" << std::flush;
    }
    std::vector<double> prompt_ms;
    for (int i = 0; i < prompts + 2; ++i) {
      const float x = static_cast<float>((37 * i) % orig_w), y = static_cast<float>((53 * i) % orig_h);
      const double t0 = now_s();
      auto p = predictor.predict(torch::tensor({{x, y}}), torch::tensor({int64_t{1}}), {}, {});
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
          const double t1 = now_s();
          t.emplace_back(name, (t1 - t0) * 1e3);
          t0 = t1;
        };
        auto coords = predictor.transform_coords(torch::tensor({{{x, y}}}));
        auto pr = model->prompt_encoder->forward(coords, torch::tensor({{int64_t{1}}}), {}, {});
        lap("prompt_encoder");
        auto [hs, keys] = dec.transformer->forward(emb, pe, dec.tokens(pr.sparse), &cache);
        lap("transformer");
        auto up = dec.upscale(keys, G, G);
        lap("upscale");
        auto all = dec.heads(hs, up);  // multimask: masks 1..M-1, as MaskDecoderImpl::forward
        auto masks = all.masks.narrow(1, 1, dec.num_mask_tokens - 1);
        lap("masks_and_iou");
        auto logits = model->postprocess_masks(masks, predictor.input_size(), predictor.original_size());
        lap("postprocess");
        auto bin = logits > 0.0;
        lap("threshold");
        if (i >= 2)
          for (const auto& [name, ms] : t) stage_ms[name].push_back(ms);
      }
    }
    nlohmann::json r;
    r["model"] = model_name;
    r["threads"] = torch::get_num_threads();
    r["decoder_kernels"] = unfused ? "tensor ops" : "fused";
    r["img_size"] = config.img_size;
    r["original_size"] = {orig_h, orig_w};
    r["embed_s"] = embed_s;
    r["embed_s_median"] = median(embed_s);
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
    r["peak_rss_mib"] = peak_rss_mib();
    std::cout << r.dump(2) << "\n";
    if (!json_out.empty()) std::ofstream(json_out) << r.dump(2) << "\n";
    return 0;
  });
}
