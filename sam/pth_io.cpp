// Checkpoint IO in torch.save's format: a zip archive (records `<archive>/data.pkl`,
// `<archive>/data/<key>`, `<archive>/version`, torch 2.x adds `byteorder`) whose data.pkl is a
// pickle that refers to the tensor storages by persistent id ('storage', <storage class>, key,
// location, numel). The zip layer is libtorch's caffe2::serialize::PyTorchStreamReader/Writer; the
// pickle layer below is our own, written from the pickle opcode table (Python's pickletools) and
// torch/serialization.py, torch/_utils.py (_rebuild_tensor_v2).
#include "sam/pth_io.h"

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
// Reader: pickle values.

enum class Kind {
  None,
  Bool,
  Int,
  BigInt,
  Float,
  Str,
  Bytes,
  Tuple,
  List,
  Dict,
  Set,
  Global,
  Object,
  Storage,
  Tensor
};

// What a GLOBAL resolves to.
enum class Fn {
  Opaque,            // any other class/function: calling it gives an opaque Object
  OrderedDict,       // collections.OrderedDict, builtins.dict
  RebuildTensor,     // torch._utils._rebuild_tensor (storage, offset, size, stride)
  RebuildTensorV2,   // torch._utils._rebuild_tensor_v2 (storage, offset, size, stride,
                     // requires_grad, hooks[, meta])
  RebuildTensorV3,   // torch._utils._rebuild_tensor_v3 (... hooks, dtype[, meta])
  RebuildParameter,  // torch._utils._rebuild_parameter(_with_state) (data, requires_grad, hooks[,
                     // state])
  RebuildFromType,   // torch._tensor._rebuild_from_type_v2 (func, new_type, args, state)
  StorageClass,      // torch.FloatStorage etc.; `dtype` says which
  Dtype,             // torch.float32 etc.; `dtype` says which
};

struct Value;
using VP = std::shared_ptr<Value>;

struct Value {
  Kind kind = Kind::None;
  int64_t i = 0;                                  // Bool, Int
  double f = 0;                                   // Float
  std::string s;                                  // Str, Bytes, Storage key, Global qualified name
  std::vector<VP> items;                          // Tuple, List, Set
  std::vector<std::pair<VP, VP>> entries;         // Dict, in insertion order
  std::unordered_map<std::string, size_t> index;  // Dict: hashable key -> position in entries
  Fn fn = Fn::Opaque;                             // Global
  at::ScalarType dtype = at::kFloat;              // Global (StorageClass, Dtype), Storage
  at::Tensor tensor;                              // Tensor
  explicit Value(Kind k) : kind(k) {}
};

// Dict key identity for the hashable scalar kinds (Python: 1 == True, so both map to "i1").
std::optional<std::string> hash_key(const Value& k) {
  switch (k.kind) {
    case Kind::Str:
      return "s" + k.s;
    case Kind::Int:
    case Kind::Bool:
      return "i" + std::to_string(k.i);
    case Kind::None:
      return std::string("n");
    case Kind::Bytes:
      return "b" + k.s;
    default:
      return std::nullopt;
  }
}

// Name of a dict key in a flattened path.
std::optional<std::string> key_name(const Value& k) {
  switch (k.kind) {
    case Kind::Str:
      return k.s;
    case Kind::Int:
      return std::to_string(k.i);
    case Kind::Bool:
      return std::string(k.i ? "True" : "False");
    case Kind::None:
      return std::string("None");
    default:
      return std::nullopt;
  }
}

const char* kind_name(Kind k) {
  switch (k) {
    case Kind::None:
      return "None";
    case Kind::Bool:
      return "bool";
    case Kind::Int:
      return "int";
    case Kind::BigInt:
      return "big int";
    case Kind::Float:
      return "float";
    case Kind::Str:
      return "str";
    case Kind::Bytes:
      return "bytes";
    case Kind::Tuple:
      return "tuple";
    case Kind::List:
      return "list";
    case Kind::Dict:
      return "dict";
    case Kind::Set:
      return "set";
    case Kind::Global:
      return "global";
    case Kind::Object:
      return "object";
    case Kind::Storage:
      return "storage";
    case Kind::Tensor:
      return "tensor";
  }
  return "?";
}

