// MATLAB Level 5 MAT-files (data/matfile.h): files written at test time by scipy.io.savemat
// (compressed and not; the struct SBD's inst/*.mat files hold, with its sparse logical
// boundaries, and every class the reader takes) compared value by value with what scipy was
// given; hand-made files for the small-element form, MATLAB's narrow storage, skipped classes and
// every kind of damage, whose errors must name the file.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "data/matfile.h"
#include "scipy_peer.h"
#include "test_util.h"

using namespace sam::data;
namespace fs = std::filesystem;
using Catch::Matchers::Contains;
using nlohmann::json;

namespace {

std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

void write(const fs::path& p, const std::string& bytes) {
  std::ofstream(p, std::ios::binary) << bytes;
}

// The message of the std::runtime_error that reading `path` throws ("<no error>" when none).
std::string read_error(const fs::path& path) {
  try {
    read_mat_file(path.string());
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "<no error>";
}

// Writes the first `n` bytes of `bytes` to `path` and reads it back: the read must fail naming the
// file as truncated, unless the cut falls between variables, where the shorter file holds fewer
// than `n_vars` variables. Returns 1 for such a whole file, 0 for a failure.
size_t cut_fails(const fs::path& path, const std::string& bytes, size_t n, size_t n_vars) {
  write(path, bytes.substr(0, n));
  try {
    const MatFile f = read_mat_file(path.string());
    INFO("cut at " << n << " reads " << f.variables.size() << " variables");
    CHECK(n >= 128);
    CHECK(f.variables.size() < n_vars);
    return 1;
  } catch (const std::runtime_error& e) {
    INFO("cut at " << n);
    CHECK_THAT(e.what(), Contains(path.string()) && (Contains("truncated") ||
                                                     Contains("shorter than the 128-byte header")));
  }
  return 0;
}

// Writes the variables with scipy.io.savemat, compressed and not, and describes each as numpy
// holds it (values column-major, as repr() strings: exact doubles, inf and -0.0 included).
const char* kWriter = R"PY(
import json, sys
import numpy as np, scipy.io as sio, scipy.sparse as sp
out = sys.argv[1]
rng = np.random.default_rng(7)
seg = rng.integers(0, 5, size=(37, 53)).astype(np.uint8)     # odd sizes: rows != columns
bounds = np.empty((4, 1), dtype=object)
for k in range(4):
    bounds[k, 0] = sp.csc_matrix(seg == k + 1)                 # SBD: sparse logical boundaries
gt = {'Segmentation': seg, 'Boundaries': bounds,
      'Categories': np.array([[15.0], [7.0], [1.0], [20.0]])}
d = rng.standard_normal((3, 4)) * 1e3
d[0, 0] = np.inf; d[1, 1] = -0.0; d[2, 3] = 1e-310            # infinity, signed zero, subnormal
cel = np.empty((1, 3), dtype=object)
cel[0, 0] = np.array([[1.5, -2.0], [3.25, 4.0]]); cel[0, 1] = 'text'
cel[0, 2] = np.array([[-7, 300]], dtype=np.int16)
sa = np.zeros((1, 2), dtype=[('a', 'O'), ('b', 'O')])
sa[0, 0]['a'] = np.array([[1.0]]); sa[0, 0]['b'] = 'x'
sa[0, 1]['a'] = np.array([[2.0, 3.0]]); sa[0, 1]['b'] = 'yz'
v = {
    'GTinst': gt,
    'd': d,
    's': rng.standard_normal((2, 5)).astype(np.float32),
    'i8': np.array([[-128, 127, 0]], np.int8),
    'u8': np.array([[0, 255], [1, 2], [3, 4]], np.uint8),
    'i16': np.array([[-32768, 32767], [-1, 5]], np.int16),
    'u16': np.array([[65535, 0, 7]], np.uint16),
    'i32': np.array([[-2147483648, 2147483647]], np.int32),
    'u32': np.array([[4294967295, 1]], np.uint32),
    'i64': np.array([[-(2**53), 2**53, -1]], np.int64),
    'u64': np.array([[2**53, 0]], np.uint64),
    'lg': np.array([[True, False, True], [False, False, True]]),
    'cube': np.arange(24, dtype=np.uint8).reshape(2, 3, 4),
    'z': np.array([[1 + 2j, -3.5j], [0, 4]]),
    'str': 'hello',
    'cel': cel,
    'sa': sa,
    'empty': np.zeros((0, 0)),
}
sio.savemat(out + '/plain.mat', v, do_compression=False)
sio.savemat(out + '/packed.mat', v, do_compression=True)

CLS = {'float64': 'double', 'float32': 'single', 'int8': 'int8', 'uint8': 'uint8',
       'int16': 'int16', 'uint16': 'uint16', 'int32': 'int32', 'uint32': 'uint32',
       'int64': 'int64', 'uint64': 'uint64', 'bool': 'uint8', 'complex128': 'double'}
def num(a):
    return [repr(float(x)) for x in np.asarray(a).flatten(order='F')]
def desc(x):
    if isinstance(x, dict):
        return {'class': 'struct', 'dims': [1, 1], 'fields': list(x),
                'elements': [desc(x[k]) for k in x]}
    if isinstance(x, str):
        return {'class': 'char', 'dims': [1, len(x)], 'text': x}
    if sp.issparse(x):
        a = x.toarray()
        return {'class': 'sparse', 'dims': list(a.shape), 'logical': a.dtype == bool,
                'values': num(a.astype(np.float64))}
    x = np.asarray(x)
    if x.dtype.names:
        return {'class': 'struct', 'dims': list(x.shape), 'fields': list(x.dtype.names),
                'elements': [desc(e[f]) for e in x.flatten(order='F') for f in x.dtype.names]}
    if x.dtype == object:
        return {'class': 'cell', 'dims': list(x.shape),
                'elements': [desc(e) for e in x.flatten(order='F')]}
    r = {'class': CLS[x.dtype.name], 'dims': list(x.shape), 'logical': x.dtype == bool}
    if np.iscomplexobj(x):
        r['values'] = num(x.real); r['imag'] = num(x.imag)
    else:
        r['values'] = num(x.astype(np.float64) if x.dtype != np.uint64 and x.dtype != np.int64
                          else x.astype(object))
    return r
json.dump({'variables': [[k, desc(x)] for k, x in v.items()]}, open(out + '/expected.json', 'w'))
)PY";

double parse_double(const std::string& s) {
  return std::strtod(s.c_str(), nullptr);  // strtod: subnormals and inf without exceptions
}

// The same double, bit for bit (so -0.0 differs from 0.0).
bool same(double a, double b) {
  return std::memcmp(&a, &b, sizeof a) == 0;
}

void check_values(const std::vector<double>& got, const json& want, const std::string& where) {
  REQUIRE(got.size() == want.size());
  size_t bad = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (!same(got[i], parse_double(want[i].get<std::string>()))) {
      if (!bad)
        UNSCOPED_INFO(where << ": value " << i << " is " << got[i] << ", scipy wrote "
                            << want[i].get<std::string>());
      ++bad;
    }
  }
  CHECK(bad == 0);
}

