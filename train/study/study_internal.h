#pragma once
// What study.cpp and report.cpp share, not part of the library's interface.
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "train/study/study.h"

namespace sam::study {

/// The overrides every run of the study starts with: the study's own, then its budget.
std::vector<std::string> base_overrides(const Study& s);
/// run_status from the run's metrics events already read (eval::read_run_metrics).
RunStatus run_status(const Study& s, const Run& r, const std::vector<nlohmann::json>& events);

}  // namespace sam::study
