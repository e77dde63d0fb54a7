#pragma once
// Synthetic scenes: the project's embedded default data set. Each image holds textured shapes,
// overlapping and nested (wholes with parts with sub-parts, SAM's three levels of ambiguity),
// with exact instance masks: a mask is every pixel where that instance (or, for a whole or a
// part, one of its own parts) is the visible surface. Deterministic: the same options and index
// give the same pixels and masks on every run.
//
// What a scene holds (so that a small model can learn from it):
//  - a textured background (gradient, value noise, stripes or checks; not annotated);
//  - sometimes a "ground" region along the bottom (a large mask, wavy top edge);
//  - top-level objects of random shape (ellipse, rounded rectangle, regular polygon, star, blob,
//    triangle), some with holes, sizes from a few pixels to ~85% of the short side (a third large,
//    the rest log-uniform from tiny to medium), some crossing the border, drawn in random depth
//    order (later ones occlude earlier ones);
//  - about half of the objects have 1-4 parts (drawn on top of the whole, mostly clipped to it),
//    and parts may have 1-2 sub-parts;
//  - every instance has its own texture (solid, gradient, stripes, checks, dots, noise, rings),
//    a colour far from its parent's, optionally an outline and shading; mild sensor noise and
//    blur over the image.
// Instances with fewer than min_area visible pixels, or whose mask equals their parent's, are not
// annotated.
#include <opencv2/core.hpp>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "data/annotation.h"
#include "data/progress.h"

namespace sam::data {

struct SynthOptions {
  int width = 640, height = 480;
  int min_objects = 6, max_objects = 16;  // top-level objects per image (parts come on top)
  double part_prob = 0.5;                 // chance that an object has parts
  int max_parts = 4;                      // parts of one object: 1..max_parts
  double part_size_min = 0.15;            // a part's radius, a fraction of its whole's: at least
  double part_size_max = 0.45;            // and at most
  double subpart_prob = 0.5;              // chance that a part (radius >= 6 px) has sub-parts
  int min_area = 16;                      // fewer visible pixels: not annotated
  // How hard the scenes are (the defaults give the full mix above; the demo's model of a few CPU
  // minutes learns simpler ones, configs/demo_engine.yaml):
  double size_min = 0.008;    // whole objects' radius, as a fraction of the short side: at least
  double size_max = 0.42;     // and at most (a third drawn large, the rest log-uniform)
  double pattern_prob = 1.0;  // chance that an object may get a patterned texture (stripes, checks,
                              // dots, noise, rings); otherwise solid or a gradient
  double outline_prob = 0.5;  // chance that an object has a darker or lighter outline
  double hole_prob = 0.18;    // chance that a whole object has a hole
  double ground_prob = 0.35;  // chance of a ground region along the bottom
  double noise = 6.0;         // sensor noise: per-image amplitude drawn from [min(1, noise), noise]
  double blur_prob = 0.6;     // chance of a mild Gaussian blur over the image
  // Object kinds: 0 draws every whole object anew; N > 0 makes every whole an instance of one of
  // N kinds (shape, texture, colours, outline and parts' layout drawn once from kinds_seed), each
  // instance with its own size, rotation and position: a domain of N object categories, whose
  // sets with different seeds (a training set, the images an engine annotates) share the kinds.
  int kinds = 0;
  uint64_t kinds_seed = 0;
  uint64_t seed = 0;
  /// Throws std::invalid_argument naming the field when a value is out of range.
  void validate() const;
};

/// One generated image.
struct SynthImage {
  ImageInfo info;                       // id = index, file_name = "sa_<index>.jpg"
  cv::Mat rgb;                          // height x width x 3, uint8 RGB
  std::vector<Annotation> annotations;  // RLE masks; bbox in SA-1B's convention (x0, y0, x1-x0,
                                        // y1-y0, inclusive x1/y1); area = pixels;
                                        // predicted_iou = stability_score = 1; crop_box = image;
                                        // point_coords = the mask pixel farthest from its edge
  std::vector<int> level;               // per annotation: 0 whole (or ground), 1 part, 2 sub-part
  std::vector<int> parent;  // per annotation: index of the annotated parent, -1 for none
};

/// Generates image `index` of the set defined by `options` (RNG from (seed, index)).
SynthImage synth_image(const SynthOptions& options, int64_t index);

/// Counts of a written set.
struct SynthStats {
  int64_t images = 0, masks = 0;
};

/// Writes images first_index .. first_index + count - 1 to `out_dir` as an SA-1B folder:
/// sa_<n>.jpg (JPEG quality 95), sa_<n>.json, and sa_<n>.png (lossless) when `png`. Uses `jobs`
/// threads (0 = all cores); the files do not depend on it. `progress(done, count)` is called
/// after each image when given. Throws std::runtime_error naming a file that cannot be written.
SynthStats synth_write(const std::string& out_dir, const SynthOptions& options, int64_t count,
                       int64_t first_index = 1, bool png = false, int jobs = 0,
                       const ProgressFn& progress = {});

}  // namespace sam::data
