#pragma once
// NumPy .npy files (format versions 1.0-3.0): the exchange format for embeddings, logits and mask
// inputs with Python tools.
#include <string>

#include <torch/types.h>

namespace sam::npy {

/// Reads a .npy array (little-endian bool, uint8, int8/16/32/64, float16/32/64; C or Fortran
/// order) into a contiguous CPU tensor of the same dtype and shape. Throws std::runtime_error
/// naming the path and the problem (not an npy file, truncated data, unsupported dtype).
torch::Tensor read(const std::string& path);
/// Writes a tensor (any of the dtypes above; moved to CPU, made contiguous) as a version 1.0 .npy.
void write(const std::string& path, const torch::Tensor& t);

}  // namespace sam::npy
