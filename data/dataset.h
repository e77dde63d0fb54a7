#pragma once
// Datasets behind one interface: SA-1B folders and .tar shards, COCO instances files, and
// interactive-benchmark folders (GrabCut, Berkeley, DAVIS-style, PASCAL VOC, SBD, users' own
// image + mask folders). A Dataset lists samples cheaply; get(i) reads one sample's annotations
// (masks stay in their stored form until asked for); images are decoded only on request.
//
// Spec strings (make_dataset), each path a file or folder on disk:
//   sa1b:PATH                 PATH is a folder of <stem>.jpg + <stem>.json pairs (SA-1B names them
//                             sa_<n>), a .tar shard read in place, or a folder of .tar shards (all
//                             shards, in name order, then the folder's own pairs). Image lookup:
//                             <stem>.jpg, .jpeg, .png (any case), then the JSON's file_name.
//                             Option ext=png prefers <stem>.png (synth --png writes both).
//   coco:INSTANCES.json:IMAGE_DIR
//                             a COCO instances file; images are IMAGE_DIR/<file_name>. Without
//                             ":IMAGE_DIR", <json dir>/../<name after "instances_"> (COCO's
//                             annotations/instances_val2017.json -> val2017/), else the json's
//                             folder. One sample per image, including images without annotations.
//   grabcut:DIR               DIR/data_GT/<stem>.{jpg,JPG,bmp,...} + DIR/boundary_GT/<stem>.bmp;
//                             mask value 128 = ignore band, > 128 = object.
//   berkeley:DIR              DIR/images/<stem>.jpg + DIR/masks/<stem>.png, GrabCut's rule
//                             (RITM's BerkeleyDataset): 128 = ignore, > 128 = object. The
//                             benchmark's 96 samples are the unsuffixed masks; option all=1 adds
//                             the extra objects (189011a/b, 239007a/b: 100 samples).
//   davis:DIR                 DIR/img/<stem>.* + DIR/gt/<stem>.png, the benchmark's protocol
//                             (RITM's DavisDataset; 345 samples on DAVIS345): one sample per
//                             image, object = every pixel whose largest channel is not 0, whatever
//                             ids the mask holds. Option objects=1: one sample per (image, object
//                             id) instead (palette, grey or colour ids; black is background).
//                             Option ignore=V (a grey value) marks void pixels.
//   coco-mval:DIR             COCO-MVal (img/ + gt/): DAVIS's layout and protocol.
//   pascalvoc:DIR             PASCAL VOC 2012 instances (RITM's PascalVocDataset(split='test')):
//                             the images of DIR/ImageSets/Segmentation/val.txt, DIR/JPEGImages/
//                             <name>.jpg with DIR/SegmentationObject/<name>.png, a palette PNG
//                             whose index is the instance id (data/label_map.h). One sample
//                             "<name>#<id>" per instance id (not 0, not 255); 255, the void band,
//                             is ignored. Option split=NAME reads <NAME>.txt instead of val.txt.
//   sbd:DIR                   SBD instances (RITM's SBDEvaluationDataset): the images of
//                             DIR/val.txt, DIR/img/<name>.jpg with DIR/inst/<name>.mat (MATLAB,
//                             data/matfile.h); one sample "<name>#<id>" per nonzero id of
//                             GTinst.Segmentation, nothing ignored, the category from
//                             GTinst.Categories. Option split=NAME reads <NAME>.txt.
//   folder:DIR                users' folders: DIR/images/<stem>.<ext> with DIR/masks/<mask>.png,
//                             where <mask> is <stem>, or <stem> plus a suffix that starts with
//                             '_', '-', '.', '#' or (when <stem> ends in a digit) a letter:
//                             photo.jpg <- photo.png, photo_1.png, photo-cat.png. One sample per
//                             mask file; object = channel 0 > threshold (option threshold=127).
//                             Options: ignore=V (a grey value to ignore), labels=1 (each mask
//                             file is an id map: one sample per distinct non-black value).
//   images:DIR                a plain folder of images without annotations (pre-training on
//                             pixels, e.g. MAE): one sample per image file, natural name order,
//                             no masks. Option recursive=1 also lists its subfolders.
// Options follow a '?' at the end of the spec: "berkeley:/data/Berkeley?all=1", several joined by
// '&'. Unknown kinds, unknown options and missing paths raise std::invalid_argument naming them.
#include <opencv2/core.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "data/annotation.h"

namespace sam::data {

/// Where a file lives: on disk, or as a member of a tar archive (a sample's image, an SA-1B JSON).
struct ImageRef {
  std::string path;               // the file, or the archive
  std::string member;             // member name inside the archive ("" for a plain file)
  uint64_t offset = 0, size = 0;  // the member's bytes in the archive
  /// "path" or "archive.tar:member", for messages.
  std::string display() const;
  /// The bytes. Throws DataError(missing_file) naming the file when absent or unreadable.
  std::vector<uint8_t> read() const;
};

/// One image with its annotations.
struct Sample {
  std::string id;  // stable name: the file stem, or "<stem>#<k>" for one object of many
  ImageRef image;
  int64_t image_id = 0;           // SA-1B / COCO image id (0 when the source has none)
  int64_t height = 0, width = 0;  // as the annotations declare (checked when the image is loaded)
  std::string annotation_file;    // the JSON / mask file the annotations came from
  std::vector<Annotation> annotations;