class Unpickler {
 public:
  Unpickler(std::string path, const char* data, size_t size,
            caffe2::serialize::PyTorchStreamReader& reader)
      : path_(std::move(path)),
        data_(reinterpret_cast<const unsigned char*>(data)),
        size_(size),
        reader_(reader) {}

  Unpickler(const Unpickler&) = delete;
  Unpickler& operator=(const Unpickler&) = delete;

  // Breaks reference cycles (a container holding itself via the memo) and deep nesting before
  // destruction.
  ~Unpickler() {
    stack_.clear();
    memo_.clear();
    for (auto& c : containers_) {
      c->items.clear();
      c->entries.clear();
    }
  }

  // Runs the pickle and returns its tensors flattened into dotted names.
  NamedTensors read_all() {
    VP root = run();
    std::vector<std::pair<std::string, VP>> found;
    std::vector<const Value*> path;
    flatten(root, "", found, path);
    return finish(found);
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw std::runtime_error("pth_read: " + path_ + ": " + what);
  }
  [[noreturn]] void fail_at(const std::string& what) const {
    fail(what + " (data.pkl byte " + std::to_string(op_pos_) + ")");
  }

  // --- input ---
  const unsigned char* take(size_t n) {
    if (n > size_ - pos_) fail_at("truncated pickle: needs " + std::to_string(n) + " more bytes");
    const unsigned char* p = data_ + pos_;
    pos_ += n;
    return p;
  }
  uint64_t read_le(size_t n) {
    const unsigned char* p = take(n);
    uint64_t v = 0;
    for (size_t k = 0; k < n; ++k) v |= static_cast<uint64_t>(p[k]) << (8 * k);
    return v;
  }
  std::string read_bytes(uint64_t n) {
    if (n > size_ - pos_) fail_at("truncated pickle: string of " + std::to_string(n) + " bytes");
    const unsigned char* p = take(static_cast<size_t>(n));
    return std::string(reinterpret_cast<const char*>(p), static_cast<size_t>(n));
  }
  std::string read_line() {
    const void* nl = std::memchr(data_ + pos_, '\n', size_ - pos_);
    if (!nl) fail_at("truncated pickle: unterminated line");
    size_t n = static_cast<size_t>(static_cast<const unsigned char*>(nl) - (data_ + pos_));
    std::string s(reinterpret_cast<const char*>(data_ + pos_), n);
    pos_ += n + 1;
    return s;
  }

  // --- stack ---
  VP make(Kind k) {
    auto v = std::make_shared<Value>(k);
    if (k == Kind::Tuple || k == Kind::List || k == Kind::Dict || k == Kind::Set)
      containers_.push_back(v);
    return v;
  }
  VP make_int(int64_t i, Kind k = Kind::Int) {
    VP v = make(k);
    v->i = i;
    return v;
  }
  VP make_str(std::string s, Kind k = Kind::Str) {
    VP v = make(k);
    v->s = std::move(s);
    return v;
  }
  VP pop() {
    if (stack_.size() <= stack_floor()) fail_at("malformed pickle: stack underflow");
    VP v = std::move(stack_.back());
    stack_.pop_back();
    return v;
  }
  VP& top() {
    if (stack_.size() <= stack_floor()) fail_at("malformed pickle: empty stack");
    return stack_.back();
  }
  size_t stack_floor() const { return marks_.empty() ? 0 : marks_.back(); }
  // Pops the items above the topmost MARK, and the mark.
  std::vector<VP> pop_mark() {
    if (marks_.empty()) fail_at("malformed pickle: no MARK");
    size_t m = marks_.back();
    marks_.pop_back();
    std::vector<VP> items(std::make_move_iterator(stack_.begin() + static_cast<std::ptrdiff_t>(m)),
                          std::make_move_iterator(stack_.end()));
    stack_.resize(m);
    return items;
  }
  void memo_put(uint64_t idx) { memo_[idx] = top(); }
  void memo_get(uint64_t idx) {
    auto it = memo_.find(idx);
    if (it == memo_.end())
      fail_at("malformed pickle: memo key " + std::to_string(idx) + " not found");
    stack_.push_back(it->second);
  }

