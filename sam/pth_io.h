#pragma once
// Checkpoint IO in the exact format of Python's `torch.save` (zip archive + pickle), without
// Python. libtorch 1.13's torch::pickle_load turns collections.OrderedDict into None, so it cannot
// read a state_dict(); pth_read understands the pickle subset that torch.save writes (protocols 2
// to 5), and pth_write emits byte for byte what torch.save(OrderedDict) emits, so Python's
// torch.load reads it.
#include <torch/types.h>

#include <string>
#include <utility>
#include <vector>

namespace sam {

/// Ordered (name, tensor) pairs, in the archive's order.
using NamedTensors = std::vector<std::pair<std::string, torch::Tensor>>;

/// Reads every tensor of a torch.save zip archive. Handles dict and collections.OrderedDict at any
/// nesting (nested keys joined with '.', integer keys written in decimal, e.g. an MAE file
/// {'model': {...}} gives 'model.patch_embed.proj.weight'), lists/tuples (index as key), and
/// ignores non-tensor leaves (numbers, strings, and opaque Python objects such as
/// argparse.Namespace, whose contents are not looked into). A bare tensor at the root gets the name
/// "". Tensors come back on the CPU, contiguous, with the saved dtype and shape, each owning its
/// memory (tensors that shared a storage in the file are copied apart). Throws std::runtime_error
/// naming the file and the problem (missing file, not a zip, legacy non-zip format, big-endian
/// data, unsupported opcode or tensor/storage global, truncated record or pickle, out-of-bounds
/// view).
NamedTensors pth_read(const std::string& path);

/// Writes tensors (moved to CPU, made contiguous) as a collections.OrderedDict in torch.save's zip
/// format (archive name "archive", pickle protocol 2, one storage record `data/<i>` per tensor,
/// `version` = 3), the same bytes torch.save(OrderedDict) writes to a file object. Dtypes:
/// float32/64, float16, bfloat16, int64/32/16/8, uint8, bool, complex64/128. Not atomic (callers
/// handle that). Throws std::runtime_error naming the path on any IO failure, an
/// undefined/sparse/quantized tensor, or a duplicate name. With `wrap` the OrderedDict is the
/// value of that key in a dict ({"model": OrderedDict}, as MAE's checkpoints hold their weights).
void pth_write(const std::string& path, const NamedTensors& tensors, const std::string& wrap = "");

}  // namespace sam
