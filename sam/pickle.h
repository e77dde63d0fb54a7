#pragma once
// Python's pickle format, the subset torch.save and Python's pickler write (protocols 2 to 5),
// written from the opcode table (Python's Lib/pickletools.py). No libtorch: what a GLOBAL names,
// what calling it builds and what a persistent id loads are the caller's (Hooks); sam/pth_io.cpp
// is the torch layer on top (storages, _rebuild_tensor, dtypes).
//
// Reading builds a tree of Values; containers may refer to themselves through the memo, so an
// Unpickler owns every container it made and breaks such cycles when it is destroyed: keep it
// alive while using the tree.
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace sam::pickle {

enum class Kind {
  None,
  Bool,
  Int,
  BigInt,  // an integer wider than 64 bits: its value is not kept
  Float,
  Str,
  Bytes,
  Tuple,
  List,
  Dict,
  Set,
  Global,  // a class or function named by GLOBAL / STACK_GLOBAL
  Object,  // what calling an unknown Global built: opaque, only its class name is kept
  Ext,     // a value of the hooks' own (a storage, a tensor...)
};
const char* kind_name(Kind k);

struct Value;
using ValuePtr = std::shared_ptr<Value>;

struct Value {
  Kind kind = Kind::None;
  int64_t i = 0;                // Bool, Int
  double f = 0;                 // Float
  std::string s;                // Str, Bytes; Global and Object: "module.name"
  std::vector<ValuePtr> items;  // Tuple, List, Set
  std::vector<std::pair<ValuePtr, ValuePtr>> entries;  // Dict, in insertion order
  std::unordered_map<std::string, size_t> index;       // Dict: hashable key -> entry
  int tag = 0;                    // Global: what the hooks made of the name (0 = unknown);
                                  // Ext: the hooks' kind of value
  std::shared_ptr<void> payload;  // Global, Ext: the hooks' data
  explicit Value(Kind k) : kind(k) {}
};

/// Malformed or unsupported pickle data. Thrown by the machine and by hooks; run() adds the
/// position of the opcode it was running (" (pickle byte N)").
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// What the pickle's names and persistent ids mean. The machine itself knows dict and
/// collections.OrderedDict (builtins.dict, __builtin__.dict); calling any other Global the hooks
/// left at tag 0 gives an opaque Object, whose state (BUILD, SETITEMS, APPENDS) is ignored.
class Hooks {
 public:
  virtual ~Hooks() = default;
  /// GLOBAL module.name: may set g.tag (non-zero) and g.payload, or throw Error to refuse it.
  virtual void resolve_global(Value& g, const std::string& module, const std::string& name);
  /// Calling a Global with tag != 0 (REDUCE, NEWOBJ). Returns the result.
  virtual ValuePtr call(class Unpickler& u, const Value& fn, const std::vector<ValuePtr>& args);
  /// BINPERSID / PERSID. The default refuses persistent ids.
  virtual ValuePtr persistent_load(class Unpickler& u, const ValuePtr& pid);
};

class Unpickler {
 public:
  /// `data` must outlive run().
  Unpickler(const char* data, size_t size, Hooks& hooks);
  Unpickler(const Unpickler&) = delete;
  Unpickler& operator=(const Unpickler&) = delete;
  ~Unpickler();

  /// Runs the pickle to its STOP and returns the value it built. Throws Error naming the opcode's
  /// byte position: truncated data, unknown opcode, stack or memo misuse, protocol > 5, or what a
  /// hook refused.
  ValuePtr run();

  /// A new value (for hooks); containers are owned for the cycle breaking.
  ValuePtr make(Kind k);
  ValuePtr make_int(int64_t v, Kind k = Kind::Int);
  ValuePtr make_str(std::string s, Kind k = Kind::Str);

  /// dict[k] = v with Python's key identity for str, int, bool, None and bytes (1 == True).
  static void set_item(Value& dict, ValuePtr k, ValuePtr v);

 private:
  [[noreturn]] void fail(const std::string& what) const;
  const unsigned char* take(size_t n);
  uint64_t read_le(size_t n);
  std::string read_bytes(uint64_t n);
  std::string read_line();
  ValuePtr pop();
  ValuePtr& top();
  size_t stack_floor() const { return marks_.empty() ? 0 : marks_.back(); }
  std::vector<ValuePtr> pop_mark();
  void memo_put(uint64_t idx);
  void memo_get(uint64_t idx);
  ValuePtr global(const std::string& module, const std::string& name);
  ValuePtr call(const ValuePtr& fn, const ValuePtr& args);
  void set_items(const ValuePtr& target, std::vector<ValuePtr>& kv);
  void append_items(const ValuePtr& target, std::vector<ValuePtr>& items);
  void step(unsigned char op);

  const unsigned char* data_;
  size_t size_;
  size_t pos_ = 0;
  Hooks& hooks_;
  std::vector<ValuePtr> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, ValuePtr> memo_;
  std::vector<ValuePtr> containers_;
  bool stopped_ = false;
};

/// The name of a dict key in a flattened path (str as is, int in decimal, True/False/None), or
/// nothing for other keys.
std::optional<std::string> key_name(const Value& k);

/// The leaves for which `is_leaf` holds, under dicts, lists and tuples at any depth, with their
/// dotted paths ("model.layers.0.weight"; a leaf at the root gets ""). Other leaves are skipped.
/// Throws Error for a container that contains itself, nesting deeper than 200, or a wanted leaf
/// under a dict key key_name cannot name.
std::vector<std::pair<std::string, ValuePtr>> flatten(
    const ValuePtr& root, const std::function<bool(const Value&)>& is_leaf);

/// Writes pickle opcodes as Python's pickler does at protocol 2, numbering the memo as it does.
class Writer {
 public:
  std::string out;

  void op(char c) { out.push_back(c); }
  void u8(unsigned v) { out.push_back(static_cast<char>(v & 0xff)); }
  void le32(uint32_t v);
  void proto(unsigned version);
  /// Memoizes the object just written (BINPUT, or LONG_BINPUT from 256 on); returns its index.
  uint32_t put();
  /// Pushes memo entry idx (BINGET / LONG_BINGET).
  void get(uint32_t idx);
  /// A str (BINUNICODE), memoized.
  uint32_t str(const std::string& s);
  /// A class or function (GLOBAL), memoized.
  uint32_t global(const std::string& module, const std::string& name);
  /// An object written once and fetched from the memo afterwards (interned strings, classes).
  void cached(std::optional<uint32_t>& slot, const std::function<uint32_t()>& first);
  /// An int as save_long writes it at protocol 2 (BININT1, BININT2, BININT, LONG1).
  void integer(int64_t v);
  /// A tuple of ints, memoized unless empty (as the pickler does).
  void int_tuple(const std::vector<int64_t>& v);

 private:
  uint32_t memo_ = 0;
};

}  // namespace sam::pickle
