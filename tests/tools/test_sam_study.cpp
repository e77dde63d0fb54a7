// sam_study end to end on a small synthetic SA-1B folder with the tiny architecture: a 2-variant x
// 2-seed study run in parts, its training killed in the middle and resumed, finished runs left
// alone, and the report's table against the runs' own metrics and evaluation results; the plan
// (grids, names, config errors before anything runs); a run under torchrun; the Slurm batch script
// executed with stand-ins for sbatch, scontrol, srun and torchrun.
#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <fstream>
#include <map>
#include <sstream>

#include <nlohmann/json.hpp>

#include "test_util.h"

namespace fs = std::filesystem;

namespace {

const std::string& synth_dir() {
  static const std::string dir =
      sam_test::synth_sa1b("study_synth", "--images 6 --seed 3 --size 160x120 --min-objects 2 --max-objects 4");
  return dir;
}

std::string sam_study() { return (sam_test::bin_dir() / "sam_study").string(); }

// The common part of the test studies: the tiny model on the synthetic folder, small and fast,
// a checkpoint every 2 steps, 4 steps a run.
std::string study_head(const fs::path& out) {
  return "base: " + (sam_test::source_dir() / "configs" / "tiny.yaml").string() + "\nout: " + out.string() +
         "\nbudget: {steps: 4}\n"
         "overrides: ['data.train=[sa1b:" + synth_dir() + "]', 'data.val=\"\"', data.max_masks=4, data.workers=1,\n"
         "            train.batch_size=2, data.min_mask_area_frac=0.01, prompt.rounds=2, prompt.mask_only_rounds=1,\n"
         "            train.log_every=1, train.val_every=0, train.threads=1, optim.warmup_iters=2, train.ckpt_every=2,\n"
         "            train.tensorboard=false]\n";
}

std::string eval_block() {
  return "evaluations:\n"
         "  - {name: syn, task: points, dataset: 'sa1b:" + synth_dir() +
         "', args: [--max-samples, '3', --clicks, '3', --threads, '1']}\n";
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<nlohmann::json> events(const fs::path& run_dir, const std::string& ev) {
  std::vector<nlohmann::json> out;
  std::ifstream in(run_dir / "metrics.jsonl");
  for (std::string line; std::getline(in, line);) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_object() && j.value("event", "") == ev) out.push_back(j);
  }
  return out;
}

// report.csv as row -> column -> cell.
std::map<std::string, std::map<std::string, std::string>> read_csv(const fs::path& p) {
  std::ifstream in(p);
  std::string line;
  std::getline(in, line);
  auto split = [](const std::string& l) {
    std::vector<std::string> cells;
    std::string cell;
    bool quoted = false;
    for (char c : l) {
      if (c == '"') quoted = !quoted;
      else if (c == ',' && !quoted) cells.push_back(cell), cell.clear();
      else cell += c;
    }
    cells.push_back(cell);
    return cells;
  };
  const auto header = split(line);
  std::map<std::string, std::map<std::string, std::string>> out;
  while (std::getline(in, line)) {
    const auto cells = split(line);
    REQUIRE(cells.size() == header.size());
    for (size_t i = 0; i < cells.size(); ++i) out[cells[0]][header[i]] = cells[i];
  }
  return out;
}

void make_executable(const fs::path& p, const std::string& text) {
  sam_test::write_text(p, text);
  ::chmod(p.c_str(), 0755);
}

}  // namespace

