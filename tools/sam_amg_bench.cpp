// sam_amg_bench: seconds per image of the automatic mask generator, split into encoder, decoder
// and post-processing, over repeated runs on one image (median reported). Without --checkpoint
// the model has random weights (fine for timing the network; masks then mean nothing).
#include <CLI/CLI.hpp>

#include <algorithm>
#include <fstream>

#include <nlohmann/json.hpp>

#include "data/image.h"
#include "sam/amg/amg_cli.h"
#include "sam/amg/amg_io.h"
#include "sam/amg/generator.h"
#include "sam/amp.h"
#include "sam/device.h"
#include "tools/tool_common.h"

using sam::tools::median;

int main(int argc, char** argv) {
  CLI::App app{"Time the automatic mask generator on one image"};
  sam::tools::add_log_level_option(app);
  std::string model_name, checkpoint, image_path, device = "cpu", json_path, dtype = "fp32";
  int threads = 0, repeat = 3, warmup = 1, seed = 0;
  sam::amg::AmgOptions opts;
  app.add_option("--model", model_name, "vit_b, vit_l, vit_h or an architecture .json/.yaml")
      ->required();
  app.add_option("--checkpoint", checkpoint, "weights (.pth); omitted = random weights");
  app.add_option("--seed", seed, "seed of the random weights");
  app.add_option("--image", image_path, "input image")->required();
  sam::amg::add_amg_flags(app, opts);
  app.add_option("--repeat", repeat, "timed runs");
  app.add_option("--warmup", warmup, "untimed runs first");
  app.add_option("--threads", threads, "CPU threads (0 = all cores)");
  app.add_option("--device", device, "cpu or cuda");
  app.add_option("--dtype", dtype, "fp32, or bf16: the networks under autocast")->check(CLI::IsMember({"fp32", "bf16"}));
  app.add_option("--json", json_path, "write every run's timings and the medians as JSON");
  CLI11_PARSE(app, argc, argv);

  return sam::tools::run_main("sam_amg_bench", [&]() {
    sam::tools::set_threads(threads);
    const torch::Device dev = sam::tools::parse_device(device);
    torch::manual_seed(seed);
    sam::Sam model(sam::model_config_resolve(model_name));
    if (!checkpoint.empty()) sam::load_checkpoint(model, checkpoint);
    sam::amg::MaskGenerator generator(model, opts, dev);
    sam::AutocastGuard autocast(dev.type(), dtype == "bf16");
    cv::Mat rgb = sam::data::image_read_rgb(image_path);
    auto image = torch::from_blob(rgb.data, {rgb.rows, rgb.cols, 3}, torch::kUInt8);
    std::printf("%s %dx%d | %s weights | %d threads | options %s\n", model_name.c_str(), rgb.cols,
                rgb.rows, checkpoint.empty() ? "random" : "checkpoint", torch::get_num_threads(),
                sam::amg::amg_options_to_json(opts).dump().c_str());
    for (int i = 0; i < warmup; ++i) generator.generate(image);
    nlohmann::json runs = nlohmann::json::array();
    std::vector<double> enc, dec, post, masks, total, enc_cpu, dec_cpu, post_cpu, total_cpu;
    for (int i = 0; i < repeat; ++i) {
      const auto out = generator.generate(image);
      const auto t = generator.last_timings();
      runs.push_back(sam::amg::amg_timings_to_json(t));
      enc.push_back(t.encoder_s);
      dec.push_back(t.decoder_s);
      post.push_back(t.postprocess_s());
      masks.push_back(t.masks_s);
      total.push_back(t.total_s);
      enc_cpu.push_back(t.encoder_cpu_s);
      dec_cpu.push_back(t.decoder_cpu_s);
      post_cpu.push_back(t.postprocess_cpu_s());
      total_cpu.push_back(t.total_cpu_s);
      std::printf(
          "run %d: %zu masks | encoder %.3f s | decoder %.3f s | post %.3f s (masks %.3f, nms "
          "%.3f, cleanup %.3f) | total %.3f s | candidates %lld -> iou %lld -> stability %lld "
          "-> edge %lld -> nms %lld -> crops %lld\n",
          i, out.size(), t.encoder_s, t.decoder_s, t.postprocess_s(), t.masks_s, t.nms_s,
          t.cleanup_s, t.total_s, static_cast<long long>(t.candidates),
          static_cast<long long>(t.kept_iou), static_cast<long long>(t.kept_stability),
          static_cast<long long>(t.kept_edge), static_cast<long long>(t.kept_box_nms),
          static_cast<long long>(t.kept_crop_nms));
    }
    nlohmann::json med = {
        {"encoder_s", median(enc)},         {"decoder_s", median(dec)},
        {"postprocess_s", median(post)},    {"masks_s", median(masks)},
        {"total_s", median(total)},         {"encoder_cpu_s", median(enc_cpu)},
        {"decoder_cpu_s", median(dec_cpu)}, {"postprocess_cpu_s", median(post_cpu)},
        {"total_cpu_s", median(total_cpu)}};
    std::printf("median of %d: encoder %.3f s | decoder %.3f s | post %.3f s | total %.3f s\n",
                repeat, median(enc), median(dec), median(post), median(total));
    std::printf(
        "median CPU seconds (all threads): encoder %.3f | decoder %.3f | post %.3f | total %.3f\n",
        median(enc_cpu), median(dec_cpu), median(post_cpu), median(total_cpu));
    if (!json_path.empty()) {
      nlohmann::json doc = {{"model", model_name},
                            {"device", sam::device_description(dev)},
                            {"dtype", dtype},
                            {"weights", checkpoint.empty() ? "random" : checkpoint},
                            {"image", image_path},
                            {"width", rgb.cols},
                            {"height", rgb.rows},
                            {"threads", torch::get_num_threads()},
                            {"options", sam::amg::amg_options_to_json(opts)},
                            {"runs", runs},
                            {"median", med}};
      std::ofstream(json_path) << doc.dump(2) << "\n";
    }
    return 0;
  });
}
