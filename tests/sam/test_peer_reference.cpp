// Parity with Meta's reference `segment_anything` (v1.0) run live, for the full-size presets
// vit_b, vit_l and vit_h with random weights: tests/peers/sam_reference.py builds
// sam_model_registry[preset]() with a fixed seed, saves its weights (torch.save of the state dict,
// the official format) and runs SamPredictor on the golden image; this suite loads those weights
// into our model and compares the decoded and resized image, the image embedding and every prompt
// type (one point, positive + negative points, box, box + point, point + mask input, batched
// boxes) by the golden README's rules: values within 1e-4 + 1e-3 x max|reference|, masks differing
// only where the reference logit is within 1e-3 of 0. Each preset is its own test case (its own
// ctest process); both sides run on peer_threads() threads (2, or $SAM_PEER_THREADS).
//
// The weights (ViT-H: 2.5 GB) live in a temporary folder deleted as soon as they are loaded and,
// whatever happens, when the case ends. Each case prints its figures (largest error against its
// tolerance per output, differing mask pixels, seconds and peak memory on both sides).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdio>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <vector>

#include "data/image.h"
#include "parity.h"
#include "peer_reference.h"
#include "peers.h"
#include "sam/predictor.h"
#include "test_util.h"

namespace {

using sam_test::dict_tensor;
using sam_test::TensorDict;

// The figures of one preset, printed at the end of its case.
struct Report {
  std::ostringstream lines;
  double worst_ratio = 0;  // the largest error / tolerance over all values compared
  std::string worst_what;

