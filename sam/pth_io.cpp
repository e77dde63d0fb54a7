// Checkpoint IO in torch.save's format: a zip archive (records `<archive>/data.pkl`,
// `<archive>/data/<key>`, `<archive>/version`, torch 2.x adds `byteorder`) whose data.pkl is a
// pickle that refers to the tensor storages by persistent id ('storage', <storage class>, key,
// location, numel). The zip layer is libtorch's caffe2::serialize::PyTorchStreamReader/Writer; the
// pickle machine is sam/pickle.h; this file is the torch layer between them, written from
// torch/serialization.py and torch/_utils.py (_rebuild_tensor_v2).
#include "sam/pth_io.h"

#include "sam/pickle.h"

#include <torch/version.h>

#include <ATen/ATen.h>
#include <c10/core/CPUAllocator.h>
#include <c10/util/Exception.h>
#include <caffe2/serialize/inline_container.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <unordered_map>
#include <unordered_set>

namespace sam {
namespace {

// ----------------------------------------------------------------------------
// Dtypes: torch's storage classes (persistent ids, GLOBAL 'torch FloatStorage') and dtype objects
// (_rebuild_tensor_v3).

struct StorageClass {
  const char* name;
  at::ScalarType type;
};
constexpr StorageClass kStorageClasses[] = {
    {"FloatStorage", at::kFloat},
    {"DoubleStorage", at::kDouble},
    {"HalfStorage", at::kHalf},
    {"BFloat16Storage", at::kBFloat16},
    {"LongStorage", at::kLong},
    {"IntStorage", at::kInt},
    {"ShortStorage", at::kShort},
    {"CharStorage", at::kChar},
    {"ByteStorage", at::kByte},
    {"BoolStorage", at::kBool},
    {"ComplexFloatStorage", at::kComplexFloat},
    {"ComplexDoubleStorage", at::kComplexDouble},
};

struct DtypeName {
  const char* name;
  at::ScalarType type;
};
constexpr DtypeName kDtypeNames[] = {
    {"float32", at::kFloat},
    {"float", at::kFloat},
    {"float64", at::kDouble},
    {"double", at::kDouble},
    {"float16", at::kHalf},
    {"half", at::kHalf},
    {"bfloat16", at::kBFloat16},
    {"int64", at::kLong},
    {"long", at::kLong},
    {"int32", at::kInt},
    {"int", at::kInt},
    {"int16", at::kShort},
    {"short", at::kShort},
    {"int8", at::kChar},
    {"uint8", at::kByte},
    {"bool", at::kBool},
    {"complex64", at::kComplexFloat},
    {"cfloat", at::kComplexFloat},
    {"complex128", at::kComplexDouble},
    {"cdouble", at::kComplexDouble},
};

const char* storage_class_name(at::ScalarType t) {
  for (const auto& c : kStorageClasses)
    if (c.type == t) return c.name;
  return nullptr;
}

std::string error_text(const std::exception& e) {
  if (const auto* ce = dynamic_cast<const c10::Error*>(&e)) return ce->what_without_backtrace();
  return e.what();
}

// ----------------------------------------------------------------------------
// Reader: the torch layer of the pickle (sam/pickle.h's hooks).

using pickle::Kind;
using pickle::Value;
using pickle::ValuePtr;

// What torch's GLOBALs mean (Value::tag of a Global).
enum GlobalTag : int {
  kRebuildTensor = 1,  // torch._utils._rebuild_tensor (storage, offset, size, stride)
  kRebuildTensorV2,    // torch._utils._rebuild_tensor_v2 (storage, offset, size, stride,
                       // requires_grad, hooks[, meta])
  kRebuildTensorV3,    // torch._utils._rebuild_tensor_v3 (... hooks, dtype[, meta])
  kRebuildParameter,   // torch._utils._rebuild_parameter(_with_state) (data, requires_grad,
                       // hooks[, state])
  kRebuildFromType,    // torch._tensor._rebuild_from_type_v2 (func, new_type, args, state)
  kStorageClass,       // torch.FloatStorage etc.; the payload is its dtype
  kDtype,              // torch.float32 etc.; the payload is the dtype
};
// The hooks' own values (Value::tag of an Ext).
enum ExtTag : int { kStorage = 1, kTensor };

struct StorageRef {  // an Ext kStorage: a record loaded into `storages`
  std::string key;
  at::ScalarType dtype;
};

at::ScalarType dtype_of(const Value& g) { return *std::static_pointer_cast<at::ScalarType>(g.payload); }
const at::Tensor& tensor_of(const Value& v) { return *std::static_pointer_cast<at::Tensor>(v.payload); }

class TorchHooks : public pickle::Hooks {
 public:
  explicit TorchHooks(caffe2::serialize::PyTorchStreamReader& reader) : reader_(reader) {}