  // --- objects ---
  VP resolve_global(const std::string& module, const std::string& name) {
    VP g = make(Kind::Global);
    g->s = module + "." + name;
    auto unsupported = [&]() { fail_at("unsupported global " + g->s); };
    const bool torch_mod = module == "torch" || module == "torch.cuda" || module == "torch.storage";
    if ((module == "collections" && name == "OrderedDict") ||
        ((module == "builtins" || module == "__builtin__") && name == "dict")) {
      g->fn = Fn::OrderedDict;
    } else if (module == "torch._utils") {
      if (name == "_rebuild_tensor")
        g->fn = Fn::RebuildTensor;
      else if (name == "_rebuild_tensor_v2")
        g->fn = Fn::RebuildTensorV2;
      else if (name == "_rebuild_tensor_v3")
        g->fn = Fn::RebuildTensorV3;
      else if (name == "_rebuild_parameter" || name == "_rebuild_parameter_with_state")
        g->fn = Fn::RebuildParameter;
      else
        unsupported();  // sparse, quantized, nested, device tensors...
    } else if (module == "torch._tensor" || module == "torch.tensor") {
      if (name == "_rebuild_from_type_v2")
        g->fn = Fn::RebuildFromType;
      else
        unsupported();
    } else if (torch_mod && name.size() > 7 && name.compare(name.size() - 7, 7, "Storage") == 0) {
      g->fn = Fn::StorageClass;
      if (name == "UntypedStorage" || name == "_UntypedStorage") {
        g->dtype = at::kByte;
      } else {
        auto it = std::find_if(std::begin(kStorageClasses), std::end(kStorageClasses),
                               [&](const StorageClass& c) { return name == c.name; });
        if (it == std::end(kStorageClasses)) unsupported();
        g->dtype = it->type;
      }
    } else if (module == "torch.storage") {
      unsupported();  // _load_from_bytes: a storage pickled inline, not by persistent id
    } else if (module == "torch") {
      auto it = std::find_if(std::begin(kDtypeNames), std::end(kDtypeNames),
                             [&](const DtypeName& d) { return name == d.name; });
      if (it != std::end(kDtypeNames)) {
        g->fn = Fn::Dtype;
        g->dtype = it->type;
      }  // else torch.device, torch.Size, ...: opaque
    }
    return g;
  }

  int64_t as_int(const VP& v, const char* what) const {
    if (v->kind != Kind::Int)
      fail_at(std::string("expected an int for ") + what + ", got " + kind_name(v->kind));
    return v->i;
  }
  std::vector<int64_t> as_ints(const VP& v, const char* what) const {
    if (v->kind != Kind::Tuple && v->kind != Kind::List)
      fail_at(std::string("expected a tuple for ") + what + ", got " + kind_name(v->kind));
    std::vector<int64_t> out;
    out.reserve(v->items.size());
    for (const auto& e : v->items) out.push_back(as_int(e, what));
    return out;
  }

