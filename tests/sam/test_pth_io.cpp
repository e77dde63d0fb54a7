// Checkpoint IO in torch.save's format: reading the golden state dict, round trips, interop with
// Python's torch.save/torch.load (Debian's /usr/bin/python3 has torch), and the errors.
#include <caffe2/serialize/inline_container.h>
#include <torch/torch.h>
#include <torch/version.h>
#include <catch2/catch.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <unistd.h>

#include "sam/pth_io.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace std::string_literals;

namespace {

// The Python peer (sam_test::test_python(): Debian's torch 1.13, or PyTorch 2.x for the cluster
// build's tests).
std::string python() { return sam_test::test_python(); }

// A fresh temporary folder, removed at the end of the test.
struct TempDir {
  fs::path dir;
  explicit TempDir(const std::string& tag) {
    dir = fs::temp_directory_path() / ("sam_test_pth_io_" + tag + "_" + std::to_string(::getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  std::string operator/(const std::string& name) const { return (dir / name).string(); }
};

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void spit(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// Runs a Python script with the given arguments; returns (exit status, stdout+stderr).
std::pair<int, std::string> run_python(const TempDir& tmp, const std::string& script,
                                       const std::string& args) {
  const std::string py = tmp / "script.py";
  const std::string out = tmp / "script.out";
  spit(py, script);
  const std::string cmd = python() + " " + py + " " + args + " > " + out + " 2>&1";
  const int rc = std::system(cmd.c_str());
  return {rc, slurp(out)};
}

bool python_has_torch() {
  static const int ok = std::system((python() + " -c 'import torch' > /dev/null 2>&1").c_str());
  return ok == 0;
}

// The peer's torch major version (1 or 2).
int python_torch_major() {
  static const int major = [] {
    const std::string cmd = python() + " -c 'import torch; print(torch.__version__.split(\".\")[0])' 2>/dev/null";
    FILE* p = popen(cmd.c_str(), "r");
    int m = 0;
    if (p) {
      if (std::fscanf(p, "%d", &m) != 1) m = 0;
      pclose(p);
    }
    return m;
  }();
  return major;
}

// Bytes of a tensor, in row-major order.
torch::Tensor raw_bytes(const torch::Tensor& t) {
  return t.contiguous().reshape({-1}).view(torch::kByte);
}

// sum_i (i % 1000003 + 1) * byte_i: the same formula as CHECKSUM_PY below.
int64_t checksum(const torch::Tensor& t) {
  auto u = raw_bytes(t).to(torch::kLong);
  auto w = torch::arange(u.numel(), torch::kLong).remainder(1000003) + 1;
  return (u * w).sum().item<int64_t>();
}

// One line per tensor: name|dtype|shape|checksum, as the Python scripts print them.
std::string describe(const sam::NamedTensors& ts) {
  std::ostringstream os;
  for (const auto& [name, t] : ts) {
    os << name << "|" << c10::toString(t.scalar_type()) << "|";
    for (int64_t d = 0; d < t.dim(); ++d) os << (d ? "," : "") << t.size(d);
    os << "|" << checksum(t) << "\n";
  }
  return os.str();
}

const char* CHECKSUM_PY = R"PY(
import sys, collections, argparse, torch
NAMES = {torch.float32: 'Float', torch.float64: 'Double', torch.float16: 'Half', torch.bfloat16: 'BFloat16',
         torch.int64: 'Long', torch.int32: 'Int', torch.int16: 'Short', torch.int8: 'Char', torch.uint8: 'Byte',
         torch.bool: 'Bool', torch.complex64: 'ComplexFloat', torch.complex128: 'ComplexDouble'}
def cs(t):
    u = t.detach().contiguous().reshape(-1).view(torch.uint8).to(torch.int64)
    w = torch.arange(u.numel(), dtype=torch.int64) % 1000003 + 1
    return int((u * w).sum())
def line(name, t):
    return '%s|%s|%s|%d' % (name, NAMES[t.dtype], ','.join(str(d) for d in t.shape), cs(t))
def flatten(obj, prefix, out):
    join = lambda k: k if not prefix else prefix + '.' + k
    if isinstance(obj, torch.Tensor):
        out.append(line(prefix, obj))
    elif isinstance(obj, dict):
        for k, v in obj.items():
            flatten(v, join(str(k)), out)
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            flatten(v, join(str(i)), out)
    return out
)PY";

// A state dict with every dtype, odd shapes (0-d, empty, 5-d), non-contiguous inputs and a NaN.
sam::NamedTensors sample_tensors() {
  torch::manual_seed(7);
  sam::NamedTensors ts;
  auto f = torch::randn({3, 4});
  f[1][2] = std::numeric_limits<float>::quiet_NaN();
  ts.emplace_back("enc.weight", f);
  ts.emplace_back("enc.bias_t", torch::randn({5, 6}).t());                   // non-contiguous
  ts.emplace_back("enc.slice", torch::randn({6, 8}).slice(1, 2, 7));         // offset + strides
  ts.emplace_back("enc.expanded", torch::randn({1, 4}).expand({3, 4}));      // stride 0
  ts.emplace_back("scalar", torch::tensor(3.25, torch::kDouble));            // 0-d
  ts.emplace_back("empty", torch::zeros({3, 0, 2}, torch::kInt));            // no elements
  ts.emplace_back("five_d", torch::randn({1, 2, 1, 3, 2}, torch::kDouble));  // MARK..TUPLE sizes
  ts.emplace_back("half", torch::randn({7}).to(torch::kHalf));
  ts.emplace_back("bf16", torch::randn({2, 5}).to(torch::kBFloat16));
  ts.emplace_back("long", torch::randint(-(int64_t{1} << 40), int64_t{1} << 40, {4}, torch::kLong));
  ts.emplace_back("short", torch::randint(-30000, 30000, {3, 3}, torch::kShort));
  ts.emplace_back("char", torch::randint(-128, 127, {9}, torch::kChar));
  ts.emplace_back("byte", torch::randint(0, 255, {70000}, torch::kByte));  // BININT sizes
  ts.emplace_back("mask", torch::rand({4, 4}) > 0.5);
  ts.emplace_back("cfloat", torch::randn({2, 2}, torch::kComplexFloat));
  ts.emplace_back("cdouble", torch::randn({3}, torch::kComplexDouble));
  ts.emplace_back("param", torch::randn({2}).requires_grad_());
  return ts;
}

void require_same(const sam::NamedTensors& got, const sam::NamedTensors& want) {
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    INFO("tensor " << i << " " << want[i].first);
    CHECK(got[i].first == want[i].first);
    CHECK(got[i].second.scalar_type() == want[i].second.scalar_type());
    CHECK(got[i].second.sizes() == want[i].second.sizes());
    CHECK(got[i].second.is_contiguous());
    CHECK(torch::equal(raw_bytes(got[i].second), raw_bytes(want[i].second.detach())));
  }
}

}  // namespace

TEST_CASE("pth_read reads the golden tiny SAM state dict", "[pth_io]") {
  const auto sd = sam::pth_read((sam_test::golden_tiny() / "sam.pth").string());
  // Facts checked with Debian's python3: sd = torch.load('sam.pth').
  REQUIRE(sd.size() == 202);
  CHECK(sd.front().first == "image_encoder.pos_embed");
  CHECK(sd[1].first == "image_encoder.patch_embed.proj.weight");
  CHECK(sd.back().first == "mask_decoder.iou_prediction_head.layers.2.bias");
  int64_t numel = 0;
  double total = 0;
  std::map<std::string, torch::Tensor> by_name;
  for (const auto& [name, t] : sd) {
    CHECK(t.scalar_type() == torch::kFloat);
    CHECK(t.is_contiguous());
    numel += t.numel();
    total += t.to(torch::kDouble).sum().item<double>();
    by_name[name] = t;
  }
  CHECK(by_name.size() == 202);
  CHECK(numel == 754536);
  CHECK(total == Approx(1179.8694577117997).epsilon(1e-9));

  auto pe = by_name.at("prompt_encoder.pe_layer.positional_encoding_gaussian_matrix");
  CHECK(pe.sizes() == torch::IntArrayRef({2, 32}));
  CHECK(pe.to(torch::kDouble).sum().item<double>() == Approx(8.878719259053469).margin(1e-6));
  CHECK(pe.view({-1})[0].item<float>() == 1.7204773426055908f);
  CHECK(pe.view({-1})[1].item<float>() == -1.1430044174194336f);
  CHECK(pe.view({-1})[2].item<float>() == 0.7075466513633728f);

  auto pos = by_name.at("image_encoder.pos_embed");
  CHECK(pos.sizes() == torch::IntArrayRef({1, 16, 16, 96}));
  CHECK(pos.view({-1})[0].item<float>() == 0.06886987388134003f);
  CHECK(pos.to(torch::kDouble).sum().item<double>() == Approx(2.946909250569661).margin(1e-6));

  CHECK(by_name.at("image_encoder.blocks.1.attn.rel_pos_h").sizes() ==
        torch::IntArrayRef({31, 32}));
  CHECK(by_name.at("image_encoder.blocks.0.attn.rel_pos_h").sizes() ==
        torch::IntArrayRef({11, 32}));
  CHECK(by_name.at("image_encoder.blocks.0.attn.rel_pos_h").view({-1})[0].item<float>() ==
        -0.17208579182624817f);
  CHECK(by_name.at("image_encoder.neck.0.weight").sizes() == torch::IntArrayRef({64, 96, 1, 1}));
  CHECK(by_name.at("image_encoder.neck.0.weight").to(torch::kDouble).sum().item<double>() ==
        Approx(-5.048204550739683).margin(1e-6));
  CHECK(by_name.at("mask_decoder.iou_token.weight").sizes() == torch::IntArrayRef({1, 64}));
  CHECK(by_name.at("mask_decoder.iou_token.weight").view({-1})[1].item<float>() ==
        1.0822904109954834f);
}

TEST_CASE("pth_read reads a plain dict with bool tensors (golden outputs.pt)", "[pth_io]") {
  const auto out = sam::pth_read((sam_test::golden_tiny() / "outputs.pt").string());
  REQUIRE(out.size() == 24);
  CHECK(out[0].first == "image_embedding");
  CHECK(out[0].second.sizes() == torch::IntArrayRef({1, 64, 16, 16}));
  CHECK(out[0].second.to(torch::kDouble).sum().item<double>() ==
        Approx(-78.6221076126676).margin(1e-4));
  CHECK(out[1].first == "point1.masks");
  CHECK(out[1].second.scalar_type() == torch::kBool);
  CHECK(out[1].second.sizes() == torch::IntArrayRef({3, 480, 640}));
  CHECK(out[1].second.sum().item<int64_t>() == 43531);
}

TEST_CASE("pth_write then pth_read is bit exact and keeps the order", "[pth_io]") {
  TempDir tmp("roundtrip");
  const auto ts = sample_tensors();
  sam::pth_write(tmp / "a.pth", ts);
  const auto back = sam::pth_read(tmp / "a.pth");
  require_same(back, ts);

  // More than 256 memo entries (LONG_BINPUT/LONG_BINGET) and more than 1000 items (two SETITEMS
  // batches, the second a single SETITEM).
  sam::NamedTensors many;
  for (int i = 0; i < 1001; ++i)
    many.emplace_back("blocks." + std::to_string(i) + ".w", torch::full({2}, i));
  sam::pth_write(tmp / "many.pth", many);
  require_same(sam::pth_read(tmp / "many.pth"), many);

  // Nothing at all: an empty OrderedDict.
  sam::pth_write(tmp / "none.pth", {});
  CHECK(sam::pth_read(tmp / "none.pth").empty());
}

TEST_CASE("pth_write output is what Python's torch.load reads, and what torch.save writes",
          "[pth_io][python]") {
  if (!python_has_torch()) {
    sam_test::skip(python() + " cannot import torch");
    return;
  }
  TempDir tmp("py_load");
  const auto ts = sample_tensors();
  sam::pth_write(tmp / "ours.pth", ts);
  const std::string script = std::string(CHECKSUM_PY) + R"PY(
sd = torch.load(sys.argv[1])
print('TYPE %s.%s' % (type(sd).__module__, type(sd).__name__))
print('\n'.join(flatten(sd, '', [])))
)PY";
  auto [rc, out] = run_python(tmp, script, tmp / "ours.pth");
  INFO(out);
  REQUIRE(rc == 0);
  CHECK(out == "TYPE collections.OrderedDict\n" + describe(ts));