TEST_CASE("a 2-variant x 2-seed study: killed runs resume, finished ones are not rerun, the report is the runs' figures") {
  const auto tmp = sam_test::temp_dir("study_e2e");
  const auto out = tmp / "out";
  const std::string study = sam_test::write_text(
      tmp / "study.yaml", "name: e2e\n" + study_head(out) + "seeds: [0, 1]\nvariants:\n  - name: base\n"
                          "  - name: lr\n    grid: {optim.lr: [0.00123]}\n" + eval_block());
  const std::string cmd = sam_study() + " run " + study;
  std::string log;

  // 1. The base row alone (--only): both seeds trained and evaluated.
  REQUIRE(sam_test::run_command(cmd + " --only 'base/*'", &log) == 0);
  INFO(log);
  for (const char* s : {"seed0", "seed1"}) {
    CHECK(fs::exists(out / "runs" / "base" / s / "model.pth"));
    CHECK(fs::exists(out / "runs" / "base" / s / "eval_syn.json"));
    CHECK(fs::exists(out / "configs" / (std::string("base_") + s + ".json")));
  }
  CHECK_FALSE(fs::exists(out / "runs" / "lr_optim.lr=0.00123"));
  const std::string base_metrics = slurp(out / "runs" / "base" / "seed0" / "metrics.jsonl");

  // 2. Every lr run killed at step 3 (its checkpoint is step 2's): each failure is reported and the
  // next run still goes; the study exits non-zero. The base runs are done and not touched.
  REQUIRE(sam_test::run_command("SAM_TRAIN_KILL_AT=step:3 " + cmd, &log) != 0);
  INFO(log);
  CHECK(log.find("4 run(s), 2 done, 2 to run") != std::string::npos);
  CHECK(log.find("lr_optim.lr=0.00123/seed0: training failed") != std::string::npos);
  CHECK(log.find("lr_optim.lr=0.00123/seed1: training failed") != std::string::npos);
  CHECK(log.find("2 failed") != std::string::npos);
  const auto lr0 = out / "runs" / "lr_optim.lr=0.00123" / "seed0";
  CHECK(fs::exists(lr0 / "checkpoint.pth"));
  CHECK_FALSE(fs::exists(lr0 / "model.pth"));
  REQUIRE(sam_test::run_command(sam_study() + " status " + study, &log) == 0);
  CHECK(log.find("lr_optim.lr=0.00123/seed1\tstarted") != std::string::npos);
  CHECK(log.find("base/seed1\tdone") != std::string::npos);
  // A report now names the killed runs, outside its figures.
  REQUIRE(sam_test::run_command(sam_study() + " report " + study, &log) == 0);
  {
    const std::string md = slurp(out / "report.md");
    CHECK(md.find("| lr_optim.lr=0.00123 | 0/2 |") != std::string::npos);
    CHECK(md.find("- `lr_optim.lr=0.00123/seed1`: not trained: failed or killed after a checkpoint") != std::string::npos);
    CHECK(md.find("- `base/seed0`") == std::string::npos);
  }

  // 3. Run again: the killed runs resume from step 2 and finish; the base runs are not rerun.
  REQUIRE(sam_test::run_command(cmd, &log) == 0);
  CHECK(log.find("lr_optim.lr=0.00123/seed0: resuming from its checkpoint") != std::string::npos);
  CHECK(log.find("base/seed0: ") == std::string::npos);
  CHECK(slurp(out / "runs" / "base" / "seed0" / "metrics.jsonl") == base_metrics);
  const auto lr_train = events(lr0, "train");
  REQUIRE(!lr_train.empty());
  CHECK(lr_train.back()["step"] == 4);
  CHECK(slurp(lr0 / "train.log").find("resume: ") != std::string::npos);
  // The resolved config the run trained with is the study's file for it, with the variant's rate.
  const auto cfg = nlohmann::json::parse(slurp(out / "configs" / "lr_optim.lr=0.00123_seed0.json"));
  CHECK(cfg["optim"]["lr"].get<double>() == Approx(0.00123));
  CHECK(cfg["train"]["seed"] == 0);
  CHECK(cfg["train"]["iterations"] == 4);
  REQUIRE(sam_test::run_command(cmd, &log) == 0);
  CHECK(log.find("4 run(s), 4 done, 0 to run") != std::string::npos);

  // 4. The report: each row's figures are the mean and spread of its runs' own numbers.
  REQUIRE(sam_test::run_command(sam_study() + " report " + study, &log) == 0);
  const auto csv = read_csv(out / "report.csv");
  REQUIRE(csv.count("base"));
  REQUIRE(csv.count("lr_optim.lr=0.00123"));
  CHECK(csv.at("base").at("optim.lr") == "(base)");
  CHECK(std::stod(csv.at("lr_optim.lr=0.00123").at("optim.lr")) == Approx(0.00123));
  for (const std::string& row : std::vector<std::string>{"base", "lr_optim.lr=0.00123"}) {
    INFO(row);
    CHECK(csv.at(row).at("n") == "2");
    std::vector<double> loss, miou;
    for (const char* s : {"seed0", "seed1"}) {
      const auto dir = out / "runs" / row / s;
      loss.push_back(events(dir, "train").back()["loss"].get<double>());
      miou.push_back(nlohmann::json::parse(slurp(dir / "eval_syn.json"))["miou_1click"].get<double>());
    }
    const double lm = (loss[0] + loss[1]) / 2, mm = (miou[0] + miou[1]) / 2;
    const double msd = std::fabs(miou[0] - miou[1]) / std::sqrt(2.0);  // the sample sd of two values
    CHECK(std::stod(csv.at(row).at("steps mean")) == 4);
    CHECK(std::stod(csv.at(row).at("final loss mean")) == Approx(lm).epsilon(1e-9));
    CHECK(std::stod(csv.at(row).at("syn miou_1click mean")) == Approx(mm).epsilon(1e-9));
    CHECK(std::stod(csv.at(row).at("syn miou_1click sd")) == Approx(msd).margin(1e-9));
    CHECK(std::stod(csv.at(row).at("images/s mean")) > 0);
  }
  // The two seeds differ (the seed reaches the run): their losses are not the same.
  CHECK(events(out / "runs" / "base" / "seed0", "train").back()["loss"] !=
        events(out / "runs" / "base" / "seed1", "train").back()["loss"]);
  const std::string md = slurp(out / "report.md");
  CHECK(md.find("| lr_optim.lr=0.00123 | 2/2 |") != std::string::npos);
  CHECK(md.find("![loss](curves_loss.svg)") != std::string::npos);
  CHECK(slurp(out / "curves_loss.svg").find("<svg") != std::string::npos);
}

