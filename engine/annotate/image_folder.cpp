#include "engine/annotate/image_folder.h"

#include <algorithm>
#include <cctype>
#include <stdexcept>
#include <system_error>

namespace fs = std::filesystem;

namespace sam::annotate {

namespace {

std::string lower_extension(const std::string& name) {
  const auto dot = name.rfind('.');
  if (dot == std::string::npos) return "";
  std::string ext = name.substr(dot + 1);
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return ext;
}

// Names travel in JSON and URLs, which need UTF-8; a file named otherwise is not listed.
bool is_valid_utf8(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    const int n = c < 0x80           ? 0
                  : (c >> 5) == 0x6  ? 1
                  : (c >> 4) == 0xE  ? 2
                  : (c >> 3) == 0x1E ? 3
                                     : -1;
    if (n < 0 || i + n >= s.size()) return false;
    for (int k = 1; k <= n; ++k)
      if ((static_cast<unsigned char>(s[i + k]) >> 6) != 0x2) return false;
    i += n + 1;
  }
  return true;
}

// True when `p` (canonical) is `root` itself or below it.
bool is_within(const fs::path& p, const fs::path& root) {
  auto r = root.begin(), q = p.begin();
  for (; r != root.end(); ++r, ++q)
    if (q == p.end() || *q != *r) return false;
  return true;
}

}  // namespace

bool is_image_file_name(const std::string& name) {
  static const char* kExt[] = {"jpg", "jpeg", "png", "bmp", "tif", "tiff", "webp"};
  const std::string ext = lower_extension(name);
  return std::any_of(std::begin(kExt), std::end(kExt), [&](const char* e) { return ext == e; });
}

ImageFolder::ImageFolder(const std::string& dir) {
  std::error_code ec;
  root_ = fs::canonical(dir, ec);
  if (ec || !fs::is_directory(root_))
    throw std::runtime_error(dir + ": not a readable folder of images" +
                             (ec ? " (" + ec.message() + ")" : ""));
  for (const auto& entry : fs::directory_iterator(root_, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || name[0] == '.' || !is_image_file_name(name) || !is_valid_utf8(name))
      continue;
    if (canonical_inside(name)) names_.push_back(name);
  }
  if (ec) throw std::runtime_error(dir + ": cannot list: " + ec.message());
  std::sort(names_.begin(), names_.end());
  for (size_t i = 0; i < names_.size(); ++i) index_[names_[i]] = i;
}

std::optional<fs::path> ImageFolder::canonical_inside(const std::string& name) const {
  std::error_code ec;
  const fs::path p = fs::canonical(root_ / name, ec);
  if (ec || !is_within(p, root_) || p == root_ || !fs::is_regular_file(p, ec)) return std::nullopt;
  return p;
}

std::optional<size_t> ImageFolder::index_of(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) return std::nullopt;
  return it->second;
}

std::optional<fs::path> ImageFolder::resolve(const std::string& name) const {
  // Only listed names pass, so "..", "/", "\\" and absolute paths never reach the file system.
  if (!index_of(name)) return std::nullopt;
  return canonical_inside(name);
}

std::string image_mime_type(const std::string& name) {
  const std::string ext = lower_extension(name);
  if (ext == "jpg" || ext == "jpeg") return "image/jpeg";
  if (ext == "png") return "image/png";
  if (ext == "bmp") return "image/bmp";
  if (ext == "tif" || ext == "tiff") return "image/tiff";
  if (ext == "webp") return "image/webp";
  return "application/octet-stream";
}

}  // namespace sam::annotate
