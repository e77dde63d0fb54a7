// sam_predict end to end: every golden case through the program's files, and bad input ending
// with a message that names the culprit and a non-zero exit code.
#include <catch2/catch.hpp>

#include <fstream>

#include <nlohmann/json.hpp>

#include "data/npy.h"
#include "sam/pth_io.h"
#include "test_util.h"

namespace {

const std::string kTool = (sam_test::bin_dir() / "sam_predict").string();

std::string golden(const char* f) { return (sam_test::golden_tiny() / f).string(); }

std::string base_cmd() {
  return kTool + " --model " + golden("config.json") + " --checkpoint " + golden("sam.pth") +
         " --image " + golden("image.jpg");
}

c10::Dict<c10::IValue, c10::IValue> outputs() {
  std::ifstream in(golden("outputs.pt"), std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return torch::pickle_load(bytes).toGenericDict();
}

void check_close(const torch::Tensor& ours, const torch::Tensor& ref, const std::string& what) {
  INFO(what);
  REQUIRE(ours.sizes() == ref.sizes());
  const double tol = 1e-4 + 1e-3 * ref.abs().max().item<double>();
  CHECK((ours - ref).abs().max().item<double>() <= tol);
}

std::string fmt(double v) {
  std::ostringstream o;
  o.precision(10);
  o << v;
  return o.str();
}

}  // namespace

TEST_CASE("sam_predict reproduces every golden case", "[tools][golden]") {
  auto ref = outputs();
  auto get = [&](const std::string& k) { return ref.at(k).toTensor(); };
  std::ifstream cf(golden("cases.json"));
  auto cases = nlohmann::json::parse(cf)["cases"];
  const auto tmp = sam_test::temp_dir("predict");
  // The point_mask case feeds back point1's best low-res logits.
  {
    auto low = get("point1.low_res_logits");
    auto best = low[get("point1.iou").argmax().item<int64_t>()].unsqueeze(0);
    sam::npy::write((tmp / "point1_best.npy").string(), best);
  }
  // A reused embedding must give the same answers: write it once, read it back for later cases.
  const std::string emb = (tmp / "embedding.npy").string();
  int runs = 0;
  for (const auto& c : cases) {
    const std::string name = c["name"];
    std::vector<std::string> prompts;  // one sam_predict run per prompt (boxes3 has three)
    std::string common = c["multimask_output"].get<bool>() ? " --multimask" : "";
    if (c.contains("point_coords")) {
      for (size_t i = 0; i < c["point_coords"].size(); ++i)
        common += " --point " + fmt(c["point_coords"][i][0]) + "," + fmt(c["point_coords"][i][1]) +
                  "," + std::to_string(c["point_labels"][i].get<int>());
    }
    if (c.contains("box"))
      common += " --box " + fmt(c["box"][0]) + "," + fmt(c["box"][1]) + "," + fmt(c["box"][2]) +
                "," + fmt(c["box"][3]);
    if (c.contains("mask_input")) common += " --mask-input " + (tmp / "point1_best.npy").string();
    if (c.contains("boxes")) {
      for (const auto& b : c["boxes"])
        prompts.push_back(common + " --box " + fmt(b[0]) + "," + fmt(b[1]) + "," + fmt(b[2]) + "," + fmt(b[3]));
    } else {
      prompts.push_back(common);
    }
    for (size_t k = 0; k < prompts.size(); ++k) {
      const auto out = tmp / (name + std::to_string(k));
      const std::string emb_flag = runs == 0 ? " --embedding-out " + emb : " --embedding-in " + emb;
      std::string log;
      const int rc = sam_test::run_command(base_cmd() + prompts[k] + emb_flag + " --threads 2 --out " + out.string(), &log);
      INFO(name << " run " << k << ":\n" << log);
      REQUIRE(rc == 0);
      ++runs;
      auto low = sam::npy::read((out / "low_res_logits.npy").string());
      std::ifstream rf(out / "result.json");
      auto result = nlohmann::json::parse(rf);
      auto iou = torch::tensor(result["iou_predictions"].get<std::vector<float>>());
      auto ref_low = get(name + ".low_res_logits"), ref_iou = get(name + ".iou");
      if (prompts.size() > 1) {
        ref_low = ref_low[k];
        ref_iou = ref_iou[k];
      }
      check_close(low, ref_low, name + " low-res logits");
      check_close(iou, ref_iou, name + " iou");
      if (ref.contains(name + ".logits")) {
        auto logits = sam::npy::read((out / "logits.npy").string());
        auto ref_logits = get(name + ".logits");
        check_close(logits, ref_logits, name + " logits");
        // mask_<i>.png is 255 exactly where the logit is > 0.
        auto m0 = sam::npy::read((out / "logits.npy").string())[0] > 0;
        std::ifstream png(out / "mask_0.png");
        CHECK(png.good());
        CHECK(result["mask_areas"][0].get<int64_t>() == m0.sum().item<int64_t>());
      }
    }
  }
  CHECK(runs == 8);
}

TEST_CASE("sam_predict rejects bad input with a clear message", "[tools][errors]") {
  const auto tmp = sam_test::temp_dir("predict_errors");
  const std::string out = " --out " + (tmp / "out").string();
  auto expect_error = [&](const std::string& cmd, const std::string& fragment) {
    std::string log;
    const int rc = sam_test::run_command(cmd, &log);
    INFO(cmd << "\n" << log);
    CHECK(rc != 0);
    CHECK(log.find(fragment) != std::string::npos);
    CHECK(log.find("error") != std::string::npos);
  };
  // Missing and non-image files.
  expect_error(kTool + " --model " + golden("config.json") + " --checkpoint " + golden("sam.pth") +
                   " --image " + (tmp / "nope.jpg").string() + " --point 1,1,1" + out,
               "nope.jpg");
  {
    std::ofstream(tmp / "text.jpg") << "this is not an image";
    expect_error(kTool + " --model " + golden("config.json") + " --checkpoint " + golden("sam.pth") +
                     " --image " + (tmp / "text.jpg").string() + " --point 1,1,1" + out,
                 "text.jpg");
  }
  // A checkpoint with a missing key.
  {
    auto sd = sam::pth_read(golden("sam.pth"));
    sd.erase(sd.begin() + 3);
    const std::string bad = (tmp / "bad.pth").string();
    sam::pth_write(bad, sd);
    expect_error(kTool + " --model " + golden("config.json") + " --checkpoint " + bad + " --image " +
                     golden("image.jpg") + " --point 1,1,1" + out,
                 "missing keys (1)");
  }
  // The wrong architecture for the checkpoint.
  expect_error(kTool + " --model vit_b --checkpoint " + golden("sam.pth") + " --image " +
                   golden("image.jpg") + " --point 1,1,1" + out,
               "mis-shaped keys");
  // Mask input of the wrong shape.
  {
    sam::npy::write((tmp / "mask.npy").string(), torch::zeros({1, 256, 256}));
    expect_error(base_cmd() + " --point 10,10,1 --mask-input " + (tmp / "mask.npy").string() + out,
                 "[1, 64, 64]");
  }
  // Points and boxes outside the image, bad labels, malformed numbers.
  expect_error(base_cmd() + " --point 700,10,1" + out, "outside the 640x480 image");
  expect_error(base_cmd() + " --point 10,-3,1" + out, "outside");
  expect_error(base_cmd() + " --point 10,10,7" + out, "label");
  expect_error(base_cmd() + " --point 10,abc,1" + out, "'abc' is not a number");
  expect_error(base_cmd() + " --box 10,10,900,20" + out, "--box 10,10,900,20");
  expect_error(base_cmd() + out, "give at least one prompt");
  // Unknown model name and unknown config key.
  expect_error(kTool + " --model vit_x --checkpoint " + golden("sam.pth") + " --image " +
                   golden("image.jpg") + " --point 1,1,1" + out,
               "vit_x");
  {
    std::ofstream(tmp / "arch.yaml") << "embed_dim: 96\ndepht: 4\n";
    expect_error(kTool + " --model " + (tmp / "arch.yaml").string() + " --checkpoint " +
                     golden("sam.pth") + " --image " + golden("image.jpg") + " --point 1,1,1" + out,
                 "unknown key 'depht'");
  }
  // An embedding of the wrong shape.
  {
    sam::npy::write((tmp / "emb.npy").string(), torch::zeros({1, 256, 64, 64}));
    expect_error(base_cmd() + " --point 10,10,1 --embedding-in " + (tmp / "emb.npy").string() + out,
                 "emb.npy");
  }
}
