#include "train/tensorboard.h"

#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "data/checksum.h"

namespace sam::train {
namespace {

using data::put_le;

// TFRecord's masking of a CRC (so that CRCs of data holding CRCs stay well distributed).
uint32_t masked_crc(const void* data, size_t size) {
  const uint32_t c = sam::data::crc32c(data, size);
  return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

// Protocol buffers' wire format: varints, and fields as (number << 3 | wire type) then the value.
void put_varint(std::string& s, uint64_t v) {
  while (v >= 0x80) {
    s.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  s.push_back(static_cast<char>(v));
}
void put_key(std::string& s, int field, int wire) { put_varint(s, static_cast<uint64_t>(field) << 3 | wire); }
void put_bytes(std::string& s, int field, const std::string& v) {
  put_key(s, field, 2);
  put_varint(s, v.size());
  s += v;
}
void put_double(std::string& s, int field, double v) {
  uint64_t bits;
  std::memcpy(&bits, &v, 8);
  put_key(s, field, 1);
  put_le(s, bits, 8);
}
void put_float(std::string& s, int field, float v) {
  uint32_t bits;
  std::memcpy(&bits, &v, 4);
  put_key(s, field, 5);
  put_le(s, bits, 4);
}

// tensorflow.Event: wall_time = 1 (double), step = 2 (int64), file_version = 3 (string),
// summary = 5 (Summary). Summary: value = 1 (repeated Value). Value: tag = 1, simple_value = 2.
std::string event_head(double wall_time, int64_t step) {
  std::string e;
  put_double(e, 1, wall_time);
  if (step != 0) {
    put_key(e, 2, 0);
    put_varint(e, static_cast<uint64_t>(step));
  }
  return e;
}

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

std::string tfrecord(const std::string& data) {
  std::string r, len;
  put_le(len, data.size(), 8);
  r += len;
  put_le(r, masked_crc(len.data(), len.size()), 4);
  r += data;
  put_le(r, masked_crc(data.data(), data.size()), 4);
  return r;
}

std::string scalar_event(double wall_time, int64_t step,
                         const std::vector<std::pair<std::string, double>>& scalars) {
  std::string summary;
  for (const auto& [tag, value] : scalars) {
    std::string v;
    put_bytes(v, 1, tag);
    put_float(v, 2, static_cast<float>(value));
    put_bytes(summary, 1, v);
  }
  std::string e = event_head(wall_time, step);
  put_bytes(e, 5, summary);
  return e;
}

std::vector<std::pair<std::string, double>> tensorboard_scalars(const nlohmann::json& j) {
  std::vector<std::pair<std::string, double>> out;
  if (!j.is_object()) return out;
  const std::string event = j.contains("event") && j["event"].is_string() ? j["event"].get<std::string>() : "metrics";
  for (const auto& [key, v] : j.items()) {
    if (key == "event" || key == "step") continue;
    if (v.is_number()) {
      out.emplace_back(event + "/" + key, v.get<double>());
    } else if (v.is_array()) {
      for (size_t k = 0; k < v.size(); ++k)
        if (v[k].is_number()) out.emplace_back(event + "/" + key + "_" + std::to_string(k + 1), v[k].get<double>());
    }
  }
  return out;
}

EventWriter::EventWriter(const std::string& dir) {
  char host[256] = "localhost";
  if (gethostname(host, sizeof(host) - 1) != 0) std::strcpy(host, "localhost");
  host[sizeof(host) - 1] = 0;
  const double t = now_seconds();
  path_ = (std::filesystem::path(dir) / ("events.out.tfevents." + std::to_string(static_cast<int64_t>(t)) + "." +
                                         host + "." + std::to_string(getpid())))
              .string();
  out_.open(path_, std::ios::binary | std::ios::app);
  if (!out_) throw std::runtime_error(path_ + ": cannot create the TensorBoard event file");
  std::string e = event_head(t, 0);
  put_bytes(e, 3, "brain.Event:2");
  write(e);
}

void EventWriter::scalars(int64_t step, const std::vector<std::pair<std::string, double>>& values) {
  if (!values.empty()) write(scalar_event(now_seconds(), step, values));
}

void EventWriter::write(const std::string& event) {
  out_ << tfrecord(event);
  out_.flush();
  if (!out_) throw std::runtime_error(path_ + ": cannot write the TensorBoard event file");
}

}  // namespace sam::train