// Compares an array with scipy's description of it, recursively.
void check_array(const MatArray& a, const json& e, const std::string& where) {
  INFO(where << " (" << a.describe() << ")");
  const std::string cls = e["class"];
  CHECK(a.dims == e["dims"].get<std::vector<int64_t>>());
  CHECK(a.skipped.empty());
  CHECK(mat_class_name(a.cls) == cls);
  if (cls == "char") {
    CHECK(a.text == e["text"].get<std::string>());
  } else if (cls == "cell") {
    REQUIRE(a.elements.size() == e["elements"].size());
    for (size_t i = 0; i < a.elements.size(); ++i)
      check_array(a.elements[i], e["elements"][i], where + "{" + std::to_string(i + 1) + "}");
  } else if (cls == "struct") {
    CHECK(a.fields == e["fields"].get<std::vector<std::string>>());
    REQUIRE(a.elements.size() == e["elements"].size());
    for (size_t i = 0; i < a.elements.size(); ++i)
      check_array(a.elements[i], e["elements"][i],
                  where + "." + a.fields[i % a.fields.size()] + "[" +
                      std::to_string(i / a.fields.size()) + "]");
  } else if (cls == "sparse") {
    CHECK(a.logical == e["logical"].get<bool>());
    // Densified column by column, then compared with the dense values scipy was given.
    std::vector<double> dense(size_t(a.numel()), 0.0);
    const int64_t rows = a.dims[0];
    for (int64_t c = 0; c < a.dims[1]; ++c)
      for (int64_t k = a.sparse_col_starts[size_t(c)]; k < a.sparse_col_starts[size_t(c) + 1]; ++k)
        dense[size_t(c * rows + a.sparse_rows[size_t(k)])] = a.real[size_t(k)];
    check_values(dense, e["values"], where);
  } else {
    CHECK(a.logical == e["logical"].get<bool>());
    check_values(a.real, e["values"], where);
    CHECK(a.complex == e.contains("imag"));
    if (e.contains("imag")) check_values(a.imag, e["imag"], where + " (imaginary)");
  }
}

