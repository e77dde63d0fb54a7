#include "sam/pickle.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <iterator>

namespace sam::pickle {

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
    case Kind::Ext:
      return "extension value";
  }
  return "?";
}

namespace {

// Tags of the Globals the machine itself understands (hooks use positive tags).
constexpr int kDictTag = -1;

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

}  // namespace

// ----------------------------------------------------------------------------
// Hooks: the defaults.

void Hooks::resolve_global(Value&, const std::string&, const std::string&) {}

ValuePtr Hooks::call(Unpickler&, const Value& fn, const std::vector<ValuePtr>&) {
  throw Error("no way to call " + fn.s);
}

ValuePtr Hooks::persistent_load(Unpickler&, const ValuePtr&) {
  throw Error("unsupported persistent id");
}

// ----------------------------------------------------------------------------
// Unpickler: input, stack, memo.

Unpickler::Unpickler(const char* data, size_t size, Hooks& hooks)
    : data_(reinterpret_cast<const unsigned char*>(data)), size_(size), hooks_(hooks) {}

// Breaks reference cycles (a container holding itself via the memo) before destruction.
Unpickler::~Unpickler() {
  stack_.clear();
  memo_.clear();
  for (auto& c : containers_) {
    c->items.clear();
    c->entries.clear();
  }
}

void Unpickler::fail(const std::string& what) const {
  throw Error(what);
}

const unsigned char* Unpickler::take(size_t n) {
  if (n > size_ - pos_) fail("truncated pickle: needs " + std::to_string(n) + " more bytes");
  const unsigned char* p = data_ + pos_;
  pos_ += n;
  return p;
}

uint64_t Unpickler::read_le(size_t n) {
  const unsigned char* p = take(n);
  uint64_t v = 0;
  for (size_t k = 0; k < n; ++k) v |= static_cast<uint64_t>(p[k]) << (8 * k);
  return v;
}

std::string Unpickler::read_bytes(uint64_t n) {
  if (n > size_ - pos_) fail("truncated pickle: string of " + std::to_string(n) + " bytes");
  const unsigned char* p = take(static_cast<size_t>(n));
  return std::string(reinterpret_cast<const char*>(p), static_cast<size_t>(n));
}

std::string Unpickler::read_line() {
  const void* nl = std::memchr(data_ + pos_, '\n', size_ - pos_);
  if (!nl) fail("truncated pickle: unterminated line");
  const auto n = static_cast<size_t>(static_cast<const unsigned char*>(nl) - (data_ + pos_));
  std::string s(reinterpret_cast<const char*>(data_ + pos_), n);
  pos_ += n + 1;
  return s;
}

ValuePtr Unpickler::make(Kind k) {
  auto v = std::make_shared<Value>(k);
  if (k == Kind::Tuple || k == Kind::List || k == Kind::Dict || k == Kind::Set)
    containers_.push_back(v);
  return v;
}

ValuePtr Unpickler::make_int(int64_t v, Kind k) {
  ValuePtr p = make(k);
  p->i = v;
  return p;
}

ValuePtr Unpickler::make_str(std::string s, Kind k) {
  ValuePtr p = make(k);
  p->s = std::move(s);
  return p;
}

ValuePtr Unpickler::pop() {
  if (stack_.size() <= stack_floor()) fail("malformed pickle: stack underflow");
  ValuePtr v = std::move(stack_.back());
  stack_.pop_back();
  return v;
}

ValuePtr& Unpickler::top() {
  if (stack_.size() <= stack_floor()) fail("malformed pickle: empty stack");
  return stack_.back();
}

// Pops the items above the topmost MARK, and the mark.
std::vector<ValuePtr> Unpickler::pop_mark() {
  if (marks_.empty()) fail("malformed pickle: no MARK");
  const size_t m = marks_.back();
  marks_.pop_back();
  std::vector<ValuePtr> items(
      std::make_move_iterator(stack_.begin() + static_cast<std::ptrdiff_t>(m)),
      std::make_move_iterator(stack_.end()));
  stack_.resize(m);
  return items;
}

void Unpickler::memo_put(uint64_t idx) {
  memo_[idx] = top();
}

