#pragma once
// The data-parallel gradient all-reduce, in buckets started while the backward pass still runs (as
// DDP's reducer does). In SAM's step the gradients arrive in two phases: the prompt encoder's and
// mask decoder's build up over the prompt rounds and are final once the last round has been
// back-propagated; the image encoder's arrive block by block, last block first, during the one
// backward pass through the encoder that closes the step. So the decoder side forms the first
// buckets, started by start_early() right before the encoder's backward, and the encoder's
// parameters fill the next buckets in their backward order, each started from a gradient hook as
// soon as its last gradient has been accumulated. Buckets start in the same order on every rank.
// With owners (ZeRO stage 1, train.shard_optimizer: the rank whose optimiser updates a parameter)
// each bucket is summed onto the ranks that need its parts, a reduce to each owner of the part it
// owns: the reduce-scatter, half the traffic of an all-reduce.
#include <functional>
#include <memory>
#include <vector>

#include <torch/torch.h>

#include "train/distributed.h"

namespace sam::train {

class GradientReducer {
 public:
  /// `early`: parameters whose gradients are final at start_early(); `hooked`: parameters in the
  /// order their gradients become final during the closing backward pass. Parameters may appear
  /// once in all. Buckets hold about `bucket_mb` MiB of float32 gradients. `owner`, when given,
  /// names the one rank that needs a parameter's summed gradient (-1: every rank); the others'
  /// gradients of it are left undefined by finish().
  using OwnerOf = std::function<int(const torch::Tensor&)>;
  GradientReducer(Communicator& comm, std::vector<torch::Tensor> early, std::vector<torch::Tensor> hooked,
                  double bucket_mb = 25.0, const OwnerOf& owner = {});
  ~GradientReducer();
  GradientReducer(const GradientReducer&) = delete;
  GradientReducer& operator=(const GradientReducer&) = delete;

  /// Arms the reduction for the coming backward passes (the last micro-step of an accumulation;
  /// earlier micro-steps only accumulate locally).
  void arm();
  /// The early parameters' gradients are final: their buckets start.
  void start_early();
  /// Starts every bucket not yet started (a gradient this rank did not produce counts as zeros),
  /// waits for all of them (on a GPU: the current stream waits, the host does not), writes the
  /// sums back into the gradients, and leaves undefined the gradients that no rank produced (the
  /// optimiser skips those parameters, as it does in a single process) and those another rank
  /// owns. Disarms.
  void finish();

  int buckets() const;
  /// The collectives of one reduction (with owners: one per owner of each bucket's parameters).
  int collectives() const;
  /// Buckets that had started before finish() was called in the last reduction (the overlap).
  int started_before_finish() const;

 private:
  struct State;
  std::shared_ptr<State> state_;
};

}  // namespace sam::train
