#include "train/distributed.h"

#include <cstdlib>
#include <stdexcept>

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/torch.h>
#include <torch/version.h>
#ifdef SAM_WITH_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

namespace sam::train {
namespace {

// In libtorch 2.x the Gloo and NCCL groups are c10d::Backend objects; in 1.x ProcessGroups. Both
// offer the collectives used here with the same signatures.
#if TORCH_VERSION_MAJOR >= 2
using GroupPtr = c10::intrusive_ptr<c10d::Backend>;
#else
using GroupPtr = c10::intrusive_ptr<c10d::ProcessGroup>;
#endif

const char* env(const char* name) { return std::getenv(name); }

int env_int(const char* name, int fallback) {
  const char* v = env(name);
  if (!v || !*v) return fallback;
  try {
    return std::stoi(v);
  } catch (const std::exception&) {
    throw std::invalid_argument(std::string("environment variable ") + name + "='" + v + "' is not an integer");
  }
}

class SingleProcess : public Communicator {
 public:
  int rank() const override { return 0; }
  int world_size() const override { return 1; }
  std::string backend() const override { return "none"; }
  void broadcast(std::vector<torch::Tensor>&, int) override {}
  void allreduce_sum(std::vector<torch::Tensor>&, double) override {}
  std::vector<double> allreduce_sum(const std::vector<double>& v) override { return v; }
  void barrier() override {}
};

class C10dGroup : public Communicator {
 public:
  C10dGroup(GroupPtr pg, int rank, int world, std::string backend,
            torch::Device device)
      : pg_(std::move(pg)), rank_(rank), world_(world), backend_(std::move(backend)), device_(device) {}
  int rank() const override { return rank_; }
  int world_size() const override { return world_; }
  std::string backend() const override { return backend_; }

  void broadcast(std::vector<torch::Tensor>& tensors, int root) override {
    for (auto& t : tensors) {
      std::vector<torch::Tensor> one{t.detach()};
      c10d::BroadcastOptions o;
      o.rootRank = root;
      pg_->broadcast(one, o)->wait();
    }
  }

  void allreduce_sum(std::vector<torch::Tensor>& tensors, double bucket_mb) override {
    torch::NoGradGuard ng;
    const int64_t cap = std::max<int64_t>(1, static_cast<int64_t>(bucket_mb * 1024 * 1024 / 4));
    size_t i = 0;
    while (i < tensors.size()) {
      // A bucket: consecutive tensors of one dtype up to `cap` elements, reduced as one buffer.
      size_t j = i;
      int64_t n = 0;
      while (j < tensors.size() && (j == i || (n + tensors[j].numel() <= cap &&
                                               tensors[j].scalar_type() == tensors[i].scalar_type()))) {
        n += tensors[j].numel();
        ++j;
      }
      std::vector<torch::Tensor> parts;
      for (size_t k = i; k < j; ++k) parts.push_back(tensors[k].reshape(-1));
      auto flat = torch::cat(parts);
      std::vector<torch::Tensor> one{flat};
      pg_->allreduce(one)->wait();
      int64_t off = 0;
      for (size_t k = i; k < j; ++k) {
        const int64_t m = tensors[k].numel();
        tensors[k].copy_(flat.narrow(0, off, m).view_as(tensors[k]));
        off += m;
      }
      i = j;
    }
  }

  std::vector<double> allreduce_sum(const std::vector<double>& values) override {
    auto t = torch::tensor(values, torch::TensorOptions().dtype(torch::kDouble)).to(device_);
    std::vector<torch::Tensor> one{t};
    pg_->allreduce(one)->wait();
    auto c = t.to(torch::kCPU).contiguous();
    return std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
  }

  void barrier() override { pg_->barrier()->wait(); }

