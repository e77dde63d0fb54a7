#include <catch2/catch.hpp>
#include <chrono>
#include <iostream>
#include "data/image.h"
#include "eval/edges.h"
#include "sam/config.h"
#include "test_util.h"
using namespace sam::eval;
using C = std::chrono::steady_clock;
static double ms(C::time_point t) { return std::chrono::duration<double, std::milli>(C::now() - t).count(); }
TEST_CASE("debug") {
  torch::set_num_threads(1);
  const auto g = sam_test::golden_tiny();
  sam::Sam model(sam::model_config_resolve((g / "config.json").string()));
  sam::load_checkpoint(model, (g / "sam.pth").string());
  const auto imgs = list_bsds("/work/shared/data/BSDS500", "test");
  const cv::Mat rgb = sam::data::image_read_rgb(imgs[0].image);
  EdgesOptions o;
  sam::Predictor p(model);
  sam::amg::MaskGenerator gen(p, o.amg_options());
  auto t = C::now();
  auto masks = gen.generate(image_tensor(rgb));
  std::cout << "generate " << ms(t) << " masks " << masks.size() << "\n";
  auto tm = gen.last_timings();
  std::cout << " enc " << tm.encoder_s << " dec " << tm.decoder_s << " masks " << tm.masks_s << " nms " << tm.nms_s << "\n";
  t = C::now();
  int64_t n; double w;
  cv::Mat e = sam_edge_map(gen, p, rgb, o, &n, &w);
  std::cout << "edge map total " << ms(t) << "\n";
  std::vector<cv::Mat> gts;
  for (const auto& b : imgs[0].boundaries) gts.push_back(read_boundary_map(b));
  t = C::now();
  auto c = evaluate_boundary_image(e, gts, BsdsOptions{});
  std::cout << "bench " << ms(t) << "\n";
}
