// The automatic mask generator against Meta's SamAutomaticMaskGenerator run live on the vit_b
// preset with random weights (tests/peers/sam_reference.py --amg; the parameters are the script's
// AMG_PARAMS, written with its records): the generator rule of the golden README (tests/amg_match.h),
// a reference mask's counterpart being our mask of the same point. The companion of
// tests/sam/test_peer_reference.cpp, which compares the predictor; this suite is here because the
// generator's library is linked to the engine suites only.
#include <catch2/catch.hpp>

#include <fstream>
#include <iomanip>
#include <iostream>

#include <nlohmann/json.hpp>

#include "amg_match.h"
#include "data/image.h"
#include "sam/amg/amg_io.h"
#include "sam/amg/generator.h"
#include "parity.h"
#include "peer_reference.h"
#include "peers.h"
#include "sam/sam_model.h"
#include "test_util.h"

TEST_CASE("peer reference vit_b: the generator matches SamAutomaticMaskGenerator live", "[amg][peers]") {
  SAM_REQUIRE_PEERS(py);
  const auto image_path = sam_test::golden_tiny() / "image.jpg";
  const int threads = sam_test::peer_threads();
  at::set_num_threads(threads);
  sam_test::ScratchDir tmp("peer_amg_vit_b");

  const auto ref_report = sam_test::run_sam_reference(py, "vit_b", image_path, tmp.path, "--amg");
  nlohmann::json amg;
  {
    std::ifstream in(tmp.path / "amg.json");
    REQUIRE(in.good());
    amg = nlohmann::json::parse(in);
  }
  const auto opts = sam::amg::amg_options_from_json(amg["params"], "the reference's amg.json params");
  std::vector<sam::amg::AmgMask> refs;
  for (const auto& r : amg["masks"]) refs.push_back(sam::amg::amg_mask_from_json(r));
  // Enough masks for the rule to say something (about 50 with the script's parameters).
  REQUIRE(refs.size() >= 20);

  sam::Sam model(sam::model_config_preset("vit_b"));
  sam::load_checkpoint(model, (tmp.path / "sam.pth").string());
  // The reference's decoded pixels (tests/sam/test_peer_reference.cpp compares our decoder).
  const auto image = sam_test::dict_tensor(sam_test::load_tensor_dict(tmp.path / "image.pt"), "image");

  sam::amg::MaskGenerator gen(model, opts);
  sam_test::Clock clock;
  const auto ours = gen.generate(image);
  const double ours_s = clock.wall(), ours_cpu = clock.cpu();
  const auto t = gen.last_timings();

  const auto s = sam_test::check_amg_match(ours, refs, /*same_prompt=*/true);
  for (const auto& m : ours) {
    CHECK(m.segmentation.h == image.size(0));
    CHECK(m.segmentation.w == image.size(1));
  }
  CHECK(t.prompts == 64);
  CHECK(t.candidates == 192);

  const auto& rt = ref_report["times"];
  std::cout << std::fixed << std::setprecision(1) << "peer reference vit_b generator (" << threads
            << " threads): reference " << s.n_ref << " masks, ours " << s.n_ours << ", matched "
            << s.matched << " (identical " << s.exact << "), lowest best IoU " << std::setprecision(4)
            << s.worst << "\n"
            << std::setprecision(1) << "  reference: " << ref_report["wall_s"].get<double>()
            << " s in all (generate " << rt["amg"][0].get<double>() << " wall / " << rt["amg"][1].get<double>()
            << " CPU), peak " << ref_report["peak_rss_mib"].get<double>() << " MiB\n"
            << "  ours: generate " << ours_s << " wall / " << ours_cpu << " CPU (encoder " << t.encoder_s
            << ", decoder " << t.decoder_s << "), peak " << sam::data::peak_rss_mib() << " MiB" << std::endl;
}
