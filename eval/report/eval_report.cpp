#include "eval/report/eval_report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <sstream>

#include "data/atomic_file.h"
#include "eval/report/plot.h"

namespace fs = std::filesystem;

namespace sam::eval {
namespace {

std::string num(double v, int digits = 3) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.*f", digits, v);
  return buf;
}

std::string meta_table(const nlohmann::json& meta) {
  std::vector<std::vector<std::string>> rows;
  for (auto it = meta.begin(); it != meta.end(); ++it)
    rows.push_back(
        {it.key(), it.value().is_string() ? it.value().get<std::string>() : it.value().dump()});
  return "<h2>Run</h2>\n" + html_table({"setting", "value"}, rows);
}

std::string para(const std::string& text) {
  return "<p>" + html_escape(text) + "</p>";
}

}  // namespace

std::string points_text(const PointsResult& r) {
  std::ostringstream o;
  const auto j = r.to_json();
  o << "Point-prompt evaluation: " << r.n << " objects, " << r.miou_at_k.size() << " clicks each\n";
  o << "  mIoU @1 click, top-ranked mask   " << num(r.miou_1click) << "\n";
  o << "  mIoU @1 click, oracle of 3       " << num(r.miou_1click_oracle) << "\n";
  o << "  NoC@85 / NoC@90                  " << num(r.noc85, 2) << " / " << num(r.noc90, 2)
    << "   (never reached: " << j["nof85"].get<int64_t>() << " / " << j["nof90"].get<int64_t>()
    << ")\n";
  o << "  clicks |";
  for (size_t k = 0; k < r.miou_at_k.size(); ++k) o << " " << std::setw(5) << (k + 1);
  o << "\n  mIoU   |";
  for (double v : r.miou_at_k) o << " " << num(v).substr(0, 5);
  o << "\n";
  return o.str();
}

std::string points_html(const PointsResult& r, const nlohmann::json& meta) {
  std::vector<std::string> body{meta_table(meta)};
  const auto j = r.to_json();
  body.push_back("<h2>Summary</h2>\n" +
                 html_table({"measure", "value"},
                            {{"objects", std::to_string(r.n)},
                             {"mIoU @1 click (top-ranked mask)", num(r.miou_1click)},
                             {"mIoU @1 click (oracle of 3 masks)", num(r.miou_1click_oracle)},
                             {"NoC@85", num(r.noc85, 2)},
                             {"NoC@90", num(r.noc90, 2)},
                             {"objects never reaching 85 / 90",
                              j["nof85"].dump() + " / " + j["nof90"].dump()}}));
  PlotSeries s{"mIoU", {}, {}, "", true};
  for (size_t k = 0; k < r.miou_at_k.size(); ++k) {
    s.x.push_back(static_cast<double>(k + 1));
    s.y.push_back(r.miou_at_k[k]);
  }
  PlotSeries oracle{"1-click oracle", {1.0}, {r.miou_1click_oracle}, "", true};
  oracle.width = 0;
  PlotOptions po;
  po.title = "mIoU against the number of clicks";
  po.x_label = "clicks";
  po.y_label = "mIoU";
  po.y_max = 1.0;
  po.x_min = 0.5;  // half a click of margin so that the end points are not on the frame
  po.x_max = r.miou_at_k.size() + 0.5;
  body.push_back(svg_line_plot({s, oracle}, po));
  std::vector<std::vector<std::string>> rows;
  for (size_t k = 0; k < r.miou_at_k.size(); ++k)
    rows.push_back({std::to_string(k + 1), num(r.miou_at_k[k])});
  body.push_back("<h2>mIoU per click</h2>\n" + html_table({"clicks", "mIoU"}, rows));
  rows.clear();
  for (const auto& s2 : r.samples)
    rows.push_back({s2.id, num(s2.iou_1click), num(s2.iou_1click_oracle),
                    num(s2.iou_per_click.empty() ? 0 : s2.iou_per_click.back()),
                    std::to_string(s2.noc85), std::to_string(s2.noc90)});
  body.push_back("<details><summary>Per object</summary>\n" +
                 html_table({"object", "IoU@1", "oracle@1", "IoU@N", "NoC@85", "NoC@90"}, rows) +
                 "</details>");
  body.push_back(para(
      "Protocol (RITM): first click at the maximum of the distance transform inside the object "
      "(or a random object pixel), then at the maximum of the distance transform of the larger "
      "error region; previous low-res logits fed back; single-mask output after the first click; "
      "ignore pixels excluded from IoU and click placement."));
  return html_page("SAM point-prompt evaluation", body);
}