// ---- hand-made files ----------------------------------------------------------------------

std::string u32(uint32_t v) {
  std::string s(4, '\0');
  for (int i = 0; i < 4; ++i) s[size_t(i)] = char((v >> (8 * i)) & 0xff);
  return s;
}

// A data element in the normal form, padded to 8 bytes.
std::string elem(uint32_t type, const std::string& data) {
  std::string s = u32(type) + u32(uint32_t(data.size())) + data;
  s.resize((s.size() + 7) / 8 * 8, '\0');
  return s;
}

// A data element in the small form: up to 4 bytes inside the tag.
std::string small_elem(uint32_t type, const std::string& data) {
  std::string s = u32(type | (uint32_t(data.size()) << 16)) + data;
  s.resize(8, '\0');
  return s;
}

std::string header(uint16_t version = 0x0100, const char* endian = "IM") {
  std::string h = "MATLAB 5.0 MAT-file, written by hand for test_matfile";
  h.resize(116, ' ');
  h += std::string(8, '\0');  // subsystem data offset
  h += char(version & 0xff);
  h += char(version >> 8);
  h += endian;
  return h;
}

std::string dims_elem(std::vector<int32_t> dims) {
  std::string d;
  for (int32_t v : dims) d += u32(uint32_t(v));
  return elem(5, d);  // miINT32
}

// A miMATRIX element: flags (class, flag bits), dimensions, name (small form when short), body.
std::string matrix(unsigned cls, std::vector<int32_t> dims, const std::string& name,
                   const std::string& body, unsigned flag_bits = 0) {
  const std::string flags = elem(6, u32(cls | (flag_bits << 8)) + u32(0));  // miUINT32
  const std::string nm = name.size() <= 4 ? small_elem(1, name) : elem(1, name);
  return elem(14, flags + dims_elem(dims) + nm + body);
}

std::string f64(double v) {
  std::string s(8, '\0');
  std::memcpy(s.data(), &v, 8);  // the test machines are little-endian, as the files
  return s;
}

}  // namespace