TEST_CASE("a run that fails is in the report with its error, and the other runs go on") {
  const auto tmp = sam_test::temp_dir("study_failed");
  const auto out = tmp / "out";
  const std::string study = sam_test::write_text(
      tmp / "study.yaml", "name: failing\n" + study_head(out) + "seeds: [0]\nvariants:\n"
                          "  - name: nodata\n    overrides: ['data.train=[sa1b:" + (tmp / "missing").string() + "]']\n"
                          "  - name: base\n");
  std::string log;
  REQUIRE(sam_test::run_command(sam_study() + " run " + study, &log) == 1);
  INFO(log);
  CHECK(log.find("nodata/seed0: training failed") != std::string::npos);
  CHECK(fs::exists(out / "runs" / "base" / "seed0" / "model.pth"));
  REQUIRE(sam_test::run_command(sam_study() + " report " + study, &log) == 0);
  const std::string md = slurp(out / "report.md");
  CHECK(md.find("| nodata | 0/1 |") != std::string::npos);
  CHECK(md.find("| base | 1/1 |") != std::string::npos);
  // The run's line names what stopped it: sam_train's error, which names the folder.
  const auto at = md.find("- `nodata/seed0`: not trained: failed or killed before its first checkpoint; its error: `");
  REQUIRE(at != std::string::npos);
  const std::string line = md.substr(at, md.find('\n', at) - at);
  CHECK(line.find("error:") != std::string::npos);
  CHECK(line.find((tmp / "missing").string()) != std::string::npos);
}

TEST_CASE("a study's plan: grids are products, names and config errors are checked before anything runs") {
  const auto tmp = sam_test::temp_dir("study_plan");
  const auto out = tmp / "out";
  const std::string study = sam_test::write_text(
      tmp / "grid.yaml", "name: grid\n" + study_head(out) + "seeds: [7]\nvariants:\n"
                         "  - name: g\n    grid: {prompt.rounds: [2, 3], optim.lr: [0.001, 0.002]}\n"
                         "    overrides: [prompt.prob_box=0]\n");
  std::string log;
  REQUIRE(sam_test::run_command(sam_study() + " status " + study, &log) == 0);
  INFO(log);
  for (const char* row : {"g_optim.lr=0.001_prompt.rounds=2", "g_optim.lr=0.001_prompt.rounds=3",
                          "g_optim.lr=0.002_prompt.rounds=2", "g_optim.lr=0.002_prompt.rounds=3"})
    CHECK(log.find(std::string(row) + "/seed7\tnot started") != std::string::npos);
  // The dry run prints each run's command and trains nothing.
  REQUIRE(sam_test::run_command(sam_study() + " run " + study + " --dry-run", &log) == 0);
  CHECK(log.find("sam_train --config " + (out / "configs" / "g_optim.lr=0.002_prompt.rounds=3_seed7.json").string()) !=
        std::string::npos);
  CHECK_FALSE(fs::exists(out / "runs"));

  // A bad key in a variant: the error names the run and the key; nothing is written.
  const std::string bad = sam_test::write_text(
      tmp / "bad.yaml", "name: bad\n" + study_head(tmp / "bad_out") +
                        "variants:\n  - name: ok\n  - name: typo\n    overrides: [prompt.roundz=3]\n");
  CHECK(sam_test::run_command(sam_study() + " run " + bad, &log) != 0);
  CHECK(log.find("typo/seed0") != std::string::npos);
  CHECK(log.find("roundz") != std::string::npos);
  CHECK_FALSE(fs::exists(tmp / "bad_out"));
  // Unknown study keys, an unset variable, a variant without a name.
  const std::string unknown = sam_test::write_text(tmp / "u.yaml", "base: configs/tiny.yaml\nvariantz: []\n");
  CHECK(sam_test::run_command("cd " + sam_test::source_dir().string() + " && " + sam_study() + " status " + unknown, &log) != 0);
  CHECK(log.find("variantz") != std::string::npos);
  const std::string unset = sam_test::write_text(
      tmp / "v.yaml", "base: configs/tiny.yaml\nout: ${SAM_STUDY_TEST_UNSET}\nvariants: [{name: a}]\n");
  CHECK(sam_test::run_command("cd " + sam_test::source_dir().string() + " && " + sam_study() + " status " + unset, &log) != 0);
  CHECK(log.find("SAM_STUDY_TEST_UNSET is not set") != std::string::npos);

  // A changed study does not mix with the runs of the old one: the kept config is compared.
  const std::string first = sam_test::write_text(tmp / "c.yaml", "name: c\n" + study_head(tmp / "c_out") +
                                                                      "variants: [{name: a}]\n");
  REQUIRE(sam_test::run_command(sam_study() + " run " + first + " --only 'nothing*'", &log) != 0);  // no run matches
  CHECK(log.find("no run id matches") != std::string::npos);
  fs::create_directories(tmp / "c_out" / "configs");
  sam_test::write_text(tmp / "c_out" / "configs" / "a_seed0.json", "{\"optim\": {\"lr\": 1}}");
  CHECK(sam_test::run_command(sam_study() + " run " + first, &log) != 0);
  CHECK(log.find("now resolves differently") != std::string::npos);
  CHECK(log.find("optim.lr: 1 before, 0.002 now") != std::string::npos);
  CHECK_FALSE(fs::exists(tmp / "c_out" / "runs"));
}

