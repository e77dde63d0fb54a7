// sam_amg: the automatic mask generator (the reference's scripts/amg.py) over an image or a folder
// of images; one SA-1B JSON per image, PNG masks with metadata.csv on request.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>

#include <nlohmann/json.hpp>

#include "data/image.h"
#include "data/log.h"
#include "data/progress.h"
#include "sam/amg/amg_cli.h"
#include "sam/amg/amg_io.h"
#include "sam/amg/generator.h"
#include "tools/tool_common.h"

namespace fs = std::filesystem;

int main(int argc, char** argv) {
  CLI::App app{"Generate masks for every object in an image with SAM's grid of point prompts"};
  sam::tools::add_log_level_option(app);
  std::string model_name, checkpoint, input, output, device = "cpu", timings_path;
  bool png = false;
  int threads = 0;
  sam::amg::AmgOptions opts;
  app.add_option("--model", model_name, "vit_b, vit_l, vit_h or an architecture .json/.yaml")
      ->required();
  app.add_option("--checkpoint", checkpoint, "weights (.pth, torch.save format)")->required();
  app.add_option("--input", input, "an image, or a folder of images (not recursive)")->required();
  app.add_option("--output", output, "output folder: <stem>.json per image (SA-1B format)")
      ->required();
  sam::amg::add_amg_flags(app, opts);
  app.add_flag("--png", png, "also write <stem>/<i>.png masks and metadata.csv");
  app.add_option("--timings", timings_path, "write per-image timings (seconds) as JSON");
  app.add_option("--threads", threads, "CPU threads (0 = all cores)");
  app.add_option("--device", device, "cpu or cuda");
  CLI11_PARSE(app, argc, argv);

  return sam::tools::run_main("sam_amg", [&]() {
    sam::tools::set_threads(threads);
    const torch::Device dev = sam::tools::parse_device(device);
    opts.validate();
    std::vector<fs::path> targets;
    if (fs::is_directory(input)) {
      for (const auto& e : fs::directory_iterator(input))
        if (!e.is_directory()) targets.push_back(e.path());
      std::sort(targets.begin(), targets.end());
    } else {
      if (!fs::exists(input)) throw std::runtime_error("--input " + input + ": no such file");
      targets.push_back(input);
    }
    sam::Sam model(sam::model_config_resolve(model_name));
    sam::load_checkpoint(model, checkpoint);
    sam::amg::MaskGenerator generator(model, opts, dev);
    fs::create_directories(output);

    nlohmann::json timings = nlohmann::json::array();
    int processed = 0, skipped = 0;
    sam::data::Progress progress(static_cast<int64_t>(targets.size()));
    for (size_t i = 0; i < targets.size(); ++i) {
      const fs::path& t = targets[i];
      cv::Mat rgb;
      try {
        rgb = sam::data::image_read_rgb(t.string());
      } catch (const std::exception& e) {
        sam::log::warn(std::string("sam_amg: skipping ") + e.what());
        ++skipped;
        continue;
      }
      auto image = torch::from_blob(rgb.data, {rgb.rows, rgb.cols, 3}, torch::kUInt8);
      const auto masks = generator.generate(image);
      const auto tm = generator.last_timings();
      const std::string stem = t.stem().string();
      const auto doc = sam::amg::amg_to_sa1b(masks, sam::amg::sa1b_image_id(stem, int64_t(i) + 1),
                                             rgb.cols, rgb.rows, t.filename().string());
      const fs::path json_path = fs::path(output) / (stem + ".json");
      std::ofstream(json_path) << doc.dump() << "\n";
      if (png) sam::amg::write_amg_png_folder((fs::path(output) / stem).string(), masks);
      auto tj = sam::amg::amg_timings_to_json(tm);
      tj["file"] = t.string();
      timings.push_back(tj);
      progress.set_done(static_cast<int64_t>(i) + 1);
      std::printf("%zu/%zu %s: %zu masks | encoder %.3f s | decoder %.3f s | post %.3f s | total %.3f s | %s\n",
                  i + 1, targets.size(), t.filename().string().c_str(), masks.size(), tm.encoder_s,
                  tm.decoder_s, tm.postprocess_s(), tm.total_s, progress.eta_text().c_str());
      ++processed;
    }
    if (!timings_path.empty()) std::ofstream(timings_path) << timings.dump(2) << "\n";
    std::printf("%d image(s) processed, %d skipped; output in %s\n", processed, skipped,
                output.c_str());
    if (processed == 0) throw std::runtime_error("no image could be processed from " + input);
    return 0;
  });
}
