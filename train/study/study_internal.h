#pragma once
// What study.cpp and report.cpp share, not part of the library's interface.
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "train/study/study.h"

namespace sam::study {

/// The overrides every run of the study starts with: the study's own, then its budget.
std::vector<std::string> base_overrides(const Study& s);
/// The events of RUN/metrics.jsonl in order (lines cut short by a kill skipped; none when absent).
std::vector<nlohmann::json> read_metrics(const std::string& run_dir);

}  // namespace sam::study
