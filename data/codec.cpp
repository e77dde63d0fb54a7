#include "data/codec.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <stdexcept>

#ifdef SAM_HAVE_IMGCODECS
#include <opencv2/imgcodecs.hpp>
#endif
#ifdef SAM_HAVE_JPEG_PNG
#include <csetjmp>
// jpeglib.h needs FILE and size_t declared first.
#include <jpeglib.h>
#include <png.h>
#endif

namespace sam::data {

namespace {

std::string lower_ext(const std::string& path) {
  const auto dot = path.find_last_of('.');
  std::string e = dot == std::string::npos ? "" : path.substr(dot + 1);
  std::transform(e.begin(), e.end(), e.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return e == "jpeg" ? "jpg" : e;
}

#ifdef SAM_HAVE_JPEG_PNG

// ---- JPEG (libjpeg-turbo's libjpeg API, with the settings OpenCV's decoder uses) ----

struct JpegError {
  jpeg_error_mgr mgr;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

void jpeg_error_exit(j_common_ptr c) {
  auto* e = reinterpret_cast<JpegError*>(c->err);
  (*c->err->format_message)(c, e->message);
  std::longjmp(e->jump, 1);
}

void jpeg_quiet(j_common_ptr, int) {}  // warnings (e.g. corrupt data recovered) are not printed

bool is_png(const std::vector<uint8_t>& b) { return b.size() > 8 && png_sig_cmp(b.data(), 0, 8) == 0; }

cv::Mat decode_jpeg(const std::vector<uint8_t>& bytes) {
  jpeg_decompress_struct cinfo;
  JpegError err;
  cinfo.err = jpeg_std_error(&err.mgr);
  err.mgr.error_exit = jpeg_error_exit;
  err.mgr.emit_message = jpeg_quiet;
  cv::Mat out;
  if (setjmp(err.jump)) {
    jpeg_destroy_decompress(&cinfo);
    throw std::runtime_error(std::string("JPEG: ") + err.message);
  }
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, bytes.data(), static_cast<unsigned long>(bytes.size()));
  jpeg_read_header(&cinfo, TRUE);
  if (cinfo.num_components == 4) {
    jpeg_destroy_decompress(&cinfo);
    throw std::runtime_error("JPEG: CMYK images are not supported by this build's decoder (libjpeg+libpng)");
  }
  // As OpenCV: colour images straight into BGR order, one-component images as gray.
  const bool color = cinfo.num_components > 1;
  cinfo.out_color_space = color ? JCS_EXT_BGR : JCS_GRAYSCALE;
  jpeg_start_decompress(&cinfo);
  out.create(static_cast<int>(cinfo.output_height), static_cast<int>(cinfo.output_width), color ? CV_8UC3 : CV_8UC1);
  while (cinfo.output_scanline < cinfo.output_height) {
    JSAMPROW row = out.ptr<uint8_t>(static_cast<int>(cinfo.output_scanline));
    jpeg_read_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
  return out;
}

std::vector<uint8_t> encode_jpeg(const cv::Mat& m, int quality) {
  if (m.depth() != CV_8U || (m.channels() != 1 && m.channels() != 3))
    throw std::invalid_argument("JPEG: 8-bit gray or BGR images only");
  jpeg_compress_struct cinfo;
  JpegError err;
  cinfo.err = jpeg_std_error(&err.mgr);
  err.mgr.error_exit = jpeg_error_exit;
  unsigned char* buf = nullptr;
  unsigned long size = 0;
  if (setjmp(err.jump)) {
    jpeg_destroy_compress(&cinfo);
    std::free(buf);
    throw std::runtime_error(std::string("JPEG: ") + err.message);
  }
  jpeg_create_compress(&cinfo);
  jpeg_mem_dest(&cinfo, &buf, &size);
  cinfo.image_width = static_cast<JDIMENSION>(m.cols);
  cinfo.image_height = static_cast<JDIMENSION>(m.rows);
  cinfo.input_components = m.channels();
  cinfo.in_color_space = m.channels() == 3 ? JCS_EXT_BGR : JCS_GRAYSCALE;
  jpeg_set_defaults(&cinfo);
  jpeg_set_quality(&cinfo, quality < 0 ? 95 : std::clamp(quality, 0, 100), TRUE);
  jpeg_start_compress(&cinfo, TRUE);
  while (cinfo.next_scanline < cinfo.image_height) {
    JSAMPROW row = const_cast<uint8_t*>(m.ptr<uint8_t>(static_cast<int>(cinfo.next_scanline)));
    jpeg_write_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_compress(&cinfo);
  jpeg_destroy_compress(&cinfo);
  std::vector<uint8_t> out(buf, buf + size);
  std::free(buf);
  return out;
}

// ---- PNG (libpng, with the transformations OpenCV's decoder asks for) ----

struct PngReader {
  const std::vector<uint8_t>* bytes;
  size_t pos = 8;
};

void png_read_mem(png_structp p, png_bytep out, png_size_t n) {
  auto* r = static_cast<PngReader*>(png_get_io_ptr(p));
  if (r->pos + n > r->bytes->size()) png_error(p, "truncated PNG data");
  std::memcpy(out, r->bytes->data() + r->pos, n);
  r->pos += n;
}

void png_fail(png_structp p, png_const_charp msg) {
  std::snprintf(static_cast<char*>(png_get_error_ptr(p)), 256, "%s", msg);
  png_longjmp(p, 1);
}

void png_quiet(png_structp, png_const_charp) {}

// indices: a palette PNG's palette indices (CV_8UC1, 1-, 2- and 4-bit indices unpacked to one byte
// each, the palette's colours not used), and an empty matrix for the other colour types.
cv::Mat decode_png(const std::vector<uint8_t>& bytes, bool indices = false) {
  char message[256] = "unknown error";
  png_structp p = png_create_read_struct(PNG_LIBPNG_VER_STRING, message, png_fail, png_quiet);
  png_infop info = p ? png_create_info_struct(p) : nullptr;
  if (!info) throw std::runtime_error("PNG: out of memory");
  PngReader reader{&bytes};
  cv::Mat out;
  std::vector<png_bytep> rows;
  if (setjmp(png_jmpbuf(p))) {
    png_destroy_read_struct(&p, &info, nullptr);
    throw std::runtime_error(std::string("PNG: ") + message);
  }
  png_set_read_fn(p, &reader, png_read_mem);
  png_set_sig_bytes(p, 8);
  png_read_info(p, info);
  const int color_type = png_get_color_type(p, info), depth = png_get_bit_depth(p, info);
  if (indices) {
    if (color_type != PNG_COLOR_TYPE_PALETTE) {
      png_destroy_read_struct(&p, &info, nullptr);
      return {};
    }
    png_set_packing(p);
    png_set_interlace_handling(p);
    png_read_update_info(p, info);
    if (png_get_channels(p, info) != 1 || png_get_bit_depth(p, info) != 8)
      png_error(p, "palette data did not unpack to one byte per pixel");
  }
  int num_trans = 0;
  png_bytep trans = nullptr;
  png_color_16p trans_values = nullptr;
  png_get_tRNS(p, info, &trans, &num_trans, &trans_values);
  // The channels OpenCV's header reader settles on (IMREAD_UNCHANGED).
  int channels = 1;
  if (color_type == PNG_COLOR_TYPE_RGB || color_type == PNG_COLOR_TYPE_PALETTE) channels = num_trans > 0 ? 4 : 3;
  else if (color_type == PNG_COLOR_TYPE_GRAY_ALPHA || color_type == PNG_COLOR_TYPE_RGB_ALPHA) channels = 4;
  const bool wide = depth == 16 && !indices;
  if (indices) {
    channels = 1;
  } else {
    if (wide) png_set_swap(p);  // little-endian samples in memory
    if (channels < 4) png_set_strip_alpha(p);
    else png_set_tRNS_to_alpha(p);
    if (color_type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(p);
    if ((color_type & PNG_COLOR_MASK_COLOR) == 0 && depth < 8) png_set_expand_gray_1_2_4_to_8(p);
    if (channels > 1) {
      if (color_type & PNG_COLOR_MASK_COLOR) png_set_bgr(p);
      else png_set_gray_to_rgb(p);
    }
    png_set_interlace_handling(p);
    png_read_update_info(p, info);
  }
  const int h = static_cast<int>(png_get_image_height(p, info)), w = static_cast<int>(png_get_image_width(p, info));
  if (static_cast<int>(png_get_channels(p, info)) != channels)
    png_error(p, "unexpected channel count after the transformations");
  out.create(h, w, CV_MAKETYPE(wide ? CV_16U : CV_8U, channels));
  rows.resize(static_cast<size_t>(h));
  for (int y = 0; y < h; ++y) rows[static_cast<size_t>(y)] = out.ptr<png_byte>(y);
  png_read_image(p, rows.data());
  png_read_end(p, nullptr);
  png_destroy_read_struct(&p, &info, nullptr);
  return out;
}

void png_write_mem(png_structp p, png_bytep data, png_size_t n) {
  auto* out = static_cast<std::vector<uint8_t>*>(png_get_io_ptr(p));
  out->insert(out->end(), data, data + n);
}

void png_flush_mem(png_structp) {}

std::vector<uint8_t> encode_png(const cv::Mat& m, int level) {
  const int cn = m.channels();
  if ((m.depth() != CV_8U && m.depth() != CV_16U) || (cn != 1 && cn != 3 && cn != 4))
    throw std::invalid_argument("PNG: 8- or 16-bit gray, BGR or BGRA images only");
  char message[256] = "unknown error";
  png_structp p = png_create_write_struct(PNG_LIBPNG_VER_STRING, message, png_fail, png_quiet);
  png_infop info = p ? png_create_info_struct(p) : nullptr;
  if (!info) throw std::runtime_error("PNG: out of memory");
  std::vector<uint8_t> out;
  if (setjmp(png_jmpbuf(p))) {
    png_destroy_write_struct(&p, &info);
    throw std::runtime_error(std::string("PNG: ") + message);
  }
  png_set_write_fn(p, &out, png_write_mem, png_flush_mem);
  png_set_compression_level(p, level < 0 ? 1 : std::clamp(level, 0, 9));
  const int type = cn == 1 ? PNG_COLOR_TYPE_GRAY : cn == 3 ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_RGB_ALPHA;
  png_set_IHDR(p, info, static_cast<png_uint_32>(m.cols), static_cast<png_uint_32>(m.rows), m.depth() == CV_16U ? 16 : 8,
               type, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(p, info);
  if (cn > 1) png_set_bgr(p);
  if (m.depth() == CV_16U) png_set_swap(p);
  for (int y = 0; y < m.rows; ++y) png_write_row(p, const_cast<png_bytep>(m.ptr<png_byte>(y)));
  png_write_end(p, info);
  png_destroy_write_struct(&p, &info);
  return out;
}

#endif  // SAM_HAVE_JPEG_PNG

}  // namespace

cv::Mat png_palette_indices(const std::vector<uint8_t>& bytes) {
#ifdef SAM_HAVE_JPEG_PNG
  if (bytes.size() < 8 || png_sig_cmp(bytes.data(), 0, 8) != 0) return {};
  return decode_png(bytes, /*indices=*/true);
#else
  (void)bytes;
  return {};
#endif
}

bool is_jpeg(const std::vector<uint8_t>& b) { return b.size() >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF; }

bool have_jpeg_png_codecs() {
#ifdef SAM_HAVE_JPEG_PNG
  return true;
#else
  return false;
#endif
}

cv::Mat image_decode_jpeg_png(const std::vector<uint8_t>& bytes) {
#ifdef SAM_HAVE_JPEG_PNG
  if (is_jpeg(bytes)) return decode_jpeg(bytes);
  if (is_png(bytes)) return decode_png(bytes);
  return {};
#else
  (void)bytes;
  throw std::logic_error("this build has no libjpeg/libpng codecs");
#endif
}

std::vector<uint8_t> image_encode_jpeg_png(const cv::Mat& m, const std::string& format, int param) {
#ifdef SAM_HAVE_JPEG_PNG
  if (format == "png") return encode_png(m, param);
  if (format == "jpg" || format == "jpeg") return encode_jpeg(m, param);
  throw std::invalid_argument("cannot encode '" + format + "': this build writes png and jpg only");
#else
  (void)m, (void)format, (void)param;
  throw std::logic_error("this build has no libjpeg/libpng codecs");
#endif
}

cv::Mat image_decode(const std::vector<uint8_t>& bytes) {
#ifdef SAM_HAVE_IMGCODECS
  try {
    return cv::imdecode(bytes, cv::IMREAD_UNCHANGED);
  } catch (const cv::Exception& e) {
    throw std::runtime_error(e.what());
  }
#else
  return image_decode_jpeg_png(bytes);
#endif
}

std::vector<uint8_t> image_encode(const cv::Mat& m, const std::string& format, int param) {
#ifdef SAM_HAVE_IMGCODECS
  std::vector<int> params;
  if (format == "png") params = {cv::IMWRITE_PNG_COMPRESSION, param < 0 ? 1 : param};
  else if (format == "jpg" || format == "jpeg") params = {cv::IMWRITE_JPEG_QUALITY, param < 0 ? 95 : param};
  std::vector<uint8_t> out;
  if (!cv::imencode("." + format, m, out, params)) throw std::runtime_error("cannot encode as " + format);
  return out;
#else
  return image_encode_jpeg_png(m, format, param);
#endif
}

void image_write(const std::string& path, const cv::Mat& m, int param) {
  std::vector<uint8_t> bytes;
  try {
    bytes = image_encode(m, lower_ext(path), param);
  } catch (const std::exception& e) {
    throw std::runtime_error(path + ": " + e.what());
  }
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) throw std::runtime_error(path + ": cannot open for writing");
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  if (!f) throw std::runtime_error(path + ": write failed");
}

}  // namespace sam::data