  // BINPERSID: ('storage', storage_class, key, location, numel) -> a Storage value; the record is
  // read once.
  VP persistent_load(const VP& pid) {
    if (pid->kind != Kind::Tuple || pid->items.size() < 5 || pid->items[0]->kind != Kind::Str ||
        pid->items[0]->s != "storage")
      fail_at("unsupported persistent id (expected ('storage', type, key, location, numel))");
    const VP& cls = pid->items[1];
    if (cls->kind != Kind::Global || cls->fn != Fn::StorageClass)
      fail_at("persistent id without a storage class");
    if (pid->items[2]->kind != Kind::Str) fail_at("persistent id with a non-string key");
    const std::string& key = pid->items[2]->s;
    const int64_t numel = as_int(pid->items[4], "storage numel");
    const int64_t item = static_cast<int64_t>(c10::elementSize(cls->dtype));
    int64_t need = 0;
    if (numel < 0 || __builtin_mul_overflow(numel, item, &need))
      fail_at("bad storage size in persistent id");
    auto it = storages_.find(key);
    if (it == storages_.end()) {
      const std::string rec = "data/" + key;
      if (!reader_.hasRecord(rec)) fail("missing record " + rec);
      at::DataPtr ptr;
      size_t nbytes = 0;
      try {
        std::tie(ptr, nbytes) = reader_.getRecord(rec);
      } catch (const std::exception& e) {
        fail("reading record " + rec + ": " + error_text(e));
      }
      // Resizable with the CPU allocator (which allocated it), so the tensors behave like any
      // other.
      c10::Storage st(c10::Storage::use_byte_size_t(), nbytes, std::move(ptr),
                      c10::GetCPUAllocator(), true);
      it = storages_.emplace(key, std::move(st)).first;
    }
    if (static_cast<uint64_t>(it->second.nbytes()) < static_cast<uint64_t>(need))
      fail("truncated record data/" + key + ": " + std::to_string(it->second.nbytes()) +
           " bytes, expected " + std::to_string(need));
    VP v = make(Kind::Storage);
    v->s = key;
    v->dtype = cls->dtype;
    return v;
  }

  // A view of a loaded storage; bounds are checked here (set_ would otherwise try to grow the
  // storage).
  VP rebuild_tensor(const std::vector<VP>& a, std::optional<at::ScalarType> dtype) {
    if (a.size() < 4) fail_at("_rebuild_tensor with too few arguments");
    if (a[0]->kind != Kind::Storage) fail_at("_rebuild_tensor without a storage");
    const at::ScalarType dt = dtype ? *dtype : a[0]->dtype;
    const int64_t offset = as_int(a[1], "storage offset");
    const std::vector<int64_t> size = as_ints(a[2], "size");
    const std::vector<int64_t> stride = as_ints(a[3], "stride");
    if (size.size() != stride.size()) fail_at("tensor size and stride of different lengths");
    const c10::Storage& st = storages_.at(a[0]->s);
    bool ok = offset >= 0;
    bool empty = false;
    int64_t last = offset;  // index of the last element reached
    for (size_t d = 0; ok && d < size.size(); ++d) {
      if (size[d] < 0 || stride[d] < 0)
        ok = false;
      else if (size[d] == 0)
        empty = true;
      else {
        int64_t span = 0;
        ok = !__builtin_mul_overflow(size[d] - 1, stride[d], &span) &&
             !__builtin_add_overflow(last, span, &last);
      }
    }
    if (ok && !empty) {
      int64_t end = 0;
      const int64_t item = static_cast<int64_t>(c10::elementSize(dt));
      ok = !__builtin_mul_overflow(last + 1, item, &end) &&
           static_cast<uint64_t>(end) <= st.nbytes();
    }
    if (!ok) fail_at("tensor view out of the bounds of storage data/" + a[0]->s);
    VP v = make(Kind::Tensor);
    v->tensor = at::empty({0}, at::TensorOptions().dtype(dt)).set_(st, offset, size, stride);
    return v;
  }

  VP call(const VP& fn, const VP& args) {
    if (fn->kind != Kind::Global)
      fail_at(std::string("malformed pickle: calling a ") + kind_name(fn->kind));
    if (args->kind != Kind::Tuple) fail_at("malformed pickle: call arguments are not a tuple");
    const std::vector<VP>& a = args->items;
    switch (fn->fn) {
      case Fn::OrderedDict: {
        VP d = make(Kind::Dict);
        if (!a.empty() && (a[0]->kind == Kind::List || a[0]->kind == Kind::Tuple)) {
          for (const auto& pair : a[0]->items) {
            if ((pair->kind != Kind::Tuple && pair->kind != Kind::List) || pair->items.size() != 2)
              fail_at("OrderedDict argument is not a list of pairs");
            set_item(*d, pair->items[0], pair->items[1]);
          }
        }
        return d;
      }
      case Fn::RebuildTensor:
      case Fn::RebuildTensorV2:
        return rebuild_tensor(a, std::nullopt);
      case Fn::RebuildTensorV3: {
        if (a.size() < 7 || a[6]->kind != Kind::Global || a[6]->fn != Fn::Dtype)
          fail_at("_rebuild_tensor_v3 without a dtype");
        return rebuild_tensor(a, a[6]->dtype);
      }
      case Fn::RebuildParameter: {
        if (a.empty() || a[0]->kind != Kind::Tensor) fail_at("_rebuild_parameter without a tensor");
        return a[0];
      }
      case Fn::RebuildFromType: {
        if (a.size() < 3) fail_at("_rebuild_from_type_v2 with too few arguments");
        return call(a[0], a[2]);
      }
      case Fn::StorageClass:
      case Fn::Dtype:
        fail_at("unsupported call of " + fn->s);
      case Fn::Opaque:
        break;
    }
    VP o = make(Kind::Object);
    o->s = fn->s;
    return o;
  }

