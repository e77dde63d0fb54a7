#pragma once
// Command-line flags for every generator parameter, named as in the reference's scripts/amg.py
// (header-only; for the programs in tools/).
#include <CLI/CLI.hpp>

#include "sam/amg/generator.h"

namespace sam::amg {

/// Registers --points-per-side ... --min-mask-region-area (and --max-area-frac); parsed values
/// overwrite the fields of `o`, absent flags keep its values (the reference's defaults).
inline void add_amg_flags(CLI::App& app, AmgOptions& o) {
  app.add_option("--points-per-side", o.points_per_side, "grid points per side (layer 0)");
  app.add_option("--points-per-batch", o.points_per_batch, "prompts per decoder call");
  app.add_option("--pred-iou-thresh", o.pred_iou_thresh, "keep masks with predicted IoU > this");
  app.add_option("--stability-score-thresh", o.stability_score_thresh,
                 "keep masks with stability score >= this");
  app.add_option("--stability-score-offset", o.stability_score_offset,
                 "logit offset of the stability score");
  app.add_option("--box-nms-thresh", o.box_nms_thresh, "box IoU threshold of NMS within a crop");
  app.add_option("--crop-n-layers", o.crop_n_layers, "crop layers (SA-1B used 2)");
  app.add_option("--crop-nms-thresh", o.crop_nms_thresh, "box IoU threshold of NMS across crops");
  app.add_option("--crop-overlap-ratio", o.crop_overlap_ratio,
                 "overlap of layer-1 crops as a fraction of the short side (a real number)");
  app.add_option("--crop-n-points-downscale-factor", o.crop_n_points_downscale_factor,
                 "grid side divided by this per crop layer");
  app.add_option("--min-mask-region-area", o.min_mask_region_area,
                 "fill holes and remove islands smaller than this (pixels; 0 = off)");
  app.add_option("--max-area-frac", o.max_area_frac,
                 "drop masks covering at least this fraction of the image (paper: 0.95; 0 = off)");
}

}  // namespace sam::amg