TEST_CASE("matfile: scipy.io.savemat files, compressed and not, read value for value") {
  SAM_REQUIRE_SCIPY();
  const auto dir = sam_test::temp_dir("matfile_scipy");
  sam_test::run_python_script(dir, "write_mat.py", kWriter, dir.string());
  const json expected = json::parse(slurp(dir / "expected.json"));
  for (const char* name : {"plain.mat", "packed.mat"}) {
    const fs::path path = dir / name;
    INFO(path.string());
    const MatFile f = read_mat_file(path.string());
    CHECK_THAT(f.description, Contains("MATLAB 5.0 MAT-file"));
    REQUIRE(f.variables.size() == expected["variables"].size());
    for (size_t i = 0; i < f.variables.size(); ++i) {
      const std::string var = expected["variables"][i][0];
      CHECK(f.variables[i].name == var);
      check_array(f.variables[i], expected["variables"][i][1], var);
    }
    // SBD's helper: GTinst.Segmentation row-major, as numpy indexes it.
    const MatIntGrid g = read_sbd_instances(path.string());
    const json& seg = expected["variables"][0][1]["elements"][0];
    REQUIRE(g.rows == 37);
    REQUIRE(g.cols == 53);
    size_t bad = 0;
    for (int64_t r = 0; r < g.rows; ++r)
      for (int64_t c = 0; c < g.cols; ++c)
        bad += g.values[size_t(r * g.cols + c)] !=
               int(parse_double(seg["values"][size_t(c * g.rows + r)].get<std::string>()));
    CHECK(bad == 0);
    // A sparse logical boundary densified by mat_int_grid is its instance's mask.
    const MatIntGrid b3 = mat_int_grid(f.get("GTinst").field("Boundaries").cell(2), "b3");
    size_t mismatch = 0;
    for (size_t k = 0; k < g.values.size(); ++k)
      mismatch += (g.values[k] == 3) != (b3.values[k] == 1);
    CHECK(mismatch == 0);
    // Paths and accessors name what is missing.
    CHECK_THROWS_WITH(f.get("GTinst.Nope"), Contains(name) && Contains("no field 'Nope'") &&
                                                Contains("Segmentation, Boundaries, Categories"));
    CHECK_THROWS_WITH(f.get("nope"), Contains(name) && Contains("no variable 'nope'"));
    CHECK_THROWS_WITH(f.get("d.x"), Contains("3x4 double") && Contains("not a 1x1 struct"));
    CHECK_THROWS_WITH(mat_int_grid(*f.find("d"), "d"), Contains("not an int32 integer"));
    CHECK_THROWS_WITH(mat_int_grid(*f.find("cube"), "cube"), Contains("2 dimensions expected"));
    CHECK_THROWS_WITH(mat_int_grid(*f.find("z"), "z"), Contains("complex"));
    CHECK(f.get("sa").field("b", 1).text == "yz");
  }

  // Damage to scipy's compressed file: every cut and a flipped byte inside the first compressed
  // variable fail with the file's name.
  const std::string packed = slurp(dir / "packed.mat");
  const size_t n_vars = expected["variables"].size();
  size_t cuts = 0, whole = 0;
  for (size_t n = 0; n < packed.size(); n += (n < 300 || n + 300 > packed.size()) ? 1 : 37) {
    whole += cut_fails(dir / "cut.mat", packed, n, n_vars);
    ++cuts;
  }
  CHECK(cuts > 500);
  CHECK(whole <= n_vars);
  std::string flipped = packed;
  flipped[128 + 8 + 40] = char(flipped[128 + 8 + 40] ^ 0x5a);
  write(dir / "flipped.mat", flipped);
  CHECK_THAT(read_error(dir / "flipped.mat"), Contains("flipped.mat") && Contains("compressed"));
  fs::remove_all(dir);
}