  void resolve_global(Value& g, const std::string& module, const std::string& name) override {
    auto unsupported = [&]() { throw pickle::Error("unsupported global " + g.s); };
    auto typed = [&](GlobalTag tag, at::ScalarType t) {
      g.tag = tag;
      g.payload = std::make_shared<at::ScalarType>(t);
    };
    const bool torch_mod = module == "torch" || module == "torch.cuda" || module == "torch.storage";
    if (module == "torch._utils") {
      if (name == "_rebuild_tensor")
        g.tag = kRebuildTensor;
      else if (name == "_rebuild_tensor_v2")
        g.tag = kRebuildTensorV2;
      else if (name == "_rebuild_tensor_v3")
        g.tag = kRebuildTensorV3;
      else if (name == "_rebuild_parameter" || name == "_rebuild_parameter_with_state")
        g.tag = kRebuildParameter;
      else
        unsupported();  // sparse, quantized, nested, device tensors...
    } else if (module == "torch._tensor" || module == "torch.tensor") {
      if (name != "_rebuild_from_type_v2") unsupported();
      g.tag = kRebuildFromType;
    } else if (torch_mod && name.size() > 7 && name.compare(name.size() - 7, 7, "Storage") == 0) {
      if (name == "UntypedStorage" || name == "_UntypedStorage") {
        typed(kStorageClass, at::kByte);
      } else {
        auto it = std::find_if(std::begin(kStorageClasses), std::end(kStorageClasses),
                               [&](const StorageClass& c) { return name == c.name; });
        if (it == std::end(kStorageClasses)) unsupported();
        typed(kStorageClass, it->type);
      }
    } else if (module == "torch.storage") {
      unsupported();  // _load_from_bytes: a storage pickled inline, not by persistent id
    } else if (module == "torch") {
      auto it = std::find_if(std::begin(kDtypeNames), std::end(kDtypeNames),
                             [&](const DtypeName& d) { return name == d.name; });
      if (it != std::end(kDtypeNames)) typed(kDtype, it->type);
      // else torch.device, torch.Size, ...: opaque
    }
  }

  ValuePtr call(pickle::Unpickler& u, const Value& fn,
                const std::vector<ValuePtr>& a) override {
    switch (fn.tag) {
      case kRebuildTensor:
      case kRebuildTensorV2:
        return rebuild_tensor(u, a, std::nullopt);
      case kRebuildTensorV3:
        if (a.size() < 7 || a[6]->kind != Kind::Global || a[6]->tag != kDtype)
          throw pickle::Error("_rebuild_tensor_v3 without a dtype");
        return rebuild_tensor(u, a, dtype_of(*a[6]));
      case kRebuildParameter:
        if (a.empty() || !is_tensor(*a[0]))
          throw pickle::Error("_rebuild_parameter without a tensor");
        return a[0];
      case kRebuildFromType: {
        if (a.size() < 3) throw pickle::Error("_rebuild_from_type_v2 with too few arguments");
        if (a[2]->kind != Kind::Tuple)
          throw pickle::Error("_rebuild_from_type_v2 with arguments that are not a tuple");
        if (a[0]->kind == Kind::Global && a[0]->tag > 0) return call(u, *a[0], a[2]->items);
        ValuePtr o = u.make(Kind::Object);  // another function: an opaque object, as the
        o->s = a[0]->s;                     // machine makes of any unknown call
        return o;
      }
      default:
        throw pickle::Error("unsupported call of " + fn.s);
    }
  }

