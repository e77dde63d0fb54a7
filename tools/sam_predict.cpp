// sam_predict: embed an image (or load its embedding) and answer one prompt with masks, logits
// and IoU predictions, written to an output folder.
#include <CLI/CLI.hpp>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "data/image.h"
#include "data/codec.h"
#include "data/npy.h"
#include "sam/predictor.h"
#include "tools/tool_common.h"

namespace {

std::vector<double> parse_numbers(const std::string& s, size_t n, const std::string& flag) {
  std::vector<double> v;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    try {
      size_t used = 0;
      v.push_back(std::stod(item, &used));
      if (used != item.size()) throw std::invalid_argument(item);
    } catch (const std::exception&) {
      throw std::invalid_argument(flag + " " + s + ": '" + item + "' is not a number");
    }
  }
  if (v.size() != n)
    throw std::invalid_argument(flag + " " + s + ": expected " + std::to_string(n) + " comma-separated values");
  return v;
}

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Segment an object with SAM from point, box and mask prompts"};
  sam::tools::add_log_level_option(app);
  std::string model_name, checkpoint, image_path, mask_input, emb_in, emb_out, out_dir, device = "cpu";
  std::vector<std::string> points;
  std::string box;
  bool multimask = false;
  int threads = 0;
  app.add_option("--model", model_name, "vit_b, vit_l, vit_h or an architecture .json/.yaml")->required();
  app.add_option("--checkpoint", checkpoint, "weights (.pth, torch.save format)")->required();
  app.add_option("--image", image_path, "input image")->required();
  app.add_option("--point", points, "x,y,label in original-image pixels (label 1 fg, 0 bg); repeatable");
  app.add_option("--box", box, "x0,y0,x1,y1 in original-image pixels");
  app.add_option("--mask-input", mask_input, "low-res logits [1, S/4, S/4] as .npy");
  app.add_flag("--multimask", multimask, "return 3 masks instead of 1");
  app.add_option("--embedding-in", emb_in, "use this image embedding (.npy) instead of the encoder");
  app.add_option("--embedding-out", emb_out, "write the image embedding (.npy)");
  app.add_option("--threads", threads, "CPU threads (0 = all cores)");
  app.add_option("--device", device, "cpu or cuda");
  app.add_option("--out", out_dir, "output folder")->required();
  CLI11_PARSE(app, argc, argv);

  return sam::tools::run_main("sam_predict", [&]() {
    sam::tools::set_threads(threads);
    const torch::Device dev = sam::tools::parse_device(device);
    nlohmann::json timings;
    auto t0 = std::chrono::steady_clock::now();
    auto config = sam::model_config_resolve(model_name);
    sam::Sam model(config);
    sam::load_checkpoint(model, checkpoint);
    sam::Predictor predictor(model, dev);
    timings["load_ms"] = ms_since(t0);

    cv::Mat rgb = sam::data::image_read_rgb(image_path);
    const int H = rgb.rows, W = rgb.cols;
    auto image = torch::from_blob(rgb.data, {H, W, 3}, torch::kUInt8);

    // Prompts, validated against the image before any heavy work.
    torch::Tensor pts, labels, bx, mask_in;
    if (!points.empty()) {
      std::vector<float> xy;
      std::vector<int64_t> lab;
      for (const auto& p : points) {
        auto v = parse_numbers(p, 3, "--point");
        if (v[0] < 0 || v[0] > W || v[1] < 0 || v[1] > H)
          throw std::invalid_argument("--point " + p + ": outside the " + std::to_string(W) + "x" +
                                      std::to_string(H) + " image " + image_path);
        const int64_t l = static_cast<int64_t>(v[2]);
        if (v[2] != static_cast<double>(l) || l < -1 || l > 3)
          throw std::invalid_argument("--point " + p + ": label must be 1 (fg), 0 (bg), 2/3 (box corners) or -1 (pad)");
        xy.push_back(static_cast<float>(v[0]));
        xy.push_back(static_cast<float>(v[1]));
        lab.push_back(l);
      }
      pts = torch::tensor(xy).view({-1, 2});
      labels = torch::tensor(lab);
    }
    if (!box.empty()) {
      auto v = parse_numbers(box, 4, "--box");
      if (v[0] < 0 || v[1] < 0 || v[2] > W || v[3] > H || v[0] > v[2] || v[1] > v[3])
        throw std::invalid_argument("--box " + box + ": must satisfy 0 <= x0 <= x1 <= " +
                                    std::to_string(W) + " and 0 <= y0 <= y1 <= " + std::to_string(H) +
                                    " for " + image_path);
      bx = torch::tensor(std::vector<float>(v.begin(), v.end()));
    }
    if (!mask_input.empty()) {
      mask_in = sam::npy::read(mask_input).to(torch::kFloat);
      const int64_t lr = config.low_res_size();
      if (mask_in.dim() == 4 && mask_in.size(0) == 1) mask_in = mask_in.squeeze(0);
      if (mask_in.dim() != 3 || mask_in.size(0) != 1 || mask_in.size(1) != lr || mask_in.size(2) != lr) {
        std::ostringstream msg;
        msg << mask_input << ": mask input must be [1, " << lr << ", " << lr << "] low-res logits, got "
            << mask_in.sizes();
        throw std::invalid_argument(msg.str());
      }
    }
    if (!pts.defined() && !bx.defined() && !mask_in.defined())
      throw std::invalid_argument("give at least one prompt: --point, --box or --mask-input");

    t0 = std::chrono::steady_clock::now();
    if (!emb_in.empty()) {
      auto emb = sam::npy::read(emb_in);
      try {
        predictor.set_embedding(emb, H, W);
      } catch (const c10::Error& e) {
        throw std::invalid_argument(emb_in + ": " + e.what_without_backtrace());
      }
      timings["embedding_source"] = emb_in;
    } else {
      predictor.set_image(image);
    }
    timings["embed_ms"] = ms_since(t0);

    t0 = std::chrono::steady_clock::now();
    sam::PredictOptions opts;
    opts.multimask = multimask;
    auto pred = predictor.predict(pts, labels, bx, mask_in, opts);
    timings["predict_ms"] = ms_since(t0);

    std::filesystem::create_directories(out_dir);
    const std::filesystem::path out(out_dir);
    sam::npy::write((out / "low_res_logits.npy").string(), pred.low_res[0]);
    sam::npy::write((out / "logits.npy").string(), pred.logits[0]);
    auto masks = pred.masks[0].to(torch::kUInt8).mul(255).contiguous();
    for (int64_t i = 0; i < masks.size(0); ++i) {
      auto m = masks[i].contiguous();
      cv::Mat png(H, W, CV_8UC1, m.data_ptr<uint8_t>());
      const auto path = (out / ("mask_" + std::to_string(i) + ".png")).string();
      sam::data::image_write(path, png);
    }
    if (!emb_out.empty()) sam::npy::write(emb_out, predictor.embedding());

    nlohmann::json result;
    result["image"] = image_path;
    result["original_size"] = {H, W};
    result["input_size"] = {predictor.input_size().first, predictor.input_size().second};
    result["iou_predictions"] = std::vector<float>(pred.iou[0].data_ptr<float>(),
                                                   pred.iou[0].data_ptr<float>() + pred.iou.size(1));
    result["num_masks"] = pred.iou.size(1);
    result["low_res_logits_shape"] = pred.low_res[0].sizes().vec();
    result["logits_shape"] = pred.logits[0].sizes().vec();
    auto areas = pred.masks[0].sum({1, 2}).to(torch::kLong).contiguous();
    result["mask_areas"] = std::vector<int64_t>(areas.data_ptr<int64_t>(),
                                                areas.data_ptr<int64_t>() + areas.numel());
    result["timings"] = timings;
    result["device"] = device;
    result["threads"] = torch::get_num_threads();
    std::ofstream(out / "result.json") << result.dump(2) << "\n";
    std::cout << result.dump(2) << "\n";
    return 0;
  });
}
