#pragma once
// Text tables and HTML pages (with SVG plots) for the evaluation results, and the output helpers
// the sam_eval program shares between its commands.
#include <string>

#include <nlohmann/json.hpp>

#include "eval/edges.h"
#include "eval/instances.h"
#include "eval/points.h"
#include "eval/proposals.h"

namespace sam::eval {

/// Plain-text tables for the terminal (fixed-width columns).
std::string points_text(const PointsResult& r);
std::string edges_text(const EdgesResult& r);
std::string proposals_text(const ProposalsResult& r);
std::string instances_text(const InstancesResult& r);

/// Self-contained HTML pages: `meta` (command, model, dataset, options; shown as a table) and the
/// result with its plots (mIoU against clicks; precision-recall with iso-F curves; AR against
/// the number of proposals; per-category AP).
std::string points_html(const PointsResult& r, const nlohmann::json& meta);
std::string edges_html(const EdgesResult& r, const nlohmann::json& meta);
std::string proposals_html(const ProposalsResult& r, const nlohmann::json& meta);
std::string instances_html(const InstancesResult& r, const nlohmann::json& meta);

/// Writes `result` with "meta" added to json_path, and `html` next to it (same stem, .html), each
/// whole or not at all, the JSON last (a study takes its presence as the evaluation done).
/// Returns the HTML path. Throws std::runtime_error naming a file that cannot be written.
std::string write_report(const std::string& json_path, nlohmann::json result,
                         const nlohmann::json& meta, const std::string& html);

}  // namespace sam::eval
