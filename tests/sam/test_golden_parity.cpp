// Parity with Meta's reference on the golden tiny model (../shared/golden/tiny): the embedding,
// every prompt case of cases.json (low-res logits, full-size logits, IoU, masks) and the batched
// boxes, within the tolerances of the golden README.
#include <catch2/catch.hpp>

#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "data/image.h"
#include "sam/predictor.h"
#include "test_util.h"

namespace {

c10::Dict<c10::IValue, c10::IValue> load_outputs() {
  std::ifstream in(sam_test::golden_tiny() / "outputs.pt", std::ios::binary);
  REQUIRE(in.good());
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return torch::pickle_load(bytes).toGenericDict();
}

torch::Tensor get(const c10::Dict<c10::IValue, c10::IValue>& d, const std::string& key) {
  return d.at(key).toTensor();
}

// |ours - ref| <= 1e-4 + 1e-3 * max|ref| everywhere (golden README).
void check_close(const torch::Tensor& ours, const torch::Tensor& ref, const std::string& what) {
  INFO(what << ": ours " << ours.sizes() << " ref " << ref.sizes());
  REQUIRE(ours.sizes() == ref.sizes());
  auto o = ours.to(torch::kFloat), r = ref.to(torch::kFloat);
  const double tol = 1e-4 + 1e-3 * r.abs().max().item<double>();
  const double err = (o - r).abs().max().item<double>();
  INFO("max abs error " << err << " tolerance " << tol);
  CHECK(err <= tol);
}

// Thresholded masks may differ only where the reference logit is within 1e-3 of 0.
void check_masks(const torch::Tensor& ours, const torch::Tensor& ref_masks,
                 const torch::Tensor& ref_logits, const std::string& what) {
  INFO(what);
  REQUIRE(ours.sizes() == ref_masks.sizes());
  auto diff = ours.ne(ref_masks.to(torch::kBool));
  auto allowed = ref_logits.abs().le(1e-3);
  CHECK((diff & ~allowed).sum().item<int64_t>() == 0);
}

torch::Tensor json_tensor(const nlohmann::json& j) {
  std::vector<float> flat;
  std::vector<int64_t> shape;
  if (j[0].is_array()) {
    shape = {static_cast<int64_t>(j.size()), static_cast<int64_t>(j[0].size())};
    for (const auto& row : j)
      for (const auto& v : row) flat.push_back(v.get<float>());
  } else {
    shape = {static_cast<int64_t>(j.size())};
    for (const auto& v : j) flat.push_back(v.get<float>());
  }
  return torch::tensor(flat).view(shape);
}

}  // namespace

TEST_CASE("golden tiny: embedding and every prompt case match the reference", "[sam][golden]") {
  const auto dir = sam_test::golden_tiny();
  auto config = sam::model_config_resolve((dir / "config.json").string());
  sam::Sam model(config);
  sam::load_checkpoint(model, (dir / "sam.pth").string());
  sam::Predictor predictor(model);

  cv::Mat rgb = sam::data::image_read_rgb((dir / "image.jpg").string());
  auto image = torch::from_blob(rgb.data, {rgb.rows, rgb.cols, 3}, torch::kUInt8).clone();
  predictor.set_image(image);
  auto ref = load_outputs();
  check_close(predictor.embedding(), get(ref, "image_embedding"), "image_embedding");

  std::ifstream cf(dir / "cases.json");
  nlohmann::json cases = nlohmann::json::parse(cf);
  torch::Tensor point1_best_low_res;
  int checked = 0;
  for (const auto& c : cases["cases"]) {
    const std::string name = c["name"];
    sam::PredictOptions opts;
    opts.multimask = c["multimask_output"];
    sam::Prediction p;
    if (name == "boxes3") {
      p = predictor.predict_batch({}, {}, json_tensor(c["boxes"]), {}, opts);
      check_close(p.low_res, get(ref, name + ".low_res_logits"), name + ".low_res_logits");
      check_close(p.iou, get(ref, name + ".iou"), name + ".iou");
      // The fixture stores no full-size logits for this case: masks may differ only where our
      // own logit is within the logit tolerance of 0.
      check_masks(p.masks, get(ref, name + ".masks"), p.logits, name);
      ++checked;
      continue;
    }
    torch::Tensor pts, labels, box, mask_in;
    if (c.contains("point_coords")) {
      pts = json_tensor(c["point_coords"]);
      labels = json_tensor(c["point_labels"]).to(torch::kLong);
    }
    if (c.contains("box")) box = json_tensor(c["box"]);
    if (c.contains("mask_input")) {
      // "the point1 low_res_logits row with the highest iou" (golden README).
      auto r_low = get(ref, "point1.low_res_logits");
      auto r_iou = get(ref, "point1.iou");
      mask_in = r_low[r_iou.argmax().item<int64_t>()].unsqueeze(0);
      REQUIRE(point1_best_low_res.defined());
      check_close(point1_best_low_res, mask_in, "point1 best low-res (our feedback)");
    }
    p = predictor.predict(pts, labels, box, mask_in, opts);
    check_close(p.low_res[0], get(ref, name + ".low_res_logits"), name + ".low_res_logits");
    check_close(p.iou[0], get(ref, name + ".iou"), name + ".iou");
    check_close(p.logits[0], get(ref, name + ".logits"), name + ".logits");
    check_masks(p.masks[0], get(ref, name + ".masks"), get(ref, name + ".logits"), name);
    if (name == "point1") point1_best_low_res = p.low_res[0][p.iou[0].argmax().item<int64_t>()].unsqueeze(0);
    ++checked;
  }
  CHECK(checked == 6);
}

TEST_CASE("golden tiny: a precomputed embedding answers like the image", "[sam][golden]") {
  const auto dir = sam_test::golden_tiny();
  auto config = sam::model_config_resolve((dir / "config.json").string());
  sam::Sam model(config);
  sam::load_checkpoint(model, (dir / "sam.pth").string());
  sam::Predictor predictor(model);
  auto ref = load_outputs();
  predictor.set_embedding(get(ref, "image_embedding"), 480, 640);
  auto p = predictor.predict(torch::tensor({{407.66f, 129.5f}}), torch::tensor({1}), {}, {});
  check_close(p.low_res[0], get(ref, "point1.low_res_logits"), "point1 from stored embedding");
  check_close(p.iou[0], get(ref, "point1.iou"), "point1 iou from stored embedding");
}