void Unpickler::memo_get(uint64_t idx) {
  auto it = memo_.find(idx);
  if (it == memo_.end()) fail("malformed pickle: memo key " + std::to_string(idx) + " not found");
  stack_.push_back(it->second);
}

// ----------------------------------------------------------------------------
// Unpickler: objects.

ValuePtr Unpickler::global(const std::string& module, const std::string& name) {
  ValuePtr g = make(Kind::Global);
  g->s = module + "." + name;
  if ((module == "collections" && name == "OrderedDict") ||
      ((module == "builtins" || module == "__builtin__") && name == "dict")) {
    g->tag = kDictTag;
    return g;
  }
  hooks_.resolve_global(*g, module, name);
  return g;
}

void Unpickler::set_item(Value& d, ValuePtr k, ValuePtr v) {
  if (auto h = hash_key(*k)) {
    auto [it, fresh] = d.index.emplace(*h, d.entries.size());
    if (!fresh) {
      d.entries[it->second].second = std::move(v);
      return;
    }
  }
  d.entries.emplace_back(std::move(k), std::move(v));
}

ValuePtr Unpickler::call(const ValuePtr& fn, const ValuePtr& args) {
  if (fn->kind != Kind::Global)
    fail(std::string("malformed pickle: calling a ") + kind_name(fn->kind));
  if (args->kind != Kind::Tuple) fail("malformed pickle: call arguments are not a tuple");
  const std::vector<ValuePtr>& a = args->items;
  if (fn->tag == kDictTag) {  // OrderedDict() or OrderedDict([(k, v), ...])
    ValuePtr d = make(Kind::Dict);
    if (!a.empty() && (a[0]->kind == Kind::List || a[0]->kind == Kind::Tuple)) {
      for (const auto& pair : a[0]->items) {
        if ((pair->kind != Kind::Tuple && pair->kind != Kind::List) || pair->items.size() != 2)
          fail("OrderedDict argument is not a list of pairs");
        set_item(*d, pair->items[0], pair->items[1]);
      }
    }
    return d;
  }
  if (fn->tag != 0) return hooks_.call(*this, *fn, a);
  ValuePtr o = make(Kind::Object);
  o->s = fn->s;
  return o;
}

void Unpickler::set_items(const ValuePtr& target, std::vector<ValuePtr>& kv) {
  if (kv.size() % 2) fail("malformed pickle: odd SETITEMS");
  if (target->kind == Kind::Object) return;  // e.g. a dict subclass we treat as opaque
  if (target->kind != Kind::Dict) fail(std::string("SETITEM on a ") + kind_name(target->kind));
  for (size_t k = 0; k < kv.size(); k += 2)
    set_item(*target, std::move(kv[k]), std::move(kv[k + 1]));
}

void Unpickler::append_items(const ValuePtr& target, std::vector<ValuePtr>& items) {
  if (target->kind == Kind::Object) return;
  if (target->kind != Kind::List && target->kind != Kind::Set)
    fail(std::string("APPEND on a ") + kind_name(target->kind));
  for (auto& v : items) target->items.push_back(std::move(v));
}

// ----------------------------------------------------------------------------
// Unpickler: the machine.

ValuePtr Unpickler::run() {
  if (stopped_) throw Error("pickle already read");
  size_t op_pos = 0;
  try {
    while (!stopped_) {
      op_pos = pos_;
      step(*take(1));
    }
  } catch (const Error& e) {
    throw Error(std::string(e.what()) + " (pickle byte " + std::to_string(op_pos) + ")");
  }
  return stack_.back();
}