  void set_item(Value& d, VP k, VP v) {
    if (auto h = hash_key(*k)) {
      auto [it, fresh] = d.index.emplace(*h, d.entries.size());
      if (!fresh) {
        d.entries[it->second].second = std::move(v);
        return;
      }
    }
    d.entries.emplace_back(std::move(k), std::move(v));
  }
  void set_items(const VP& target, std::vector<VP>& kv) {
    if (kv.size() % 2) fail_at("malformed pickle: odd SETITEMS");
    if (target->kind == Kind::Object) return;  // e.g. a dict subclass we treat as opaque
    if (target->kind != Kind::Dict) fail_at(std::string("SETITEM on a ") + kind_name(target->kind));
    for (size_t k = 0; k < kv.size(); k += 2)
      set_item(*target, std::move(kv[k]), std::move(kv[k + 1]));
  }
  void append_items(const VP& target, std::vector<VP>& items) {
    if (target->kind == Kind::Object) return;
    if (target->kind != Kind::List && target->kind != Kind::Set)
      fail_at(std::string("APPEND on a ") + kind_name(target->kind));
    for (auto& v : items) target->items.push_back(std::move(v));
  }

  // --- the machine ---
  VP run() {
    while (true) {
      op_pos_ = pos_;
      const unsigned char op = *take(1);
      switch (op) {
        case 0x80: {  // PROTO
          const unsigned proto = *take(1);
          if (proto > 5) fail_at("unsupported pickle protocol " + std::to_string(proto));
          break;
        }
        case 0x95:
          read_le(8);
          break;     // FRAME: a size hint
        case '.': {  // STOP
          if (stack_.size() != 1 || !marks_.empty())
            fail_at("malformed pickle: STOP with a stack of " + std::to_string(stack_.size()));
          return stack_.back();
        }
        case '(':
          marks_.push_back(stack_.size());
          break;  // MARK
        case '0':
          pop();
          break;  // POP
        case '1':
          pop_mark();
          break;  // POP_MARK
        case '2':
          stack_.push_back(top());
          break;     // DUP
        case 'c': {  // GLOBAL
          std::string module = read_line();
          std::string name = read_line();
          stack_.push_back(resolve_global(module, name));
          break;
        }
        case 0x93: {  // STACK_GLOBAL
          VP name = pop();
          VP module = pop();
          if (name->kind != Kind::Str || module->kind != Kind::Str)
            fail_at("STACK_GLOBAL without strings");
          stack_.push_back(resolve_global(module->s, name->s));
          break;
        }
        case 'R': {  // REDUCE
          VP args = pop();
          VP fn = pop();
          stack_.push_back(call(fn, args));
          break;
        }
        case 0x81: {  // NEWOBJ: cls.__new__(cls, *args)
          VP args = pop();
          VP cls = pop();
          stack_.push_back(call(cls, args));
          break;
        }
        case 0x92: {  // NEWOBJ_EX
          pop();      // kwargs
          VP args = pop();
          VP cls = pop();
          stack_.push_back(call(cls, args));
          break;
        }
        case 'b': {  // BUILD: state for __setstate__ (OrderedDict._metadata, object __dict__):
                     // ignored
          pop();
          top();
          break;
        }
        case '}':
          stack_.push_back(make(Kind::Dict));
          break;  // EMPTY_DICT
        case ']':
          stack_.push_back(make(Kind::List));
          break;  // EMPTY_LIST
        case ')':
          stack_.push_back(make(Kind::Tuple));
          break;  // EMPTY_TUPLE
        case 0x8f:
          stack_.push_back(make(Kind::Set));
          break;     // EMPTY_SET
        case 't': {  // TUPLE
          VP t = make(Kind::Tuple);
          t->items = pop_mark();
          stack_.push_back(t);
          break;
        }
        case 0x85:
        case 0x86:
        case 0x87: {  // TUPLE1/2/3
          const size_t n = static_cast<size_t>(op - 0x84);
          if (stack_.size() < stack_floor() + n) fail_at("malformed pickle: stack underflow");
          VP t = make(Kind::Tuple);
          t->items.assign(std::make_move_iterator(stack_.end() - static_cast<std::ptrdiff_t>(n)),
                          std::make_move_iterator(stack_.end()));
          stack_.resize(stack_.size() - n);
          stack_.push_back(t);
          break;
        }
        case 'd': {  // DICT
          std::vector<VP> kv = pop_mark();
          VP d = make(Kind::Dict);
          set_items(d, kv);
          stack_.push_back(d);
          break;
        }
        case 'l': {  // LIST
          VP l = make(Kind::List);
          l->items = pop_mark();
          stack_.push_back(l);
          break;
        }
        case 0x91: {  // FROZENSET
          VP s = make(Kind::Set);
          s->items = pop_mark();
          stack_.push_back(s);
          break;
        }
        case 'a': {  // APPEND
          std::vector<VP> one{pop()};
          append_items(top(), one);
          break;
        }
        case 'e':     // APPENDS
        case 0x90: {  // ADDITEMS
          std::vector<VP> items = pop_mark();
          append_items(top(), items);
          break;
        }
        case 's': {  // SETITEM
          std::vector<VP> kv(2);
          kv[1] = pop();
          kv[0] = pop();
          set_items(top(), kv);
          break;
        }
        case 'u': {  // SETITEMS
          std::vector<VP> kv = pop_mark();
          set_items(top(), kv);
          break;
        }
        case 'q':
          memo_put(read_le(1));
          break;  // BINPUT
        case 'r':
          memo_put(read_le(4));
          break;  // LONG_BINPUT
        case 0x94:
          memo_put(memo_.size());
          break;  // MEMOIZE
        case 'h':
          memo_get(read_le(1));
          break;  // BINGET
        case 'j':
          memo_get(read_le(4));
          break;     // LONG_BINGET
        case 'J': {  // BININT
          const uint32_t u = static_cast<uint32_t>(read_le(4));
          stack_.push_back(make_int(static_cast<int32_t>(u)));
          break;
        }
        case 'K':
          stack_.push_back(make_int(static_cast<int64_t>(read_le(1))));
          break;  // BININT1
        case 'M':
          stack_.push_back(make_int(static_cast<int64_t>(read_le(2))));
          break;      // BININT2
        case 0x8a:    // LONG1
        case 0x8b: {  // LONG4
          const uint64_t n = op == 0x8a ? read_le(1) : read_le(4);
          if (op == 0x8b && n > size_ - pos_) fail_at("truncated pickle: LONG4");
          if (n > 8) {
            take(static_cast<size_t>(n));
            stack_.push_back(make(Kind::BigInt));
          } else if (n == 0) {
            stack_.push_back(make_int(0));
          } else {
            uint64_t u = read_le(static_cast<size_t>(n));
            if (n < 8 && (u >> (8 * n - 1)) & 1) u |= ~uint64_t{0} << (8 * n);  // sign-extend
            stack_.push_back(make_int(static_cast<int64_t>(u)));
          }
          break;
        }
        case 'G': {  // BINFLOAT: big-endian double
          const unsigned char* p = take(8);
          uint64_t u = 0;
          for (int k = 0; k < 8; ++k) u = (u << 8) | p[k];
          VP v = make(Kind::Float);
          std::memcpy(&v->f, &u, 8);
          stack_.push_back(v);
          break;
        }
        case 'N':
          stack_.push_back(make(Kind::None));
          break;  // NONE
        case 0x88:
          stack_.push_back(make_int(1, Kind::Bool));
          break;  // NEWTRUE
        case 0x89:
          stack_.push_back(make_int(0, Kind::Bool));
          break;  // NEWFALSE
        case 'X':
          stack_.push_back(make_str(read_bytes(read_le(4))));
          break;  // BINUNICODE
        case 0x8c:
          stack_.push_back(make_str(read_bytes(read_le(1))));
          break;  // SHORT_BINUNICODE
        case 0x8d:
          stack_.push_back(make_str(read_bytes(read_le(8))));
          break;  // BINUNICODE8
        case 'T':
          stack_.push_back(make_str(read_bytes(read_le(4))));
          break;  // BINSTRING (py2 str)
        case 'U':
          stack_.push_back(make_str(read_bytes(read_le(1))));
          break;  // SHORT_BINSTRING
        case 'C':
          stack_.push_back(make_str(read_bytes(read_le(1)), Kind::Bytes));
          break;  // SHORT_BINBYTES
        case 'B':
          stack_.push_back(make_str(read_bytes(read_le(4)), Kind::Bytes));
          break;    // BINBYTES
        case 0x8e:  // BINBYTES8
        case 0x96:
          stack_.push_back(make_str(read_bytes(read_le(8)), Kind::Bytes));
          break;     // BYTEARRAY8
        case 'Q': {  // BINPERSID
          VP pid = pop();
          stack_.push_back(persistent_load(pid));
          break;
        }
        default: {
          char hex[8];
          std::snprintf(hex, sizeof hex, "0x%02x", op);
          fail_at(std::string("unsupported pickle opcode ") + hex);
        }
      }
    }
  }

