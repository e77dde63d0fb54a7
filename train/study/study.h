#pragma once
// Studies: ablations from config files (issue 23). A study file names a base training config,
// variants (lists of `key.sub=value` overrides, and grids: the product of several keys' values),
// seeds, a budget per run and the evaluations to run after each. `sam_study run` trains and
// evaluates every run of it here, one after another or each as a torchrun job, or writes and
// submits one Slurm batch script per run; `sam_study report` makes one table of them. The runs
// are sam_train and sam_eval processes, so one run's crash is reported and the others go on. Every
// run's config is resolved (and so checked) through the trainer's own schema before anything runs,
// and kept as a file: a row can be rerun exactly. The file format: docs/TRAINING.md, "Studies".
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace sam::study {

/// One evaluation after each run: `sam_eval TASK --dataset DATASET ARGS...`, its result kept as
/// RUN/eval_NAME.json; `metrics` are the result's figures the report shows (paths into its JSON,
/// '/'-separated: "miou_at_k/4" is the 5th entry of miou_at_k).
struct Evaluation {
  std::string name, task, dataset;
  std::vector<std::string> args;
  std::vector<std::string> metrics;
};

struct Variant {
  std::string name;
  std::vector<std::string> overrides;
  nlohmann::json grid = nlohmann::json::object();  ///< key -> list of values: one row per combination
};

struct SlurmOptions {
  int gpus_per_node = 8;              ///< torchrun processes per node (--gpus-per-node)
  int cpus_per_task = 0;              ///< 0: not set in the script
  std::string time = "24:00:00";      ///< the job's time limit
  std::vector<std::string> sbatch;    ///< more #SBATCH options, e.g. "--partition=gpu"
  std::vector<std::string> setup;     ///< shell lines run before srun (module load ..., source ...)
};

struct Launcher {
  std::string kind = "local";  ///< local (one process), torchrun (here) or slurm (sbatch)
  int nproc_per_node = 2;      ///< torchrun here: the processes
  int nodes = 1;               ///< slurm: nodes per run
  int master_port = 29500;     ///< torchrun here: run i uses master_port + i; slurm: + job id % 1000
  std::vector<std::string> torchrun = {"torchrun"};  ///< the torchrun command (e.g. python3 -m torch.distributed.run)
  SlurmOptions slurm;
};

struct Study {
  std::string path;   ///< the study file
  std::string name;
  std::string base;   ///< the base training config (as sam_train --config takes it)
  std::string out;    ///< where the runs, their configs and the report go
  std::vector<std::string> overrides;  ///< applied to every run, before the variant's
  std::vector<uint64_t> seeds = {0};   ///< train.seed of each run of a row
  double budget_minutes = 0;           ///< train.time_limit_min of each run (0: none)
  int64_t budget_steps = 0;            ///< train.iterations of each run (0: the base's)
  std::vector<Variant> variants;
  std::vector<Evaluation> evaluations;
  Launcher launcher;
  nlohmann::json doc;                  ///< the file as read, ${VAR} expanded
};

/// One training run of a study: a row (a variant at one grid point) and a seed.
struct Run {
  std::string row;      ///< variant name, then the grid point: "rounds_prompt.rounds=3"
  std::string variant;
  uint64_t seed = 0;
  std::string id;       ///< row/seedS: its folder under out/runs
  std::vector<std::string> overrides;  ///< every override of the run, in the order applied
  std::string dir;      ///< out/runs/ROW/seedS (the run's train.run_dir)
  std::string config;   ///< out/configs/ROW_seedS.json: the resolved config it trains with
  std::string model;    ///< out/configs/ROW.model.json: its architecture, for sam_eval --model
  nlohmann::json resolved;
};

/// Reads a study file (YAML or JSON). Strings may hold ${VAR} and ${VAR:-default} (the
/// environment). Throws std::invalid_argument naming the file and the key on anything malformed
/// or unknown.
Study load_study(const std::string& path);

/// Every run of `study` in order (variants, their grid points, seeds), each config resolved through
/// the trainer's schema: a bad key or value in any variant throws (naming the variant) before
/// anything runs.
std::vector<Run> plan_runs(const Study& study);

/// What a run has done, from its folder: trained (metrics.jsonl ends with the trainer's "end"
/// event and model.pth exists), started (a checkpoint or metrics exist), and which evaluations
/// have their results.
struct RunStatus {
  bool started = false, trained = false;
  std::vector<bool> evaluated;
  double trained_s = 0;  ///< training time of its attempts so far (each attempt's last elapsed_s)
  bool done() const;
};
RunStatus run_status(const Study& study, const Run& run);

struct RunOptions {
  std::string only;      ///< glob over run ids ("rounds*", "*/seed0"); "" = all
  std::string launcher;  ///< overrides the study's launcher.kind
  bool dry_run = false;  ///< print what would run (the Slurm scripts in full) and run nothing
  std::string bin_dir;   ///< where sam_train and sam_eval are ("" = beside this program)
};

/// Writes the study's configs (out/configs), then runs what is not done: a finished run is not
/// rerun, a started one resumes from its checkpoint, a failed one is reported and the next one
/// goes on. Slurm: writes out/slurm/ROW_seedS.sbatch per unfinished run and submits it with
/// sbatch (not under dry_run). Returns the number of runs that failed.
int run_study(const Study& study, const RunOptions& opt);

/// The Slurm batch script of one run: torchrun on every node through srun (MASTER_ADDR the first
/// host of SLURM_JOB_NODELIST, MASTER_PORT launcher.master_port + SLURM_JOB_ID % 1000, each node's
/// rank its SLURM_NODEID), then the evaluations not done yet. `minutes_left`: the budget still to
/// train (< 0: none).
std::string slurm_script(const Study& study, const Run& run, const std::string& bin_dir, double minutes_left);

/// Writes out/report.md, out/report.csv and out/curves_METRIC.svg: one row per variant and grid
/// point with the settings that differ from the base, the training figures (steps, images/s,
/// final loss) and every evaluation figure as the mean and spread over the seeds that finished.
/// Returns the Markdown.
std::string write_report(const Study& study);

/// ${VAR} and ${VAR:-default} of `s` replaced from the environment (an unset VAR without a
/// default throws naming `where`).
std::string expand_env(const std::string& s, const std::string& where);

}  // namespace sam::study