  // Byte for byte: torch.save(OrderedDict, file object) vs reading that file and writing it again
  // ourselves.
  const std::string save = std::string(CHECKSUM_PY) + R"PY(
g = torch.Generator().manual_seed(3)
sd = collections.OrderedDict()
for i in range(1001):
    sd['layers.%d.weight' % i] = torch.randn(2, i % 4 + 1, generator=g)
sd['zero_d'] = torch.tensor(2.5, dtype=torch.float64)
sd['empty'] = torch.zeros(0, 3, dtype=torch.int32)
sd['mask'] = torch.rand(5, 5, generator=g) > 0.5
sd['bytes'] = (torch.arange(70000) % 251).to(torch.uint8)
sd['bf16'] = torch.randn(3, 1, 2, 2, 2, generator=g).to(torch.bfloat16)
sd['cplx'] = torch.randn(2, dtype=torch.complex64, generator=g)
with open(sys.argv[1], 'wb') as f:
    torch.save(sd, f)
)PY";
  auto [rc2, out2] = run_python(tmp, save, tmp / "python.pth");
  INFO(out2);
  REQUIRE(rc2 == 0);
  const auto read = sam::pth_read(tmp / "python.pth");
  REQUIRE(read.size() == 1007);
  sam::pth_write(tmp / "again.pth", read);
  INFO("Python's torch " << python_torch_major() << ".x, our libtorch " << TORCH_VERSION);
  // pth_write writes through libtorch's archive writer: byte for byte what torch.save of the same
  // major version writes.
  if (python_torch_major() == TORCH_VERSION_MAJOR) {
    const std::string a = slurp(tmp / "python.pth"), b = slurp(tmp / "again.pth");
    CHECK(a.size() == b.size());
    CHECK((a == b));
  } else {
    // Across major versions the archives differ (2.x writes more records: byteorder, format
    // version, 64-byte aligned storages): the same tensors, and Python's torch reads them equal.
    const auto again = sam::pth_read(tmp / "again.pth");
    REQUIRE(again.size() == read.size());
    for (size_t i = 0; i < read.size(); ++i) {
      INFO(read[i].first);
      CHECK(again[i].first == read[i].first);
      CHECK(torch::equal(again[i].second, read[i].second));
    }
    const std::string cmp = R"PY(
import sys, torch
a, b = torch.load(sys.argv[1]), torch.load(sys.argv[2])
assert list(a) == list(b), 'keys differ'
bad = [k for k in a if a[k].dtype != b[k].dtype or a[k].shape != b[k].shape or not torch.equal(a[k], b[k])]
print('DIFFER', bad[:5]) if bad else print('EQUAL', len(a))
)PY";
    auto [rc3, out3] = run_python(tmp, cmp, tmp / "python.pth" + " " + tmp / "again.pth");
    INFO(out3);
    CHECK(rc3 == 0);
    CHECK(out3.find("EQUAL 1007") != std::string::npos);
  }
}

