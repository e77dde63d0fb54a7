#include "train/distributed.h"

#include <algorithm>
#include <cstdlib>
#include <functional>
#include <thread>
#include <stdexcept>

#include <map>
#include <mutex>

#include <torch/csrc/distributed/c10d/HashStore.hpp>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/torch.h>
#include <torch/version.h>
#ifdef SAM_WITH_NCCL
#include <c10/cuda/CUDAFunctions.h>
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

class NoPending : public Pending {
 public:
  void wait() override {}
};

class WorkPending : public Pending {
 public:
  explicit WorkPending(c10::intrusive_ptr<c10d::Work> w) : work_(std::move(w)) {}
  void wait() override { work_->wait(); }

 private:
  c10::intrusive_ptr<c10d::Work> work_;
};

class SingleProcess : public Communicator {
 public:
  int rank() const override { return 0; }
  int world_size() const override { return 1; }
  std::string backend() const override { return "none"; }
  void broadcast(std::vector<torch::Tensor>&, int) override {}
  void allreduce_sum(std::vector<torch::Tensor>&, double) override {}
  std::unique_ptr<Pending> allreduce_sum_async(torch::Tensor) override { return std::make_unique<NoPending>(); }
  std::unique_ptr<Pending> reduce_sum_async(torch::Tensor, int) override { return std::make_unique<NoPending>(); }
  std::vector<double> allreduce_sum(const std::vector<double>& v) override { return v; }
  void barrier() override {}
};

class C10dGroup : public Communicator {
 public:
  /// `host` reduces the host scalars: a Gloo group of its own beside an NCCL one, else `pg` itself.
  C10dGroup(GroupPtr pg, GroupPtr host, int rank, int world, std::string backend)
      : pg_(std::move(pg)), host_(std::move(host)), rank_(rank), world_(world), backend_(std::move(backend)) {}
  int rank() const override { return rank_; }
  int world_size() const override { return world_; }
  std::string backend() const override { return backend_; }

  void broadcast(std::vector<torch::Tensor>& tensors, int root) override {
    // Buckets of 25 MB: a model's few hundred tensors in a few collectives.
    in_buckets(tensors, 25.0, /*copy_back=*/rank_ != root, [&](torch::Tensor& flat) {
      std::vector<torch::Tensor> one{flat};
      c10d::BroadcastOptions o;
      o.rootRank = root;
      pg_->broadcast(one, o)->wait();
    });
  }

  void allreduce_sum(std::vector<torch::Tensor>& tensors, double bucket_mb) override {
    in_buckets(tensors, bucket_mb, /*copy_back=*/true, [&](torch::Tensor& flat) {
      std::vector<torch::Tensor> one{flat};
      pg_->allreduce(one)->wait();
    });
  }

  std::unique_ptr<Pending> allreduce_sum_async(torch::Tensor t) override {
    std::vector<torch::Tensor> one{std::move(t)};
    return std::make_unique<WorkPending>(pg_->allreduce(one));
  }

  std::unique_ptr<Pending> reduce_sum_async(torch::Tensor t, int root) override {
    c10d::ReduceOptions o;
    o.rootRank = root;
    if (t.is_cuda() && backend_ == "gloo") {
      // Gloo reduces host memory only: through a host copy, and done when this returns.
      auto host = t.cpu();
      std::vector<torch::Tensor> one{host};
      pg_->reduce(one, o)->wait();
      if (rank_ == root) t.copy_(host);
      return std::make_unique<NoPending>();
    }
    std::vector<torch::Tensor> one{std::move(t)};
    return std::make_unique<WorkPending>(pg_->reduce(one, o));
  }

  std::vector<double> allreduce_sum(const std::vector<double>& values) override {
    auto t = torch::tensor(values, torch::TensorOptions().dtype(torch::kDouble));
    std::vector<torch::Tensor> one{t};
    host_->allreduce(one)->wait();
    return std::vector<double>(t.data_ptr<double>(), t.data_ptr<double>() + t.numel());
  }

  void barrier() override { host_->barrier()->wait(); }

 private:
  // Runs `op` on buckets of `tensors`: consecutive tensors of one dtype up to `bucket_mb`, copied
  // into one flat buffer (and back into the tensors after `op` when `copy_back`).
  static void in_buckets(std::vector<torch::Tensor>& tensors, double bucket_mb, bool copy_back,
                         const std::function<void(torch::Tensor&)>& op) {
    torch::NoGradGuard ng;
    const int64_t cap = std::max<int64_t>(1, static_cast<int64_t>(bucket_mb * 1024 * 1024 / 4));
    size_t i = 0;
    while (i < tensors.size()) {
      size_t j = i;
      int64_t n = 0;
      while (j < tensors.size() && (j == i || (n + tensors[j].numel() <= cap &&
                                               tensors[j].scalar_type() == tensors[i].scalar_type()))) {
        n += tensors[j].numel();
        ++j;
      }
      std::vector<torch::Tensor> parts;
      for (size_t k = i; k < j; ++k) parts.push_back(tensors[k].detach().reshape(-1));
      auto flat = torch::cat(parts);
      op(flat);
      if (copy_back) {
        int64_t off = 0;
        for (size_t k = i; k < j; ++k) {
          const int64_t m = tensors[k].numel();
          tensors[k].detach().copy_(flat.narrow(0, off, m).view_as(tensors[k]));
          off += m;
        }
      }
      i = j;
    }
  }