  // --- results ---
  void flatten(const VP& v, const std::string& prefix, std::vector<std::pair<std::string, VP>>& out,
               std::vector<const Value*>& path) {
    auto join = [&](const std::string& key) { return prefix.empty() ? key : prefix + "." + key; };
    if (v->kind == Kind::Tensor) {
      out.emplace_back(prefix, v);
      return;
    }
    if (v->kind != Kind::Dict && v->kind != Kind::List && v->kind != Kind::Tuple)
      return;  // other leaves
    if (std::find(path.begin(), path.end(), v.get()) != path.end())
      fail("container that contains itself");
    if (path.size() > 200) fail("containers nested too deeply");
    path.push_back(v.get());
    if (v->kind == Kind::Dict) {
      for (const auto& [k, val] : v->entries) {
        if (auto name = key_name(*k)) {
          flatten(val, join(*name), out, path);
        } else {
          std::vector<std::pair<std::string, VP>> sub;
          flatten(val, "", sub, path);
          if (!sub.empty())
            fail(std::string("tensors under a dict key of type ") + kind_name(k->kind));
        }
      }
    } else {
      for (size_t k = 0; k < v->items.size(); ++k)
        flatten(v->items[k], join(std::to_string(k)), out, path);
    }
    path.pop_back();
  }