  // BINPERSID: ('storage', storage_class, key, location, numel) -> a storage; each record is read
  // once.
  ValuePtr persistent_load(pickle::Unpickler& u, const ValuePtr& pid) override {
    if (pid->kind != Kind::Tuple || pid->items.size() < 5 || pid->items[0]->kind != Kind::Str ||
        pid->items[0]->s != "storage")
      throw pickle::Error(
          "unsupported persistent id (expected ('storage', type, key, location, numel))");
    const ValuePtr& cls = pid->items[1];
    if (cls->kind != Kind::Global || cls->tag != kStorageClass)
      throw pickle::Error("persistent id without a storage class");
    if (pid->items[2]->kind != Kind::Str) throw pickle::Error("persistent id with a non-string key");
    const std::string& key = pid->items[2]->s;
    const at::ScalarType dtype = dtype_of(*cls);
    const int64_t numel = as_int(pid->items[4], "storage numel");
    const auto item = static_cast<int64_t>(c10::elementSize(dtype));
    int64_t need = 0;
    if (numel < 0 || __builtin_mul_overflow(numel, item, &need))
      throw pickle::Error("bad storage size in persistent id");
    auto it = storages_.find(key);
    if (it == storages_.end()) {
      const std::string rec = "data/" + key;
      if (!reader_.hasRecord(rec)) throw pickle::Error("missing record " + rec);
      at::DataPtr ptr;
      size_t nbytes = 0;
      try {
        std::tie(ptr, nbytes) = reader_.getRecord(rec);
      } catch (const std::exception& e) {
        throw pickle::Error("reading record " + rec + ": " + error_text(e));
      }
      // Resizable with the CPU allocator (which allocated it), so the tensors behave like any
      // other.
      c10::Storage st(c10::Storage::use_byte_size_t(), nbytes, std::move(ptr),
                      c10::GetCPUAllocator(), true);
      it = storages_.emplace(key, std::move(st)).first;
    }
    if (static_cast<uint64_t>(it->second.nbytes()) < static_cast<uint64_t>(need))
      throw pickle::Error("truncated record data/" + key + ": " +
                          std::to_string(it->second.nbytes()) + " bytes, expected " +
                          std::to_string(need));
    ValuePtr v = u.make(Kind::Ext);
    v->tag = kStorage;
    v->payload = std::make_shared<StorageRef>(StorageRef{key, dtype});
    return v;
  }

  static bool is_tensor(const Value& v) { return v.kind == Kind::Ext && v.tag == kTensor; }

 private:
  static int64_t as_int(const ValuePtr& v, const char* what) {
    if (v->kind != Kind::Int)
      throw pickle::Error(std::string("expected an int for ") + what + ", got " +
                          pickle::kind_name(v->kind));
    return v->i;
  }
  static std::vector<int64_t> as_ints(const ValuePtr& v, const char* what) {
    if (v->kind != Kind::Tuple && v->kind != Kind::List)
      throw pickle::Error(std::string("expected a tuple for ") + what + ", got " +
                          pickle::kind_name(v->kind));
    std::vector<int64_t> out;
    out.reserve(v->items.size());
    for (const auto& e : v->items) out.push_back(as_int(e, what));
    return out;
  }

  // A view of a loaded storage; bounds are checked here (set_ would otherwise try to grow the
  // storage).
  ValuePtr rebuild_tensor(pickle::Unpickler& u, const std::vector<ValuePtr>& a,
                          std::optional<at::ScalarType> dtype) {
    if (a.size() < 4) throw pickle::Error("_rebuild_tensor with too few arguments");
    if (a[0]->kind != Kind::Ext || a[0]->tag != kStorage)
      throw pickle::Error("_rebuild_tensor without a storage");
    const auto& ref = *std::static_pointer_cast<StorageRef>(a[0]->payload);
    const at::ScalarType dt = dtype ? *dtype : ref.dtype;
    const int64_t offset = as_int(a[1], "storage offset");
    const std::vector<int64_t> size = as_ints(a[2], "size");
    const std::vector<int64_t> stride = as_ints(a[3], "stride");
    if (size.size() != stride.size())
      throw pickle::Error("tensor size and stride of different lengths");
    const c10::Storage& st = storages_.at(ref.key);
    bool ok = offset >= 0;
    bool empty = false;
    int64_t last = offset;  // index of the last element reached
    for (size_t d = 0; ok && d < size.size(); ++d) {
      if (size[d] < 0 || stride[d] < 0) {
        ok = false;
      } else if (size[d] == 0) {
        empty = true;
      } else {
        int64_t span = 0;
        ok = !__builtin_mul_overflow(size[d] - 1, stride[d], &span) &&
             !__builtin_add_overflow(last, span, &last);
      }
    }
    if (ok && !empty) {
      int64_t end = 0;
      const auto item = static_cast<int64_t>(c10::elementSize(dt));
      ok = !__builtin_mul_overflow(last + 1, item, &end) &&
           static_cast<uint64_t>(end) <= st.nbytes();
    }
    if (!ok) throw pickle::Error("tensor view out of the bounds of storage data/" + ref.key);
    ValuePtr v = u.make(Kind::Ext);
    v->tag = kTensor;
    v->payload = std::make_shared<at::Tensor>(
        at::empty({0}, at::TensorOptions().dtype(dt)).set_(st, offset, size, stride));
    return v;
  }

