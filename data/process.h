#pragma once
// What this process uses, from /proc/self/status (Linux): for benchmarks and run summaries.

namespace sam::data {

/// Resident memory of this process in MiB (VmRSS), and its peak (VmHWM); 0 when unknown.
double rss_mib();
double peak_rss_mib();

}  // namespace sam::data
