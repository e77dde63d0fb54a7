#include "engine/stage_report.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <sstream>
#include <stdexcept>

#include "eval/report/plot.h"

namespace sam::engine {

nlohmann::json ImageRecord::to_json() const {
  nlohmann::json ms = nlohmann::json::array();
  for (const auto& m : masks)
    ms.push_back({{"source", m.source},
                  {"clicks", m.clicks},
                  {"seconds", m.seconds},
                  {"gt_iou", m.gt_iou},
                  {"predicted_iou", m.predicted_iou},
                  {"accepted", m.accepted},
                  {"brushed", m.brushed}});
  return {{"id", id},
          {"stem", stem},
          {"index", index},
          {"skipped", skipped},
          {"problem", problem},
          {"width", width},
          {"height", height},
          {"gt_objects", gt_objects},
          {"attempted", attempted},
          {"given_up", given_up},
          {"gt_prefilled", gt_prefilled},
          {"proposals", proposals},
          {"masks_matched", masks_matched},
          {"gt_matched", gt_matched},
          {"model_round", model_round},
          {"wall_s", wall_s},
          {"masks", ms}};
}

ImageRecord ImageRecord::from_json(const nlohmann::json& j, const std::string& where) {
  ImageRecord r;
  try {
    r.id = j.at("id").get<std::string>();
    r.stem = j.at("stem").get<std::string>();
    r.index = j.at("index").get<int64_t>();
    r.skipped = j.at("skipped").get<bool>();
    r.problem = j.at("problem").get<std::string>();
    r.width = j.at("width").get<int64_t>();
    r.height = j.at("height").get<int64_t>();
    r.gt_objects = j.at("gt_objects").get<int>();
    r.attempted = j.at("attempted").get<int>();
    r.given_up = j.at("given_up").get<int>();
    r.gt_prefilled = j.at("gt_prefilled").get<int>();
    r.proposals = j.value("proposals", 0);
    r.masks_matched = j.at("masks_matched").get<int>();
    r.gt_matched = j.at("gt_matched").get<int>();
    r.model_round = j.at("model_round").get<int>();
    r.wall_s = j.at("wall_s").get<double>();
    for (const auto& m : j.at("masks")) {
      MaskRecord x;
      x.source = m.at("source").get<std::string>();
      x.clicks = m.at("clicks").get<int>();
      x.seconds = m.at("seconds").get<double>();
      x.gt_iou = m.at("gt_iou").get<double>();
      x.predicted_iou = m.at("predicted_iou").get<double>();
      x.accepted = m.at("accepted").get<bool>();
      x.brushed = m.value("brushed", false);
      r.masks.push_back(x);
    }
  } catch (const nlohmann::json::exception& e) {
    throw std::invalid_argument(where + ": bad image record: " + e.what());
  }
  return r;
}

nlohmann::json RetrainRound::to_json() const {
  return {{"round", round},           {"after_images", after_images}, {"masks", masks},
          {"iterations", iterations}, {"seconds", seconds},           {"checkpoint", checkpoint},
          {"skipped", skipped}};
}

RetrainRound RetrainRound::from_json(const nlohmann::json& j) {
  RetrainRound r;
  r.round = j.at("round").get<int>();
  r.after_images = j.at("after_images").get<int>();
  r.masks = j.at("masks").get<int64_t>();
  r.iterations = j.at("iterations").get<int64_t>();
  r.seconds = j.at("seconds").get<double>();
  r.checkpoint = j.at("checkpoint").get<std::string>();
  r.skipped = j.at("skipped").get<bool>();
  return r;
}

namespace {

double mean(const std::vector<double>& v) {
  if (v.empty()) return 0;
  double s = 0;
  for (double x : v) s += x;
  return s / double(v.size());
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

std::string fmt(double v, int digits = 2) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

// Trailing mean over `k` points: individual masks vary a lot, the trend is what the page shows.
std::vector<double> moving_average(const std::vector<double>& v, size_t k) {
  std::vector<double> out(v.size());
  double s = 0;
  for (size_t i = 0; i < v.size(); ++i) {
    s += v[i];
    if (i >= k) s -= v[i - k];
    out[i] = s / double(std::min(i + 1, k));
  }
  return out;
}

}  // namespace

nlohmann::json stage_summary(const std::string& stage, const std::vector<ImageRecord>& images,
                             const std::vector<RetrainRound>& rounds, double match_iou,
                             const nlohmann::json& heldout) {
  int64_t done = 0, skipped = 0, masks = 0, gt_images = 0, gt_masks = 0, matched = 0,
          gt_matched = 0, attempted = 0, given_up = 0, prefilled_gt = 0, accepted = 0, brushed = 0,
          proposals = 0;
  std::map<std::string, int64_t> by_source, by_problem;
  std::vector<double> clicks, seconds, per_image, masks_with_gt;
  // Per model round (retraining rounds the model had when the image was processed).
  struct Round {
    int64_t images = 0, masks = 0, annotated = 0, accepted = 0, brushed = 0, by_model = 0,
            gt_objects = 0, gt_prefilled = 0;
    std::vector<double> seconds, clicks;
  };
  std::map<int, Round> by_round;
  double wall = 0;
  for (const auto& r : images) {
    wall += r.wall_s;
    if (r.skipped) {
      ++skipped;
      ++by_problem[r.problem.empty() ? "other" : r.problem];
      continue;
    }
    ++done;
    Round& rd = by_round[r.model_round];
    ++rd.images;
    rd.masks += int64_t(r.masks.size());
    rd.gt_objects += r.gt_objects;
    rd.gt_prefilled += r.gt_prefilled;
    masks += int64_t(r.masks.size());
    per_image.push_back(double(r.masks.size()));
    attempted += r.attempted;
    given_up += r.given_up;
    prefilled_gt += r.gt_prefilled;
    proposals += r.proposals;
    if (r.gt_objects > 0) {
      ++gt_images;
      gt_masks += r.gt_objects;
      matched += r.masks_matched;
      gt_matched += r.gt_matched;
      masks_with_gt.push_back(double(r.masks.size()));
    }
    for (const auto& m : r.masks) {
      ++by_source[m.source];
      if (m.source == "manual") {
        clicks.push_back(m.clicks);
        seconds.push_back(m.seconds);
        accepted += m.accepted ? 1 : 0;
        brushed += m.brushed ? 1 : 0;
        ++rd.annotated;
        rd.accepted += m.accepted ? 1 : 0;
        rd.brushed += m.brushed ? 1 : 0;
        rd.seconds.push_back(m.seconds);
        rd.clicks.push_back(m.clicks);
      } else {
        ++rd.by_model;  // pre-filled or generated: no person involved
      }
    }
  }
  auto share = [](int64_t a, int64_t b) { return b > 0 ? double(a) / double(b) : 0.0; };
  nlohmann::json per_round = nlohmann::json::array();
  for (const auto& [k, rd] : by_round)
    per_round.push_back({{"model_round", k},
                         {"images", rd.images},
                         {"masks", rd.masks},
                         {"masks_per_image", share(rd.masks, rd.images)},
                         {"annotated_masks", rd.annotated},
                         {"accepted", rd.accepted},
                         {"accepted_share", share(rd.accepted, rd.annotated)},
                         {"brushed", rd.brushed},
                         {"seconds_per_mask", mean(rd.seconds)},
                         {"clicks_per_mask", mean(rd.clicks)},
                         {"model_masks", rd.by_model},
                         {"model_share", share(rd.by_model, rd.masks)},
                         {"gt_objects", rd.gt_objects},
                         {"gt_prefilled", rd.gt_prefilled},
                         {"gt_prefilled_share", share(rd.gt_prefilled, rd.gt_objects)}});
  int64_t rounds_run = 0;
  for (const auto& r : rounds) rounds_run += r.skipped ? 0 : 1;
  const double masks_matched_frac =
      masks_with_gt.empty() ? 0.0 : double(matched) / std::max(1.0, [&] {
                                      double s = 0;
                                      for (double x : masks_with_gt) s += x;
                                      return s;
                                    }());
  return {
      {"stage", stage},
      {"images", images.size()},
      {"images_done", done},
      {"images_skipped", skipped},
      {"skipped_by_problem", by_problem},
      {"masks", masks},
      {"masks_per_image", done ? double(masks) / double(done) : 0.0},
      {"masks_per_image_median", median(per_image)},
      {"masks_by_source", by_source},
      {"annotated_masks", clicks.size()},
      {"detector_proposals", proposals},
      {"objects_attempted", attempted},
      {"objects_given_up", given_up},
      {"annotated_accepted", accepted},
      {"accepted_share", share(accepted, int64_t(clicks.size()))},
      {"annotated_brushed", brushed},
      {"clicks_per_mask", mean(clicks)},
      {"clicks_per_mask_median", median(clicks)},
      {"seconds_per_mask", mean(seconds)},
      {"seconds_per_mask_median", median(seconds)},
      {"annotation_hours",
       [&] {
         double s = 0;
         for (double x : seconds) s += x;
         return s / 3600.0;
       }()},
      {"per_model_round", per_round},
      {"retrain_rounds", rounds_run},
      {"ground_truth",
       {{"match_iou", match_iou},
        {"images_with_gt", gt_images},
        {"gt_masks", gt_masks},
        {"gt_prefilled", prefilled_gt},
        {"masks_matched", matched},
        {"masks_matched_frac", masks_matched_frac},
        {"gt_matched", gt_matched},
        {"gt_recall", gt_masks ? double(gt_matched) / double(gt_masks) : 0.0}}},
      {"wall_s", wall},
      {"wall_s_per_image", done ? wall / double(done) : 0.0},
      {"heldout", heldout},
  };
}

std::string stage_summary_line(const nlohmann::json& s) {
  std::ostringstream os;
  const int64_t done = s.at("images_done").get<int64_t>(),
                annotated = s.at("annotated_masks").get<int64_t>();
  os << s.at("stage").get<std::string>() << ": " << done << " image(s)";
  if (s.at("images_skipped").get<int64_t>() > 0)
    os << " (" << s.at("images_skipped").get<int64_t>() << " skipped)";
  os << ", " << s.at("masks").get<int64_t>() << " masks ("
     << fmt(s.at("masks_per_image").get<double>(), 1) << " per image)";
  const auto& by_source = s.at("masks_by_source");
  if (by_source.contains("prefill"))
    os << ", " << by_source.at("prefill").get<int64_t>() << " pre-filled";
  if (annotated > 0) {
    os << "; annotated " << annotated << ": " << fmt(100 * s.at("accepted_share").get<double>(), 0)
       << "% accepted at the target IoU, " << fmt(s.at("clicks_per_mask").get<double>(), 1)
       << " clicks and " << fmt(s.at("seconds_per_mask").get<double>(), 1) << " s per mask";
    // First and last model round with annotated masks: the trend a person looks for.
    const nlohmann::json* first = nullptr;
    const nlohmann::json* last = nullptr;
    for (const auto& r : s.at("per_model_round"))
      if (r.at("annotated_masks").get<int64_t>() > 0) {
        if (!first) first = &r;
        last = &r;
      }
    if (first && last && first != last)
      os << " (model round " << first->at("model_round").get<int>() << " -> "
         << last->at("model_round").get<int>() << ": accepted "
         << fmt(100 * first->at("accepted_share").get<double>(), 0) << "% -> "
         << fmt(100 * last->at("accepted_share").get<double>(), 0) << "%, "
         << fmt(first->at("seconds_per_mask").get<double>(), 1) << " -> "
         << fmt(last->at("seconds_per_mask").get<double>(), 1) << " s per mask)";
  }
  const auto& gt = s.at("ground_truth");
  if (gt.at("gt_masks").get<int64_t>() > 0) {
    os << "; GT: " << fmt(100 * gt.at("masks_matched_frac").get<double>(), 0)
       << "% of masks match at IoU " << fmt(gt.at("match_iou").get<double>()) << ", recall "
       << fmt(gt.at("gt_recall").get<double>());
    if (gt.at("gt_prefilled").get<int64_t>() > 0)
      os << ", "
         << fmt(100.0 * double(gt.at("gt_prefilled").get<int64_t>()) /
                    double(gt.at("gt_masks").get<int64_t>()),
                0)
         << "% pre-filled";
  }
  const auto& ho = s.value("heldout", nlohmann::json::array());
  if (!ho.empty()) {
    auto figures = [](const nlohmann::json& e) {
      return fmt(e.at("miou_1click").get<double>()) + " / " + fmt(e.at("miou_at_k").back().get<double>());
    };
    os << "; held-out mIoU at 1 / " << ho.front().at("clicks").get<int>() << " clicks "
       << figures(ho.front());
    if (ho.size() > 1)
      os << " -> " << figures(ho.back()) << " (model round " << ho.front().at("model_round").get<int>()
         << " -> " << ho.back().at("model_round").get<int>() << ")";
  }
  return os.str();
}

std::string stage_report_html(const nlohmann::json& s, const std::vector<ImageRecord>& images,
                              const std::vector<RetrainRound>& rounds) {
  using eval::PlotOptions;
  using eval::PlotSeries;
  const std::string stage = s.value("stage", "");
  std::vector<std::string> body;
  const auto& gt = s.at("ground_truth");
  std::vector<std::vector<std::string>> rows = {
      {"images (done / skipped)", std::to_string(s.at("images_done").get<int64_t>()) + " / " +
                                      std::to_string(s.at("images_skipped").get<int64_t>())},
      {"masks", std::to_string(s.at("masks").get<int64_t>())},
      {"masks per image (mean / median)", fmt(s.at("masks_per_image").get<double>()) + " / " +
                                              fmt(s.at("masks_per_image_median").get<double>())},
      {"masks by source", s.at("masks_by_source").dump()},
      {"annotated masks (accepted at target IoU)",
       std::to_string(s.at("annotated_masks").get<int64_t>()) + " (" +
           std::to_string(s.at("annotated_accepted").get<int64_t>()) + ")"},
      {"detector proposals (semi stage)",
       std::to_string(s.at("detector_proposals").get<int64_t>())},
      {"objects given up at the time budget",
       std::to_string(s.at("objects_given_up").get<int64_t>())},
      {"clicks per annotated mask (mean / median)",
       fmt(s.at("clicks_per_mask").get<double>()) + " / " +
           fmt(s.at("clicks_per_mask_median").get<double>())},
      {"modelled seconds per annotated mask (mean / median)",
       fmt(s.at("seconds_per_mask").get<double>(), 1) + " / " +
           fmt(s.at("seconds_per_mask_median").get<double>(), 1)},
      {"retraining rounds", std::to_string(s.at("retrain_rounds").get<int64_t>())},
      {"ground-truth masks (images with GT)",
       std::to_string(gt.at("gt_masks").get<int64_t>()) + " (" +
           std::to_string(gt.at("images_with_gt").get<int64_t>()) + ")"},
      {"produced masks matching GT at IoU >= " + fmt(gt.at("match_iou").get<double>()),
       std::to_string(gt.at("masks_matched").get<int64_t>()) + " (" +
           fmt(100 * gt.at("masks_matched_frac").get<double>(), 1) + "%)"},
      {"GT masks recovered (recall)", std::to_string(gt.at("gt_matched").get<int64_t>()) + " (" +
                                          fmt(100 * gt.at("gt_recall").get<double>(), 1) + "%)"},
      {"compute seconds per image", fmt(s.at("wall_s_per_image").get<double>())},
  };
  body.push_back(eval::html_table({"figure", "value"}, rows));

  // Masks per image, with the ground truth's count alongside.
  PlotSeries produced{"produced masks"}, truth{"ground-truth masks"}, matched{"GT matched"};
  for (const auto& r : images) {
    if (r.skipped) continue;
    const double x = double(produced.x.size() + 1);
    produced.x.push_back(x);
    produced.y.push_back(double(r.masks.size()));
    if (r.gt_objects > 0) {
      truth.x.push_back(x);
      truth.y.push_back(r.gt_objects);
      matched.x.push_back(x);
      matched.y.push_back(r.gt_matched);
    }
  }
  produced.markers = truth.markers = matched.markers = true;
  truth.dashed = true;
  PlotOptions po;
  po.title = "Masks per image (" + stage + ")";
  po.x_label = "image (processing order)";
  po.y_label = "masks";
  po.y_min = 0;
  std::vector<PlotSeries> ser{produced};
  if (!truth.x.empty()) {
    ser.push_back(truth);
    ser.push_back(matched);
  }
  body.push_back(eval::svg_line_plot(ser, po));

  // Clicks and seconds per annotated mask, in annotation order.
  std::vector<double> c, sec;
  for (const auto& r : images)
    for (const auto& m : r.masks)
      if (m.source == "manual") {
        c.push_back(m.clicks);
        sec.push_back(m.seconds);
      }
  if (!c.empty()) {
    PlotSeries cs{"clicks"}, ca{"clicks, mean of 20"}, ss{"seconds"}, sa{"seconds, mean of 20"};
    for (size_t i = 0; i < c.size(); ++i) {
      cs.x.push_back(double(i + 1));
      ss.x.push_back(double(i + 1));
    }
    cs.y = c;
    ss.y = sec;
    ca.x = cs.x;
    sa.x = ss.x;
    ca.y = moving_average(c, 20);
    sa.y = moving_average(sec, 20);
    cs.width = ss.width = 1;
    cs.markers = ss.markers = true;
    PlotOptions pc;
    pc.title = "Clicks per annotated mask";
    pc.x_label = "mask (annotation order)";
    pc.y_label = "clicks";
    pc.y_min = 0;
    body.push_back(eval::svg_line_plot({cs, ca}, pc));
    PlotOptions ps = pc;
    ps.title = "Modelled annotation seconds per mask";
    ps.y_label = "seconds";
    body.push_back(eval::svg_line_plot({ss, sa}, ps));
  }
  if (s.at("per_model_round").size() > 0) {
    // The engine by model round, as the paper's Figure 5 view: effort per mask, masks per
    // image, and the shares the model took over (accepted without the brush, pre-filled or
    // generated masks).
    PlotSeries rs{"seconds per annotated mask"}, rc{"clicks per annotated mask"},
        rm{"masks per image"};
    PlotSeries ra{"accepted at the target IoU (share of annotated)"},
        rmo{"done by the model (share of masks)"};
    for (const auto& r : s.at("per_model_round")) {
      const double x = r.at("model_round").get<double>();
      if (r.at("annotated_masks").get<int64_t>() > 0) {
        rs.x.push_back(x);
        rs.y.push_back(r.at("seconds_per_mask").get<double>());
        rc.x.push_back(x);
        rc.y.push_back(r.at("clicks_per_mask").get<double>());
        ra.x.push_back(x);
        ra.y.push_back(r.at("accepted_share").get<double>());
      }
      rm.x.push_back(x);
      rm.y.push_back(r.at("masks_per_image").get<double>());
      rmo.x.push_back(x);
      rmo.y.push_back(r.at("model_share").get<double>());
    }
    rs.markers = rc.markers = rm.markers = ra.markers = rmo.markers = true;
    PlotOptions pr;
    pr.x_label = "retraining rounds before the image";
    pr.y_min = 0;
    if (!rs.x.empty()) {
      pr.title = "Annotation effort by retraining round of the model";
      pr.y_label = "mean per mask";
      body.push_back(eval::svg_line_plot({rs, rc}, pr));
    }
    pr.title = "Masks per image by retraining round";
    pr.y_label = "masks";
    body.push_back(eval::svg_line_plot({rm}, pr));
    pr.title = "The model's share of the work by retraining round";
    pr.y_label = "share";
    pr.y_max = 1;
    std::vector<PlotSeries> shares{rmo};
    if (!ra.x.empty()) shares.insert(shares.begin(), ra);
    body.push_back(eval::svg_line_plot(shares, pr));
    std::vector<std::vector<std::string>> rt;
    for (const auto& r : s.at("per_model_round"))
      rt.push_back({std::to_string(r.at("model_round").get<int>()),
                    std::to_string(r.at("images").get<int64_t>()),
                    fmt(r.at("masks_per_image").get<double>(), 1),
                    std::to_string(r.at("annotated_masks").get<int64_t>()),
                    fmt(100 * r.at("accepted_share").get<double>(), 0) + "%",
                    fmt(r.at("clicks_per_mask").get<double>(), 1),
                    fmt(r.at("seconds_per_mask").get<double>(), 1),
                    fmt(100 * r.at("model_share").get<double>(), 0) + "%",
                    fmt(100 * r.at("gt_prefilled_share").get<double>(), 0) + "%"});
    body.push_back("<h2>By model round</h2>" +
                   eval::html_table({"model round", "images", "masks per image", "annotated",
                                     "accepted", "clicks per mask", "seconds per mask",
                                     "done by the model", "GT pre-filled"},
                                    rt));
  }
  const auto& ho = s.value("heldout", nlohmann::json::array());
  if (!ho.empty()) {
    // Every model round on the same held-out images: the model's own progress, apart from the
    // images each round happened to annotate.
    const int clicks = ho.front().at("clicks").get<int>();
    PlotSeries h1{"1 click (top-ranked mask)"}, ho1{"1 click (oracle of 3)"}, hn{std::to_string(clicks) + " clicks"};
    std::vector<std::vector<std::string>> ht;
    for (const auto& e : ho) {
      const double x = e.at("model_round").get<double>();
      const auto& at_k = e.at("miou_at_k");
      h1.x.push_back(x);
      h1.y.push_back(e.at("miou_1click").get<double>());
      ho1.x.push_back(x);
      ho1.y.push_back(e.at("miou_1click_oracle").get<double>());
      hn.x.push_back(x);
      hn.y.push_back(at_k.back().get<double>());
      ht.push_back({std::to_string(e.at("model_round").get<int>()), std::to_string(e.at("n").get<int64_t>()),
                    fmt(e.at("miou_1click").get<double>()), fmt(e.at("miou_1click_oracle").get<double>()),
                    fmt(at_k.back().get<double>()), fmt(e.at("noc90").get<double>()),
                    e.at("checkpoint").get<std::string>()});
    }
    h1.markers = ho1.markers = hn.markers = true;
    PlotOptions ph;
    ph.title = "Held-out mIoU by retraining round (the same images for every round)";
    ph.x_label = "retraining rounds of the model";
    ph.y_label = "mIoU";
    ph.y_min = 0;
    ph.y_max = 1;
    body.push_back(eval::svg_line_plot({h1, ho1, hn}, ph));
    body.push_back("<h2>Held-out evaluation by model round</h2>" +
                   eval::html_table({"model round", "objects", "1 click", "1 click (oracle)",
                                     std::to_string(clicks) + " clicks", "NoC@90",
                                     "checkpoint (empty: random weights)"},
                                    ht));
  }
  if (!rounds.empty()) {
    std::vector<std::vector<std::string>> rr;
    for (const auto& r : rounds)
      rr.push_back({std::to_string(r.round), std::to_string(r.after_images),
                    std::to_string(r.masks), std::to_string(r.iterations), fmt(r.seconds, 1),
                    r.skipped ? "skipped (no masks)" : r.checkpoint});
    body.push_back(
        "<h2>Retraining rounds</h2>" +
        eval::html_table({"round", "after images", "masks", "iterations", "seconds", "checkpoint"},
                         rr));
  }
  std::vector<std::vector<std::string>> ir;
  for (const auto& r : images) {
    if (r.skipped) {
      ir.push_back({r.id, "skipped: " + r.problem, "", "", "", "", ""});
      continue;
    }
    ir.push_back({r.id, std::to_string(r.masks.size()), std::to_string(r.gt_objects),
                  std::to_string(r.gt_matched), std::to_string(r.attempted),
                  std::to_string(r.given_up), fmt(r.wall_s)});
  }
  body.push_back("<h2>Images</h2>" +
                 eval::html_table({"image", "masks", "GT masks", "GT matched", "annotated objects",
                                   "given up", "compute s"},
                                  ir));
  return eval::html_page("Data engine: " + stage + " stage", body);
}

}  // namespace sam::engine
