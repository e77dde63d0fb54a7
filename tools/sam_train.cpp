// sam_train: SAM's interactive training (paper appendix A), single process or under torchrun.
//   sam_train --config configs/vit_b.yaml [--run-dir DIR] [key.sub=value ...] [--dump-config]
//   sam_train export RUN_DIR OUT.pth [--raw] [--adapters]
//   sam_train config-docs [--write docs/CONFIG.md]   the key tables, from the schema
//   sam_train reconstruct RUN_DIR IMAGE... --out OUT.png [--seed N] [--raw]   an MAE run's reconstructions
#include <CLI/CLI.hpp>

#include <iostream>

#include <opencv2/imgproc.hpp>

#include "data/config_file.h"
#include "data/codec.h"
#include "data/config_schema.h"
#include "eval/report/training_curves.h"
#include "train/mae_view.h"
#include "train/trainer.h"
#include "data/log.h"
#include "tools/tool_common.h"

int main(int argc, char** argv) {
  CLI::App app{"Train SAM with simulated interactive prompting"};
  sam::tools::add_log_level_option(app);
  app.require_subcommand(0, 1);
  std::string config_path, run_dir;
  std::vector<std::string> overrides;
  bool dump = false;
  app.add_option("--config", config_path, "run configuration (.yaml/.json); defaults when omitted");
  app.add_option("--run-dir", run_dir, "run directory (overrides run_dir)");
  app.add_flag("--dump-config", dump, "print the resolved configuration and exit");
  app.add_option("overrides", overrides, "key.sub=value overrides");
  auto* exp = app.add_subcommand("export", "write a run's weights as an official-format .pth");
  std::string exp_dir, exp_out;
  exp->add_option("run_dir", exp_dir, "run directory")->required();
  exp->add_option("out", exp_out, "output .pth")->required();
  bool exp_raw = false;
  exp->add_flag("--raw", exp_raw, "the optimiser's own weights instead of the weight average (train.ema_decay)");
  bool exp_adapters = false;
  exp->add_flag("--adapters", exp_adapters,
                "a LoRA run's adapters alone (small; init.adapters adds them onto a base) instead of the merged "
                "weights");
  auto* docs = app.add_subcommand("config-docs", "print every key table of docs/CONFIG.md, from the schema");
  std::string docs_file;
  docs->add_option("--write", docs_file, "rewrite the tables of this Markdown file in place (docs/CONFIG.md)");
  auto* rec = app.add_subcommand("reconstruct",
                                 "an MAE pre-training run's reconstructions: per image the input, the patches the "
                                 "encoder saw, the reconstruction, and it with the visible patches pasted back");
  std::string rec_dir, rec_out;
  std::vector<std::string> rec_images;
  sam::train::MaeViewOptions rec_opt;
  rec->add_option("run_dir", rec_dir, "an MAE run directory (train.objective mae)")->required();
  rec->add_option("images", rec_images, "images (each centre-cropped to a square)")->required();
  rec->add_option("--out", rec_out, "output .png or .jpg")->required();
  rec->add_option("--seed", rec_opt.seed, "seed of the masking (image i draws from (seed, i))");
  rec->add_flag("--raw", rec_opt.raw, "the optimiser's weights instead of the weight average");
  CLI11_PARSE(app, argc, argv);

  return sam::tools::run_main("sam_train", [&]() {
    if (exp->parsed()) {
      sam::train::export_run(exp_dir, exp_out, exp_raw, exp_adapters);
      sam::log::info("exported " + exp_dir + " -> " + exp_out);
      return 0;
    }
    if (rec->parsed()) {
      cv::Mat rgb = sam::train::mae_reconstructions(rec_dir, rec_images, rec_opt), bgr;
      cv::cvtColor(rgb, bgr, cv::COLOR_RGB2BGR);
      sam::data::image_write(rec_out, bgr);
      sam::log::info("wrote " + rec_out + " (" + std::to_string(rec_images.size()) + " images)");
      return 0;
    }
    if (docs->parsed()) {
      const auto& sections = sam::train::train_config_sections();
      if (docs_file.empty()) {
        std::cout << sam::cfg::marked_tables("train", sections, sam::train::train_config_markdown);
        return 0;
      }
      sam::cfg::write_marked_tables(docs_file, "train", sections, sam::train::train_config_markdown);
      sam::log::info("wrote the key tables of " + docs_file);
      return 0;
    }
    if (!run_dir.empty()) overrides.push_back("run_dir=" + run_dir);
    auto cfg = sam::train::load_train_config(config_path, overrides);
    if (dump) {
      std::cout << cfg.resolved.dump(2) << "\n";
      return 0;
    }
    const auto env = sam::train::dist_env_from_environment();
    sam::train::Trainer trainer(cfg, env);
    const int rc = trainer.run();
    if (rc == 0 && env.rank == 0) sam::eval::write_training_curves(cfg.run_dir);
    return rc;
  });
}
