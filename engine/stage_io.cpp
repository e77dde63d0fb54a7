#include "engine/stage_io.h"

#include <algorithm>
#include <cctype>
#include <ctime>
#include <fstream>

#include "data/atomic_file.h"

namespace fs = std::filesystem;

namespace sam::engine {

std::string now_iso() {
  const std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

std::string eta_text(data::Progress& p, size_t done, size_t left) {
  p.set_total(int64_t(done + left));
  p.set_done(int64_t(done));
  return ", " + p.eta_text();
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::string safe_stem(const std::string& id) {
  std::string s;
  for (char c : id)
    s +=
        (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.') ? c : '_';
  return s.empty() ? "image" : s;
}

std::string image_ext(const data::ImageRef& r) {
  std::string name = r.member.empty() ? r.path : r.member;
  std::string ext = fs::path(name).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), ::tolower);
  if (ext != ".jpg" && ext != ".jpeg" && ext != ".png") ext = ".jpg";
  return ext;
}

nlohmann::json read_json_file(const fs::path& p) {
  std::ifstream f(p);
  if (!f) throw std::runtime_error(p.string() + ": cannot read");
  try {
    return nlohmann::json::parse(f);
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(p.string() + ": " + e.what());
  }
}

cv::Mat rle_to_mat(const mask::Rle& r) {
  cv::Mat m(int(r.h), int(r.w), CV_8UC1);
  mask::rle_decode(r, m.data);
  return m;
}

void write_image_outputs(const fs::path& dir, const data::Sample& s, const std::string& stem,
                         const nlohmann::json& sa1b, const ImageRecord& rec) {
  const std::string ext = image_ext(s.image);
  const auto bytes = s.image.read();
  data::write_file_atomic((dir / "data" / (stem + ext)).string(),
                          std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
  data::write_file_atomic((dir / "data" / (stem + ".json")).string(), sa1b.dump() + "\n");
  data::write_file_atomic((dir / "records" / (stem + ".json")).string(),
                          rec.to_json().dump() + "\n");
}

void write_skip_record(const fs::path& dir, ImageRecord rec) {
  rec.skipped = true;
  data::write_file_atomic((dir / "records" / (rec.stem + ".json")).string(),
                          rec.to_json().dump() + "\n");
}

std::vector<RetrainRound> load_rounds(const fs::path& dir) {
  std::vector<RetrainRound> rounds;
  const fs::path p = dir / "rounds.json";
  if (!fs::exists(p)) return rounds;
  for (const auto& j : read_json_file(p)) rounds.push_back(RetrainRound::from_json(j));
  return rounds;
}

void save_rounds(const fs::path& dir, const std::vector<RetrainRound>& rounds) {
  nlohmann::json a = nlohmann::json::array();
  for (const auto& r : rounds) a.push_back(r.to_json());
  data::write_file_atomic((dir / "rounds.json").string(), a.dump(2) + "\n");
}

int64_t count_masks(const fs::path& stage) {
  int64_t n = 0;
  const fs::path rd = stage / "records";
  if (!fs::exists(rd)) return 0;
  for (const auto& e : fs::directory_iterator(rd))
    if (e.path().extension() == ".json") n += int64_t(read_json_file(e.path()).at("masks").size());
  return n;
}

}  // namespace sam::engine