  caffe2::serialize::PyTorchStreamReader& reader_;
  std::unordered_map<std::string, c10::Storage> storages_;
};

// The tensors of a pickle's tree, by dotted path. A tensor that is the only user of its whole
// storage keeps it (no copy); others get contiguous copies.
NamedTensors tensors_of(const ValuePtr& root) {
  const auto found = pickle::flatten(root, TorchHooks::is_tensor);
  std::unordered_map<const c10::StorageImpl*, int> users;
  for (const auto& f : found) ++users[tensor_of(*f.second).storage().unsafeGetStorageImpl()];
  NamedTensors out;
  out.reserve(found.size());
  for (const auto& [name, v] : found) {
    const at::Tensor& t = tensor_of(*v);
    const bool whole = users[t.storage().unsafeGetStorageImpl()] == 1 && t.is_contiguous() &&
                       t.storage_offset() == 0 && t.nbytes() == t.storage().nbytes();
    out.emplace_back(name, whole ? t : t.clone(at::MemoryFormat::Contiguous));
  }
  return out;
}

std::vector<int64_t> canonical_strides(at::IntArrayRef size) {
  std::vector<int64_t> s(size.size());
  int64_t acc = 1;
  for (size_t d = size.size(); d-- > 0;) {
    s[d] = acc;
    acc *= std::max<int64_t>(size[d], 1);
  }
  return s;
}

}  // namespace

// ----------------------------------------------------------------------------

NamedTensors pth_read(const std::string& path) {
  auto fail = [&](const std::string& what) -> void {
    throw std::runtime_error("pth_read: " + path + ": " + what);
  };
  {
    std::error_code ec;
    if (std::filesystem::is_directory(path, ec)) fail("is a directory");
    std::ifstream in(path, std::ios::binary);
    if (!in) fail(std::string("cannot open file: ") + std::strerror(errno));
    char head[14] = {};
    in.read(head, sizeof head);
    const auto got = static_cast<size_t>(in.gcount());
    static const unsigned char kLegacy[14] = {0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c,
                                              0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19};
    if (got == sizeof head && std::memcmp(head, kLegacy, sizeof head) == 0)
      fail(
          "legacy (non-zip, pre-1.6) torch.save format is not supported; re-save it with a newer "
          "torch.save");
    if (got < 4 || std::memcmp(head, "PK\x03\x04", 4) != 0)
      fail(got == 0 ? "empty file, not a torch.save zip archive"
                    : "not a zip archive (torch.save format)");
  }
  std::unique_ptr<caffe2::serialize::PyTorchStreamReader> reader;
  at::DataPtr pkl;
  size_t pkl_size = 0;
  try {
    reader = std::make_unique<caffe2::serialize::PyTorchStreamReader>(path);
    if (!reader->hasRecord("data.pkl")) fail("no data.pkl record (not a torch.save archive)");
    if (reader->hasRecord("byteorder")) {
      auto [p, n] = reader->getRecord("byteorder");
      const std::string order(static_cast<const char*>(p.get()), n);
      if (order != "little") fail("byte order '" + order + "' is not supported");
    }
    std::tie(pkl, pkl_size) = reader->getRecord("data.pkl");
  } catch (const std::runtime_error&) {
    throw;
  } catch (const std::exception& e) {
    fail("not a valid torch.save zip archive: " + error_text(e));
  }
  TorchHooks hooks(*reader);
  pickle::Unpickler up(static_cast<const char*>(pkl.get()), pkl_size, hooks);
  try {
    return tensors_of(up.run());
  } catch (const pickle::Error& e) {
    fail(std::string("data.pkl: ") + e.what());
  }
  return {};
}

void pth_write(const std::string& path, const NamedTensors& tensors, const std::string& wrap) {
  auto fail = [&](const std::string& what) -> void {
    throw std::runtime_error("pth_write: " + path + ": " + what);
  };

  // Prepare everything first, so that nothing below can fail but IO.
  std::vector<at::Tensor> data;
  data.reserve(tensors.size());
  std::unordered_set<std::string> names;
  pickle::Writer pw;
  pw.proto(2);
  if (!wrap.empty()) {  // {wrap: OrderedDict(...)}: the dict, its key, then the value below
    pw.op('}');
    pw.put();
    pw.str(wrap);
  }
  const uint32_t od = pw.global("collections", "OrderedDict");
  pw.op(')');
  pw.op('R');
  pw.put();
  std::optional<uint32_t> rebuild, storage_str, cpu_str;
  std::unordered_map<int, std::optional<uint32_t>> classes;
  const size_t kBatch = 1000;  // pickle's _BATCHSIZE for SETITEMS
  for (size_t first = 0; first < tensors.size(); first += kBatch) {
    const size_t n = std::min(kBatch, tensors.size() - first);
    if (n > 1) pw.op('(');
    for (size_t j = first; j < first + n; ++j) {
      const auto& [name, t0] = tensors[j];
      if (!names.insert(name).second) fail("duplicate name '" + name + "'");
      if (!t0.defined()) fail("undefined tensor '" + name + "'");
      if (t0.layout() != at::kStrided || t0.is_quantized())
        fail("tensor '" + name + "' is not a dense strided tensor");
      const char* cls = storage_class_name(t0.scalar_type());
      if (!cls)
        fail(std::string("tensor '") + name + "' has unsupported dtype " +
             c10::toString(t0.scalar_type()));
      at::Tensor t = t0.detach().to(at::kCPU).resolve_conj().resolve_neg().contiguous();
      const std::string key = std::to_string(j);

      pw.str(name);
      pw.cached(rebuild, [&] { return pw.global("torch._utils", "_rebuild_tensor_v2"); });
      pw.op('(');
      pw.op('(');
      pw.cached(storage_str, [&] { return pw.str("storage"); });
      pw.cached(classes[static_cast<int>(t.scalar_type())],
                [&] { return pw.global("torch", cls); });
      pw.str(key);
      pw.cached(cpu_str, [&] { return pw.str("cpu"); });
      pw.integer(t.numel());
      pw.op('t');
      pw.put();
      pw.op('Q');
      pw.integer(0);
      pw.int_tuple(t.sizes().vec());
      pw.int_tuple(canonical_strides(t.sizes()));
      pw.op('\x89');  // requires_grad False
      pw.get(od);     // backward_hooks: OrderedDict()
      pw.op(')');
      pw.op('R');
      pw.put();
      pw.op('t');
      pw.put();
      pw.op('R');
      pw.put();
      data.push_back(std::move(t));
    }
    pw.op(n > 1 ? 'u' : 's');
  }
  if (!wrap.empty()) pw.op('s');
  pw.op('.');

  // torch.save of 1.x writes the storages in the sorted order of their string keys ("0", "1", "10",
  // "11", ..., "2"); 2.x in the order the pickle met them.
  std::vector<std::string> keys;
  keys.reserve(data.size());
  for (size_t j = 0; j < data.size(); ++j) keys.push_back(std::to_string(j));
#if TORCH_VERSION_MAJOR < 2
  std::sort(keys.begin(), keys.end());
#endif

  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) fail(std::string("cannot open for writing: ") + std::strerror(errno));
  int io_errno = 0;
  bool io_failed = false;
  std::string error;
  try {
    // The writer function never reports failure to the zip layer (whose destructor would otherwise
    // throw on a second error); failures are recorded here and reported after finalising.
    caffe2::serialize::PyTorchStreamWriter w([&](const void* buf, size_t n) -> size_t {
      if (!io_failed && n > 0 && std::fwrite(buf, 1, n, f) != n) {
        io_failed = true;
        io_errno = errno;
      }
      return n;
    });
    w.writeRecord("data.pkl", pw.out.data(), pw.out.size());
#if TORCH_VERSION_MAJOR >= 2
    // The records torch.save of 2.x writes between the pickle and the storages (its writer pads
    // every record to 64 bytes), so that our files equal its byte for byte.
    w.writeRecord(".format_version", "1", 1);
    w.writeRecord(".storage_alignment", "64", 2);
    w.writeRecord("byteorder", "little", 6);
#endif
    static const char kEmpty[1] = {0};
    for (const std::string& key : keys) {
      const at::Tensor& t = data[std::stoul(key)];
      const void* ptr = t.numel() > 0 ? t.data_ptr() : kEmpty;
      w.writeRecord("data/" + key, ptr, t.nbytes());
      if (io_failed) break;
    }
    if (!io_failed) w.writeEndOfFile();
  } catch (const std::exception& e) {
    error = error_text(e);
  }
  if (std::fflush(f) != 0 && !io_failed) {
    io_failed = true;
    io_errno = errno;
  }
  if (std::fclose(f) != 0 && !io_failed) {
    io_failed = true;
    io_errno = errno;
  }
  if (io_failed || !error.empty()) {  // the partial file stays: callers write to a temporary name
    fail(io_failed ? std::string("write failed: ") + std::strerror(io_errno) : error);
  }
}

}  // namespace sam
