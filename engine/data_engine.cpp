#include "engine/data_engine.h"

#include <filesystem>

#include "data/atomic_file.h"
#include "engine/engine_context.h"

namespace fs = std::filesystem;

namespace sam::engine {

DataEngine::DataEngine(EngineConfig config, train::DistEnv env)
    : ctx_(std::make_unique<EngineContext>()) {
  ctx_->cfg = std::move(config);
  ctx_->env = env;
  ctx_->device = torch::Device(ctx_->cfg.device);
  if (ctx_->cfg.data.empty())
    throw std::invalid_argument("data: no dataset given (set data=SPEC, e.g. sa1b:DIR)");
  ctx_->ds = data::make_dataset(ctx_->cfg.data);
}

DataEngine::~DataEngine() = default;

nlohmann::json DataEngine::run(const std::string& stage) {
  std::vector<std::string> stages;
  if (stage == "all")
    stages = {"manual", "semi", "auto"};
  else if (stage == "manual" || stage == "semi" || stage == "auto")
    stages = {stage};
  else
    throw std::invalid_argument("--stage '" + stage + "': must be manual, semi, auto or all");
  fs::create_directories(ctx_->cfg.out_dir);
  data::write_file_atomic((fs::path(ctx_->cfg.out_dir) / "config.json").string(),
                          ctx_->cfg.resolved.dump(2) + "\n");
  auto& I = *ctx_;
  if (I.env.world_size > 1 && !I.comm)  // the other ranks wait while rank 0 annotates
    I.comm = train::Communicator::create(I.env, torch::kCPU, "gloo", std::chrono::hours(48));
  nlohmann::json out = nlohmann::json::object();
  for (const auto& st : stages) {
    const bool annotation = st != "auto";
    // People annotate on one machine: rank 0 runs the annotation stages, the others wait.
    if (annotation && I.env.rank == 0) out[st] = I.run_annotation_stage(st);
    if (!annotation) out[st] = I.run_auto();
    if (I.comm) I.comm->barrier();
  }
  return out;
}

}  // namespace sam::engine