  // A tensor that is the only user of its whole storage keeps it (no copy); others get contiguous
  // copies.
  NamedTensors finish(const std::vector<std::pair<std::string, VP>>& found) {
    std::unordered_map<const c10::StorageImpl*, int> users;
    for (const auto& f : found) ++users[f.second->tensor.storage().unsafeGetStorageImpl()];
    NamedTensors out;
    out.reserve(found.size());
    for (const auto& [name, v] : found) {
      const at::Tensor& t = v->tensor;
      const bool whole = users[t.storage().unsafeGetStorageImpl()] == 1 && t.is_contiguous() &&
                         t.storage_offset() == 0 && t.nbytes() == t.storage().nbytes();
      out.emplace_back(name, whole ? t : t.clone(at::MemoryFormat::Contiguous));
    }
    return out;
  }

  std::string path_;
  const unsigned char* data_;
  size_t size_;
  size_t pos_ = 0;
  size_t op_pos_ = 0;
  caffe2::serialize::PyTorchStreamReader& reader_;
  std::vector<VP> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, VP> memo_;
  std::vector<VP> containers_;
  std::unordered_map<std::string, c10::Storage> storages_;
};

// ----------------------------------------------------------------------------
// Writer: the pickle torch.save emits for an OrderedDict of tensors (Python's pickle, protocol 2,
// memo numbering).

