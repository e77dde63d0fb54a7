#pragma once
// The training loader: worker threads read, filter, transform and sample masks ahead of the
// trainer through a bounded prefetch queue, in an order fixed by (seed, epoch, rank, world size),
// and skip bad samples without stopping.
//
// Order. Epoch e visits a permutation of the dataset drawn from (seed, e) (the identity when
// shuffle is off). With `mix` (several datasets weighted, SAM 2's repeat factors) the epoch is a
// permutation of a multiset instead: part p of factor f and n samples takes floor(f) copies of
// each of its samples and round(f n) - floor(f) n more drawn without replacement from (seed, e,
// p), so every epoch has the same length, sum_p round(f_p n_p), and a part with f < 1 shows a
// different subset each epoch. Rank r of R reads the global positions g = r, r + R, r + 2R, ... of that
// permutation (DistributedSampler's striding), so the ranks together read every sample of the
// epoch once; with drop_last every rank reads floor(N / R) (the last N mod R are left out), else
// ranks read ceil or floor of N / R. The loader never ends: after its shard it starts the next
// epoch.
//
// Determinism. Everything random about a sample (flip, jitter, the mask subset and its order)
// comes from an RNG seeded with (seed, epoch, g), and results are handed out in shard order
// whatever the thread timing, so a loader resumed from state() returns exactly the samples, bit
// for bit, that the original would have returned next.
//
// Per sample: crowd annotations, masks of area 0, masks covering less than min_mask_area_frac
// and masks covering more than max_mask_area_frac of the image are dropped; the image is resized (longest side =
// image_size) or large-scale-jittered onto an image_size square, optionally mirrored; the
// remaining masks are visited in random order and the first max_masks that are not empty after
// the transform are kept (a jitter that leaves none is redrawn up to 8 times). Bad samples
// (missing or corrupt image, malformed JSON, bad RLE or polygon, size mismatch, no usable mask)
// are skipped, counted by reason in stats() and logged once per file.
#include <torch/types.h>

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/annotation.h"
#include "data/dataset.h"

namespace sam::data {

class EmbeddingStore;

/// One training sample, the trainer's input.
struct TrainSample {
  torch::Tensor image;  // uint8 [3, h, w] RGB, longest side resized to S (h, w <= S), or the S x S
                        // jittered crop; undefined when the loader reads embeddings
  torch::Tensor embedding;  // [C, G, G] in the store's dtype, with LoaderOptions::embeddings
  torch::Tensor masks;  // uint8 [K, h, w] 0/1, aligned with image (1 <= K <= max_masks);
                        // undefined with LoaderOptions::images_only
  std::string id;       // sample name for logs
  int64_t index = 0;    // global index in the epoch order
};

/// A range of the dataset's indices (one dataset of a ConcatDataset) and its weight.
struct MixPart {
  size_t begin = 0, end = 0;  ///< indices [begin, end)
  double factor = 1.0;        ///< expected visits per sample and epoch (> 0)
};

struct LoaderOptions {
  int image_size = 1024;            // S
  int max_masks = 64;               // K
  double max_mask_area_frac = 0.9;  // masks covering more of the image are dropped
  double min_mask_area_frac = 0.0;  // masks covering less of the image are dropped
  bool large_scale_jitter = false;
  double lsj_min = 0.1, lsj_max = 2.0;
  bool hflip = false;  // mirror with probability 1/2
  /// Images alone (pre-training on pixels, e.g. MAE): annotations are not read, samples carry no
  /// masks (TrainSample::masks undefined) and images without any are used.
  bool images_only = false;
  /// With images_only: torchvision's RandomResizedCrop onto an image_size square instead of the
  /// resize (data/transforms.h plan_random_resized_crop), windows of rrc_min_scale to all of the area.
  bool random_resized_crop = false;
  double rrc_min_scale = 0.2;
  int workers = 2;     // 0: load synchronously inside next()
  int prefetch = 8;    // samples ready or in flight ahead of the consumer (>= 1)
  uint64_t seed = 0;
  int rank = 0, world_size = 1;
  bool drop_last = true;
  bool shuffle = true;  // false: dataset order (still sharded)
  /// Weighted parts covering [0, dataset size) in order, or empty: every sample once per epoch.
  std::vector<MixPart> mix;
  /// Samples in page-locked memory, for training on a GPU: their copies to the device then run
  /// asynchronously (needs a CUDA build with a GPU).
  bool pin_memory = false;
  /// The images' encoder embeddings instead of the images (decoder training on cached
  /// embeddings, data/embedding_store.h): each sample carries its image's embedding and no image;
  /// with images_only, the image and its embedding (a teacher's, for distillation). Needs
  /// large_scale_jitter, random_resized_crop and hflip off (the store holds the unaugmented
  /// images' embeddings).
  std::shared_ptr<const EmbeddingStore> embeddings;
  /// Where "skipping <file>: <problem>" lines go (once per file); default: stderr.
  std::function<void(const std::string&)> log;
};

/// Where a rank is in its stream of samples.
struct LoaderState {
  int64_t epoch = 0;
  int64_t position = 0;  // samples already consumed by this rank in this epoch
  nlohmann::json to_json() const;
  /// Throws std::invalid_argument on missing keys or negative values.
  static LoaderState from_json(const nlohmann::json& j);
};

/// Counts since the loader was made.
struct LoaderStats {
  int64_t returned = 0;                          // samples handed out
  std::array<int64_t, kProblemCount> skipped{};  // by Problem
  int64_t skipped_total() const;
  /// {"returned": n, "skipped": {"missing_file": n, ...}} (only reasons with a count).
  nlohmann::json to_json() const;
};

class Loader {
 public:
  /// Starts the workers at `start`. Throws std::invalid_argument on bad options (sizes, rank not in
  /// [0, world_size), a shard with no sample) or a state past the end of its epoch.
  Loader(std::shared_ptr<Dataset> dataset, LoaderOptions options, LoaderState start = {});
  ~Loader();
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  /// The next sample, moving on to the next epoch at the end of the shard (never returns an empty
  /// sample; skips bad ones). Throws std::runtime_error when a whole epoch's shard has no usable
  /// sample.
  TrainSample next();
  /// The position after the last sample returned (what to save to resume).
  LoaderState state() const;
  /// Counts of returned and skipped samples.
  LoaderStats stats() const;
  /// Samples per epoch for this rank (skips included).
  int64_t shard_size() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// Samples per epoch over all ranks: the dataset size, or with `mix` sum_p round(f_p n_p). Throws
/// std::invalid_argument when the parts do not cover [0, dataset_size) in order or a factor is
/// not positive.
size_t epoch_length(size_t dataset_size, const LoaderOptions& options);

/// An RGB image (CV_8UC3) as uint8 [3, h, w] (page-locked when `pinned`).
torch::Tensor chw_tensor(const cv::Mat& rgb, bool pinned = false);

/// Sample `s`'s image as the loader gives it without jitter or flip: the longest side resized to
/// `image_size`, uint8 [3, h, w] (what sam_data embed encodes). Throws the image's DataError.
torch::Tensor resized_image(const Sample& s, int image_size);

/// The dataset indices rank `rank` reads in `epoch`, in order (what the Loader visits; exposed for
/// tests and tools).
std::vector<int64_t> shard_indices(size_t dataset_size, const LoaderOptions& options,
                                   int64_t epoch);

}  // namespace sam::data
