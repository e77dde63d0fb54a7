// The pickle machine and writer (sam/pickle.h) without torch, against bytes Python's pickle module
// wrote (pickle.dumps / Pickler.dump, Python 3.11; the values are in each case's comment) and
// hand-computed opcode sequences.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "sam/pickle.h"

using Catch::Matchers::Contains;
using sam::pickle::Error;
using sam::pickle::Kind;
using sam::pickle::Value;
using sam::pickle::ValuePtr;

namespace {

template <size_t N>
std::string bytes(const char (&lit)[N]) {
  return std::string(lit, N - 1);
}

// {'a': 1, 'b': [1.5, None, True, False], 'c': (1, 2, 3, 4), 'd': b'xy', 'e': -70000,
//  'f': 2**40, 'g': {1: 'one'}}
const std::string kDictP2 = bytes(
    "\x80\x02\x7d\x71\x00\x28\x58\x01\x00\x00\x00\x61\x71\x01\x4b\x01\x58\x01\x00\x00\x00\x62\x71"
    "\x02\x5d\x71\x03\x28\x47\x3f\xf8\x00\x00\x00\x00\x00\x00\x4e\x88\x89\x65\x58\x01\x00\x00\x00"
    "\x63\x71\x04\x28\x4b\x01\x4b\x02\x4b\x03\x4b\x04\x74\x71\x05\x58\x01\x00\x00\x00\x64\x71\x06"
    "\x63\x5f\x63\x6f\x64\x65\x63\x73\x0a\x65\x6e\x63\x6f\x64\x65\x0a\x71\x07\x58\x02\x00\x00\x00"
    "\x78\x79\x71\x08\x58\x06\x00\x00\x00\x6c\x61\x74\x69\x6e\x31\x71\x09\x86\x71\x0a\x52\x71\x0b"
    "\x58\x01\x00\x00\x00\x65\x71\x0c\x4a\x90\xee\xfe\xff\x58\x01\x00\x00\x00\x66\x71\x0d\x8a\x06"
    "\x00\x00\x00\x00\x00\x01\x58\x01\x00\x00\x00\x67\x71\x0e\x7d\x71\x0f\x4b\x01\x58\x03\x00\x00"
    "\x00\x6f\x6e\x65\x71\x10\x73\x75\x2e");
// The same at protocol 5 (FRAME, SHORT_BINUNICODE, MEMOIZE, SHORT_BINBYTES).
const std::string kDictP5 = bytes(
    "\x80\x05\x95\x5b\x00\x00\x00\x00\x00\x00\x00\x7d\x94\x28\x8c\x01\x61\x94\x4b\x01\x8c\x01\x62"
    "\x94\x5d\x94\x28\x47\x3f\xf8\x00\x00\x00\x00\x00\x00\x4e\x88\x89\x65\x8c\x01\x63\x94\x28\x4b"
    "\x01\x4b\x02\x4b\x03\x4b\x04\x74\x94\x8c\x01\x64\x94\x43\x02\x78\x79\x94\x8c\x01\x65\x94\x4a"
    "\x90\xee\xfe\xff\x8c\x01\x66\x94\x8a\x06\x00\x00\x00\x00\x00\x01\x8c\x01\x67\x94\x7d\x94\x4b"
    "\x01\x8c\x03\x6f\x6e\x65\x94\x73\x75\x2e");
// collections.OrderedDict([('x', 1), ('y', 2)]), protocol 2.
const std::string kOrderedDict = bytes(
    "\x80\x02\x63\x63\x6f\x6c\x6c\x65\x63\x74\x69\x6f\x6e\x73\x0a\x4f\x72\x64\x65\x72\x65\x64\x44"
    "\x69\x63\x74\x0a\x71\x00\x29\x52\x71\x01\x28\x58\x01\x00\x00\x00\x78\x71\x02\x4b\x01\x58\x01"
    "\x00\x00\x00\x79\x71\x03\x4b\x02\x75\x2e");
// {'w': Ref('k1'), 'v': [Ref('k2'), Made()]} by a Pickler whose persistent_id(Ref r) is
// ('ref', r.n), with Made.__reduce__ = (__main__.make, (3, 'x')); protocol 2.
const std::string kPersistent = bytes(
    "\x80\x02\x7d\x71\x00\x28\x58\x01\x00\x00\x00\x77\x71\x01\x58\x03\x00\x00\x00\x72\x65\x66\x71"
    "\x02\x58\x02\x00\x00\x00\x6b\x31\x71\x03\x86\x71\x04\x51\x58\x01\x00\x00\x00\x76\x71\x05\x5d"
    "\x71\x06\x28\x68\x02\x58\x02\x00\x00\x00\x6b\x32\x71\x07\x86\x71\x08\x51\x63\x5f\x5f\x6d\x61"
    "\x69\x6e\x5f\x5f\x0a\x6d\x61\x6b\x65\x0a\x71\x09\x4b\x03\x58\x01\x00\x00\x00\x78\x71\x0a\x86"
    "\x71\x0b\x52\x71\x0c\x65\x75\x2e");

const Value& entry(const Value& dict, const std::string& key) {
  for (const auto& [k, v] : dict.entries)
    if (k->kind == Kind::Str && k->s == key) return *v;
  FAIL("no key " << key);
  throw 0;
}

void check_dict(const Value& d) {
  REQUIRE(d.kind == Kind::Dict);
  REQUIRE(d.entries.size() == 7);
  CHECK(entry(d, "a").kind == Kind::Int);
  CHECK(entry(d, "a").i == 1);
  const Value& b = entry(d, "b");
  REQUIRE(b.kind == Kind::List);
  REQUIRE(b.items.size() == 4);
  CHECK(b.items[0]->kind == Kind::Float);
  CHECK(b.items[0]->f == 1.5);
  CHECK(b.items[1]->kind == Kind::None);
  CHECK((b.items[2]->kind == Kind::Bool && b.items[2]->i == 1));
  CHECK((b.items[3]->kind == Kind::Bool && b.items[3]->i == 0));
  const Value& c = entry(d, "c");
  REQUIRE(c.kind == Kind::Tuple);
  REQUIRE(c.items.size() == 4);
  for (int k = 0; k < 4; ++k) CHECK(c.items[k]->i == k + 1);
  CHECK(entry(d, "e").i == -70000);
  CHECK(entry(d, "f").i == (int64_t{1} << 40));
  const Value& g = entry(d, "g");
  REQUIRE(g.entries.size() == 1);
  CHECK(g.entries[0].first->i == 1);
  CHECK(g.entries[0].second->s == "one");
}

// Hooks that load persistent ids ('ref', name) as Ext values and call __main__.make.
struct RefHooks : sam::pickle::Hooks {
  std::vector<std::string> loaded;
  void resolve_global(Value& g, const std::string& module, const std::string& name) override {
    if (module == "__main__" && name == "make") g.tag = 7;
    if (module == "forbidden") throw Error("unsupported global " + g.s);
  }
  ValuePtr call(sam::pickle::Unpickler& u, const Value& fn,
                const std::vector<ValuePtr>& args) override {
    CHECK(fn.tag == 7);
    ValuePtr v = u.make(Kind::Ext);
    v->tag = 2;
    v->i = static_cast<int64_t>(args.size());
    return v;
  }
  ValuePtr persistent_load(sam::pickle::Unpickler& u, const ValuePtr& pid) override {
    REQUIRE(pid->kind == Kind::Tuple);
    REQUIRE(pid->items.size() == 2);
    CHECK(pid->items[0]->s == "ref");
    loaded.push_back(pid->items[1]->s);
    ValuePtr v = u.make(Kind::Ext);
    v->tag = 1;
    v->s = pid->items[1]->s;
    return v;
  }
};

std::string read_error(const std::string& data) {
  sam::pickle::Hooks none;
  sam::pickle::Unpickler u(data.data(), data.size(), none);
  try {
    u.run();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("pickle: Python's protocol 2 and 5 dumps of the same dict read the same", "[pickle]") {
  for (const auto* data : {&kDictP2, &kDictP5}) {
    sam::pickle::Hooks none;
    sam::pickle::Unpickler u(data->data(), data->size(), none);
    const ValuePtr root = u.run();
    check_dict(*root);
    // bytes: protocol 5 has SHORT_BINBYTES; protocol 2 calls _codecs.encode, an opaque object.
    const Value& d = entry(*root, "d");
    if (data == &kDictP5) {
      CHECK(d.kind == Kind::Bytes);
      CHECK(d.s == "xy");
    } else {
      CHECK(d.kind == Kind::Object);
      CHECK(d.s == "_codecs.encode");
    }
  }
}

TEST_CASE("pickle: OrderedDict keeps its order, keys follow Python's identity", "[pickle]") {
  sam::pickle::Hooks none;
  sam::pickle::Unpickler u(kOrderedDict.data(), kOrderedDict.size(), none);
  const ValuePtr root = u.run();
  REQUIRE(root->kind == Kind::Dict);
  REQUIRE(root->entries.size() == 2);
  CHECK(root->entries[0].first->s == "x");
  CHECK(root->entries[1].second->i == 2);

  // d[1] = 'a'; d[True] = 'b' (1 == True: one entry); d['1'] = 'c' (another key).
  Value d(Kind::Dict);
  auto key = [](Kind k, int64_t i, std::string s = "") {
    auto v = std::make_shared<Value>(k);
    v->i = i;
    v->s = std::move(s);
    return v;
  };
  sam::pickle::Unpickler::set_item(d, key(Kind::Int, 1), key(Kind::Str, 0, "a"));
  sam::pickle::Unpickler::set_item(d, key(Kind::Bool, 1), key(Kind::Str, 0, "b"));
  sam::pickle::Unpickler::set_item(d, key(Kind::Str, 0, "1"), key(Kind::Str, 0, "c"));
  REQUIRE(d.entries.size() == 2);
  CHECK(d.entries[0].second->s == "b");
  CHECK(d.entries[1].second->s == "c");
}

TEST_CASE("pickle: persistent ids and calls go to the hooks", "[pickle]") {
  RefHooks hooks;
  sam::pickle::Unpickler u(kPersistent.data(), kPersistent.size(), hooks);
  const ValuePtr root = u.run();
  CHECK(hooks.loaded == std::vector<std::string>{"k1", "k2"});
  const Value& w = entry(*root, "w");
  CHECK((w.kind == Kind::Ext && w.tag == 1 && w.s == "k1"));
  const Value& v = entry(*root, "v");
  REQUIRE(v.items.size() == 2);
  CHECK((v.items[1]->kind == Kind::Ext && v.items[1]->tag == 2 && v.items[1]->i == 2));

  const auto leaves =
      sam::pickle::flatten(root, [](const Value& x) { return x.kind == Kind::Ext; });
  REQUIRE(leaves.size() == 3);
  CHECK(leaves[0].first == "w");
  CHECK(leaves[1].first == "v.0");
  CHECK(leaves[2].first == "v.1");

  // Without hooks a persistent id is refused, at the BINPERSID opcode (byte 36).
  CHECK_THAT(read_error(kPersistent), Contains("unsupported persistent id (pickle byte 36)"));
  // A hook's refusal carries the position too.
  const std::string forbidden = bytes(
      "\x80\x02\x63"
      "forbidden\nx\n.");
  RefHooks h2;
  sam::pickle::Unpickler u2(forbidden.data(), forbidden.size(), h2);
  CHECK_THROWS_WITH(u2.run(), Contains("unsupported global forbidden.x (pickle byte 2)"));
}

TEST_CASE("pickle: malformed input is an error at the opcode's byte", "[pickle]") {
  // Every truncation of a valid pickle fails (none reads as a shorter value).
  for (size_t cut = 0; cut < kDictP2.size(); ++cut)
    CHECK_THAT(read_error(kDictP2.substr(0, cut)), Contains("(pickle byte"));
  CHECK_THAT(read_error(bytes("\x80\x02\xff.")),
             Contains("unsupported pickle opcode 0xff (pickle byte 2)"));
  CHECK_THAT(read_error(bytes("\x80\x06N.")),
             Contains("unsupported pickle protocol 6 (pickle byte 0)"));
  CHECK_THAT(read_error(bytes("\x80\x02h\x09.")), Contains("memo key 9 not found (pickle byte 2)"));
  CHECK_THAT(read_error(bytes("\x80\x02NN.")), Contains("STOP with a stack of 2 (pickle byte 4)"));
  CHECK_THAT(read_error(bytes("\x80\x02(0.")), Contains("stack underflow"));  // POP below a MARK
  CHECK_THAT(read_error(bytes("\x80\x02Nt.")), Contains("no MARK"));
  CHECK_THAT(read_error(bytes("\x80\x02]NNs.")), Contains("SETITEM on a list"));
  CHECK_THAT(read_error(bytes("\x80\x02\x8b\xff\xff\xff\x7f.")),
             Contains("truncated pickle: LONG4"));
}

TEST_CASE("pickle: a list holding itself reads, and flattening refuses it", "[pickle]") {
  // l = []; l.append(l)
  const std::string cyc = bytes("\x80\x02\x5d\x71\x00\x68\x00\x61\x2e");
  sam::pickle::Hooks none;
  sam::pickle::Unpickler u(cyc.data(), cyc.size(), none);
  const ValuePtr root = u.run();
  REQUIRE(root->items.size() == 1);
  CHECK(root->items[0] == root);
  CHECK_THROWS_WITH(sam::pickle::flatten(root, [](const Value&) { return false; }),
                    Contains("contains itself"));
}

TEST_CASE("pickle: Writer writes ints and tuples as Python's pickler at protocol 2", "[pickle]") {
  const std::pair<int64_t, std::string> ints[] = {
      {0, bytes("\x4b\x00")},
      {255, bytes("\x4b\xff")},
      {256, bytes("\x4d\x00\x01")},
      {65535, bytes("\x4d\xff\xff")},
      {65536, bytes("\x4a\x00\x00\x01\x00")},
      {-1, bytes("\x4a\xff\xff\xff\xff")},
      {-256, bytes("\x4a\x00\xff\xff\xff")},
      {2147483647, bytes("\x4a\xff\xff\xff\x7f")},
      {-2147483647 - 1, bytes("\x4a\x00\x00\x00\x80")},
      {2147483648, bytes("\x8a\x05\x00\x00\x00\x80\x00")},
      {-2147483649, bytes("\x8a\x05\xff\xff\xff\x7f\xff")},
      {int64_t{1} << 40, bytes("\x8a\x06\x00\x00\x00\x00\x00\x01")},
      {INT64_MAX, bytes("\x8a\x08\xff\xff\xff\xff\xff\xff\xff\x7f")},
      {INT64_MIN, bytes("\x8a\x08\x00\x00\x00\x00\x00\x00\x00\x80")},
  };
  for (const auto& [v, want] : ints) {
    sam::pickle::Writer w;
    w.integer(v);
    INFO(v);
    CHECK(w.out == want);
    // And the machine reads it back.
    const std::string full = "\x80\x02" + w.out + ".";
    sam::pickle::Hooks none;
    sam::pickle::Unpickler u(full.data(), full.size(), none);
    CHECK(u.run()->i == v);
  }
  const std::pair<std::vector<int64_t>, std::string> tuples[] = {
      {{}, bytes("\x29")},
      {{7}, bytes("\x4b\x07\x85\x71\x00")},
      {{7, 8}, bytes("\x4b\x07\x4b\x08\x86\x71\x00")},
      {{7, 8, 9}, bytes("\x4b\x07\x4b\x08\x4b\x09\x87\x71\x00")},
      {{7, 8, 9, 10}, bytes("\x28\x4b\x07\x4b\x08\x4b\x09\x4b\x0a\x74\x71\x00")},
  };
  for (const auto& [v, want] : tuples) {
    sam::pickle::Writer w;
    w.int_tuple(v);
    CHECK(w.out == want);
  }
}

TEST_CASE("pickle: Writer's OrderedDict equals Python's, and the memo goes past 256", "[pickle]") {
  sam::pickle::Writer w;
  w.proto(2);
  w.global("collections", "OrderedDict");
  w.op(')');
  w.op('R');
  w.put();
  w.op('(');
  w.str("x");
  w.integer(1);
  w.str("y");
  w.integer(2);
  w.op('u');
  w.op('.');
  CHECK(w.out == kOrderedDict);

  // A list of 300 strings, then the 261st string again: memo 256 on is LONG_BINPUT, and the
  // repeat a LONG_BINGET of index 261 (the list is memo 0).
  sam::pickle::Writer l;
  l.proto(2);
  l.op(']');
  l.put();
  l.op('(');
  for (int i = 0; i < 300; ++i) l.str("s" + std::to_string(i));
  l.get(261);
  l.op('e');
  l.op('.');
  CHECK(l.out.find(bytes("\x72\x00\x01\x00\x00")) != std::string::npos);  // LONG_BINPUT 256
  CHECK(l.out.find(bytes("\x6a\x05\x01\x00\x00")) != std::string::npos);  // LONG_BINGET 261
  sam::pickle::Hooks none;
  sam::pickle::Unpickler u(l.out.data(), l.out.size(), none);
  const ValuePtr root = u.run();
  REQUIRE(root->items.size() == 301);
  CHECK(root->items[299]->s == "s299");
  CHECK(root->items[300] == root->items[260]);
}
