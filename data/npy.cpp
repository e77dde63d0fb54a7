#include "data/npy.h"

#include <cstring>
#include <fstream>
#include <regex>
#include <stdexcept>

#include <torch/torch.h>

namespace sam::npy {
namespace {

struct DtypeInfo {
  const char* descr;
  torch::ScalarType type;
  size_t size;
};

constexpr DtypeInfo kTypes[] = {
    {"|b1", torch::kBool, 1},    {"|u1", torch::kUInt8, 1},   {"|i1", torch::kInt8, 1},
    {"<i2", torch::kInt16, 2},   {"<i4", torch::kInt32, 4},   {"<i8", torch::kInt64, 8},
    {"<f2", torch::kFloat16, 2}, {"<f4", torch::kFloat32, 4}, {"<f8", torch::kFloat64, 8},
};

[[noreturn]] void fail(const std::string& path, const std::string& msg) {
  throw std::runtime_error(path + ": " + msg);
}

}  // namespace

torch::Tensor read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, "cannot open .npy file");
  char magic[8];
  if (!in.read(magic, 8) || std::memcmp(magic, "\x93NUMPY", 6) != 0) fail(path, "not a .npy file (bad magic)");
  const int major = static_cast<unsigned char>(magic[6]);
  uint32_t header_len = 0;
  if (major == 1) {
    unsigned char b[2];
    if (!in.read(reinterpret_cast<char*>(b), 2)) fail(path, "truncated header");
    header_len = b[0] | (b[1] << 8);
  } else if (major == 2 || major == 3) {
    unsigned char b[4];
    if (!in.read(reinterpret_cast<char*>(b), 4)) fail(path, "truncated header");
    header_len = b[0] | (b[1] << 8) | (b[2] << 16) | (static_cast<uint32_t>(b[3]) << 24);
  } else {
    fail(path, "unsupported .npy version " + std::to_string(major));
  }
  if (header_len > (1u << 20)) fail(path, "header too large");
  std::string header(header_len, '\0');
  if (!in.read(header.data(), header_len)) fail(path, "truncated header");

  std::smatch m;
  if (!std::regex_search(header, m, std::regex("'descr'\\s*:\\s*'([^']*)'")))
    fail(path, "header has no 'descr'");
  std::string descr = m[1];
  if (descr == "<b1" || descr == "?" || descr == "|?") descr = "|b1";
  if (descr == "<u1") descr = "|u1";
  if (descr == "<i1") descr = "|i1";
  const DtypeInfo* info = nullptr;
  for (const auto& t : kTypes)
    if (descr == t.descr) info = &t;
  if (!info) fail(path, "unsupported dtype '" + descr + "' (big-endian or exotic)");
  if (!std::regex_search(header, m, std::regex("'fortran_order'\\s*:\\s*(True|False)")))
    fail(path, "header has no 'fortran_order'");
  const bool fortran = m[1] == "True";
  if (!std::regex_search(header, m, std::regex("'shape'\\s*:\\s*\\(([^)]*)\\)")))
    fail(path, "header has no 'shape'");
  std::vector<int64_t> shape;
  {
    const std::string dims = m[1];
    static const std::regex number("\\d+");
    std::sregex_iterator it(dims.begin(), dims.end(), number), end;
    for (; it != end; ++it) shape.push_back(std::stoll(it->str()));
  }
  int64_t numel = 1;
  for (auto d : shape) {
    if (d < 0 || (d > 0 && numel > (int64_t{1} << 40) / d)) fail(path, "shape too large");
    numel *= d;
  }
  std::vector<int64_t> alloc_shape = shape;
  if (fortran) std::reverse(alloc_shape.begin(), alloc_shape.end());
  auto t = torch::empty(alloc_shape, torch::TensorOptions().dtype(info->type));
  const size_t bytes = static_cast<size_t>(numel) * info->size;
  if (!in.read(static_cast<char*>(t.data_ptr()), static_cast<std::streamsize>(bytes)))
    fail(path, "truncated data: expected " + std::to_string(bytes) + " bytes");
  if (fortran && t.dim() > 1) {
    std::vector<int64_t> perm(t.dim());
    for (int64_t i = 0; i < t.dim(); ++i) perm[i] = t.dim() - 1 - i;
    t = t.permute(perm).contiguous();
  }
  return t;
}

void write(const std::string& path, const torch::Tensor& tensor) {
  auto t = tensor.detach().to(torch::kCPU).contiguous();
  const DtypeInfo* info = nullptr;
  for (const auto& d : kTypes)
    if (d.type == t.scalar_type()) info = &d;
  if (!info) fail(path, std::string("cannot write dtype ") + c10::toString(t.scalar_type()));
  // Python's tuple repr: (), (n,), (a, b, c)
  std::string shape = "(";
  for (int64_t i = 0; i < t.dim(); ++i) shape += (i ? ", " : "") + std::to_string(t.size(i));
  shape += t.dim() == 1 ? ",)" : ")";
  std::string header = std::string("{'descr': '") + info->descr + "', 'fortran_order': False, 'shape': " + shape + ", }";
  const size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header += '\n';
  std::ofstream out(path, std::ios::binary);
  if (!out) fail(path, "cannot open for writing");
  const uint16_t len = static_cast<uint16_t>(header.size());
  out.write("\x93NUMPY\x01\x00", 8);
  const char lb[2] = {static_cast<char>(len & 0xff), static_cast<char>(len >> 8)};
  out.write(lb, 2);
  out.write(header.data(), static_cast<std::streamsize>(header.size()));
  out.write(static_cast<const char*>(t.data_ptr()), static_cast<std::streamsize>(t.numel() * info->size));
  if (!out) fail(path, "write failed");
}

}  // namespace sam::npy
