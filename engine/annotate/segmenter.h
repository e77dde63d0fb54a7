#pragma once
// The model side of the annotation tool: image embeddings computed in the background and cached
// within a memory budget, and each click answered by the prompt encoder and mask decoder alone on
// the cached embedding (paper section 4, stage 1). libtorch stays out of this header.
#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "data/mask/rle.h"
#include "engine/annotate/embedding_cache.h"

namespace sam::annotate {

/// A point prompt in pixels of the original image; label 1 = positive (object), 0 = negative.
struct PointPrompt {
  double x = 0, y = 0;
  int label = 1;
};

/// The prompts of one mask: any number of points and at most one box (x0, y0, x1, y1 pixels).
struct Prompt {
  std::vector<PointPrompt> points;
  std::optional<std::array<double, 4>> box;
};

/// One candidate mask at the original image size.
struct Candidate {
  mask::Rle rle;     ///< H x W, COCO column-major runs
  double iou = 0;    ///< the decoder's IoU prediction
  int token = 0;     ///< the decoder output it came from (0 = single-mask token, 1..3 multimask)
  int64_t area = 0;  ///< set pixels
};

/// The answer to one click, with where the time went (milliseconds).
struct SegmentResult {
  std::vector<Candidate> candidates;  ///< three, see Segmenter::segment
  int best = 0;                       ///< index into candidates to preselect
  int64_t height = 0, width = 0;      ///< original image size
  double wait_ms = 0;                 ///< waiting for the embedding and for a free decoder slot
  double decode_ms = 0;               ///< prompt encoder + mask decoder (low-resolution logits)
  double upscale_ms = 0;              ///< logits to the original size and thresholding
  double rle_ms = 0;                  ///< run-length encoding of the candidates
};

/// How the segmenter uses the machine.
struct SegmenterOptions {
  int64_t cache_bytes = int64_t{1} << 30;  ///< embedding cache budget
  int decode_slots = 1;   ///< clicks decoded at once (each uses the intra-op thread pool)
  int encoder_nice = 10;  ///< nice value of the embedding thread: clicks come first on a busy CPU
  std::chrono::milliseconds embed_timeout{std::chrono::minutes(5)};  ///< longest wait of a click
  std::string device = "cpu";
};

/// Thrown by segment() for prompts that do not fit the image (the server answers 400).
struct PromptError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

class Segmenter {
 public:
  /// Loads the model (preset name or architecture file, see sam::model_config_resolve) and its
  /// weights; an empty checkpoint keeps a seeded random initialisation (timing only). `load_image`
  /// returns the RGB uint8 HxWx3 pixels (row-major, tightly packed) and size of an image by name.
  using LoadImage = std::function<std::vector<uint8_t>(const std::string& name, int* h, int* w)>;
  Segmenter(const std::string& model, const std::string& checkpoint, LoadImage load_image,
            SegmenterOptions options = {});
  ~Segmenter();

  /// Starts computing embeddings for these images in the background (first = soonest), replacing
  /// the previous prefetch list.
  void prefetch(const std::vector<std::string>& images);
  /// "ready", "computing", "queued", "failed: <why>" or "absent".
  std::string embedding_state(const std::string& image) const;
  /// Blocks until the embedding of `image` exists (or the timeout); false on timeout.
  bool wait_embedding(const std::string& image, std::chrono::milliseconds timeout);

  /// Masks for one prompt on `image`, waiting for its embedding if needed. Candidates: with a
  /// single point and no box (an ambiguous prompt) the three multimask outputs (tokens 1..3) with
  /// the best predicted IoU preselected; otherwise the single-mask output (token 0, preselected:
  /// the reference trains it for multi-prompt input) followed by the two multimask outputs with
  /// the highest predicted IoU. Throws PromptError for prompts outside the image or empty,
  /// std::runtime_error when the embedding cannot be made (or times out).
  SegmentResult segment(const std::string& image, const Prompt& prompt);

  CacheStats cache_stats() const;
  /// Model facts for /api/info: name, img_size, embedding shape.
  std::string model_name() const;
  int img_size() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sam::annotate