TEST_CASE("pth_read reads torch.save files with shared storage, views and nesting",
          "[pth_io][python]") {
  if (!python_has_torch()) {
    sam_test::skip(python() + " cannot import torch");
    return;
  }
  TempDir tmp("py_save");
  const std::string script = std::string(CHECKSUM_PY) + R"PY(
torch.manual_seed(0)
base = torch.randn(4, 6)
m = collections.OrderedDict()
m['w'] = base                        # the whole storage
m['row1'] = base[1]                  # a view at an offset of the same storage
m['w_t'] = base.t()                  # a non-contiguous view
m['cols'] = base[:, 2:5]             # offset + strides
m['h'] = torch.arange(10, dtype=torch.float16).reshape(2, 5)
m['p'] = torch.nn.Parameter(torch.ones(3))
m['n'] = torch.tensor(7)
m['same'] = m['h']                   # one tensor under two names
m._metadata = collections.OrderedDict(w=dict(version=1))
obj = {'model': m, 'epoch': 3, 'args': argparse.Namespace(lr=0.1, name='x', sizes=(1, 2)),
       'hist': [torch.zeros(2), 1.5, 'text', None, (torch.ones(1, dtype=torch.int8), 2 ** 70)],
       'ints': {0: torch.ones(1, dtype=torch.bool), 10: None, 11: torch.full((2,), -2 ** 40)},
       'device': torch.device('cpu'), 'dtype': torch.float32}
torch.save(obj, sys.argv[1])
torch.save(obj, sys.argv[2], pickle_protocol=4)  # FRAME, MEMOIZE, STACK_GLOBAL, SHORT_BINUNICODE
print('\n'.join(flatten(obj, '', [])))
)PY";
  auto [rc, out] = run_python(tmp, script, tmp / "nested.pth" + " " + tmp / "nested4.pth");
  INFO(out);
  REQUIRE(rc == 0);
  const auto got = sam::pth_read(tmp / "nested.pth");
  CHECK(describe(got) == out);
  CHECK(describe(sam::pth_read(tmp / "nested4.pth")) == out);
  REQUIRE(got.size() == 12);
  CHECK(got[0].first == "model.w");
  CHECK(got[1].first == "model.row1");
  CHECK(got[9].first == "hist.4.0");
  CHECK(got[10].first == "ints.0");
  // Views of one storage come back as separate, contiguous tensors.
  CHECK(got[2].second.is_contiguous());
  got[0].second.zero_();
  CHECK(got[1].second.abs().sum().item<float>() > 0);
  CHECK(got[2].second.abs().sum().item<float>() > 0);
}