TEST_CASE("matfile: hand-made files: small elements, narrow storage, skipped classes") {
  const auto dir = sam_test::temp_dir("matfile_hand");
  // x: 1x1 double 2.5; n: a double array stored as miUINT8 (MATLAB saves small integers so);
  // s: a struct whose field f is a function handle (skipped) and whose field v reads.
  const std::string x = matrix(6, {1, 1}, "x", elem(9, f64(2.5)));
  const std::string n = matrix(6, {1, 3}, "n", elem(2, std::string("\x01\x02\xfa", 3)));
  const std::string fh = elem(14, elem(6, u32(16) + u32(0)) + dims_elem({1, 1}) +
                                      small_elem(1, "") + elem(2, "opaque bytes"));
  const std::string v = matrix(9, {2, 2}, "", small_elem(2, std::string("\x01\x00\x02\x03", 4)));
  const std::string names = std::string("f\0\0\0v\0\0\0", 8);
  const std::string s = matrix(2, {1, 1}, "s", small_elem(5, u32(4)) + elem(1, names) + fh + v);
  const std::string file = header() + x + n + s;
  write(dir / "ok.mat", file);
  const MatFile f = read_mat_file((dir / "ok.mat").string());
  REQUIRE(f.variables.size() == 3);
  CHECK(f.get("x").real == std::vector<double>{2.5});
  CHECK(f.get("n").real == std::vector<double>{1, 2, 250});
  CHECK(f.get("n").cls == MatClass::float64);
  const MatArray& st = f.get("s");
  CHECK(st.fields == std::vector<std::string>{"f", "v"});
  CHECK_THAT(st.field("f").skipped, Contains("function_handle"));
  CHECK_THROWS_WITH(mat_int_grid(st.field("f"), "s.f"), Contains("s.f") && Contains("skips"));
  const MatIntGrid g = mat_int_grid(f.get("s.v"), "s.v");
  CHECK(g.values == std::vector<int32_t>{1, 2, 0, 3});  // column-major 1 0 / 2 3 -> row-major

  // Every prefix of the file fails, naming it, but the three that end between variables.
  size_t whole = 0;
  for (size_t k = 0; k < file.size(); ++k) whole += cut_fails(dir / "cut.mat", file, k, 3);
  CHECK(whole == 3);

  struct Bad {
    const char* name;
    std::string bytes;
    const char* says;
  };
  std::string wrong_text = header();
  wrong_text[126] = 'X';
  const Bad bad[] = {
      {"big_endian.mat", header(0x0001, "MI") + x, "big-endian"},
      {"v73.mat", header(0x0200) + std::string(400, '\0'), "7.3"},
      {"not_mat.mat", std::string(200, 'a'), "not a MATLAB 5 MAT-file"},
      {"indicator.mat", wrong_text + x, "no endian indicator"},
      {"version.mat", header(0x0300) + x, "unknown MAT-file version"},
      {"count.mat", header() + matrix(6, {2, 2}, "c", elem(9, f64(1))),
       "holds 1 values, 4 expected"},
      {"class.mat", header() + matrix(42, {1, 1}, "k", elem(9, f64(1))), "unknown array class 42"},
      {"toplevel.mat", header() + elem(9, f64(1)), "only miMATRIX and miCOMPRESSED"},
      {"small.mat", header() + elem(14, u32(2 | (6u << 16)) + "abcd"), "at most 4"},
      {"negative.mat", header() + matrix(6, {-1, 1}, "m", ""), "negative dimension"},
      {"overrun.mat", header() + elem(14, elem(6, u32(6) + u32(0)) + u32(5) + u32(64)),
       "truncated"},
      {"trailing.mat", header() + matrix(6, {1, 1}, "t", elem(9, f64(1)) + elem(9, f64(2))),
       "unexpected byte(s)"},
      {"bad_zlib.mat", header() + elem(15, "this is not a zlib stream"), "bad compressed data"},
  };
  for (const Bad& b : bad) {
    write(dir / b.name, b.bytes);
    const std::string msg = read_error(dir / b.name);
    INFO(b.name << ": " << msg);
    CHECK_THAT(msg, Contains((dir / b.name).string()) && Contains(b.says));
  }
  // Cells nested beyond the reader's depth are refused, not followed down the stack.
  std::string deep = matrix(6, {1, 1}, "", elem(9, f64(1)));
  for (int i = 0; i < 70; ++i) deep = matrix(1, {1, 1}, i == 69 ? "deep" : "", deep.substr(0));
  write(dir / "deep.mat", header() + deep);
  CHECK_THAT(read_error(dir / "deep.mat"), Contains("deep.mat") && Contains("nested deeper"));
  CHECK_THAT(read_error(dir / "missing.mat"), Contains("missing.mat") && Contains("cannot open"));
  fs::remove_all(dir);
}