std::string edges_text(const EdgesResult& r) {
  const auto& s = r.summary;
  std::ostringstream o;
  o << "BSDS500 boundary benchmark: " << r.images << " images, " << num(r.mean_masks, 1)
    << " masks per image\n";
  o << "  ODS  F " << num(s.ods_f) << "  (R " << num(s.ods_r) << ", P " << num(s.ods_p) << ", t "
    << num(s.ods_t, 2) << ")\n";
  o << "  OIS  F " << num(s.ois_f) << "  (R " << num(s.ois_r) << ", P " << num(s.ois_p) << ")\n";
  o << "  AP     " << num(s.ap) << "\n  R50    " << num(s.r50) << "\n";
  o << "  matching: " << bsds_matching_description() << "\n";
  return o.str();
}

std::string edges_html(const EdgesResult& r, const nlohmann::json& meta) {
  const auto& s = r.summary;
  std::vector<std::string> body{meta_table(meta)};
  body.push_back(
      "<h2>Summary</h2>\n" +
      html_table({"measure", "value"},
                 {{"images", std::to_string(r.images)},
                  {"masks per image", num(r.mean_masks, 1)},
                  {"ODS F (R, P, threshold)", num(s.ods_f) + " (" + num(s.ods_r) + ", " +
                                                  num(s.ods_p) + ", " + num(s.ods_t, 2) + ")"},
                  {"OIS F (R, P)", num(s.ois_f) + " (" + num(s.ois_r) + ", " + num(s.ois_p) + ")"},
                  {"AP", num(s.ap)},
                  {"R50", num(s.r50)}}));
  std::vector<PlotSeries> series;
  for (int f10 = 1; f10 <= 9; ++f10) {  // iso-F curves: P = F R / (2R - F)
    const double f = f10 / 10.0;
    PlotSeries iso{f10 == 1 ? "iso-F 0.1 ... 0.9" : "", {}, {}, "#cccccc", false, true, 1.0};
    for (int k = 0; k <= 200; ++k) {
      const double rr = f / 2 + (1 - f / 2) * k / 200.0;
      const double pp = f * rr / (2 * rr - f);
      if (pp <= 1.0 + 1e-9) iso.x.push_back(rr), iso.y.push_back(pp);
    }
    series.push_back(iso);
  }
  PlotSeries curve{"SAM edges", {}, {}, "", false};
  for (size_t i = 0; i < s.recall.size(); ++i)
    if (s.precision[i] > 0 || s.recall[i] > 0)
      curve.x.push_back(s.recall[i]), curve.y.push_back(s.precision[i]);
  series.push_back(curve);
  series.push_back({"ODS", {s.ods_r}, {s.ods_p}, "", true, false, 0});
  PlotOptions po;
  po.title = "Precision-recall (BSDS500)";
  po.x_label = "recall";
  po.y_label = "precision";
  po.x_min = 0, po.x_max = 1, po.y_min = 0, po.y_max = 1;
  po.width = 520, po.height = 480;
  po.legend_pos = PlotOptions::LegendPos::kBottomLeft;
  body.push_back(svg_line_plot(series, po));
  body.push_back(para(std::string("Matching: ") + bsds_matching_description() + "."));
  body.push_back(para(r.to_json()["pipeline"].get<std::string>()));
  return html_page("SAM zero-shot edge detection", body);
}

std::string proposals_text(const ProposalsResult& r) {
  std::ostringstream o;
  o << "Object proposals: " << r.images << " images, " << num(r.mean_proposals, 1)
    << " masks per image\n";
  o << "  AR (IoU .50:.95) |    all  small medium  large\n";
  for (int k : r.coco.params.max_dets) {
    o << "  @" << std::setw(15) << std::left << k << std::right << " |";
    for (const char* a : {"all", "small", "medium", "large"})
      o << " " << std::setw(6) << num(r.ar(k, a));
    o << "\n";
  }
  return o.str();
}

std::string proposals_html(const ProposalsResult& r, const nlohmann::json& meta) {
  std::vector<std::string> body{meta_table(meta)};
  std::vector<std::vector<std::string>> rows;
  std::vector<PlotSeries> series;
  for (const char* a : {"all", "small", "medium", "large"}) series.push_back({a, {}, {}, "", true});
  for (int k : r.coco.params.max_dets) {
    std::vector<std::string> row{"AR@" + std::to_string(k)};
    int i = 0;
    for (const char* a : {"all", "small", "medium", "large"}) {
      row.push_back(num(r.ar(k, a)));
      series[i].x.push_back(k);
      series[i++].y.push_back(r.ar(k, a));
    }
    rows.push_back(row);
  }
  body.push_back("<h2>Average recall</h2>\n" +
                 html_table({"budget", "all", "small", "medium", "large"}, rows));
  PlotOptions po;
  po.title = "Average recall against proposals per image";
  po.x_label = "proposals per image";
  po.y_label = "AR (IoU .50:.95)";
  po.log_x = true;
  po.y_min = 0;
  body.push_back(svg_line_plot(series, po));
  body.push_back(para("images: " + std::to_string(r.images) +
                      ", generator masks per image: " + num(r.mean_proposals, 1) + ". " +
                      r.to_json()["protocol"].get<std::string>()));
  return html_page("SAM zero-shot object proposals", body);
}

