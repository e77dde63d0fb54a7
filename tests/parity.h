#pragma once
// Comparisons with Meta's reference implementation, shared by the golden fixtures' suites
// (../shared/golden) and the live peer suites (tests/peers/sam_reference.py), with the tolerances
// of ../shared/golden/README.md.
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <torch/torch.h>

namespace sam_test {

using TensorDict = c10::Dict<c10::IValue, c10::IValue>;

/// A file written by Python's torch.save of a plain dict of tensors.
inline TensorDict load_tensor_dict(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  INFO("reading " << path);
  REQUIRE(in.good());
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return torch::pickle_load(bytes).toGenericDict();
}

inline bool dict_has(const TensorDict& d, const std::string& key) { return d.contains(key); }

inline torch::Tensor dict_tensor(const TensorDict& d, const std::string& key) {
  INFO("key " << key);
  REQUIRE(d.contains(key));
  return d.at(key).toTensor();
}

/// The figures of one comparison, for the suites' reports.
struct CloseStats {
  double err = 0;  ///< max |ours - ref|
  double tol = 0;  ///< 1e-4 + 1e-3 * max|ref|
};

/// |ours - ref| <= 1e-4 + 1e-3 * max|ref| everywhere (golden README).
inline CloseStats check_close(const torch::Tensor& ours, const torch::Tensor& ref, const std::string& what) {
  INFO(what << ": ours " << ours.sizes() << " ref " << ref.sizes());
  REQUIRE(ours.sizes() == ref.sizes());
  auto o = ours.to(torch::kFloat), r = ref.to(torch::kFloat);
  CloseStats s;
  s.tol = 1e-4 + 1e-3 * r.abs().max().item<double>();
  s.err = (o - r).abs().max().item<double>();
  INFO("max abs error " << s.err << " tolerance " << s.tol);
  CHECK(s.err <= s.tol);
  return s;
}

struct MaskStats {
  int64_t pixels = 0;     ///< pixels compared
  int64_t differing = 0;  ///< pixels where the thresholded masks differ
  int64_t outside = 0;    ///< of those, where the reference logit is farther than 1e-3 from 0
};

/// Thresholded masks may differ only where the reference logit is within 1e-3 of 0.
inline MaskStats check_masks(const torch::Tensor& ours, const torch::Tensor& ref_masks,
                             const torch::Tensor& ref_logits, const std::string& what) {
  INFO(what);
  REQUIRE(ours.sizes() == ref_masks.sizes());
  auto diff = ours.to(torch::kBool).ne(ref_masks.to(torch::kBool));
  auto allowed = ref_logits.abs().le(1e-3);
  MaskStats s;
  s.pixels = diff.numel();
  s.differing = diff.sum().item<int64_t>();
  s.outside = (diff & ~allowed).sum().item<int64_t>();
  INFO(s.differing << " of " << s.pixels << " pixels differ, " << s.outside
                   << " where the reference logit is farther than 1e-3 from 0");
  CHECK(s.outside == 0);
  return s;
}

}  // namespace sam_test
