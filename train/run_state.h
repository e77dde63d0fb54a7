#pragma once
// The run checkpoint: everything a training run needs to continue exactly where it stopped
// (model, optimiser moments, step, every random generator, the loader's position, metrics so far),
// in one torch.save-format file written atomically (temporary file, fsync, rename, fsync of the
// folder), so that a kill at any moment leaves either the old or the new checkpoint, whole.
#include <string>

#include <nlohmann/json.hpp>
#include <torch/types.h>

#include "sam/pth_io.h"

namespace sam::train {

/// A run checkpoint's parts. Keys in the file: "model.<state-dict key>", "optim.<...>",
/// "rng.<name>" (generator states as uint8), "ema.<state-dict key>" (the weight average, when the
/// run keeps one), "meta" (UTF-8 JSON as uint8).
struct RunCheckpoint {
  NamedTensors model;
  NamedTensors ema;  ///< empty when the run keeps no weight average
  NamedTensors optim;
  NamedTensors rng;
  nlohmann::json meta;  ///< step, loader state, non-finite streak, ...
};

/// Writes atomically: `path`.tmp, fsync, rename over `path`, fsync of the parent folder.
void save_run_checkpoint(const std::string& path, const RunCheckpoint& ck);
/// Reads a file written by save_run_checkpoint. Throws naming the file when a part is missing.
RunCheckpoint load_run_checkpoint(const std::string& path);
/// Fault injection for the crash tests (tests/tools/test_sam_train.cpp): when $SAM_TRAIN_KILL_AT
/// is "<point>:<step>", the process sends itself SIGKILL (no clean-up, as a crash or a scheduler's
/// kill) on reaching `point` at `step`. Points: "step" (the step is done and its metrics are
/// written), "checkpoint" (the checkpoint of that step is written to its temporary file, not yet
/// renamed over the last one). Unset: nothing happens.
void kill_point(const char* point, int64_t step);
/// Fault injection for the non-finite-loss tests: true when $SAM_TRAIN_NONFINITE_AT (a comma
/// separated list of 0-based steps, e.g. "1,3") names `step`; the trainer then treats that step's
/// loss as non-finite. Unset: always false.
bool nonfinite_injected(int64_t step);
/// The states of the generators a training process draws from: the CPU's default ("torch_cpu")
/// and, when `device` is a GPU, that GPU's default ("torch_cuda"; drop path draws on the device).
NamedTensors capture_rng_states(const torch::Device& device);
/// Restores what capture_rng_states(device) returned. Returns false when `states` lacks the state
/// of a generator that `device` uses (a checkpoint written on the CPU, resumed on a GPU): that
/// generator keeps its seeded state and the resumed run is not the uninterrupted one.
bool restore_rng_states(const NamedTensors& states, const torch::Device& device);

}  // namespace sam::train