class PickleWriter {
 public:
  std::string out;

  void op(char c) { out.push_back(c); }
  void u8(unsigned v) { out.push_back(static_cast<char>(v & 0xff)); }
  void le32(uint32_t v) {
    for (int k = 0; k < 4; ++k) u8(v >> (8 * k));
  }
  // Memoizes the object just written (BINPUT / LONG_BINPUT), returning its memo index.
  uint32_t put() {
    const uint32_t idx = memo_++;
    if (idx < 256) {
      op('q');
      u8(idx);
    } else {
      op('r');
      le32(idx);
    }
    return idx;
  }
  void get(uint32_t idx) {
    if (idx < 256) {
      op('h');
      u8(idx);
    } else {
      op('j');
      le32(idx);
    }
  }
  uint32_t str(const std::string& s) {
    op('X');
    le32(static_cast<uint32_t>(s.size()));
    out += s;
    return put();
  }
  uint32_t global(const std::string& module, const std::string& name) {
    op('c');
    out += module + "\n" + name + "\n";
    return put();
  }
  // A Python object written once and fetched from the memo afterwards (interned strings, classes).
  void cached(std::optional<uint32_t>& slot, const std::function<uint32_t()>& first) {
    if (slot)
      get(*slot);
    else
      slot = first();
  }
  // Python's save_long for protocol 2.
  void integer(int64_t v) {
    if (v >= 0 && v <= 0xff) {
      op('K');
      u8(static_cast<unsigned>(v));
    } else if (v >= 0 && v <= 0xffff) {
      op('M');
      u8(static_cast<unsigned>(v));
      u8(static_cast<unsigned>(v >> 8));
    } else if (v >= INT32_MIN && v <= INT32_MAX) {
      op('J');
      le32(static_cast<uint32_t>(static_cast<int32_t>(v)));
    } else {
      // encode_long: (bit_length >> 3) + 1 little-endian two's complement bytes, trimming a
      // redundant 0xff.
      const uint64_t mag = v < 0 ? ~static_cast<uint64_t>(v) + 1 : static_cast<uint64_t>(v);
      const int bits = 64 - __builtin_clzll(mag);
      size_t n = static_cast<size_t>(bits >> 3) + 1;
      std::vector<unsigned char> b(n);
      for (size_t k = 0; k < n; ++k)
        b[k] = k < 8 ? static_cast<unsigned char>(static_cast<uint64_t>(v) >> (8 * k))
                     : (v < 0 ? 0xff : 0x00);
      if (v < 0 && n > 1 && b[n - 1] == 0xff && (b[n - 2] & 0x80)) b.pop_back();
      op('\x8a');
      u8(static_cast<unsigned>(b.size()));
      out.append(reinterpret_cast<const char*>(b.data()), b.size());
    }
  }
  void int_tuple(at::IntArrayRef v) {
    if (v.empty()) {
      op(')');
      return;
    }
    if (v.size() > 3) op('(');
    for (int64_t x : v) integer(x);
    if (v.size() > 3)
      op('t');
    else
      op(static_cast<char>(0x84 + v.size()));
    put();
  }

 private:
  uint32_t memo_ = 0;
};

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
  Unpickler up(path, static_cast<const char*>(pkl.get()), pkl_size, *reader);
  return up.read_all();
}

void pth_write(const std::string& path, const NamedTensors& tensors) {
  auto fail = [&](const std::string& what) -> void {
    throw std::runtime_error("pth_write: " + path + ": " + what);
  };

  // Prepare everything first, so that nothing below can fail but IO.
  std::vector<at::Tensor> data;
  data.reserve(tensors.size());
  std::unordered_set<std::string> names;
  PickleWriter pw;
  pw.op('\x80');
  pw.u8(2);
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
      pw.int_tuple(t.sizes());
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