  GroupPtr pg_, host_;
  int rank_, world_;
  std::string backend_;
};

GroupPtr gloo_group(const c10::intrusive_ptr<c10d::Store>& store, int rank, int world, const std::string& master_addr,
                    std::chrono::milliseconds timeout) {
  auto opts = c10d::ProcessGroupGloo::Options::create(timeout);
  const char* ifname = std::getenv("GLOO_SOCKET_IFNAME");
  if (ifname && *ifname) {
    opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
  } else if (master_addr == "127.0.0.1" || master_addr == "localhost") {
    opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
  } else {
    opts->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
  }
  return c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, world, opts);
}

// The group of `device` (and the host group beside an NCCL one) on `store`.
std::unique_ptr<Communicator> make_group(const c10::intrusive_ptr<c10d::Store>& store, int rank, int world,
                                         const torch::Device& device, const std::string& backend,
                                         const std::string& master_addr, std::chrono::milliseconds timeout) {
  if (backend != "auto" && backend != "nccl" && backend != "gloo")
    throw std::invalid_argument("distributed backend '" + backend + "' must be auto, nccl or gloo");
  const bool nccl = backend == "nccl" || (backend == "auto" && device.is_cuda());
  if (nccl) {
    if (!device.is_cuda()) throw std::invalid_argument("the NCCL backend needs train.device cuda, not " + device.str());
#ifdef SAM_WITH_NCCL
    auto opts = c10d::ProcessGroupNCCL::Options::create();
    opts->timeout = timeout;
    GroupPtr pg = c10::make_intrusive<c10d::ProcessGroupNCCL>(
        c10::make_intrusive<c10d::PrefixStore>("nccl", store), rank, world, opts);
    auto host = gloo_group(c10::make_intrusive<c10d::PrefixStore>("host", store), rank, world, master_addr, timeout);
    return std::make_unique<C10dGroup>(pg, host, rank, world, "nccl");
#else
    throw std::runtime_error("distributed training on CUDA with NCCL needs the CUDA build (SAM_WITH_CUDA)");
#endif
  }
  auto pg = gloo_group(store, rank, world, master_addr, timeout);
  return std::make_unique<C10dGroup>(pg, pg, rank, world, "gloo");
}

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

int cuda_index_for_local_rank(int local_rank, int visible) {
  if (visible < 1) throw std::runtime_error("no CUDA device is visible to this process");
  if (local_rank < visible) return local_rank;
  if (visible == 1) return 0;
  throw std::runtime_error("local rank " + std::to_string(local_rank) + " but only " + std::to_string(visible) +
                           " GPUs are visible: start one process per GPU (--nproc_per_node, --gpus-per-task)");
}

void bind_device(const torch::Device& device) {
  if (!device.is_cuda()) return;
#ifdef SAM_WITH_CUDA
  c10::cuda::set_device(device.index());
#else
  throw std::runtime_error("train.device " + device.str() + ": this build has no CUDA (SAM_WITH_CUDA)");
#endif
}

torch::Device process_device(const std::string& spec, const DistEnv& env) {
  torch::Device device(spec);
  if (device.is_cuda() && !torch::cuda::is_available())
    throw std::runtime_error("train.device " + spec + ": CUDA is not available in this build");
  // "cuda" without an index: each process of a node takes the GPU of its local rank, or the one GPU
  // its launcher exposes to it; it becomes the process's current device before NCCL starts.
  if (device.is_cuda() && !device.has_index())
    device = torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(cuda_index_for_local_rank(
                                             env.local_rank, static_cast<int>(torch::cuda::device_count()))));
  bind_device(device);
  return device;
}

int threads_per_process(int configured, const DistEnv& env) {
  if (configured > 0) return configured;
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const int local = env.world_size > 1 ? std::max(1, std::min(env.world_size, cores)) : 1;
  return std::max(1, cores / local);
}

std::unique_ptr<Communicator> Communicator::create(const DistEnv& e, const torch::Device& device,
                                                   const std::string& backend, std::chrono::seconds timeout) {
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
  return make_group(store, e.rank, e.world_size, device, backend, e.master_addr,
                    std::chrono::duration_cast<std::chrono::milliseconds>(timeout));
}

std::unique_ptr<Communicator> Communicator::create_local(const std::string& name, int rank, int world,
                                                         const torch::Device& device, const std::string& backend) {
  // One in-memory store per name, shared by the threads of the group.
  static std::mutex mu;
  static std::map<std::string, c10::intrusive_ptr<c10d::Store>> stores;
  c10::intrusive_ptr<c10d::Store> store;
  {
    std::lock_guard<std::mutex> lock(mu);
    auto& s = stores[name];
    if (!s) s = c10::make_intrusive<c10d::HashStore>();
    store = s;
  }
  return make_group(store, rank, world, device, backend, "127.0.0.1", std::chrono::milliseconds(120000));
}

}  // namespace sam::train