void Unpickler::step(unsigned char op) {
  switch (op) {
    case 0x80: {  // PROTO
      const unsigned proto = *take(1);
      if (proto > 5) fail("unsupported pickle protocol " + std::to_string(proto));
      break;
    }
    case 0x95:  // FRAME: a size hint
      read_le(8);
      break;
    case '.':  // STOP
      if (stack_.size() != 1 || !marks_.empty())
        fail("malformed pickle: STOP with a stack of " + std::to_string(stack_.size()));
      stopped_ = true;
      break;
    case '(':  // MARK
      marks_.push_back(stack_.size());
      break;
    case '0':  // POP
      pop();
      break;
    case '1':  // POP_MARK
      pop_mark();
      break;
    case '2':  // DUP
      stack_.push_back(top());
      break;
    case 'c': {  // GLOBAL
      std::string module = read_line();
      std::string name = read_line();
      stack_.push_back(global(module, name));
      break;
    }
    case 0x93: {  // STACK_GLOBAL
      ValuePtr name = pop();
      ValuePtr module = pop();
      if (name->kind != Kind::Str || module->kind != Kind::Str)
        fail("STACK_GLOBAL without strings");
      stack_.push_back(global(module->s, name->s));
      break;
    }
    case 'R':     // REDUCE
    case 0x81: {  // NEWOBJ: cls.__new__(cls, *args)
      ValuePtr args = pop();
      ValuePtr fn = pop();
      stack_.push_back(call(fn, args));
      break;
    }
    case 0x92: {  // NEWOBJ_EX
      pop();      // kwargs
      ValuePtr args = pop();
      ValuePtr cls = pop();
      stack_.push_back(call(cls, args));
      break;
    }
    case 'b':  // BUILD: state for __setstate__ (OrderedDict._metadata, an object's __dict__):
               // ignored
      pop();
      top();
      break;
    case '}':  // EMPTY_DICT
      stack_.push_back(make(Kind::Dict));
      break;
    case ']':  // EMPTY_LIST
      stack_.push_back(make(Kind::List));
      break;
    case ')':  // EMPTY_TUPLE
      stack_.push_back(make(Kind::Tuple));
      break;
    case 0x8f:  // EMPTY_SET
      stack_.push_back(make(Kind::Set));
      break;
    case 't': {  // TUPLE
      ValuePtr t = make(Kind::Tuple);
      t->items = pop_mark();
      stack_.push_back(t);
      break;
    }
    case 0x85:
    case 0x86:
    case 0x87: {  // TUPLE1/2/3
      const auto n = static_cast<size_t>(op - 0x84);
      if (stack_.size() < stack_floor() + n) fail("malformed pickle: stack underflow");
      ValuePtr t = make(Kind::Tuple);
      t->items.assign(std::make_move_iterator(stack_.end() - static_cast<std::ptrdiff_t>(n)),
                      std::make_move_iterator(stack_.end()));
      stack_.resize(stack_.size() - n);
      stack_.push_back(t);
      break;
    }
    case 'd': {  // DICT
      std::vector<ValuePtr> kv = pop_mark();
      ValuePtr d = make(Kind::Dict);
      set_items(d, kv);
      stack_.push_back(d);
      break;
    }
    case 'l': {  // LIST
      ValuePtr l = make(Kind::List);
      l->items = pop_mark();
      stack_.push_back(l);
      break;
    }
    case 0x91: {  // FROZENSET
      ValuePtr s = make(Kind::Set);
      s->items = pop_mark();
      stack_.push_back(s);
      break;
    }
    case 'a': {  // APPEND
      std::vector<ValuePtr> one{pop()};
      append_items(top(), one);
      break;
    }
    case 'e':     // APPENDS
    case 0x90: {  // ADDITEMS
      std::vector<ValuePtr> items = pop_mark();
      append_items(top(), items);
      break;
    }
    case 's': {  // SETITEM
      std::vector<ValuePtr> kv(2);
      kv[1] = pop();
      kv[0] = pop();
      set_items(top(), kv);
      break;
    }
    case 'u': {  // SETITEMS
      std::vector<ValuePtr> kv = pop_mark();
      set_items(top(), kv);
      break;
    }
    case 'q':  // BINPUT
      memo_put(read_le(1));
      break;
    case 'r':  // LONG_BINPUT
      memo_put(read_le(4));
      break;
    case 0x94:  // MEMOIZE
      memo_put(memo_.size());
      break;
    case 'h':  // BINGET
      memo_get(read_le(1));
      break;
    case 'j':  // LONG_BINGET
      memo_get(read_le(4));
      break;
    case 'J': {  // BININT
      const auto u = static_cast<uint32_t>(read_le(4));
      stack_.push_back(make_int(static_cast<int32_t>(u)));
      break;
    }
    case 'K':  // BININT1
      stack_.push_back(make_int(static_cast<int64_t>(read_le(1))));
      break;
    case 'M':  // BININT2
      stack_.push_back(make_int(static_cast<int64_t>(read_le(2))));
      break;
    case 0x8a:    // LONG1
    case 0x8b: {  // LONG4
      const uint64_t n = op == 0x8a ? read_le(1) : read_le(4);
      if (op == 0x8b && n > size_ - pos_) fail("truncated pickle: LONG4");
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
      ValuePtr v = make(Kind::Float);
      std::memcpy(&v->f, &u, 8);
      stack_.push_back(v);
      break;
    }
    case 'N':  // NONE
      stack_.push_back(make(Kind::None));
      break;
    case 0x88:  // NEWTRUE
      stack_.push_back(make_int(1, Kind::Bool));
      break;
    case 0x89:  // NEWFALSE
      stack_.push_back(make_int(0, Kind::Bool));
      break;
    case 'X':  // BINUNICODE
    case 'T':  // BINSTRING (a Python 2 str)
      stack_.push_back(make_str(read_bytes(read_le(4))));
      break;
    case 0x8c:  // SHORT_BINUNICODE
    case 'U':   // SHORT_BINSTRING
      stack_.push_back(make_str(read_bytes(read_le(1))));
      break;
    case 0x8d:  // BINUNICODE8
      stack_.push_back(make_str(read_bytes(read_le(8))));
      break;
    case 'C':  // SHORT_BINBYTES
      stack_.push_back(make_str(read_bytes(read_le(1)), Kind::Bytes));
      break;
    case 'B':  // BINBYTES
      stack_.push_back(make_str(read_bytes(read_le(4)), Kind::Bytes));
      break;
    case 0x8e:  // BINBYTES8
    case 0x96:  // BYTEARRAY8
      stack_.push_back(make_str(read_bytes(read_le(8)), Kind::Bytes));
      break;
    case 'Q': {  // BINPERSID
      ValuePtr pid = pop();
      stack_.push_back(hooks_.persistent_load(*this, pid));
      break;
    }
    default: {
      char hex[8];
      std::snprintf(hex, sizeof hex, "0x%02x", op);
      fail(std::string("unsupported pickle opcode ") + hex);
    }
  }
}

