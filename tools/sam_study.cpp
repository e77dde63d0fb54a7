// sam_study: ablations from config files (train/study/study.h; docs/TRAINING.md, "Studies").
//   sam_study run STUDY.yaml [--only GLOB] [--launcher local|torchrun|slurm] [--dry-run] [--bin DIR]
//   sam_study status STUDY.yaml       each run's state (done, trained, started at step N, not started)
//   sam_study report STUDY.yaml       OUT/report.md, report.csv, curves_*.svg
#include <CLI/CLI.hpp>

#include <iostream>

#include "data/log.h"
#include "tools/tool_common.h"
#include "train/study/study.h"

int main(int argc, char** argv) {
  CLI::App app{"Run and report studies: variants of a training config, over seeds, with evaluations"};
  sam::tools::add_log_level_option(app);
  app.require_subcommand(1);
  std::string path;
  sam::study::RunOptions ro;
  auto* run = app.add_subcommand("run", "train and evaluate every run not done yet (a started one resumes)");
  run->add_option("study", path, "study file (.yaml/.json)")->required();
  run->add_option("--only", ro.only, "only the runs whose id (ROW/seedS) matches this glob");
  run->add_option("--launcher", ro.launcher, "local, torchrun or slurm (default: the study's launcher.kind)");
  run->add_flag("--dry-run", ro.dry_run, "print the commands (Slurm: the batch scripts) and run nothing");
  run->add_option("--bin", ro.bin_dir, "folder of sam_train and sam_eval (default: beside sam_study)");
  auto* status = app.add_subcommand("status", "each run's state");
  status->add_option("study", path, "study file (.yaml/.json)")->required();
  auto* report = app.add_subcommand("report", "the study's table (Markdown, CSV) and curves, in its out folder");
  report->add_option("study", path, "study file (.yaml/.json)")->required();
  CLI11_PARSE(app, argc, argv);

  return sam::tools::run_main("sam_study", [&]() {
    const auto study = sam::study::load_study(path);
    if (run->parsed()) return sam::study::run_study(study, ro) == 0 ? 0 : 1;
    if (status->parsed()) {
      for (const auto& r : sam::study::plan_runs(study)) {
        const auto st = sam::study::run_status(study, r);
        std::string state = st.done() ? "done" : st.trained ? "trained, evaluations missing"
                                      : st.started      ? "started (" + std::to_string(int(st.trained_s)) + " s trained)"
                                                        : "not started";
        std::cout << r.id << "\t" << state << "\t" << r.dir << "\n";
      }
      return 0;
    }
    std::cout << sam::study::write_report(study);
    sam::log::info("wrote " + study.out + "/report.md and report.csv");
    return 0;
  });
}
