#pragma once
// Data-parallel communication through PyTorch's c10d: Gloo on CPU, NCCL on CUDA (compiled in when
// libtorch has CUDA). Follows torchrun's environment contract (RANK, WORLD_SIZE, LOCAL_RANK,
// MASTER_ADDR, MASTER_PORT, TORCHELASTIC_RESTART_COUNT, TORCHELASTIC_USE_AGENT_STORE) or Slurm's
// (SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID, with MASTER_ADDR/MASTER_PORT set by the job).
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <torch/types.h>

namespace sam::train {

struct DistEnv {
  int rank = 0, world_size = 1, local_rank = 0;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  bool agent_store = false;  ///< torchrun hosts the store; every rank is a client
  int restart_count = 0;
  std::string launcher = "single";  ///< single, torchrun or slurm
};

/// Reads the launcher's environment variables; a single process when none are set. Throws on
/// inconsistent values (rank outside the world, missing MASTER_ADDR under Slurm with >1 task).
DistEnv dist_env_from_environment();

/// The GPU index of a process at `local_rank` when train.device is "cuda" without an index, with
/// `visible` GPUs visible to it: its local rank (torchrun, one process per GPU), or 0 where the
/// launcher exposes one GPU per task (Slurm's --gpus-per-task=1, CUDA_VISIBLE_DEVICES per rank).
/// Throws when there are fewer GPUs than local ranks otherwise (two ranks would share one GPU,
/// which NCCL refuses).
int cuda_index_for_local_rank(int local_rank, int visible);

/// Makes `device` this process's current CUDA device (done before the NCCL group is built, so
/// that NCCL, cuBLAS and the caching allocator start on it); a no-op for the CPU.
void bind_device(const torch::Device& device);

/// This process's device for a `train.device` value ("cpu", "cuda", "cuda:1"), made current
/// (bind_device): "cuda" without an index takes the GPU of the local rank
/// (cuda_index_for_local_rank). Throws when CUDA is asked for and not available.
torch::Device process_device(const std::string& spec, const DistEnv& env);

/// Intra-op threads of one process: `configured` when > 0, else the node's cores shared by its
/// processes (`world_size` of them at most, one per core).
int threads_per_process(int configured, const DistEnv& env);

/// An operation in flight (an all-reduce started while the backward pass runs).
class Pending {
 public:
  virtual ~Pending() = default;
  /// Blocks the host until the operation is done (Gloo), or makes the current CUDA stream wait for
  /// it without blocking the host (NCCL).
  virtual void wait() = 0;
};

/// Collective operations of one data-parallel group. With world_size 1 every call is a no-op.
class Communicator {
 public:
  /// Connects to the rendezvous store and builds the process group for `device`: `backend` "auto"
  /// is NCCL for a GPU and Gloo for the CPU; "gloo" also carries GPU tensors (through the host;
  /// two ranks on one GPU, which NCCL refuses). A GPU group also builds a Gloo group for the host
  /// scalars (allreduce_sum of doubles), so that they never wait for the GPU.
  static std::unique_ptr<Communicator> create(const DistEnv& env, const torch::Device& device,
                                              const std::string& backend = "auto",
                                              std::chrono::seconds timeout = std::chrono::seconds(1800));
  /// A group of `world` ranks inside this process (one thread each, meeting in an in-memory store
  /// named `name`), built even for a world of 1: for tests of the collectives and their backends.
  static std::unique_ptr<Communicator> create_local(const std::string& name, int rank, int world,
                                                    const torch::Device& device, const std::string& backend = "auto");
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  virtual std::string backend() const = 0;
  /// Copies rank `root`'s values into every rank's tensors (in place).
  virtual void broadcast(std::vector<torch::Tensor>& tensors, int root = 0) = 0;
  /// Sums tensors over the ranks in place, flattening them into buckets of about `bucket_mb`.
  virtual void allreduce_sum(std::vector<torch::Tensor>& tensors, double bucket_mb = 25.0) = 0;
  /// Starts summing one tensor over the ranks in place; its values are final after wait().
  virtual std::unique_ptr<Pending> allreduce_sum_async(torch::Tensor t) = 0;
  /// Starts summing one tensor over the ranks into rank `root`'s copy (in place; the other ranks'
  /// values are then unspecified): the part of a reduce-scatter that one rank needs. Final after
  /// wait().
  virtual std::unique_ptr<Pending> reduce_sum_async(torch::Tensor t, int root) = 0;
  /// Sums a few doubles over the ranks (host values, through a host group; no GPU involved).
  virtual std::vector<double> allreduce_sum(const std::vector<double>& values) = 0;
  virtual void barrier() = 0;
};

}  // namespace sam::train
