// TensorBoard event files (train/tensorboard.h): an event's bytes hand-assembled from the protobuf
// wire format, TFRecord framing, the tags of a metrics line, and files read back by the
// tensorboard package's own reader (PyPI, tests/peers/tb_events.py).
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "data/checksum.h"
#include "peers.h"
#include "test_util.h"
#include "train/tensorboard.h"

using sam::data::crc32c;

TEST_CASE("scalar_event: the bytes of a tensorflow.Event, assembled by hand", "[tensorboard]") {
  // wall_time 1.5 (field 1, 64-bit), step 3 (field 2, varint), summary (field 5) holding one value
  // (field 1) with tag "a" (field 1) and simple_value 2.0f (field 2, 32-bit).
  const unsigned char want[] = {0x09, 0, 0, 0, 0, 0, 0, 0xF8, 0x3F,  // wall_time
                                0x10, 0x03,                          // step
                                0x2A, 0x0A,                          // summary, 10 bytes
                                0x0A, 0x08,                          // value, 8 bytes
                                0x0A, 0x01, 'a',                     // tag
                                0x15, 0, 0, 0, 0x40};                // simple_value
  const std::string e = sam::train::scalar_event(1.5, 3, {{"a", 2.0}});
  CHECK(e == std::string(reinterpret_cast<const char*>(want), sizeof(want)));
  // A step past 2^32 takes a five-byte varint: 2^35 = 0x80 0x80 0x80 0x80 0x80 0x01.
  const std::string big = sam::train::scalar_event(0, int64_t{1} << 35, {});
  CHECK(big.substr(9, 7) == std::string("\x10\x80\x80\x80\x80\x80\x01", 7));
}

TEST_CASE("tfrecord: length, masked CRCs, data", "[tensorboard]") {
  const std::string data = "abc";
  const std::string r = sam::train::tfrecord(data);
  REQUIRE(r.size() == 8 + 4 + 3 + 4);
  CHECK(r.substr(0, 8) == std::string("\x03\0\0\0\0\0\0\0", 8));
  auto masked = [](uint32_t c) { return ((c >> 15) | (c << 17)) + 0xa282ead8u; };
  auto le32 = [&](size_t at) {
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(static_cast<unsigned char>(r[at + i])) << (8 * i);
    return v;
  };
  CHECK(le32(8) == masked(crc32c(r.data(), 8)));
  CHECK(r.substr(12, 3) == data);
  // crc32c("abc") = 0x364B3FB7 (independent check value).
  CHECK(crc32c("abc", 3) == 0x364B3FB7u);
  CHECK(le32(15) == masked(0x364B3FB7u));
}

TEST_CASE("tensorboard_scalars: a metrics line's numbers as <event>/<key> tags", "[tensorboard]") {
  const auto j = nlohmann::json::parse(
      R"({"event": "train", "step": 5, "loss": 0.25, "iou_round": [0.5, 0.75], "ok": true,
          "loader": {"skipped": 1}, "note": "x"})");
  const auto s = sam::train::tensorboard_scalars(j);
  REQUIRE(s.size() == 3);
  std::map<std::string, double> m(s.begin(), s.end());
  CHECK(m.at("train/loss") == 0.25);
  CHECK(m.at("train/iou_round_1") == 0.5);
  CHECK(m.at("train/iou_round_2") == 0.75);
}

TEST_CASE("EventWriter: files the tensorboard package reads back, tags, steps and values", "[tensorboard][peers]") {
  SAM_REQUIRE_PEERS(py);
  const auto dir = sam_test::temp_dir("tensorboard_writer");
  std::string path;
  {
    sam::train::EventWriter w(dir.string());
    path = w.path();
    w.scalars(1, {{"train/loss", 0.5}, {"train/lr", 1e-4}});
    w.scalars(2, {{"train/loss", -3.25}});
    w.scalars(int64_t{1} << 33, {{"val/miou", 0.875}});
  }
  CHECK(std::filesystem::path(path).filename().string().rfind("events.out.tfevents.", 0) == 0);
  std::string out;
  const std::string cmd = py + " " + (sam_test::source_dir() / "tests" / "peers" / "tb_events.py").string() + " " +
                          dir.string();
  REQUIRE(sam_test::run_command(cmd, &out) == 0);
  INFO(out);
  const auto j = nlohmann::json::parse(out.substr(out.find('{')));
  CHECK(j["_file_version"] == "brain.Event:2");
  REQUIRE(j["train/loss"].size() == 2);
  CHECK(j["train/loss"][0][0] == 1);
  CHECK(j["train/loss"][0][1].get<double>() == 0.5);
  CHECK(j["train/loss"][1][0] == 2);
  CHECK(j["train/loss"][1][1].get<double>() == -3.25);
  CHECK(j["train/lr"][0][1].get<double>() == Approx(1e-4).epsilon(1e-6));  // float32
  CHECK(j["val/miou"][0][0].get<int64_t>() == (int64_t{1} << 33));
  CHECK(j["val/miou"][0][1].get<double>() == 0.875);

  // The last record's data CRC spoilt (its data intact): the reader drops that record, so the CRCs
  // are TFRecord's own, checked, not just present.
  {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(-1, std::ios::end);
    const char last = static_cast<char>(f.get());
    f.seekp(-1, std::ios::end);
    f.put(static_cast<char>(last ^ 0x5a));
  }
  REQUIRE(sam_test::run_command(cmd, &out) == 0);
  INFO(out);
  const auto k = nlohmann::json::parse(out.substr(out.find('{')));
  CHECK(k["train/loss"].size() == 2);
  CHECK_FALSE(k.contains("val/miou"));
}
