#pragma once
// MATLAB Level 5 MAT-files: what MATLAB 5 to 7.x saves by default (-v6, -v7) and scipy.io.savemat
// writes. SBD's instance annotations (inst/<name>.mat, a struct GTinst) come in this format.
//
// A strict reader of the little-endian layout: the 128-byte header ("MATLAB 5.0 MAT-file ...",
// version 0x0100, endian indicator "IM"), then data elements, each an 8-byte tag (type, byte count;
// or the small-element form that packs up to 4 bytes into the tag) and data padded to 8 bytes.
// Variables are miMATRIX elements, zlib-compressed (miCOMPRESSED, the -v7 default) or not:
// array flags (class, complex, global, logical), dimensions, name, then the class's data.
// Classes read: double, single, int8..uint64, logical (uint8 with the logical flag), char, sparse
// (double or logical), cell and struct. Objects, function handles and opaque classes (MATLAB's
// string, table, ...) are skipped with a note (MatArray::skipped): a file that holds them reads,
// and only asking for their data fails. Anything malformed (truncated elements, sizes that do not
// add up, bad zlib data) throws std::runtime_error("<file>: <where>: <problem>"). Not read: v7.3
// files (HDF5), v4 files, big-endian files (indicator "MI"); each refused with its own message.
//
// Arrays are column-major, as MATLAB stores them; mat_int_grid gives a 2-D array row-major.
// Pure C++ (zlib only).
#include <cstdint>
#include <string>
#include <vector>

namespace sam::data {

/// MATLAB's array classes, with the numbers the format stores (mxCELL_CLASS = 1, ...).
enum class MatClass : uint8_t {
  cell = 1,
  structure = 2,
  object = 3,
  character = 4,
  sparse = 5,
  float64 = 6,
  float32 = 7,
  int8 = 8,
  uint8 = 9,
  int16 = 10,
  uint16 = 11,
  int32 = 12,
  uint32 = 13,
  int64 = 14,
  uint64 = 15,
  function = 16,
  opaque = 17,
};

/// MATLAB's name of a class ("double", "uint8", "struct", "cell", "function_handle", ...).
const char* mat_class_name(MatClass c);

/// One array: a variable, a cell element or a struct field.
struct MatArray {
  std::string name;  // the variable's name; empty for cell elements and struct fields
  MatClass cls = MatClass::float64;
  bool logical = false, complex = false, global = false;
  std::vector<int64_t> dims;  // MATLAB's order: rows, columns, further dimensions (at least 2)
  // Numeric and logical arrays: numel() values, column-major; the imaginary part when complex.
  // Sparse arrays: the nonzeros, column by column. Values of every class are kept as doubles
  // (exact: 64-bit integers beyond 2^53 are refused when read).
  std::vector<double> real, imag;
  // Sparse arrays (compressed columns): the row of each nonzero, and where each column's nonzeros
  // start (columns + 1 entries; the last is the number of nonzeros).
  std::vector<int64_t> sparse_rows, sparse_col_starts;
  std::string text;                 // char arrays: the characters, column-major, as UTF-8
  std::vector<std::string> fields;  // struct: the field names, in stored order
  std::vector<MatArray> elements;   // cell: numel() arrays, column-major; struct: numel() x
                                    // fields.size(), element by element
  std::string skipped;              // a class not read (object, function handle, opaque): why

  /// The product of the dimensions.
  int64_t numel() const;
  /// Whether this struct has the field.
  bool has_field(const std::string& field) const;
  /// Field `field` of struct element `index` (column-major). Throws std::out_of_range naming the
  /// field (and listing the fields) when this is not a struct, or has no such field or element.
  const MatArray& field(const std::string& field, int64_t index = 0) const;
  /// Element `index` (column-major) of a cell array. Throws std::out_of_range.
  const MatArray& cell(int64_t index) const;
  /// "37x53 uint8", "1x1 struct", "3x1 cell", ... for messages.
  std::string describe() const;
};

/// A whole file: its header text and its variables in stored order.
struct MatFile {
  std::string path;         // for messages ("<memory>" for parsed bytes without a name)
  std::string description;  // the header's text, trailing spaces and NULs removed
  std::vector<MatArray> variables;

  /// The variable `name`, or nullptr.
  const MatArray* find(const std::string& name) const;
  /// A variable or, with dots, a field of a 1x1 struct inside it ("GTinst.Segmentation").
  /// Throws std::runtime_error("<path>: ...") naming the part that is missing.
  const MatArray& get(const std::string& dotted) const;
};

/// Reads a Level 5 MAT-file. Throws std::runtime_error("<path>: <problem>").
MatFile read_mat_file(const std::string& path);
/// Parses a MAT-file's bytes; `what` names the source in messages.
MatFile parse_mat_file(const uint8_t* data, size_t size, const std::string& what);

/// A 2-D array of integers, row-major: values[y * cols + x].
struct MatIntGrid {
  int64_t rows = 0, cols = 0;
  std::vector<int32_t> values;
};

/// A real 2-D numeric, logical or sparse array as row-major int32 (MATLAB stores columns first).
/// Throws std::runtime_error("<what>: <problem>") for other classes, complex data, more than 2
/// dimensions, or values that are not integers in int32's range.
MatIntGrid mat_int_grid(const MatArray& a, const std::string& what);

/// SBD's instance map: GTinst.Segmentation of an inst/<name>.mat file, row-major (0 background,
/// 1..n the instances). Throws std::runtime_error naming the file.
MatIntGrid read_sbd_instances(const std::string& path);

}  // namespace sam::data
