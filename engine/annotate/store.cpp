#include "engine/annotate/store.h"

#include <sqlite3.h>

#include <chrono>
#include <cmath>
#include <ctime>
#include <stdexcept>

namespace sam::annotate {

namespace {

constexpr int kSchemaVersion = 1;

// The schema; bbox and area are derivable from the RLE but kept as columns so that readers (and
// SQL queries) need not decode masks.
constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS images (
  id INTEGER PRIMARY KEY,
  file_name TEXT NOT NULL UNIQUE,
  width INTEGER NOT NULL,
  height INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS annotations (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  image_id INTEGER NOT NULL REFERENCES images(id),
  height INTEGER NOT NULL,
  width INTEGER NOT NULL,
  counts TEXT NOT NULL,
  area INTEGER NOT NULL,
  bbox_x REAL NOT NULL, bbox_y REAL NOT NULL, bbox_w REAL NOT NULL, bbox_h REAL NOT NULL,
  predicted_iou REAL NOT NULL,
  clicks TEXT NOT NULL,
  seconds REAL NOT NULL,
  user TEXT NOT NULL,
  created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS annotations_by_image ON annotations(image_id);
)sql";

// A prepared statement that finalizes itself.
class Stmt {
 public:
  Stmt(sqlite3* db, const std::string& sql, const std::string& path) : db_(db), path_(path) {
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &s_, nullptr) != SQLITE_OK)
      throw std::runtime_error(path + ": cannot prepare '" + sql + "': " + sqlite3_errmsg(db));
  }
  ~Stmt() { sqlite3_finalize(s_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  void bind(int i, int64_t v) { check(sqlite3_bind_int64(s_, i, v)); }
  void bind(int i, double v) { check(sqlite3_bind_double(s_, i, v)); }
  void bind(int i, const std::string& v) {
    check(sqlite3_bind_text(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT));
  }
  /// True while a row is available.
  bool step() {
    const int rc = sqlite3_step(s_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    throw std::runtime_error(path_ + ": " + sqlite3_errmsg(db_));
  }
  int64_t i64(int c) const { return sqlite3_column_int64(s_, c); }
  double f64(int c) const { return sqlite3_column_double(s_, c); }
  std::string text(int c) const {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(s_, c));
    return p ? std::string(p, static_cast<size_t>(sqlite3_column_bytes(s_, c))) : std::string();
  }

 private:
  void check(int rc) {
    if (rc != SQLITE_OK) throw std::runtime_error(path_ + ": bind: " + sqlite3_errmsg(db_));
  }
  sqlite3* db_;
  sqlite3_stmt* s_ = nullptr;
  std::string path_;
};

void exec(sqlite3* db, const std::string& sql, const std::string& path) {
  char* err = nullptr;
  if (sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : sqlite3_errmsg(db);
    sqlite3_free(err);
    throw std::runtime_error(path + ": " + msg + " (in: " + sql.substr(0, 80) + ")");
  }
}

// Rolls back unless committed (exceptions inside a write leave the database unchanged).
class Transaction {
 public:
  Transaction(sqlite3* db, const std::string& path) : db_(db), path_(path) {
    exec(db_, "BEGIN IMMEDIATE", path_);
  }
  void commit() {
    exec(db_, "COMMIT", path_);
    done_ = true;
  }
  ~Transaction() {
    if (!done_) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  }

 private:
  sqlite3* db_;
  std::string path_;
  bool done_ = false;
};

constexpr const char* kAnnotationColumns =
    "a.id, i.file_name, a.height, a.width, a.counts, a.area, a.bbox_x, a.bbox_y, a.bbox_w, "
    "a.bbox_h, a.predicted_iou, a.clicks, a.seconds, a.user, a.created_at";

}  // namespace

std::string utc_now_iso8601() {
  const auto now = std::chrono::system_clock::now();
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  const std::time_t t = std::chrono::system_clock::to_time_t(now);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[40];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  char out[48];
  std::snprintf(out, sizeof out, "%s.%03dZ", buf, static_cast<int>(ms));
  return out;
}

AnnotationStore::AnnotationStore(const std::string& path, bool read_only) : path_(path) {
  const int flags = read_only ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  if (sqlite3_open_v2(path.c_str(), &db_, flags | SQLITE_OPEN_NOMUTEX, nullptr) != SQLITE_OK) {
    std::string msg = db_ ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close(db_);
    db_ = nullptr;
    throw std::runtime_error(path + ": cannot open the annotation database: " + msg);
  }
  try {
    sqlite3_busy_timeout(db_, 10000);
    if (!read_only) {
      exec(db_, "PRAGMA journal_mode=WAL", path_);
      exec(db_, "PRAGMA synchronous=FULL", path_);
      exec(db_, "PRAGMA foreign_keys=ON", path_);
      Transaction tx(db_, path_);
      exec(db_, kSchema, path_);
      Stmt s(db_, "INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', ?)", path_);
      s.bind(1, std::to_string(kSchemaVersion));
      s.step();
      tx.commit();
    }
    Stmt v(db_, "SELECT value FROM meta WHERE key = 'schema_version'", path_);
    if (!v.step() || v.text(0) != std::to_string(kSchemaVersion))
      throw std::runtime_error(path_ + ": not an annotation database of schema version " +
                               std::to_string(kSchemaVersion));
  } catch (...) {
    sqlite3_close(db_);
    db_ = nullptr;
    throw;
  }
}

AnnotationStore::~AnnotationStore() {
  if (db_) sqlite3_close(db_);
}

int64_t AnnotationStore::register_image(const std::string& file_name, int64_t height,
                                        int64_t width) {
  if (file_name.empty()) throw std::invalid_argument(path_ + ": empty image file name");
  if (height <= 0 || width <= 0)
    throw std::invalid_argument(path_ + ": image " + file_name + " has a non-positive size");
  std::lock_guard<std::mutex> lock(mu_);
  {
    Stmt q(db_, "SELECT id, width, height FROM images WHERE file_name = ?", path_);
    q.bind(1, file_name);
    if (q.step()) {
      if (q.i64(1) != width || q.i64(2) != height)
        throw std::invalid_argument(path_ + ": image " + file_name + " was registered as " +
                                    std::to_string(q.i64(1)) + "x" + std::to_string(q.i64(2)) +
                                    " but is now " + std::to_string(width) + "x" +
                                    std::to_string(height));
      return q.i64(0);
    }
  }
  Stmt ins(db_, "INSERT INTO images(file_name, width, height) VALUES (?, ?, ?)", path_);
  ins.bind(1, file_name);
  ins.bind(2, width);
  ins.bind(3, height);
  ins.step();
  return sqlite3_last_insert_rowid(db_);
}

std::vector<ImageRecord> AnnotationStore::list_images() const {
  std::lock_guard<std::mutex> lock(mu_);
  Stmt q(db_,
         "SELECT i.id, i.file_name, i.width, i.height, "
         "(SELECT COUNT(*) FROM annotations a WHERE a.image_id = i.id) "
         "FROM images i ORDER BY i.file_name",
         path_);
  std::vector<ImageRecord> out;
  while (q.step()) out.push_back({q.i64(0), q.text(1), q.i64(2), q.i64(3), q.i64(4)});
  return out;
}

std::optional<ImageRecord> AnnotationStore::image(const std::string& file_name) const {
  std::lock_guard<std::mutex> lock(mu_);
  Stmt q(db_,
         "SELECT i.id, i.file_name, i.width, i.height, "
         "(SELECT COUNT(*) FROM annotations a WHERE a.image_id = i.id) "
         "FROM images i WHERE i.file_name = ?",
         path_);
  q.bind(1, file_name);
  if (!q.step()) return std::nullopt;
  return ImageRecord{q.i64(0), q.text(1), q.i64(2), q.i64(3), q.i64(4)};
}

std::vector<Annotation> AnnotationStore::query_annotations(const std::string& where,
                                                           const std::string& text_arg,
                                                           int64_t int_arg) const {
  std::lock_guard<std::mutex> lock(mu_);
  Stmt q(db_,
         std::string("SELECT ") + kAnnotationColumns +
             " FROM annotations a JOIN images i ON i.id = a.image_id " + where,
         path_);
  if (where.find("file_name = ?") != std::string::npos) q.bind(1, text_arg);
  if (where.find("a.id = ?") != std::string::npos) q.bind(1, int_arg);
  std::vector<Annotation> out;
  while (q.step()) {
    Annotation a;
    a.id = q.i64(0);
    a.image = q.text(1);
    try {
      a.rle = mask::rle_from_string(q.text(4), q.i64(2), q.i64(3));
      a.clicks = nlohmann::json::parse(q.text(11));
    } catch (const std::exception& e) {
      throw std::runtime_error(path_ + ": annotation " + std::to_string(a.id) +
                               " is corrupt: " + e.what());
    }
    a.area = q.i64(5);
    a.bbox = {q.f64(6), q.f64(7), q.f64(8), q.f64(9)};
    a.predicted_iou = q.f64(10);
    a.seconds = q.f64(12);
    a.user = q.text(13);
    a.created_at = q.text(14);
    out.push_back(std::move(a));
  }
  return out;
}

std::vector<Annotation> AnnotationStore::annotations_for(const std::string& file_name) const {
  return query_annotations("WHERE i.file_name = ? ORDER BY a.id", file_name, 0);
}

std::optional<Annotation> AnnotationStore::annotation(int64_t id) const {
  auto v = query_annotations("WHERE a.id = ?", "", id);
  if (v.empty()) return std::nullopt;
  return v.front();
}

std::vector<Annotation> AnnotationStore::all_annotations() const {
  return query_annotations("ORDER BY i.file_name, a.id", "", 0);
}

int64_t AnnotationStore::add(const Annotation& a) {
  const std::string what = path_ + ": annotation of " + a.image;
  mask::rle_validate(a.rle);
  if (!std::isfinite(a.seconds) || a.seconds < 0)
    throw std::invalid_argument(what + ": seconds must be finite and >= 0");
  if (!std::isfinite(a.predicted_iou))
    throw std::invalid_argument(what + ": predicted_iou must be finite");
  const uint64_t area = mask::rle_area(a.rle);
  if (area == 0) throw std::invalid_argument(what + ": the mask is empty");
  const auto bbox = mask::rle_bbox_coco(a.rle);
  const std::string counts = mask::rle_to_string(a.rle);
  const std::string clicks = a.clicks.is_null() ? "{}" : a.clicks.dump();
  const std::string created = a.created_at.empty() ? utc_now_iso8601() : a.created_at;

  std::lock_guard<std::mutex> lock(mu_);
  Transaction tx(db_, path_);
  int64_t image_id = 0;
  {
    Stmt q(db_, "SELECT id, width, height FROM images WHERE file_name = ?", path_);
    q.bind(1, a.image);
    if (!q.step()) throw std::invalid_argument(what + ": unknown image");
    if (q.i64(1) != a.rle.w || q.i64(2) != a.rle.h)
      throw std::invalid_argument(what + ": mask is " + std::to_string(a.rle.w) + "x" +
                                  std::to_string(a.rle.h) + " but the image is " +
                                  std::to_string(q.i64(1)) + "x" + std::to_string(q.i64(2)));
    image_id = q.i64(0);
  }
  Stmt ins(db_,
           "INSERT INTO annotations(image_id, height, width, counts, area, bbox_x, bbox_y, bbox_w, "
           "bbox_h, predicted_iou, clicks, seconds, user, created_at) "
           "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
           path_);
  ins.bind(1, image_id);
  ins.bind(2, a.rle.h);
  ins.bind(3, a.rle.w);
  ins.bind(4, counts);
  ins.bind(5, static_cast<int64_t>(area));
  for (int k = 0; k < 4; ++k) ins.bind(6 + k, bbox[k]);
  ins.bind(10, a.predicted_iou);
  ins.bind(11, clicks);
  ins.bind(12, a.seconds);
  ins.bind(13, a.user);
  ins.bind(14, created);
  ins.step();
  const int64_t id = sqlite3_last_insert_rowid(db_);
  tx.commit();
  return id;
}

bool AnnotationStore::remove(int64_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  Transaction tx(db_, path_);
  Stmt d(db_, "DELETE FROM annotations WHERE id = ?", path_);
  d.bind(1, id);
  d.step();
  const bool changed = sqlite3_changes(db_) > 0;
  tx.commit();
  return changed;
}

std::string AnnotationStore::integrity_check() const {
  std::lock_guard<std::mutex> lock(mu_);
  Stmt q(db_, "PRAGMA integrity_check", path_);
  std::string out;
  while (q.step()) out += (out.empty() ? "" : "\n") + q.text(0);
  return out;
}

}  // namespace sam::annotate
