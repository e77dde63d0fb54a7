#pragma once
// Decoder training on cached embeddings (issue 21): `sam_data embed` runs the image encoder once
// over a dataset and stores every image's embedding (data/embedding_store.h); a run with
// `data.embeddings` reads them instead of running the encoder, which is then frozen. The 11
// prompt rounds of a step cost only the prompt encoder and mask decoder.
//
// The store says which encoder made it (encoder_identity: the encoder's architecture keys and a
// hash of its weights); a run whose encoder differs is refused. Embeddings are of the images as
// the loader gives them without large-scale jitter or flips (longest side resized to S), made in
// evaluation mode (no drop path), under bf16 autocast when the run would use it (train.amp).
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/embedding_store.h"
#include "sam/sam_model.h"
#include "train/distributed.h"

namespace sam::train {

/// The encoder's architecture keys (those its output depends on, pixel normalisation included)
/// and "weights": a 64-bit FNV-1a hash, in hex, of its parameter and buffer names, shapes and
/// float32 values in state-dict order.
nlohmann::json encoder_identity(Sam& model);

struct EmbedOptions {
  std::string out;             ///< the store's folder
  std::string dtype = "fp16";  ///< fp16, bf16 or fp32 on disk
  int batch = 1;               ///< images per encoder call
  int64_t shard_size = 64;     ///< dataset samples per shard (the unit of work and of resume)
  bool autocast = false;       ///< encoder under bf16 autocast
};

struct EmbedReport {
  int64_t shards = 0;           ///< in the store
  int64_t shards_existing = 0;  ///< found complete (a resumed build), over all ranks
  int64_t shards_written = 0;   ///< by this call, over all ranks
  int64_t images = 0;           ///< records in the store
  int64_t skipped = 0;          ///< samples whose image could not be read
};

/// Embeds every image of `dataset` (described by `specs`) into the store `o.out`, shard k by rank
/// k mod world size; complete shards are kept (a rerun resumes), a store of another encoder,
/// dataset, dtype or shard size is refused. Bad images are skipped and listed in their shard's
/// index. Rank 0 writes the manifest, "complete" once every shard is. The model should be in
/// evaluation mode on `device`.
EmbedReport embed_dataset(Sam& model, const data::Dataset& dataset, const std::vector<std::string>& specs,
                          const EmbedOptions& o, Communicator& comm, const torch::Device& device);

/// Throws std::runtime_error naming the store's folder when its embeddings are not those of
/// `model`'s encoder (architecture, weights or output shape differ).
void check_embedding_store(const data::EmbeddingStore& store, Sam& model);

}  // namespace sam::train