 private:
  GroupPtr pg_;
  int rank_, world_;
  std::string backend_;
  torch::Device device_;
};

}  // namespace

DistEnv dist_env_from_environment() {
  DistEnv e;
  if (env("RANK") && env("WORLD_SIZE")) {
    e.launcher = env("TORCHELASTIC_RUN_ID") || env("TORCHELASTIC_RESTART_COUNT") ? "torchrun" : "env";
    e.rank = env_int("RANK", 0);
    e.world_size = env_int("WORLD_SIZE", 1);
    e.local_rank = env_int("LOCAL_RANK", 0);
  } else if (env("SLURM_PROCID") && env("SLURM_NTASKS")) {
    e.launcher = "slurm";
    e.rank = env_int("SLURM_PROCID", 0);
    e.world_size = env_int("SLURM_NTASKS", 1);
    e.local_rank = env_int("SLURM_LOCALID", 0);
    if (e.world_size > 1 && !env("MASTER_ADDR"))
      throw std::invalid_argument("Slurm job with several tasks: set MASTER_ADDR (and MASTER_PORT) to the first node");
  } else {
    return e;
  }
  if (e.world_size < 1 || e.rank < 0 || e.rank >= e.world_size)
    throw std::invalid_argument("rank " + std::to_string(e.rank) + " is outside a world of " +
                                std::to_string(e.world_size));
  if (const char* a = env("MASTER_ADDR")) e.master_addr = a;
  e.master_port = env_int("MASTER_PORT", 29500);
  e.restart_count = env_int("TORCHELASTIC_RESTART_COUNT", 0);
  const char* agent = env("TORCHELASTIC_USE_AGENT_STORE");
  e.agent_store = agent && std::string(agent) == "True";
  return e;
}

std::unique_ptr<Communicator> Communicator::create(const DistEnv& e, const torch::Device& device,
                                                   std::chrono::seconds timeout) {
  if (e.world_size <= 1) return std::make_unique<SingleProcess>();
  c10d::TCPStoreOptions so;
  so.port = static_cast<std::uint16_t>(e.master_port);
  // Under torchrun the agent hosts the store and every worker is a client under the attempt's
  // prefix; otherwise rank 0 hosts it.
  so.isServer = !e.agent_store && e.rank == 0;
  so.numWorkers = e.agent_store ? c10::nullopt : c10::optional<std::size_t>(e.world_size);
  so.waitWorkers = false;
  so.timeout = std::chrono::duration_cast<std::chrono::milliseconds>(timeout);
  c10::intrusive_ptr<c10d::Store> store = c10::make_intrusive<c10d::TCPStore>(e.master_addr, so);
  if (e.agent_store) {
    store = c10::make_intrusive<c10d::PrefixStore>("/worker/attempt_" + std::to_string(e.restart_count), store);
  }
  if (device.is_cuda()) {
#ifdef SAM_WITH_NCCL
    auto opts = c10d::ProcessGroupNCCL::Options::create();
    opts->timeout = std::chrono::duration_cast<std::chrono::milliseconds>(timeout);
    auto pg = c10::make_intrusive<c10d::ProcessGroupNCCL>(store, e.rank, e.world_size, opts);
    return std::make_unique<C10dGroup>(pg, e.rank, e.world_size, "nccl", device);
#else
    throw std::runtime_error("distributed training on CUDA needs the NCCL build (SAM_WITH_CUDA)");
#endif
  }
  auto opts = c10d::ProcessGroupGloo::Options::create(std::chrono::duration_cast<std::chrono::milliseconds>(timeout));
  const char* ifname = std::getenv("GLOO_SOCKET_IFNAME");
  if (ifname && *ifname) {
    opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
  } else if (e.master_addr == "127.0.0.1" || e.master_addr == "localhost") {
    opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
  } else {
    opts->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
  }
  auto pg = c10::make_intrusive<c10d::ProcessGroupGloo>(store, e.rank, e.world_size, opts);
  return std::make_unique<C10dGroup>(pg, e.rank, e.world_size, "gloo", device);
}

}  // namespace sam::train