// ----------------------------------------------------------------------------
// Results.

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

namespace {

void flatten_into(const ValuePtr& v, const std::string& prefix,
                  const std::function<bool(const Value&)>& is_leaf,
                  std::vector<std::pair<std::string, ValuePtr>>& out,
                  std::vector<const Value*>& path) {
  auto join = [&](const std::string& key) { return prefix.empty() ? key : prefix + "." + key; };
  if (is_leaf(*v)) {
    out.emplace_back(prefix, v);
    return;
  }
  if (v->kind != Kind::Dict && v->kind != Kind::List && v->kind != Kind::Tuple) return;
  if (std::find(path.begin(), path.end(), v.get()) != path.end())
    throw Error("container that contains itself");
  if (path.size() > 200) throw Error("containers nested too deeply");
  path.push_back(v.get());
  if (v->kind == Kind::Dict) {
    for (const auto& [k, val] : v->entries) {
      if (auto name = key_name(*k)) {
        flatten_into(val, join(*name), is_leaf, out, path);
      } else {
        std::vector<std::pair<std::string, ValuePtr>> sub;
        flatten_into(val, "", is_leaf, sub, path);
        if (!sub.empty())
          throw Error(std::string("wanted values under a dict key of type ") + kind_name(k->kind));
      }
    }
  } else {
    for (size_t k = 0; k < v->items.size(); ++k)
      flatten_into(v->items[k], join(std::to_string(k)), is_leaf, out, path);
  }
  path.pop_back();
}

}  // namespace

std::vector<std::pair<std::string, ValuePtr>> flatten(
    const ValuePtr& root, const std::function<bool(const Value&)>& is_leaf) {
  std::vector<std::pair<std::string, ValuePtr>> out;
  std::vector<const Value*> path;
  flatten_into(root, "", is_leaf, out, path);
  return out;
}

}  // namespace sam::pickle
