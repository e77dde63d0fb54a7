// Studies: the file, the runs it plans, running them (here, under torchrun, or through Slurm).
#include "train/study/study.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <regex>
#include <set>
#include <sstream>
#include <stdexcept>

#include "data/atomic_file.h"
#include "data/config_file.h"
#include "data/log.h"
#include "eval/report/training_curves.h"
#include "sam/config.h"
#include "train/freeze.h"
#include "train/study/study_internal.h"
#include "train/train_config.h"

namespace fs = std::filesystem;

namespace sam::study {

std::string expand_env(const std::string& s, const std::string& where) {
  std::string out;
  size_t i = 0;
  while (i < s.size()) {
    if (s.compare(i, 2, "${") != 0) {
      out += s[i++];
      continue;
    }
    const size_t end = s.find('}', i);
    if (end == std::string::npos) throw std::invalid_argument(where + ": '${' without its '}' in \"" + s + "\"");
    std::string inner = s.substr(i + 2, end - i - 2), def;
    bool has_def = false;
    if (const size_t d = inner.find(":-"); d != std::string::npos) {
      def = inner.substr(d + 2);
      inner.resize(d);
      has_def = true;
    }
    const char* v = std::getenv(inner.c_str());
    if (v && *v) out += v;
    else if (has_def) out += def;
    else throw std::invalid_argument(where + ": the environment variable " + inner + " is not set (\"" + s +
                                     "\"; ${" + inner + ":-DEFAULT} gives a default)");
    i = end + 1;
  }
  return out;
}

namespace {

void expand_all(nlohmann::json& j, const std::string& where) {
  if (j.is_string()) j = expand_env(j.get<std::string>(), where);
  else if (j.is_array() || j.is_object())
    for (auto& v : j) expand_all(v, where);
}

void check_name(const std::string& name, const std::string& what, const std::string& where) {
  static const std::regex ok("[A-Za-z0-9_.+-]+");
  if (!std::regex_match(name, ok))
    throw std::invalid_argument(where + ": " + what + " name \"" + name +
                                "\" must be letters, digits and _ . + - (it names folders)");
}

std::vector<std::string> default_metrics(const std::string& task) {
  if (task == "points") return {"miou_1click", "miou_1click_oracle", "miou_at_k/4", "noc85", "noc90"};
  if (task == "edges") return {"ods", "ois", "ap", "r50"};
  if (task == "proposals") return {"ar/100/all", "ar/1000/all"};
  return {"stats/AP", "stats/AP50"};  // instances
}

// A grid value as a folder name shows it: strings bare, '/' replaced.
std::string value_text(const nlohmann::json& v) {
  std::string s = v.is_string() ? v.get<std::string>() : v.dump();
  for (char& c : s)
    if (c == '/' || c == ' ') c = '%';
  return s;
}

std::string program_dir() {
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  return ec ? std::string(".") : exe.parent_path().string();
}

std::string fmt_minutes(double m) {
  std::ostringstream o;
  o << std::setprecision(6) << m;
  return o.str();
}

}  // namespace

Study load_study(const std::string& path) {
  Study s;
  s.path = path;
  s.doc = cfg::load_file(path);
  const nlohmann::json& d = s.doc;
  if (!d.is_object()) throw std::invalid_argument(path + ": a study is a mapping (name, base, variants, ...)");
  expand_all(s.doc, path);
  cfg::check_keys(d, {"name", "base", "out", "overrides", "seeds", "budget", "variants", "evaluations", "launcher"},
                  path);
  s.name = fs::path(path).stem().string();
  cfg::read(d, "name", s.name, path);
  check_name(s.name, "the study's", path);
  cfg::read(d, "base", s.base, path);
  if (s.base.empty()) throw std::invalid_argument(path + ": key 'base' (the training config the variants change) is missing");
  if (!fs::exists(s.base)) throw std::invalid_argument(path + ": base: no file " + s.base);
  s.out = "runs/studies/" + s.name;
  cfg::read(d, "out", s.out, path);
  cfg::read(d, "overrides", s.overrides, path);
  cfg::read(d, "seeds", s.seeds, path);
  if (s.seeds.empty()) throw std::invalid_argument(path + ": seeds: give at least one");
  if (std::set<uint64_t>(s.seeds.begin(), s.seeds.end()).size() != s.seeds.size())
    throw std::invalid_argument(path + ": seeds: a seed appears twice");
  if (auto b = d.find("budget"); b != d.end()) {
    cfg::check_keys(*b, {"minutes", "steps"}, path + " [budget]");
    cfg::read(*b, "minutes", s.budget_minutes, path + " budget");
    cfg::read(*b, "steps", s.budget_steps, path + " budget");
    if (s.budget_minutes < 0 || s.budget_steps < 0) throw std::invalid_argument(path + ": budget: minutes and steps must be >= 0");
  }
  const auto vs = d.find("variants");
  if (vs == d.end() || !vs->is_array() || vs->empty())
    throw std::invalid_argument(path + ": variants: a list of {name, overrides, grid} is needed (one may be {name: base})");
  std::set<std::string> names;
  for (const auto& v : *vs) {
    const std::string w = path + " [variants]";
    if (!v.is_object()) throw std::invalid_argument(w + ": each variant is a mapping {name, overrides, grid}");
    cfg::check_keys(v, {"name", "overrides", "grid"}, w);
    Variant var;
    cfg::read(v, "name", var.name, w);
    check_name(var.name, "a variant's", w);
    if (!names.insert(var.name).second) throw std::invalid_argument(w + ": two variants are named " + var.name);
    cfg::read(v, "overrides", var.overrides, w + " " + var.name);
    for (const auto& o : var.overrides)
      if (o.find('=') == std::string::npos)
        throw std::invalid_argument(w + " " + var.name + ": override \"" + o + "\" is not key.sub=value");
    if (auto g = v.find("grid"); g != v.end()) {
      if (!g->is_object()) throw std::invalid_argument(w + " " + var.name + ": grid: a mapping key.sub -> list of values");
      for (auto it = g->begin(); it != g->end(); ++it)
        if (!it.value().is_array() || it.value().empty())
          throw std::invalid_argument(w + " " + var.name + ": grid: " + it.key() + " needs a non-empty list of values");
      var.grid = *g;
    }
    s.variants.push_back(std::move(var));
  }
  if (auto es = d.find("evaluations"); es != d.end()) {
    if (!es->is_array()) throw std::invalid_argument(path + ": evaluations: a list of {name, task, dataset, args, metrics}");
    std::set<std::string> enames;
    for (const auto& e : *es) {
      const std::string w = path + " [evaluations]";
      if (!e.is_object()) throw std::invalid_argument(w + ": each evaluation is a mapping {name, task, dataset, args, metrics}");
      cfg::check_keys(e, {"name", "task", "dataset", "args", "metrics"}, w);
      Evaluation ev;
      cfg::read(e, "name", ev.name, w);
      check_name(ev.name, "an evaluation's", w);
      if (!enames.insert(ev.name).second) throw std::invalid_argument(w + ": two evaluations are named " + ev.name);
      cfg::read(e, "task", ev.task, w + " " + ev.name);
      if (ev.task != "points" && ev.task != "edges" && ev.task != "proposals" && ev.task != "instances")
        throw std::invalid_argument(w + " " + ev.name + ": task must be points, edges, proposals or instances (sam_eval's), got \"" +
                                    ev.task + "\"");
      cfg::read(e, "dataset", ev.dataset, w + " " + ev.name);
      if (ev.dataset.empty() && ev.task != "edges")
        throw std::invalid_argument(w + " " + ev.name + ": dataset is needed (sam_eval " + ev.task + " --dataset)");
      cfg::read(e, "args", ev.args, w + " " + ev.name);
      cfg::read(e, "metrics", ev.metrics, w + " " + ev.name);
      if (ev.metrics.empty()) ev.metrics = default_metrics(ev.task);
      s.evaluations.push_back(std::move(ev));
    }
  }
  if (auto l = d.find("launcher"); l != d.end()) {
    const std::string w = path + " [launcher]";
    cfg::check_keys(*l, {"kind", "nproc_per_node", "nodes", "master_port", "torchrun", "slurm"}, w);
    cfg::read(*l, "kind", s.launcher.kind, w);
    cfg::read(*l, "nproc_per_node", s.launcher.nproc_per_node, w);
    cfg::read(*l, "nodes", s.launcher.nodes, w);
    cfg::read(*l, "master_port", s.launcher.master_port, w);
    cfg::read(*l, "torchrun", s.launcher.torchrun, w);
    if (auto sl = l->find("slurm"); sl != l->end()) {
      cfg::check_keys(*sl, {"gpus_per_node", "cpus_per_task", "time", "sbatch", "setup"}, w + " slurm");
      cfg::read(*sl, "gpus_per_node", s.launcher.slurm.gpus_per_node, w);
      cfg::read(*sl, "cpus_per_task", s.launcher.slurm.cpus_per_task, w);
      cfg::read(*sl, "time", s.launcher.slurm.time, w);
      cfg::read(*sl, "sbatch", s.launcher.slurm.sbatch, w);
      cfg::read(*sl, "setup", s.launcher.slurm.setup, w);
    }
  }
  if (s.launcher.kind != "local" && s.launcher.kind != "torchrun" && s.launcher.kind != "slurm")
    throw std::invalid_argument(path + ": launcher.kind must be local, torchrun or slurm, got \"" + s.launcher.kind + "\"");
  if (s.launcher.nproc_per_node < 1 || s.launcher.nodes < 1 || s.launcher.slurm.gpus_per_node < 1 ||
      s.launcher.master_port < 1 || s.launcher.master_port > 64535)
    throw std::invalid_argument(path + ": launcher: nproc_per_node, nodes and slurm.gpus_per_node must be >= 1, "
                                "master_port in 1..64535");
  if (s.launcher.torchrun.empty()) throw std::invalid_argument(path + ": launcher.torchrun is empty");
  return s;
}

std::vector<std::string> base_overrides(const Study& s) {
  std::vector<std::string> ov = s.overrides;
  if (s.budget_steps > 0) ov.push_back("train.iterations=" + std::to_string(s.budget_steps));
  if (s.budget_minutes > 0) ov.push_back("train.time_limit_min=" + fmt_minutes(s.budget_minutes));
  return ov;
}

std::vector<Run> plan_runs(const Study& s) {
  std::vector<Run> runs;
  const auto common = base_overrides(s);
  for (const auto& v : s.variants) {
    // The grid's points: the product of its keys' values (keys in name order).
    std::vector<std::vector<std::pair<std::string, nlohmann::json>>> points{{}};
    for (auto it = v.grid.begin(); it != v.grid.end(); ++it) {
      std::vector<std::vector<std::pair<std::string, nlohmann::json>>> next;
      for (const auto& p : points)
        for (const auto& val : it.value()) {
          auto q = p;
          q.emplace_back(it.key(), val);
          next.push_back(std::move(q));
        }
      points = std::move(next);
    }
    for (const auto& point : points) {
      std::string row = v.name;
      std::vector<std::string> grid_ov;
      for (const auto& [k, val] : point) {
        row += "_" + k + "=" + value_text(val);
        grid_ov.push_back(k + "=" + val.dump());
      }
      for (const uint64_t seed : s.seeds) {
        Run r;
        r.row = row;
        r.variant = v.name;
        r.seed = seed;
        r.id = row + "/seed" + std::to_string(seed);
        r.dir = (fs::path(s.out) / "runs" / row / ("seed" + std::to_string(seed))).string();
        r.config = (fs::path(s.out) / "configs" / (row + "_seed" + std::to_string(seed) + ".json")).string();
        r.model = (fs::path(s.out) / "configs" / (row + ".model.json")).string();
        r.overrides = common;
        r.overrides.insert(r.overrides.end(), v.overrides.begin(), v.overrides.end());
        r.overrides.insert(r.overrides.end(), grid_ov.begin(), grid_ov.end());
        r.overrides.push_back("train.seed=" + std::to_string(seed));
        r.overrides.push_back("run_dir=" + nlohmann::json(r.dir).dump());
        try {
          r.resolved = train::load_train_config(s.base, r.overrides).resolved;
        } catch (const std::exception& e) {
          throw std::invalid_argument(s.path + ": run " + r.id + " (variant " + v.name + "): " + e.what());
        }
        runs.push_back(std::move(r));
      }
    }
  }
  return runs;
}

bool RunStatus::done() const {
  if (!trained) return false;
  for (bool e : evaluated)
    if (!e) return false;
  return true;
}

RunStatus run_status(const Study& s, const Run& r) { return run_status(s, r, eval::read_run_metrics(r.dir)); }

RunStatus run_status(const Study& s, const Run& r, const std::vector<nlohmann::json>& events) {
  RunStatus st;
  const fs::path dir(r.dir);
  st.started = fs::exists(dir / "checkpoint.pth") || fs::exists(dir / "metrics.jsonl");
  double attempt_last = 0;
  bool ended = false;
  for (const auto& m : events) {
    const std::string ev = m.value("event", "");
    if (ev == "end") ended = true;
    if (!m.contains("elapsed_s")) continue;
    const double e = m["elapsed_s"].get<double>();
    if (e < attempt_last) st.trained_s += attempt_last;  // a new attempt (a resume) starts its clock again
    attempt_last = e;
  }
  st.trained_s += attempt_last;
  st.trained = ended && fs::exists(dir / "model.pth");
  for (const auto& e : s.evaluations) st.evaluated.push_back(fs::exists(dir / ("eval_" + e.name + ".json")));
  return st;
}

namespace {

// A word as the shell reads it back unchanged.
std::string sh_quote(const std::string& s) {
  static const std::regex safe("[A-Za-z0-9_./:=@%+,-]+");
  if (std::regex_match(s, safe)) return s;
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::string sh_join(const std::vector<std::string>& words) {
  std::string out;
  for (const auto& w : words) out += (out.empty() ? "" : " ") + sh_quote(w);
  return out;
}

// Runs argv with stdout and stderr appended to `log`; the child dies with this process (a killed
// study leaves no orphan training). Returns the exit status, or 128 + the signal.
int spawn(const std::vector<std::string>& argv, const std::string& log) {
  fs::create_directories(fs::path(log).parent_path());
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("cannot start " + argv[0] + ": fork failed");
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(137);
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      ::close(fd);
    }
    std::vector<char*> a;
    for (const auto& w : argv) a.push_back(const_cast<char*>(w.c_str()));
    a.push_back(nullptr);
    ::execvp(a[0], a.data());
    const std::string msg = "sam_study: cannot run " + argv[0] + "\n";
    (void)!::write(2, msg.data(), msg.size());
    ::_exit(127);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// The study's files for each run: its resolved config and its architecture. A config kept from an
// earlier invocation must be the same: a changed study does not silently mix old and new runs.
void write_configs(const Study& s, const std::vector<Run>& runs) {
  for (const auto& r : runs) {
    if (fs::exists(r.config)) {
      const auto old = cfg::load_file(r.config);
      const std::string diff = cfg::first_difference(old, r.resolved);
      if (!diff.empty())
        throw std::invalid_argument(s.path + ": run " + r.id + " now resolves differently from " + r.config + " (" + diff +
                                    "); give the study another `out`, or remove " + r.config + " and " + r.dir +
                                    " to train it again");
    } else {
      data::write_file_atomic(r.config, r.resolved.dump(2) + "\n");
    }
    if (!fs::exists(r.model))
      data::write_file_atomic(r.model, model_config_to_json(train::train_config_from_json(r.resolved, r.config).model).dump(2) + "\n");
  }
  data::write_file_atomic((fs::path(s.out) / "study.json").string(), s.doc.dump(2) + "\n");
}

std::vector<std::string> train_command(const Study& s, const Run& r, const std::string& bin, double minutes_left) {
  std::vector<std::string> cmd = {(fs::path(bin) / "sam_train").string(), "--config", r.config};
  if (minutes_left >= 0) cmd.push_back("train.time_limit_min=" + fmt_minutes(minutes_left));
  return cmd;
}

std::vector<std::string> eval_command(const Evaluation& e, const Run& r, const std::string& bin) {
  std::vector<std::string> cmd = {(fs::path(bin) / "sam_eval").string(), e.task, "--model", r.model, "--checkpoint",
                                  (fs::path(r.dir) / "model.pth").string()};
  if (!e.dataset.empty()) {
    cmd.push_back(e.task == "edges" ? "--bsds" : "--dataset");
    cmd.push_back(e.dataset);
  }
  cmd.push_back("--out");
  cmd.push_back((fs::path(r.dir) / ("eval_" + e.name + ".json")).string());
  cmd.insert(cmd.end(), e.args.begin(), e.args.end());
  return cmd;
}

// The training minutes a run still has of the study's budget (-1: no time budget). A killed run
// resumes with what its attempts have not used (each attempt's clock as its metrics logged it).
double minutes_left(const Study& s, const RunStatus& st) {
  if (s.budget_minutes <= 0) return -1;
  return std::max(0.05, s.budget_minutes - st.trained_s / 60.0);
}

}  // namespace

std::string slurm_script(const Study& s, const Run& r, const std::string& bin_dir, double minutes) {
  const auto& sl = s.launcher.slurm;
  const std::string abs_out = fs::absolute(s.out).lexically_normal().string();
  const std::string stem = r.row + "_seed" + std::to_string(r.seed);
  std::ostringstream o;
  o << "#!/bin/bash\n"
    << "# Study " << s.name << ", run " << r.id << " (written by sam_study run --launcher slurm from " << s.path << ")\n"
    << "#SBATCH --job-name=" << s.name << "-" << stem << "\n"
    << "#SBATCH --nodes=" << s.launcher.nodes << "\n"
    << "#SBATCH --ntasks-per-node=1\n"
    << "#SBATCH --gpus-per-node=" << sl.gpus_per_node << "\n";
  if (sl.cpus_per_task > 0) o << "#SBATCH --cpus-per-task=" << sl.cpus_per_task << "\n";
  o << "#SBATCH --time=" << sl.time << "\n"
    << "#SBATCH --output=" << abs_out << "/slurm/" << stem << "-%j.out\n";
  for (const auto& x : sl.sbatch) o << "#SBATCH " << x << "\n";
  o << "set -euo pipefail\n"
    << "cd " << sh_quote(fs::current_path().string()) << "\n";
  for (const auto& x : sl.setup) o << x << "\n";
  o << "# The rendezvous: the first host of the allocation, a port per job.\n"
    << "export MASTER_ADDR=$(scontrol show hostnames \"$SLURM_JOB_NODELIST\" | head -n 1)\n"
    << "export MASTER_PORT=$((" << s.launcher.master_port << " + SLURM_JOB_ID % 1000))\n"
    << "# One torchrun per node, " << sl.gpus_per_node
    << " processes each; a node's rank is its SLURM_NODEID, read on that node.\n";
  const std::string bin = fs::absolute(bin_dir).lexically_normal().string();
  Run abs_run = r;
  abs_run.config = fs::absolute(r.config).lexically_normal().string();
  abs_run.model = fs::absolute(r.model).lexically_normal().string();
  std::string inner = sh_join(s.launcher.torchrun) +
                      " --nnodes=\"$SLURM_JOB_NUM_NODES\" --node_rank=\"$SLURM_NODEID\" --nproc_per_node=" +
                      std::to_string(sl.gpus_per_node) +
                      " --master_addr=\"$MASTER_ADDR\" --master_port=\"$MASTER_PORT\" --no_python " +
                      sh_join(train_command(s, abs_run, bin, minutes));
  o << "srun --kill-on-bad-exit=1 --nodes=\"$SLURM_JOB_NUM_NODES\" --ntasks-per-node=1 bash -c " << sh_quote(inner)
    << "\n";
  if (!s.evaluations.empty()) o << "# The evaluations, on this (the first) node; a result already there is kept.\n";
  for (const auto& e : s.evaluations) {
    const std::string result = (fs::path(r.dir) / ("eval_" + e.name + ".json")).string();
    o << "[ -f " << sh_quote(result) << " ] || " << sh_join(eval_command(e, abs_run, bin)) << "\n";
  }
  return o.str();
}

int run_study(const Study& s, const RunOptions& opt) {
  const std::string kind = opt.launcher.empty() ? s.launcher.kind : opt.launcher;
  if (kind != "local" && kind != "torchrun" && kind != "slurm")
    throw std::invalid_argument("--launcher must be local, torchrun or slurm, got \"" + kind + "\"");
  const std::string bin = opt.bin_dir.empty() ? program_dir() : opt.bin_dir;
  for (const char* p : {"sam_train", "sam_eval"})
    if (!fs::exists(fs::path(bin) / p))
      throw std::runtime_error(bin + ": no " + p + " there (sam_study runs the programs beside it; --bin DIR names another folder)");
  auto runs = plan_runs(s);
  std::vector<Run> chosen;
  for (auto& r : runs)
    if (opt.only.empty() || train::name_matches(opt.only, r.id)) chosen.push_back(r);
  if (chosen.empty()) throw std::invalid_argument(s.path + ": no run id matches --only " + opt.only);
  if (!opt.dry_run) write_configs(s, runs);
  int done = 0;
  for (const auto& r : chosen) done += run_status(s, r).done();
  log::info("study " + s.name + ": " + std::to_string(chosen.size()) + " run(s), " + std::to_string(done) +
            " done, " + std::to_string(chosen.size() - done) + " to run (" + kind + ")" + (opt.dry_run ? ", dry run" : ""));
  std::vector<std::string> failed;
  int port_offset = 0;
  for (size_t i = 0; i < chosen.size(); ++i) {
    const Run& r = chosen[i];
    const std::string tag = "[" + std::to_string(i + 1) + "/" + std::to_string(chosen.size()) + "] " + r.id + ": ";
    const RunStatus st = run_status(s, r);
    if (st.done()) continue;
    const double left = minutes_left(s, st);
    if (kind == "slurm") {
      const std::string script = slurm_script(s, r, bin, left);
      const std::string file =
          (fs::path(s.out) / "slurm" / (r.row + "_seed" + std::to_string(r.seed) + ".sbatch")).string();
      if (opt.dry_run) {
        std::cout << "# " << file << "\n" << script << std::flush;
        continue;
      }
      data::write_file_atomic(file, script);
      const std::string submit_log = (fs::path(s.out) / "slurm" / "submit.log").string();
      const int rc = spawn({"sbatch", file}, submit_log);
      std::string said;  // sbatch's last line ("Submitted batch job N")
      std::ifstream in(submit_log);
      for (std::string line; std::getline(in, line);)
        if (!line.empty()) said = line;
      if (rc != 0) {
        log::error(tag + "sbatch " + file + " failed (exit " + std::to_string(rc) + ": " + said + "; " + submit_log + ")");
        failed.push_back(r.id);
      } else {
        log::info(tag + "submitted " + file + ": " + said);
      }
      continue;
    }
    const std::string log_file = (fs::path(r.dir) / "study.log").string();
    if (!st.trained) {
      auto cmd = train_command(s, r, bin, left);
      if (kind == "torchrun") {
        std::vector<std::string> tr = s.launcher.torchrun;
        tr.push_back("--nproc_per_node=" + std::to_string(s.launcher.nproc_per_node));
        tr.push_back("--master_port=" + std::to_string(s.launcher.master_port + port_offset++ % 1000));
        tr.push_back("--no_python");
        cmd.insert(cmd.begin(), tr.begin(), tr.end());
      }
      if (opt.dry_run) {
        std::cout << sh_join(cmd) << "\n";
      } else {
        log::info(tag + (st.started ? "resuming from its checkpoint" : "training") +
                  (left >= 0 ? " (" + fmt_minutes(std::round(left * 10) / 10) + " min of the budget left)" : ""));
        const int rc = spawn(cmd, log_file);
        if (rc != 0 || !run_status(s, r).trained) {
          log::error(tag + "training failed (" + (rc != 0 ? "exit " + std::to_string(rc) : "no end in its metrics") +
                     "; its output: " + log_file + "); the next run goes on");
          failed.push_back(r.id);
          continue;
        }
      }
    }
    bool eval_failed = false;
    for (size_t k = 0; k < s.evaluations.size(); ++k) {
      if (st.evaluated[k]) continue;
      const auto& e = s.evaluations[k];
      const auto cmd = eval_command(e, r, bin);
      if (opt.dry_run) {
        std::cout << sh_join(cmd) << "\n";
        continue;
      }
      log::info(tag + "evaluating " + e.name);
      const std::string elog = (fs::path(r.dir) / ("eval_" + e.name + ".log")).string();
      const int rc = spawn(cmd, elog);
      if (rc != 0) {
        log::error(tag + "evaluation " + e.name + " failed (exit " + std::to_string(rc) + "; its output: " + elog + ")");
        eval_failed = true;
      }
    }
    if (eval_failed) failed.push_back(r.id);
    else if (!opt.dry_run) log::info(tag + "done");
  }
  if (!opt.dry_run && kind != "slurm") {
    int now_done = 0;
    for (const auto& r : chosen) now_done += run_status(s, r).done();
    std::string msg = "study " + s.name + ": " + std::to_string(now_done) + " of " + std::to_string(chosen.size()) +
                      " run(s) done";
    if (!failed.empty()) {
      msg += ", " + std::to_string(failed.size()) + " failed:";
      for (const auto& f : failed) msg += " " + f;
      msg += " (run the study again to resume them)";
    }
    (failed.empty() ? log::info : log::error)(msg);
  }
  return static_cast<int>(failed.size());
}

}  // namespace sam::study