TEST_CASE("pth_read and pth_write report errors with the path", "[pth_io]") {
  using Catch::Contains;
  TempDir tmp("errors");

  const std::string missing = tmp / "missing.pth";
  REQUIRE_THROWS_WITH(sam::pth_read(missing), Contains(missing) && Contains("cannot open"));

  const std::string text = tmp / "text.pth";
  spit(text, "this is not a checkpoint\n");
  REQUIRE_THROWS_WITH(sam::pth_read(text), Contains(text) && Contains("not a zip"));

  const std::string empty = tmp / "empty.pth";
  spit(empty, "");
  REQUIRE_THROWS_WITH(sam::pth_read(empty), Contains(empty));

  REQUIRE_THROWS_WITH(sam::pth_read(tmp.dir.string()), Contains(tmp.dir.string()));

  const std::string legacy = tmp / "legacy.pth";
  spit(legacy, std::string("\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19rest", 18));
  REQUIRE_THROWS_WITH(sam::pth_read(legacy), Contains(legacy) && Contains("legacy"));

  const std::string whole = slurp((sam_test::golden_tiny() / "sam.pth").string());
  const std::string truncated = tmp / "truncated.pth";
  spit(truncated, whole.substr(0, whole.size() / 2));
  REQUIRE_THROWS_WITH(sam::pth_read(truncated), Contains(truncated));

  // Archives whose pickle is wrong, written with libtorch's own zip writer.
  auto archive = [&](const std::string& name, const std::string& pkl,
                     const std::vector<std::string>& data) {
    const std::string p = tmp / name;
    caffe2::serialize::PyTorchStreamWriter w(p);
    w.writeRecord("data.pkl", pkl.data(), pkl.size());
    for (size_t i = 0; i < data.size(); ++i)
      w.writeRecord("data/" + std::to_string(i), data[i].data(), data[i].size());
    w.writeEndOfFile();
    return p;
  };
  const std::string bad_op = archive("bad_op.pth", std::string("\x80\x02\xff.", 4), {});
  REQUIRE_THROWS_WITH(sam::pth_read(bad_op),
                      Contains(bad_op) && Contains("unsupported pickle opcode 0xff"));

  const std::string short_pkl = archive("short.pth",
                                        std::string("\x80\x02X\x10\x00\x00\x00"
                                                    "ab",
                                                    9),
                                        {});
  REQUIRE_THROWS_WITH(sam::pth_read(short_pkl),
                      Contains(short_pkl) && Contains("truncated pickle"));

  const std::string qt = archive("qtensor.pth",
                                 "\x80\x02"
                                 "ctorch._utils\n_rebuild_qtensor\n)R.",
                                 {});
  REQUIRE_THROWS_WITH(sam::pth_read(qt),
                      Contains(qt) && Contains("unsupported global torch._utils._rebuild_qtensor"));

  // _rebuild_tensor_v2(('storage', FloatStorage, '0', 'cpu', 2), 0, (10,), (1,), False,
  // OrderedDict()): a view larger than its storage, and then a storage whose record is shorter than
  // announced.
  const std::string tensor_pkl =
      "\x80\x02"
      "ctorch._utils\n_rebuild_tensor_v2\n((X\x07\x00\x00\x00storage"
      "ctorch\nFloatStorage\nX\x01\x00\x00\x00"
      "0X\x03\x00\x00\x00"
      "cpuK\x02tQK\x00K\x0a"
      "\x85K\x01\x85\x89"
      "ccollections\nOrderedDict\n)RtR."s;
  const std::string oob = archive("oob.pth", tensor_pkl, {std::string(8, '\0')});
  REQUIRE_THROWS_WITH(sam::pth_read(oob), Contains(oob) && Contains("out of the bounds"));
  const std::string short_rec = archive("short_rec.pth", tensor_pkl, {std::string(4, '\0')});
  REQUIRE_THROWS_WITH(sam::pth_read(short_rec),
                      Contains(short_rec) && Contains("truncated record data/0"));
  const std::string no_rec = archive("no_rec.pth", tensor_pkl, {});
  REQUIRE_THROWS_WITH(sam::pth_read(no_rec), Contains(no_rec) && Contains("missing record data/0"));

  // torch 2.x's byteorder record: little-endian is read, big-endian is refused.
  std::string ok_pkl = tensor_pkl;
  ok_pkl[ok_pkl.find("K\x0a") + 1] = 2;  // size (2,): fits the 8-byte storage
  auto with_order = [&](const std::string& name, const std::string& order) {
    const std::string p = archive(name, ok_pkl, {std::string(8, '\0')});
    caffe2::serialize::PyTorchStreamReader r(p);  // add the record by rewriting the archive
    const std::string q = tmp / ("o_" + name);
    caffe2::serialize::PyTorchStreamWriter w(q);
    for (const auto& rec : {"data.pkl", "data/0"}) {
      auto [ptr, n] = r.getRecord(rec);
      w.writeRecord(rec, ptr.get(), n);
    }
    w.writeRecord("byteorder", order.data(), order.size());
    w.writeEndOfFile();
    return q;
  };
  const auto little = sam::pth_read(with_order("little.pth", "little"));
  REQUIRE(little.size() == 1);
  CHECK(little[0].first.empty());  // a bare tensor at the root
  CHECK(little[0].second.sizes() == torch::IntArrayRef({2}));
  const std::string big = with_order("big.pth", "big");
  REQUIRE_THROWS_WITH(sam::pth_read(big), Contains(big) && Contains("byte order"));

  // Writer errors.
  const std::string nodir = tmp / "no/such/dir/x.pth";
  REQUIRE_THROWS_WITH(sam::pth_write(nodir, {{"a", torch::ones(1)}}), Contains(nodir));
  const std::string dup = tmp / "dup.pth";
  REQUIRE_THROWS_WITH(sam::pth_write(dup, {{"a", torch::ones(1)}, {"a", torch::ones(1)}}),
                      Contains(dup) && Contains("duplicate"));
  REQUIRE_THROWS_WITH(sam::pth_write(dup, {{"a", torch::Tensor()}}),
                      Contains(dup) && Contains("undefined"));
  if (fs::exists("/dev/full")) {
    std::vector<std::pair<std::string, torch::Tensor>> big{{"x", torch::zeros({1 << 20})}};
    REQUIRE_THROWS_WITH(sam::pth_write("/dev/full", big),
                        Contains("/dev/full") && Contains("write failed"));
  }
}