  void close(const std::string& what, const sam_test::CloseStats& s) {
    const double ratio = s.err / s.tol;
    if (ratio >= worst_ratio) worst_ratio = ratio, worst_what = what;
    lines << "  " << std::left << std::setw(28) << what << " max|err| " << std::scientific
          << std::setprecision(2) << s.err << "  tol " << s.tol << "  err/tol " << ratio << "\n";
  }
  void masks(const std::string& what, const sam_test::MaskStats& s, double set_fraction) {
    lines << "  " << std::left << std::setw(28) << what << " " << s.differing << " of " << s.pixels
          << " pixels differ (" << s.outside << " outside the 1e-3 band); reference set "
          << std::fixed << std::setprecision(3) << set_fraction << "\n";
  }
};

// Every reference mask has set and unset pixels (a comparison of empty or full masks would say
// little): returns the fraction of set pixels over the case.
double check_not_trivial(const torch::Tensor& ref_masks, const std::string& what) {
  auto flat = ref_masks.to(torch::kBool).flatten(0, -3).flatten(1);  // [masks, pixels]
  auto set = flat.sum(1);
  INFO(what << ": set pixels per reference mask " << set);
  CHECK(set.min().item<int64_t>() > 0);
  CHECK(set.max().item<int64_t>() < flat.size(1));
  return flat.to(torch::kFloat).mean().item<double>();
}

void compare_preset(const std::string& preset) {
  SAM_REQUIRE_PEERS(py);
  const auto image_path = sam_test::golden_tiny() / "image.jpg";
  const int threads = sam_test::peer_threads();
  at::set_num_threads(threads);
  sam_test::ScratchDir tmp("peer_" + preset);

  // The reference: weights, image, embedding, every prompt case.
  const auto ref_report = sam_test::run_sam_reference(py, preset, image_path, tmp.path, "--predictor");
  const TensorDict ref = sam_test::load_tensor_dict(tmp.path / "outputs.pt");
  const TensorDict ref_image = sam_test::load_tensor_dict(tmp.path / "image.pt");
  Report report;

  // Our model with the reference's weights, the official state-dict format read by our reader.
  sam_test::Clock load_clock;
  sam::Sam model(sam::model_config_preset(preset));
  sam::load_checkpoint(model, (tmp.path / "sam.pth").string());
  const double load_s = load_clock.wall();
  std::filesystem::remove(tmp.path / "sam.pth");  // 2.5 GB for vit_h: gone as soon as it is read

  // The image: our decoder against PIL's (reported on its own), then the reference's pixels for
  // everything else, so that a decoder difference cannot hide or cause a model difference.
  const auto image = dict_tensor(ref_image, "image");
  {
    cv::Mat rgb = sam::data::image_read_rgb(image_path.string());
    auto ours = torch::from_blob(rgb.data, {rgb.rows, rgb.cols, 3}, torch::kUInt8).clone();
    REQUIRE(ours.sizes() == image.sizes());
    const int64_t decoded_diff = (ours.to(torch::kInt) - image.to(torch::kInt)).abs().max().item<int64_t>();
    INFO("our JPEG decoding against PIL's: largest difference " << decoded_diff << " grey levels");
    CHECK(decoded_diff == 0);
  }
  {
    // The reference resizes with PIL's bilinear filter (golden README): ours must be bit-exact.
    auto ours = sam::resize_longest_side(image, 1024);
    auto theirs = dict_tensor(ref_image, "input_image").permute({2, 0, 1}).unsqueeze(0).to(torch::kFloat);
    REQUIRE(ours.sizes() == theirs.sizes());
    const double resize_diff = (ours - theirs).abs().max().item<double>();
    INFO("resized encoder input: largest difference " << resize_diff << " grey levels");
    CHECK(resize_diff == 0);
    report.lines << "  image: decoded and resized (" << theirs.size(2) << "x" << theirs.size(3)
                 << ") as PIL\n";
  }

  sam::Predictor predictor(model);
  sam_test::Clock embed_clock;
  predictor.set_image(image);
  const double embed_s = embed_clock.wall(), embed_cpu = embed_clock.cpu();
  report.close("image_embedding", sam_test::check_close(predictor.embedding(), dict_tensor(ref, "image_embedding"),
                                                        preset + " image_embedding"));

  sam_test::Clock prompt_clock;
  const std::vector<std::string> single = {"point1", "points2", "box", "box_point", "point_mask"};
  auto opt = [&](const std::string& key) { return sam_test::dict_has(ref, key) ? dict_tensor(ref, key) : torch::Tensor(); };
  for (const auto& name : single) {
    sam::PredictOptions opts;
    opts.multimask = dict_tensor(ref, name + ".multimask").item<bool>();
    auto points = opt(name + ".point_coords");
    auto labels = opt(name + ".point_labels");
    if (labels.defined()) labels = labels.to(torch::kLong);
    auto box = opt(name + ".box");
    auto mask_in = opt(name + ".mask_input");
    if (name == "point_mask") REQUIRE(mask_in.defined());
    auto p = predictor.predict(points, labels, box, mask_in, opts);
    const std::string what = preset + " " + name;
    report.close(name + ".low_res_logits",
                 sam_test::check_close(p.low_res[0], dict_tensor(ref, name + ".low_res_logits"), what + ".low_res_logits"));
    report.close(name + ".iou", sam_test::check_close(p.iou[0], dict_tensor(ref, name + ".iou"), what + ".iou"));
    report.close(name + ".logits", sam_test::check_close(p.logits[0], dict_tensor(ref, name + ".logits"), what + ".logits"));
    const auto ref_masks = dict_tensor(ref, name + ".masks");
    const double frac = check_not_trivial(ref_masks, what);
    report.masks(name + ".masks",
                 sam_test::check_masks(p.masks[0], ref_masks, dict_tensor(ref, name + ".logits"), what + ".masks"), frac);
    if (name == "point1") {
      // The mask input of point_mask is the reference's best point1 row: ours picks the same one.
      const auto ours_best = p.low_res[0][p.iou[0].argmax().item<int64_t>()];
      const auto ref_iou = dict_tensor(ref, "point1.iou");
      CHECK(p.iou[0].argmax().item<int64_t>() == ref_iou.argmax().item<int64_t>());
      sam_test::check_close(ours_best, dict_tensor(ref, "point1.low_res_logits")[ref_iou.argmax().item<int64_t>()],
                            what + " best row (the mask input)");
    }
  }
  {
    // Batched boxes (the reference's predict_torch): B = 3 prompts, 3 masks each.
    auto p = predictor.predict_batch({}, {}, dict_tensor(ref, "boxes3.boxes"), {}, {});
    const std::string what = preset + " boxes3";
    report.close("boxes3.low_res_logits",
                 sam_test::check_close(p.low_res, dict_tensor(ref, "boxes3.low_res_logits"), what + ".low_res_logits"));
    report.close("boxes3.iou", sam_test::check_close(p.iou, dict_tensor(ref, "boxes3.iou"), what + ".iou"));
    report.close("boxes3.logits", sam_test::check_close(p.logits, dict_tensor(ref, "boxes3.logits"), what + ".logits"));
    const auto ref_masks = dict_tensor(ref, "boxes3.masks");
    const double frac = check_not_trivial(ref_masks, what);
    report.masks("boxes3.masks",
                 sam_test::check_masks(p.masks, ref_masks, dict_tensor(ref, "boxes3.logits"), what + ".masks"), frac);
  }
  const double prompt_s = prompt_clock.wall();

  const auto& rt = ref_report["times"];
  std::cout << std::fixed << std::setprecision(1) << "peer reference " << preset << " (" << threads
            << " threads): largest err/tol " << std::setprecision(4) << report.worst_ratio << " ("
            << report.worst_what << ")\n"
            << report.lines.str() << std::fixed << std::setprecision(1)
            << "  reference: " << ref_report["wall_s"].get<double>() << " s in all (build + save "
            << rt["build_save"][0].get<double>() << ", embedding " << rt["embedding"][0].get<double>()
            << " wall / " << rt["embedding"][1].get<double>() << " CPU, prompts " << rt["prompts"][0].get<double>()
            << "), peak " << ref_report["peak_rss_mib"].get<double>() << " MiB\n"
            << "  ours: load " << load_s << " s, embedding " << embed_s << " wall / " << embed_cpu
            << " CPU, prompts " << prompt_s << ", peak " << sam::data::peak_rss_mib() << " MiB" << std::endl;
}

}  // namespace

TEST_CASE("peer reference vit_b: embedding and every prompt type match segment_anything live", "[sam][peers]") {
  compare_preset("vit_b");
}

TEST_CASE("peer reference vit_l: embedding and every prompt type match segment_anything live", "[sam][peers]") {
  compare_preset("vit_l");
}

TEST_CASE("peer reference vit_h: embedding and every prompt type match segment_anything live", "[sam][peers]") {
  compare_preset("vit_h");
}
