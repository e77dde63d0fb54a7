// sam_engine: the three-stage data engine (paper section 4) over a dataset of images.
//   sam_engine --config configs/engine.yaml --stage manual|semi|auto|all [key.sub=value ...]
//   sam_engine --config configs/engine.yaml --dump-config [key.sub=value ...]
//   sam_engine config-docs [--write docs/ENGINE.md]   the key tables, from the schema
// The auto stage shards its images over the ranks of a torchrun job (one process otherwise).
#include <CLI/CLI.hpp>

#include <chrono>
#include <iostream>

#include "engine/data_engine.h"
#include "data/config_schema.h"
#include "engine/engine_config.h"
#include "data/log.h"
#include "tools/tool_common.h"
#include "train/distributed.h"

int main(int argc, char** argv) {
  CLI::App app{"Run SAM's data engine: assisted-manual, semi-automatic and fully automatic stages"};
  sam::tools::add_log_level_option(app);
  std::string config_path, stage, out_dir;
  std::vector<std::string> overrides;
  bool dump = false;
  app.add_option("--config", config_path,
                 "engine configuration (.yaml/.json); defaults when omitted");
  app.add_option("--stage", stage, "manual, semi, auto or all")
      ->check(CLI::IsMember({"manual", "semi", "auto", "all"}));
  app.add_option("--out", out_dir, "output folder (overrides out_dir)");
  app.add_flag("--dump-config", dump, "print the resolved configuration and exit");
  app.add_option("overrides", overrides, "key.sub=value overrides (see docs/ENGINE.md)");
  auto* docs = app.add_subcommand("config-docs", "print every key table of docs/ENGINE.md, from the schema");
  std::string docs_file;
  docs->add_option("--write", docs_file, "rewrite the tables of this Markdown file in place (docs/ENGINE.md)");
  CLI11_PARSE(app, argc, argv);

  return sam::tools::run_main("sam_engine", [&]() {
    if (docs->parsed()) {
      const auto& sections = sam::engine::engine_config_sections();
      if (docs_file.empty()) {
        std::cout << sam::cfg::marked_tables("engine", sections, sam::engine::engine_config_markdown);
        return 0;
      }
      sam::cfg::write_marked_tables(docs_file, "engine", sections, sam::engine::engine_config_markdown);
      sam::log::info("wrote the key tables of " + docs_file);
      return 0;
    }
    if (!out_dir.empty()) overrides.push_back("out_dir=" + out_dir);
    auto cfg = sam::engine::load_engine_config(config_path, overrides);
    if (dump) {
      std::cout << cfg.resolved.dump(2) << "\n";
      return 0;
    }
    if (stage.empty())
      throw std::invalid_argument("--stage is required (manual, semi, auto or all)");
    sam::tools::set_threads(cfg.threads);
    (void)sam::tools::parse_device(cfg.device);
    const auto t0 = std::chrono::steady_clock::now();
    sam::engine::DataEngine engine(cfg, sam::train::dist_env_from_environment());
    const auto summary = engine.run(stage);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::ostringstream line;
    line << "sam_engine: stage " << stage << " done in " << s << " s; outputs in " << cfg.out_dir;
    sam::log::info(line.str());
    (void)summary;
    return 0;
  });
}