TEST_CASE("a study run under torchrun: 2 processes train each run") {
  if (!sam_test::have_torchrun()) {
    sam_test::skip("no torchrun in " + sam_test::test_python());
    return;
  }
  const auto tmp = sam_test::temp_dir("study_torchrun");
  const auto out = tmp / "out";
  const int port = 29620 + ::getpid() % 2000;
  const std::string study = sam_test::write_text(
      tmp / "t.yaml", "name: t\n" + study_head(out) + "variants: [{name: a}]\n"
                      "launcher: {kind: torchrun, nproc_per_node: 2, master_port: " + std::to_string(port) +
                      ", torchrun: [" + sam_test::test_python() + ", -m, torch.distributed.run, -r, '1', -t, '1']}\n");
  std::string log;
  REQUIRE(sam_test::run_command("OMP_NUM_THREADS=1 timeout 600 " + sam_study() + " run " + study, &log) == 0);
  INFO(log << slurp(out / "runs" / "a" / "seed0" / "study.log"));
  const auto dir = out / "runs" / "a" / "seed0";
  CHECK(slurp(dir / "train.log").find("2 rank(s)") != std::string::npos);
  REQUIRE(!events(dir, "end").empty());
  CHECK(events(dir, "end").back()["step"] == 4);
}

TEST_CASE("Slurm: the batch script starts torchrun on every node with the node list, the port and each node's rank") {
  const auto tmp = sam_test::temp_dir("study_slurm");
  const auto out = tmp / "out";
  const auto fake = tmp / "fake_bin";
  fs::create_directories(fake);
  // Stand-ins: sbatch runs the script here as a 2-node job 4321 on gpu[07-08]; scontrol expands
  // the node list; srun runs its command once per node with that node's SLURM_NODEID; torchrun
  // records its arguments and, on node 0, runs the program as one process (the run trains).
  make_executable(fake / "sbatch",
                  "#!/bin/bash\nexport SLURM_JOB_ID=4321 SLURM_JOB_NUM_NODES=2 SLURM_JOB_NODELIST='gpu[07-08]'\n"
                  "bash \"$1\" > \"$REC/job.out\" 2>&1 || exit 1\necho \"Submitted batch job 4321\"\n");
  make_executable(fake / "scontrol",
                  "#!/bin/bash\n[ \"$1 $2\" = 'show hostnames' ] && [ \"$3\" = 'gpu[07-08]' ] || exit 2\n"
                  "printf 'gpu07\\ngpu08\\n'\n");
  make_executable(fake / "srun",
                  "#!/bin/bash\nwhile [ \"${1#--}\" != \"$1\" ]; do shift; done\n"
                  "for i in $(seq 0 $((SLURM_JOB_NUM_NODES - 1))); do SLURM_NODEID=$i \"$@\" || exit 1; done\n");
  make_executable(fake / "torchrun",
                  "#!/bin/bash\nnode=''\nfor a in \"$@\"; do case $a in --node_rank=*) node=${a#--node_rank=};; esac; done\n"
                  "printf '%s\\n' \"$@\" > \"$REC/torchrun_$node.txt\"\n"
                  "if [ \"$node\" = 0 ]; then while [ \"$1\" != --no_python ]; do shift; done; shift; exec \"$@\"; fi\n");
  const std::string study = sam_test::write_text(
      tmp / "s.yaml", "name: s\n" + study_head(out) + "variants: [{name: a}]\n" + eval_block() +
                      "launcher:\n  kind: slurm\n  nodes: 2\n  master_port: 31000\n  torchrun: [" + (fake / "torchrun").string() +
                      "]\n  slurm: {gpus_per_node: 4, time: '02:00:00', sbatch: [--partition=gpu], setup: ['export STUDY_SETUP=1']}\n");
  std::string log;
  // The dry run prints the script and submits nothing.
  REQUIRE(sam_test::run_command(sam_study() + " run " + study + " --dry-run", &log) == 0);
  INFO(log);
  for (const char* line : {"#SBATCH --nodes=2", "#SBATCH --ntasks-per-node=1", "#SBATCH --gpus-per-node=4",
                           "#SBATCH --time=02:00:00", "#SBATCH --partition=gpu", "export STUDY_SETUP=1",
                           "export MASTER_ADDR=$(scontrol show hostnames \"$SLURM_JOB_NODELIST\" | head -n 1)",
                           "export MASTER_PORT=$((31000 + SLURM_JOB_ID % 1000))", "srun --kill-on-bad-exit=1"})
    CHECK(log.find(line) != std::string::npos);
  CHECK(log.find("# " + (out / "slurm" / "a_seed0.sbatch").string()) != std::string::npos);
  CHECK_FALSE(fs::exists(out / "slurm"));

  // Submitted through the stand-ins: both nodes' torchrun lines, then the run trained and evaluated.
  const std::string env = "PATH=" + fake.string() + ":$PATH REC=" + tmp.string() + " ";
  REQUIRE(sam_test::run_command(env + sam_study() + " run " + study, &log) == 0);
  INFO(slurp(tmp / "job.out"));
  CHECK(log.find("submitted " + (out / "slurm" / "a_seed0.sbatch").string() + ": Submitted batch job 4321") !=
        std::string::npos);
  for (int node : {0, 1}) {
    const std::string args = slurp(tmp / ("torchrun_" + std::to_string(node) + ".txt"));
    INFO(args);
    for (const std::string& want : std::vector<std::string>{"--nnodes=2", "--node_rank=" + std::to_string(node), "--nproc_per_node=4",
                                   "--master_addr=gpu07", "--master_port=31321", "--no_python"})
      CHECK(args.find(want + "\n") != std::string::npos);
    CHECK(args.find("sam_train\n--config\n" + fs::absolute(out / "configs" / "a_seed0.json").string() + "\n") !=
          std::string::npos);
  }
  REQUIRE(sam_test::run_command(sam_study() + " status " + study, &log) == 0);
  CHECK(log.find("a/seed0\tdone") != std::string::npos);
  // Done: a second submission submits nothing.
  REQUIRE(sam_test::run_command(env + sam_study() + " run " + study, &log) == 0);
  CHECK(log.find("1 done, 0 to run") != std::string::npos);
  CHECK(log.find("submitted") == std::string::npos);
}

TEST_CASE("the studies of studies/ plan: every run's config resolves through the trainer's schema") {
  // Run from the repository root, as the studies' relative paths expect (the tests' working folder).
  const std::map<std::string, int> runs = {{"tiny.yaml", 6}, {"tiny_full.yaml", 9}, {"engine_stages.yaml", 8}};
  for (const auto& [file, n] : runs) {
    std::string log;
    INFO(file);
    REQUIRE(sam_test::run_command(sam_study() + " status " + (sam_test::source_dir() / "studies" / file).string(), &log) == 0);
    INFO(log);
    int lines = 0;
    for (char c : log) lines += c == '\n';
    CHECK(lines == n);
  }
  // Every study of the folder is one of those (a new one gets its line above).
  for (const auto& e : fs::directory_iterator(sam_test::source_dir() / "studies")) {
    INFO(e.path());
    CHECK(runs.count(e.path().filename().string()) == 1);
  }
}
