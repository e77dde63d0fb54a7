#pragma once
// The annotation database of the assisted-manual stage (paper section 4, stage 1): one SQLite file
// holding every accepted mask as COCO compressed RLE, the clicks that made it, the seconds it took,
// who accepted it and when. The annotation tool (sam_annotate) writes it; the data engine's manual
// stage and the exporters read it through this class.
//
// Reading it from C++:
//   sam::annotate::AnnotationStore store("annotations.sqlite", /*read_only=*/true);
//   for (const auto& img : store.list_images())              // every image the tool has seen
//     for (const auto& a : store.annotations_for(img.file_name))
//       use(a.rle, a.clicks, a.seconds);                       // rle: img.height x img.width
//
// Durability: WAL journal with synchronous=FULL, so an add() that returned survives a crash of the
// process and of the machine (power loss); NORMAL would only survive a process crash, and an
// annotator's acknowledged mask is worth the extra fsync (accepts come seconds apart). Every write
// is one transaction. Many readers (other processes too) may read while one writer writes.
//
// Thread safety: one AnnotationStore may be shared by threads (calls are serialised internally).
#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/mask/rle.h"

struct sqlite3;

namespace sam::annotate {

/// One image as the database knows it (registered when the tool first opens it).
struct ImageRecord {
  int64_t id = 0;         ///< stable id, used as image_id in exports
  std::string file_name;  ///< path relative to the image folder (a plain file name)
  int64_t width = 0;      ///< pixels of the original image
  int64_t height = 0;
  int64_t num_annotations = 0;
};

/// One accepted mask.
struct Annotation {
  int64_t id = 0;             ///< assigned by add()
  std::string image;          ///< file name of the image (ImageRecord::file_name)
  mask::Rle rle;              ///< the mask, height x width of the image, COCO column-major runs
  nlohmann::json clicks;      ///< the prompts and edits that made it (see docs/API.md "clicks")
  double seconds = 0;         ///< annotator time spent on this mask
  double predicted_iou = -1;  ///< the model's IoU prediction for the chosen candidate; -1 = none
  std::string user;           ///< who accepted it
  std::string created_at;     ///< UTC, ISO 8601 ("2024-05-01T12:00:00.123Z"), set by add()
  int64_t area = 0;           ///< set pixels (computed by add())
  std::array<double, 4> bbox{0, 0, 0, 0};  ///< COCO x, y, w, h (computed by add())
};

class AnnotationStore {
 public:
  /// Opens (creating unless read_only) the database at `path`; throws std::runtime_error naming the
  /// path on any SQLite failure or on a database of another schema version.
  explicit AnnotationStore(const std::string& path, bool read_only = false);
  ~AnnotationStore();
  AnnotationStore(const AnnotationStore&) = delete;
  AnnotationStore& operator=(const AnnotationStore&) = delete;

  /// Records an image's size (first call inserts; later calls must agree: a changed size throws,
  /// since stored masks would no longer fit). Returns the image id.
  int64_t register_image(const std::string& file_name, int64_t height, int64_t width);
  /// Every registered image, ordered by file name, with its number of annotations.
  std::vector<ImageRecord> list_images() const;
  /// One image by file name, if registered.
  std::optional<ImageRecord> image(const std::string& file_name) const;
  /// The annotations of one image in the order they were accepted (empty if none or unknown).
  std::vector<Annotation> annotations_for(const std::string& file_name) const;
  /// One annotation by id.
  std::optional<Annotation> annotation(int64_t id) const;
  /// Every annotation, ordered by image file name then id.
  std::vector<Annotation> all_annotations() const;

  /// Stores `a` in one transaction, durably, and returns its id. The image must be registered and
  /// a.rle must be exactly its height x width and non-empty; area, bbox and created_at are computed
  /// here (a.created_at is kept when non-empty). Throws std::invalid_argument on bad input.
  int64_t add(const Annotation& a);
  /// Deletes one annotation; false when no such id.
  bool remove(int64_t id);

  /// SQLite's PRAGMA integrity_check result ("ok" when sound).
  std::string integrity_check() const;
  const std::string& path() const { return path_; }

 private:
  std::vector<Annotation> query_annotations(const std::string& where, const std::string& text_arg,
                                            int64_t int_arg) const;
  std::string path_;
  sqlite3* db_ = nullptr;
  mutable std::mutex mu_;
};

/// The current UTC time as ISO 8601 with milliseconds ("2024-05-01T12:00:00.123Z").
std::string utc_now_iso8601();

}  // namespace sam::annotate
