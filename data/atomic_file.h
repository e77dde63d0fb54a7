#pragma once
// Files that are either whole or absent: a reader (a resumed run, a later stage, a user's viewer)
// never sees half of one, even after a crash. The project's one atomic writer (samlib_base).
#include <string>

namespace sam::data {

/// Publishes a finished file: fsync of `tmp`, rename over `path`, fsync of the folder. Throws
/// naming the path when a step fails.
void publish_file(const std::string& tmp, const std::string& path);

/// Writes bytes to `path` atomically: `path`.tmp<pid> (processes writing the same file do not
/// share it), then publish_file. Creates the parent folders.
/// Throws naming the path it cannot write.
void write_file_atomic(const std::string& path, const std::string& bytes);

}  // namespace sam::data