std::string instances_text(const InstancesResult& r) {
  static const char* kLines[] = {
      "Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=%d ]",
      "Average Precision  (AP) @[ IoU=0.50      | area=   all | maxDets=%d ]",
      "Average Precision  (AP) @[ IoU=0.75      | area=   all | maxDets=%d ]",
      "Average Precision  (AP) @[ IoU=0.50:0.95 | area= small | maxDets=%d ]",
      "Average Precision  (AP) @[ IoU=0.50:0.95 | area=medium | maxDets=%d ]",
      "Average Precision  (AP) @[ IoU=0.50:0.95 | area= large | maxDets=%d ]",
      "Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets=%d ]",
      "Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets=%d ]",
      "Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets=%d ]",
      "Average Recall     (AR) @[ IoU=0.50:0.95 | area= small | maxDets=%d ]",
      "Average Recall     (AR) @[ IoU=0.50:0.95 | area=medium | maxDets=%d ]",
      "Average Recall     (AR) @[ IoU=0.50:0.95 | area= large | maxDets=%d ]"};
  std::ostringstream o;
  auto table = [&](const CocoEvalResult& res) {
    const auto st = res.stats();
    const auto& md = res.params.max_dets;
    for (size_t i = 0; i < st.size(); ++i) {
      const int m = i == 6 ? md[0] : i == 7 ? md[std::min<size_t>(1, md.size() - 1)] : md.back();
      char line[128];
      std::snprintf(line, sizeof(line), kLines[i], m);
      o << " " << line << " = " << num(st[i]) << "\n";
    }
  };
  o << "Instance segmentation (segm, pycocotools COCOeval): " << r.images << " images, "
    << r.prompts << " box prompts\n";
  table(r.coco);
  if (r.box_coco) {
    o << "The detector's boxes themselves (bbox, pycocotools COCOeval):\n";
    table(*r.box_coco);
  }
  return o.str();
}

std::string instances_html(const InstancesResult& r, const nlohmann::json& meta) {
  std::vector<std::string> body{meta_table(meta)};
  const auto st = r.coco.stats();
  std::vector<std::vector<std::string>> rows;
  for (size_t i = 0; i < st.size(); ++i) rows.push_back({coco_stat_names()[i], num(st[i])});
  body.push_back("<h2>Mask AP</h2>\n" + html_table({"measure", "value"}, rows));
  if (r.box_coco) {
    const auto bs = r.box_coco->stats();
    rows.clear();
    for (size_t i = 0; i < bs.size(); ++i) rows.push_back({coco_stat_names()[i], num(bs[i])});
    body.push_back("<h2>Box AP of the detector's boxes</h2>\n" + html_table({"measure", "value"}, rows));
  }
  const auto j = r.to_json();
  std::vector<std::pair<double, std::string>> cats;
  for (const auto& c : j["per_category"]) cats.push_back({c["ap"].get<double>(), c["name"]});
  std::sort(cats.begin(), cats.end(),
            [](const auto& a, const auto& b) { return a.first > b.first; });
  PlotSeries s{"AP per category (sorted)", {}, {}, "", true};
  rows.clear();
  for (size_t i = 0; i < cats.size(); ++i) {
    rows.push_back({cats[i].second, cats[i].first < 0 ? "-" : num(cats[i].first)});
    if (cats[i].first >= 0) s.x.push_back(i + 1.0), s.y.push_back(cats[i].first);
  }
  PlotOptions po;
  po.title = "AP per category, sorted";
  po.x_label = "category rank";
  po.y_label = "AP";
  po.y_min = 0;
  body.push_back(svg_line_plot({s}, po));
  body.push_back("<details><summary>Per category</summary>\n" +
                 html_table({"category", "AP"}, rows) + "</details>");
  body.push_back(para(j["protocol"].get<std::string>()));
  return html_page("SAM zero-shot instance segmentation", body);
}

std::string write_report(const std::string& json_path, nlohmann::json result,
                         const nlohmann::json& meta, const std::string& html) {
  result["meta"] = meta;
  // Whole or absent (data/atomic_file.h): a study (train/study) takes the JSON's presence as the
  // evaluation being done.
  fs::path hp(json_path);
  hp.replace_extension(".html");
  data::write_file_atomic(hp.string(), html);
  data::write_file_atomic(json_path, result.dump(2) + "\n");
  return hp.string();
}

}  // namespace sam::eval
