#pragma once
// Reading a whole file in a test.
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

namespace sam_test {

/// A whole file's bytes ("" when it cannot be read).
inline std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

}  // namespace sam_test
