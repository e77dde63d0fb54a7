#include "data/process.h"

#include <fstream>
#include <string>

namespace sam::data {
namespace {

// A "<key>: <n> kB" line of /proc/self/status, in KiB; 0 when absent.
double status_kib(const char* key) {
  std::ifstream f("/proc/self/status");
  std::string line;
  const std::string k = std::string(key) + ":";
  while (std::getline(f, line))
    if (line.rfind(k, 0) == 0) return std::stod(line.substr(k.size()));
  return 0;
}

}  // namespace

double rss_mib() { return status_kib("VmRSS") / 1024.0; }
double peak_rss_mib() { return status_kib("VmHWM") / 1024.0; }

}  // namespace sam::data
