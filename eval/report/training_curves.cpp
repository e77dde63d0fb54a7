#include "eval/report/training_curves.h"

#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/atomic_file.h"
#include "eval/report/plot.h"

namespace sam::eval {

std::vector<nlohmann::json> read_run_metrics(const std::string& run_dir, bool required) {
  const auto path = std::filesystem::path(run_dir) / "metrics.jsonl";
  std::ifstream in(path);
  if (!in && required) throw std::runtime_error(path.string() + ": cannot read the run's metrics");
  std::vector<nlohmann::json> out;
  for (std::string line; std::getline(in, line);) {
    nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_object()) out.push_back(std::move(j));  // else a line cut short by a kill
  }
  return out;
}

void write_training_curves(const std::string& run_dir) {
  const std::filesystem::path dir(run_dir);
  const auto events = read_run_metrics(run_dir, /*required=*/true);
  PlotSeries loss{"loss", {}, {}}, first_iou{"IoU after round 1", {}, {}},
      last_iou{"IoU after the last round", {}, {}}, val{"validation 1-click mIoU", {}, {}},
      ema_val{"validation, weight average", {}, {}};
  val.markers = true;
  ema_val.markers = true;
  for (const auto& j : events) {
    const std::string ev = j.value("event", "");
    if (ev == "train") {
      const double s = j["step"].get<double>();
      loss.x.push_back(s);
      loss.y.push_back(j["loss"].get<double>());
      if (!j.contains("iou_round")) continue;  // an MAE pre-training run: a loss alone
      first_iou.x.push_back(s);
      first_iou.y.push_back(j["iou_round"].front().get<double>());
      last_iou.x.push_back(s);
      last_iou.y.push_back(j["iou_round"].back().get<double>());
    } else if (ev == "val") {
      val.x.push_back(j["step"].get<double>());
      val.y.push_back(j["miou_1click"].get<double>());
      if (j.contains("ema_miou_1click")) {
        ema_val.x.push_back(j["step"].get<double>());
        ema_val.y.push_back(j["ema_miou_1click"].get<double>());
      }
    }
  }
  PlotOptions lp;
  lp.title = "Training loss";
  lp.x_label = "step";
  lp.y_label = "loss (mean over masks and rounds)";
  lp.legend_pos = PlotOptions::LegendPos::kTopRight;
  PlotOptions ip;
  ip.title = "Mask IoU during training";
  ip.x_label = "step";
  ip.y_label = "IoU";
  ip.y_min = 0.0;
  ip.y_max = 1.0;
  std::vector<PlotSeries> ious{first_iou, last_iou};
  if (!val.x.empty()) ious.push_back(val);
  if (!ema_val.x.empty()) ious.push_back(ema_val);
  const bool mae = first_iou.x.empty() && !loss.x.empty();
  if (mae) lp.y_label = "loss (squared error of the hidden patches)";
  data::write_file_atomic((dir / "loss.svg").string(), svg_line_plot({loss}, lp));
  if (!mae) data::write_file_atomic((dir / "iou.svg").string(), svg_line_plot(ious, ip));
}

}  // namespace sam::eval
