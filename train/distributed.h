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

/// Collective operations of one data-parallel group. With world_size 1 every call is a no-op.
class Communicator {
 public:
  /// Connects to the rendezvous store and builds the process group for `device`'s backend.
  static std::unique_ptr<Communicator> create(const DistEnv& env, const torch::Device& device,
                                              std::chrono::seconds timeout = std::chrono::seconds(1800));
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  virtual std::string backend() const = 0;
  /// Copies rank `root`'s values into every rank's tensors (in place).
  virtual void broadcast(std::vector<torch::Tensor>& tensors, int root = 0) = 0;
  /// Sums tensors over the ranks in place, flattening them into buckets of about `bucket_mb`.
  virtual void allreduce_sum(std::vector<torch::Tensor>& tensors, double bucket_mb = 25.0) = 0;
  /// Sums a few doubles over the ranks.
  virtual std::vector<double> allreduce_sum(const std::vector<double>& values) = 0;
  virtual void barrier() = 0;
};

}  // namespace sam::train