TEST_CASE("pth_read fails cleanly on truncated and corrupted pickles", "[pth_io]") {
  TempDir tmp("fuzz");
  sam::NamedTensors ts{{"a.weight", torch::randn({2, 3})},
                       {"a.bias", torch::zeros({0})},
                       {"b", torch::tensor(1.5)},
                       {"c.mask", torch::ones({4}, torch::kBool)}};
  sam::pth_write(tmp / "src.pth", ts);
  std::string pkl;
  std::vector<std::string> data;
  {
    caffe2::serialize::PyTorchStreamReader r(tmp / "src.pth");
    auto [p, n] = r.getRecord("data.pkl");
    pkl.assign(static_cast<const char*>(p.get()), n);
    for (size_t i = 0; i < ts.size(); ++i) {
      auto [q, m] = r.getRecord("data/" + std::to_string(i));
      data.emplace_back(static_cast<const char*>(q.get()), m);
    }
  }
  auto attempt = [&](const std::string& bad) {
    const std::string p = tmp / "bad.pth";
    {
      caffe2::serialize::PyTorchStreamWriter w(p);
      w.writeRecord("data.pkl", bad.data(), bad.size());
      for (size_t i = 0; i < data.size(); ++i)
        w.writeRecord("data/" + std::to_string(i), data[i].data(), data[i].size());
      w.writeEndOfFile();
    }
    try {
      sam::pth_read(p);
      return 0;
    } catch (const std::runtime_error& e) {
      return std::string(e.what()).find(p) != std::string::npos ? 1 : 2;
    } catch (...) {
      return 3;
    }
  };
  int outcomes[4] = {0, 0, 0, 0};
  for (size_t cut = 0; cut < pkl.size(); ++cut) ++outcomes[attempt(pkl.substr(0, cut))];
  CHECK(outcomes[0] == 0);  // every truncation is noticed
  std::mt19937 rng(11);
  for (int it = 0; it < 400; ++it) {
    std::string bad = pkl;
    const int flips = 1 + it % 3;
    for (int k = 0; k < flips; ++k) bad[rng() % bad.size()] = static_cast<char>(rng() & 0xff);
    ++outcomes[attempt(bad)];
  }
  CHECK(outcomes[2] == 0);  // runtime_error without the path
  CHECK(outcomes[3] == 0);  // any other exception
  CHECK(attempt(pkl) == 0);
}

// Hidden (run with "[.bench]"): write and read a ViT-H sized checkpoint, 594 tensors, 2.5 GB.
TEST_CASE("pth_io speed on a ViT-H sized checkpoint", "[.bench]") {
  TempDir tmp("bench");
  sam::NamedTensors ts;
  const int64_t per = 641090608 / 594;
  for (int i = 0; i < 594; ++i)
    ts.emplace_back("t" + std::to_string(i), torch::full({per}, float(i)));
  auto t0 = std::chrono::steady_clock::now();
  sam::pth_write(tmp / "big.pth", ts);
  auto t1 = std::chrono::steady_clock::now();
  auto back = sam::pth_read(tmp / "big.pth");
  auto t2 = std::chrono::steady_clock::now();

  const double gb = static_cast<double>(fs::file_size(tmp / "big.pth")) / 1e9;
  WARN("size " << gb << " GB, write " << std::chrono::duration<double>(t1 - t0).count()
               << " s, read " << std::chrono::duration<double>(t2 - t1).count() << " s");
  REQUIRE(back.size() == ts.size());
  CHECK(back[593].second[0].item<float>() == 593.0f);
}
