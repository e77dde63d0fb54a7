// A study's report: one table of its rows (settings that differ from the base, training and
// evaluation figures over the seeds), as Markdown and CSV, and one plot per training curve.
#include <algorithm>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <map>
#include <sstream>

#include "data/atomic_file.h"
#include "data/config_file.h"
#include "eval/report/plot.h"
#include "eval/report/training_curves.h"
#include "train/study/study.h"
#include "train/study/study_internal.h"
#include "train/train_config.h"

namespace fs = std::filesystem;

namespace sam::study {
namespace {

// A value at a '/'-separated path of a JSON document ("miou_at_k/4", "stats/AP"); NaN when absent
// or not a number.
double at_path(const nlohmann::json& doc, const std::string& path) {
  const nlohmann::json* j = &doc;
  std::stringstream in(path);
  for (std::string part; std::getline(in, part, '/');) {
    if (j->is_object() && j->contains(part)) {
      j = &(*j)[part];
    } else if (j->is_array() && !part.empty() && std::all_of(part.begin(), part.end(), ::isdigit) &&
               std::stoul(part) < j->size()) {
      j = &(*j)[std::stoul(part)];
    } else {
      return std::nan("");
    }
  }
  return j->is_number() ? j->get<double>() : std::nan("");
}

std::string num(double v) {
  if (!std::isfinite(v)) return "";
  std::ostringstream o;
  const double a = std::fabs(v);
  if (v == std::round(v) && a < 1e9) return std::to_string(static_cast<int64_t>(v));  // steps, counts
  o << std::fixed << std::setprecision(a >= 1000 ? 0 : a >= 10 ? 1 : a >= 1 ? 2 : 3) << v;
  return o.str();
}

// Full precision, for the CSV (a file other programs read).
std::string exact(double v) {
  if (!std::isfinite(v)) return "";
  std::ostringstream o;
  o << std::setprecision(12) << v;
  return o.str();
}

std::string setting_text(const nlohmann::json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); }

// The curves a run's metrics hold: step -> value per curve (the last attempt's value where a
// resumed run logged a step twice).
std::map<std::string, std::map<int64_t, double>> curves_of(const std::vector<nlohmann::json>& events) {
  std::map<std::string, std::map<int64_t, double>> c;
  for (const auto& m : events) {
    const std::string ev = m.value("event", "");
    if (!m.contains("step")) continue;
    const int64_t step = m["step"].get<int64_t>();
    if (ev == "train") {
      if (m.contains("loss") && m["loss"].is_number()) c["loss"][step] = m["loss"].get<double>();
      if (m.contains("iou_round") && m["iou_round"].is_array() && !m["iou_round"].empty() && m["iou_round"].back().is_number())
        c["iou_last_round"][step] = m["iou_round"].back().get<double>();
    } else if (ev == "val" && m.contains("miou_1click") && m["miou_1click"].is_number()) {
      c["val_miou_1click"][step] = m["miou_1click"].get<double>();
    }
  }
  return c;
}

struct Stat {
  double mean = std::nan(""), sd = std::nan("");
  int n = 0;
};

Stat stat_of(const std::vector<double>& xs) {
  Stat s;
  std::vector<double> v;
  for (double x : xs)
    if (std::isfinite(x)) v.push_back(x);
  s.n = static_cast<int>(v.size());
  if (v.empty()) return s;
  double sum = 0;
  for (double x : v) sum += x;
  s.mean = sum / v.size();
  if (v.size() > 1) {
    double ss = 0;
    for (double x : v) ss += (x - s.mean) * (x - s.mean);
    s.sd = std::sqrt(ss / (v.size() - 1));
  }
  return s;
}

std::string csv_cell(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

// The last line of a process's output that names an error ("sam_train: error: ..."), or "".
std::string last_error_line(const fs::path& log) {
  std::ifstream in(log);
  std::string line, found;
  while (std::getline(in, line))
    if (line.find("error:") != std::string::npos || line.find("terminate called") != std::string::npos) found = line;
  if (found.size() > 400) found = found.substr(0, 400) + "...";
  std::replace(found.begin(), found.end(), '`', '\'');  // it goes between backquotes
  return found;
}

std::string md_cell(std::string s) {
  for (size_t p = 0; (p = s.find('|', p)) != std::string::npos; p += 2) s.replace(p, 1, "\\|");
  return s;
}

}  // namespace

std::string write_report(const Study& s) {
  const auto runs = plan_runs(s);
  const auto base_flat = cfg::flatten(train::load_train_config(s.base, base_overrides(s)).resolved);
  const fs::path out(s.out);

  // Rows in plan order, each with its runs.
  std::vector<std::string> rows;
  std::map<std::string, std::vector<const Run*>> of_row;
  for (const auto& r : runs) {
    if (!of_row.count(r.row)) rows.push_back(r.row);
    of_row[r.row].push_back(&r);
  }
  // The settings that differ from the base (the seed and folder aside), in first-seen order.
  std::vector<std::string> keys;
  std::map<std::string, std::map<std::string, std::string>> setting;  // row -> key -> value
  for (const auto& row : rows) {
    const auto flat = cfg::flatten(of_row[row].front()->resolved);
    for (auto it = flat.begin(); it != flat.end(); ++it) {
      if (it.key() == "run_dir" || it.key() == "train.seed") continue;
      if (base_flat.contains(it.key()) && base_flat[it.key()] == it.value()) continue;
      if (std::find(keys.begin(), keys.end(), it.key()) == keys.end()) keys.push_back(it.key());
      setting[row][it.key()] = setting_text(it.value());
    }
  }
  // The figures: training (from metrics.jsonl) and every evaluation's metrics, per run.
  std::vector<std::string> figures = {"steps", "images/s", "final loss"};
  for (const auto& e : s.evaluations)
    for (const auto& m : e.metrics) figures.push_back(e.name + " " + m);
  std::map<std::string, std::vector<std::vector<double>>> values;  // row -> figure -> per finished run
  std::map<std::string, int> finished;
  std::vector<std::string> unfinished;  // a line per run without all its results, and why
  std::map<std::string, std::map<std::string, std::vector<std::map<int64_t, double>>>> curves;  // metric -> row -> runs
  for (const auto& row : rows) {
    values[row].assign(figures.size(), {});
    for (const Run* r : of_row[row]) {
      const auto events = eval::read_run_metrics(r->dir);
      for (auto& [metric, points] : curves_of(events)) curves[metric][row].push_back(points);
      const RunStatus st = run_status(s, *r, events);
      if (!st.done()) {
        std::string what, error;
        const fs::path train_log = fs::path(r->dir) / "study.log";
        if (!st.trained && !st.started && !fs::exists(train_log)) {
          what = "not run yet";
        } else if (!st.trained) {
          what = fs::exists(fs::path(r->dir) / "checkpoint.pth")
                     ? "not trained: failed or killed after a checkpoint (`sam_study run` resumes from it)"
                     : "not trained: failed or killed before its first checkpoint";
          error = last_error_line(train_log);
        } else {
          what = "trained; evaluation missing:";
          for (size_t k = 0; k < s.evaluations.size(); ++k)
            if (!st.evaluated[k]) {
              what += " " + s.evaluations[k].name;
              if (error.empty()) error = last_error_line(fs::path(r->dir) / ("eval_" + s.evaluations[k].name + ".log"));
            }
        }
        unfinished.push_back("- `" + r->id + "`: " + what + (error.empty() ? "" : "; its error: `" + error + "`"));
      }
      if (!st.trained) continue;
      finished[row]++;
      std::map<int64_t, const nlohmann::json*> train;
      for (const auto& m : events)
        if (m.value("event", "") == "train" && m.contains("step")) train[m["step"].get<int64_t>()] = &m;
      double steps = std::nan(""), ips = std::nan(""), loss = std::nan("");
      for (const auto& m : events)
        if (m.value("event", "") == "end") steps = m.value("step", 0.0);
      if (!train.empty()) {
        // images/s: the logging windows after the first (its steps hold the start-up).
        double sum = 0;
        int n = 0;
        for (auto it = std::next(train.begin(), train.size() > 1 ? 1 : 0); it != train.end(); ++it)
          if (it->second->contains("images_per_s")) sum += (*it->second)["images_per_s"].get<double>(), ++n;
        if (n > 0) ips = sum / n;
        loss = train.rbegin()->second->value("loss", std::nan(""));
      }
      values[row][0].push_back(steps);
      values[row][1].push_back(ips);
      values[row][2].push_back(loss);
      size_t f = 3;
      for (size_t k = 0; k < s.evaluations.size(); ++k) {
        const auto& e = s.evaluations[k];
        nlohmann::json result;
        if (st.evaluated[k]) {
          std::ifstream in(fs::path(r->dir) / ("eval_" + e.name + ".json"));
          try {
            result = nlohmann::json::parse(in);
          } catch (const nlohmann::json::exception&) {
          }
        }
        for (const auto& m : e.metrics) values[row][f++].push_back(result.is_null() ? std::nan("") : at_path(result, m));
      }
    }
  }

  // Markdown.
  const std::time_t now = std::time(nullptr);
  char when[32];
  std::strftime(when, sizeof when, "%Y-%m-%d %H:%M UTC", std::gmtime(&now));
  std::ostringstream md;
  md << "# Study " << s.name << "\n\n"
     << "From " << s.path << " (" << when << "): base " << s.base << ", seeds";
  for (auto seed : s.seeds) md << " " << seed;
  if (s.budget_steps > 0) md << ", " << s.budget_steps << " steps";
  if (s.budget_minutes > 0) md << ", " << num(s.budget_minutes) << " minutes";
  md << " per run";
  if (!s.overrides.empty()) {
    md << "; every run:";
    for (const auto& o : s.overrides) md << " `" << o << "`";
  }
  md << ".\nEach figure is the mean over the seeds whose run finished, ± their standard deviation "
        "(n: finished runs of the row); the runs' resolved configs are in "
     << (out / "configs").string() << "/ (ROW_seedS.json: `sam_train --config` reruns it).\n\n";
  md << "| row | n |";
  for (const auto& k : keys) md << " " << md_cell(k) << " |";
  for (const auto& f : figures) md << " " << md_cell(f) << " |";
  md << "\n|---|---|";
  for (size_t i = 0; i < keys.size() + figures.size(); ++i) md << "---|";
  md << "\n";
  std::ostringstream csv;
  csv << "row,n";
  for (const auto& k : keys) csv << "," << csv_cell(k);
  for (const auto& f : figures) csv << "," << csv_cell(f + " mean") << "," << csv_cell(f + " sd");
  csv << "\n";
  for (const auto& row : rows) {
    const int n = finished[row];
    md << "| " << md_cell(row) << " | " << n << "/" << of_row[row].size() << " |";
    csv << csv_cell(row) << "," << n;
    for (const auto& k : keys) {
      const std::string v = setting[row].count(k) ? setting[row][k] : "(base)";
      md << " " << md_cell(v) << " |";
      csv << "," << csv_cell(v);
    }
    for (size_t f = 0; f < figures.size(); ++f) {
      const Stat st = stat_of(values[row][f]);
      std::string cell = num(st.mean);
      if (std::isfinite(st.sd)) cell += " ± " + num(st.sd);
      if (st.n > 0 && st.n < n) cell += " (n=" + std::to_string(st.n) + ")";
      md << " " << (cell.empty() ? "-" : cell) << " |";
      csv << "," << exact(st.mean) << "," << exact(st.sd);
    }
    md << "\n";
    csv << "\n";
  }

  if (!unfinished.empty()) {
    md << "\nRuns without all their results (not in the figures above):\n";
    for (const auto& u : unfinished) md << u << "\n";
  }

  // Curves: one plot per metric, a line per row (the mean over its runs at the steps all of them
  // logged).
  md << "\n";
  for (const auto& [metric, by_row] : curves) {
    std::vector<eval::PlotSeries> series;
    for (const auto& row : rows) {
      auto it = by_row.find(row);
      if (it == by_row.end() || it->second.empty()) continue;
      eval::PlotSeries p;
      p.name = row;
      for (const auto& [step, v] : it->second.front()) {
        double sum = 0;
        bool all = true;
        for (const auto& run : it->second) {
          auto f = run.find(step);
          if (f == run.end()) {
            all = false;
            break;
          }
          sum += f->second;
        }
        if (!all) continue;
        p.x.push_back(static_cast<double>(step));
        p.y.push_back(sum / it->second.size());
      }
      if (!p.x.empty()) series.push_back(std::move(p));
    }
    if (series.empty()) continue;
    eval::PlotOptions po;
    po.title = s.name + ": " + metric + " (mean over seeds)";
    po.x_label = "step";
    po.y_label = metric;
    const std::string file = "curves_" + metric + ".svg";
    data::write_file_atomic((out / file).string(), eval::svg_line_plot(series, po));
    md << "![" << metric << "](" << file << ")\n";
  }
  data::write_file_atomic((out / "report.md").string(), md.str());
  data::write_file_atomic((out / "report.csv").string(), csv.str());
  return md.str();
}

}  // namespace sam::study
