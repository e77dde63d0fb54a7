#pragma once
// The folder of images being annotated: which files are images, and resolving a name taken from a
// URL to a file that is certainly inside the folder (no "..", no absolute paths, no symlink that
// leads out, no encoded separators).
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace sam::annotate {

/// True for the extensions the tool lists (case-insensitive): jpg jpeg png bmp tif tiff webp.
bool is_image_file_name(const std::string& name);

class ImageFolder {
 public:
  /// Lists the regular image files directly inside `dir` (sorted by name; hidden files, folders
  /// and symlinks whose target is outside `dir` are skipped). Throws std::runtime_error when `dir`
  /// is not a readable folder.
  explicit ImageFolder(const std::string& dir);

  const std::filesystem::path& root() const { return root_; }
  const std::vector<std::string>& names() const { return names_; }
  size_t size() const { return names_.size(); }
  /// Index of a listed name, or nullopt.
  std::optional<size_t> index_of(const std::string& name) const;
  /// The file for an already-decoded name, or nullopt unless `name` is one of the listed images
  /// and its canonical path still lies inside the folder (checked again at every call, so a file
  /// swapped for an escaping symlink after start-up is refused).
  std::optional<std::filesystem::path> resolve(const std::string& name) const;

 private:
  std::optional<std::filesystem::path> canonical_inside(const std::string& name) const;
  std::filesystem::path root_;  ///< canonical
  std::vector<std::string> names_;
  std::unordered_map<std::string, size_t> index_;
};

/// The MIME type for an image file name by extension ("application/octet-stream" if unknown).
std::string image_mime_type(const std::string& name);

}  // namespace sam::annotate