  /// The image as RGB uint8, height x width x 3 (CV_8UC3). Throws DataError: missing_file,
  /// corrupt_image (undecodable, truncated), size_mismatch (not height x width).
  cv::Mat load_image() const;
  /// Mask of annotation i: uint8 height x width (CV_8UC1), 0/1. Throws the annotation's DataError.
  cv::Mat mask(size_t i) const;
  /// Ignore region of annotation i: uint8 height x width, 0/1; all zeros when it has none.
  cv::Mat ignore_mask(size_t i) const;
};

/// A read-only, indexable set of samples. get() may be called from several threads at once.
class Dataset {
 public:
  virtual ~Dataset() = default;
  /// Number of samples.
  virtual size_t size() const = 0;
  /// The id of sample i without reading it.
  virtual std::string sample_id(size_t i) const = 0;
  /// Reads sample i (annotations parsed, masks not decoded, image not read). Throws DataError
  /// naming the file when the annotation file is missing or malformed; std::out_of_range for a
  /// bad index.
  virtual Sample get(size_t i) const = 0;
  /// One line: kind, path, number of samples.
  virtual std::string describe() const = 0;
  /// COCO categories (empty for the other kinds).
  virtual std::vector<Category> categories() const { return {}; }
  /// Problems found while listing (orphan images, damaged archives, skipped COCO entries).
  virtual std::vector<std::string> warnings() const { return {}; }
};

/// Opens a dataset from a spec string (see the top of this file). Throws std::invalid_argument
/// naming the spec, kind, option or path at fault.
std::shared_ptr<Dataset> make_dataset(const std::string& spec);

/// Several datasets read as one, in order: sample i of the whole is sample i - offset of the part
/// that holds it; ids, descriptions (joined by " + ") and warnings come from the parts. An index
/// past the end throws std::out_of_range. Categories: none (the parts' ids may collide).
class ConcatDataset : public Dataset {
 public:
  explicit ConcatDataset(std::vector<std::shared_ptr<Dataset>> parts);
  size_t size() const override { return ends_.empty() ? 0 : ends_.back(); }
  std::string sample_id(size_t i) const override;
  Sample get(size_t i) const override;
  std::string describe() const override;
  std::vector<std::string> warnings() const override;
  /// (part, index within it) of sample i.
  std::pair<size_t, size_t> locate(size_t i) const;

 private:
  std::vector<std::shared_ptr<Dataset>> parts_;
  std::vector<size_t> ends_;  ///< cumulative sizes: part p holds [ends_[p-1], ends_[p])
};

/// One dataset per spec (make_dataset), in order. Throws std::invalid_argument when `specs` is empty.
std::vector<std::shared_ptr<Dataset>> make_dataset_parts(const std::vector<std::string>& specs);
/// The parts as one dataset: the only part itself, or a ConcatDataset of several.
std::shared_ptr<Dataset> join_datasets(std::vector<std::shared_ptr<Dataset>> parts);
/// One dataset per spec (make_dataset), joined by ConcatDataset when there are several.
std::shared_ptr<Dataset> make_datasets(const std::vector<std::string>& specs);

/// SA-1B folder, .tar shard, or folder of shards. `prefer_png` tries <stem>.png before .jpg.
std::shared_ptr<Dataset> open_sa1b(const std::string& path, bool prefer_png = false);

/// One SA-1B sample's files as listed: its JSON and its image (image.path empty when no
/// <stem>.jpg/.jpeg/.png was found; the dataset then tries the JSON's file_name).
struct Sa1bEntry {
  std::string id;  // the stem
  ImageRef json, image;
};

/// Lists an SA-1B folder, shard or folder of shards in dataset order (shards in name order, each
/// in natural name order, then the folder's pairs). Orphan images and damaged archives are
/// appended to `warnings`. Throws std::invalid_argument naming the path when it does not exist
/// or an archive cannot be opened.
std::vector<Sa1bEntry> list_sa1b(const std::string& path, bool prefer_png,
                                 std::vector<std::string>& warnings);

/// COCO instances file with its image folder.
std::shared_ptr<Dataset> open_coco(const std::string& instances_json, const std::string& image_dir);

/// How an interactive / image+mask folder is laid out and read.
struct MaskFolderOptions {
  std::string kind = "folder";  // name used in describe() and errors
  std::string images_dir, masks_dir;
  int threshold = 127;    // object = channel 0 > threshold (binary masks)
  int ignore_value = -1;  // a grey value marking pixels to ignore (-1: none)
  bool labels = false;    // masks are id maps: one sample per distinct non-black colour
  bool any_channel = false;  // object = the largest channel > threshold (not channel 0)
  bool suffixed = true;   // also pair masks named <stem><suffix> (see the header comment)
};

/// Image + mask folder dataset (grabcut, berkeley, davis and folder kinds are presets of this).
std::shared_ptr<Dataset> open_mask_folder(const MaskFolderOptions& options);

/// A folder of images without annotations (the images kind): one sample per image file
/// (jpg, jpeg, png, bmp, tif, tiff, webp, ppm, pgm, pbm, any case), in natural name order, ids
/// the paths relative to `dir` without extension; `recursive` adds subfolders.
std::shared_ptr<Dataset> open_image_folder(const std::string& dir, bool recursive = false);

/// PASCAL VOC instances (the pascalvoc kind) of ImageSets/Segmentation/<split>.txt under `root`.
/// Listing reads every listed mask; masks that are missing or unreadable are left out with a
/// warning. Throws std::invalid_argument naming the folder or list file that is missing.
std::shared_ptr<Dataset> open_pascal_voc(const std::string& root, const std::string& split = "val");

/// SBD instances (the sbd kind) of <split>.txt under `root`, as open_pascal_voc.
std::shared_ptr<Dataset> open_sbd(const std::string& root, const std::string& split = "val");

/// Natural order of file names: digit runs compare as numbers ("sa_2" < "sa_10").
bool natural_less(const std::string& a, const std::string& b);

}  // namespace sam::data
