#include "engine/annotate/server.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <deque>
#include <fstream>
#include <iterator>
#include <mutex>
#include <random>
#include <sstream>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "data/image.h"
#include "engine/annotate/auth.h"
#include "engine/annotate/export.h"
#include "engine/annotate/http.h"
#include "engine/annotate/image_folder.h"
#include "engine/annotate/request.h"
#include "engine/annotate/store.h"
#include "engine/annotate/web_assets.h"

namespace sam::annotate {

using nlohmann::json;

namespace {

// JSON answers are sent as "application/json; charset=utf-8": httplib compresses only the exact
// type "application/json", and Brotli at its default quality would add milliseconds to each click.
constexpr const char* kJson = "application/json; charset=utf-8";
constexpr size_t kMaxPredictBody = 64 << 10;
constexpr size_t kMaxClickPoints = 1000;
constexpr size_t kMaxStrokePoints = 200000;
constexpr int kMaxJsonDepth = 16;

// Invalid UTF-8 (e.g. echoed from a bad request into an error message) is replaced, not thrown.
std::string dump(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

json parse_body(const httplib::Request& req, size_t max_bytes) {
  return parse_json_body(req.body, max_bytes, kMaxJsonDepth);
}

void send_json(httplib::Response& res, const json& j, int status = 200) {
  res.status = status;
  res.set_content(dump(j), kJson);
}

void send_error(httplib::Response& res, int status, const std::string& msg) {
  send_json(res, json{{"error", msg}}, status);
}

double percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const auto i = static_cast<size_t>(std::min<double>(v.size() - 1, std::floor(q * v.size())));
  return v[i];
}

json annotation_json(const Annotation& a) {
  return {{"id", a.id},
          {"image", a.image},
          {"segmentation", mask::rle_to_json(a.rle, true)},
          {"area", a.area},
          {"bbox", {a.bbox[0], a.bbox[1], a.bbox[2], a.bbox[3]}},
          {"predicted_iou", a.predicted_iou < 0 ? json() : json(a.predicted_iou)},
          {"clicks", a.clicks},
          {"seconds", a.seconds},
          {"user", a.user},
          {"created_at", a.created_at}};
}

}  // namespace

struct AnnotateServer::Impl {
  explicit Impl(ServerOptions o) : opt(std::move(o)), folder(opt.images_dir), store(opt.db_path) {
    if (opt.user.empty() || opt.user.size() > 64)
      throw std::invalid_argument("--user must be 1 to 64 characters");
    if (opt.prefetch < 0 || opt.prefetch > 16)
      throw std::invalid_argument("--prefetch must be in 0..16");
    if (!is_loopback_host(opt.host) && opt.token.empty()) opt.token = make_token();
    if (!opt.token.empty() && (opt.token.size() < 8 || opt.token.size() > 256 ||
                               opt.token.find_first_of(" ;,\"\\") != std::string::npos))
      throw std::invalid_argument(
          "--token must be 8 to 256 characters without spaces, quotes, "
          "commas, semicolons or backslashes");
    segmenter = std::make_unique<Segmenter>(
        opt.model, opt.checkpoint,
        [this](const std::string& name, int* h, int* w) { return load_rgb(name, h, w); },
        opt.segmenter);
    routes();
  }

  // Decoded RGB pixels of a listed image (the embedding thread's loader); records the size.
  std::vector<uint8_t> load_rgb(const std::string& name, int* h, int* w) {
    auto path = folder.resolve(name);
    if (!path) throw std::runtime_error(name + ": not an image of " + folder.root().string());
    cv::Mat m = data::image_read_rgb(path->string());
    if (!m.isContinuous()) m = m.clone();
    *h = m.rows;
    *w = m.cols;
    remember_size(name, m.rows, m.cols);
    return std::vector<uint8_t>(m.data, m.data + m.total() * m.elemSize());
  }

  void remember_size(const std::string& name, int64_t h, int64_t w) {
    store.register_image(name, h, w);
    std::lock_guard<std::mutex> lock(mu);
    sizes[name] = {h, w};
  }

  // {height, width} of a listed image: memory, then the database, then decoding the file.
  std::pair<int64_t, int64_t> size_of(const std::string& name) {
    {
      std::lock_guard<std::mutex> lock(mu);
      if (auto it = sizes.find(name); it != sizes.end()) return it->second;
    }
    if (auto rec = store.image(name)) {
      std::lock_guard<std::mutex> lock(mu);
      return sizes[name] = {rec->height, rec->width};
    }
    auto path = folder.resolve(name);
    if (!path) throw HttpError(404, "unknown image '" + name + "'");
    cv::Mat m;
    try {
      m = data::image_read_rgb(path->string());
    } catch (const std::exception& e) {
      throw HttpError(422, e.what());
    }
    remember_size(name, m.rows, m.cols);
    return {m.rows, m.cols};
  }

  std::string known_image(const std::string& name) {
    if (!folder.index_of(name)) throw HttpError(404, "unknown image '" + name + "'");
    return name;
  }

  void prefetch_around(const std::string& name) {
    std::vector<std::string> keys{name};
    const size_t i = *folder.index_of(name);
    for (int k = 1; k <= opt.prefetch && i + k < folder.size(); ++k)
      keys.push_back(folder.names()[i + k]);
    segmenter->prefetch(keys);
  }

  std::unordered_map<std::string, int64_t> annotation_counts() {
    std::unordered_map<std::string, int64_t> counts;
    for (const auto& r : store.list_images()) counts[r.file_name] = r.num_annotations;
    return counts;
  }

  // The token from the Authorization header, the X-Sam-Token header, the cookie or ?token=.
  bool authorized(const httplib::Request& req) {
    if (opt.token.empty()) return true;
    const std::string auth = req.get_header_value("Authorization");
    if (auth.rfind("Bearer ", 0) == 0 && same_secret(auth.substr(7), opt.token)) return true;
    if (same_secret(req.get_header_value("X-Sam-Token"), opt.token)) return true;
    if (same_secret(cookie_value(req.get_header_value("Cookie"), "sam_token"), opt.token))
      return true;
    return req.has_param("token") && same_secret(req.get_param_value("token"), opt.token);
  }

  httplib::Server::HandlerResponse guard(const httplib::Request& req, httplib::Response& res) {
    if (!authorized(req)) {
      send_error(res, 401, "missing or wrong token (open the URL printed by sam_annotate)");
      return httplib::Server::HandlerResponse::Handled;
    }
    const std::string host = req.get_header_value("Host");
    if (opt.token.empty() && !is_loopback_host(host_name_of(host))) {
      send_error(res, 403, "Host '" + host + "' is not a loopback name");
      return httplib::Server::HandlerResponse::Handled;
    }
    if (req.method != "GET" && req.method != "HEAD") {
      const std::string origin = req.get_header_value("Origin");
      if (!origin.empty() && origin != "http://" + host) {
        send_error(res, 403, "cross-origin request from '" + origin + "' refused");
        return httplib::Server::HandlerResponse::Handled;
      }
      if (req.method == "POST" &&
          req.get_header_value("Content-Type").rfind("application/json", 0) != 0) {
        send_error(res, 415, "POST bodies must be application/json");
        return httplib::Server::HandlerResponse::Handled;
      }
    }
    return httplib::Server::HandlerResponse::Unhandled;
  }

  // Wraps a handler: every exception becomes a JSON error answer, never a crash.
  template <typename F>
  httplib::Server::Handler wrap(F f) {
    return [this, f](const httplib::Request& req, httplib::Response& res) {
      try {
        (this->*f)(req, res);
      } catch (const HttpError& e) {
        send_error(res, e.status, e.what());
      } catch (const PromptError& e) {
        send_error(res, 400, e.what());
      } catch (const json::exception& e) {
        send_error(res, 400, std::string("bad JSON field: ") + e.what());
      } catch (const std::invalid_argument& e) {
        send_error(res, 400, e.what());
      } catch (const std::exception& e) {
        send_error(res, 500, std::string("internal error: ") + e.what());
      } catch (...) {
        send_error(res, 500, "internal error");
      }
    };
  }

  void routes() {
    svr.set_payload_max_length(opt.max_body_bytes);
    svr.set_read_timeout(30);
    svr.set_write_timeout(60);
    svr.set_keep_alive_max_count(10000);
    // An annotator thinks between clicks; each open connection holds a handler thread, though.
    svr.set_keep_alive_timeout(30);
    const int n = std::max(4, opt.http_threads);
    svr.new_task_queue = [n] { return new httplib::ThreadPool(static_cast<size_t>(n)); };
    svr.set_default_headers({{"X-Content-Type-Options", "nosniff"},
                             {"X-Frame-Options", "DENY"},
                             {"Referrer-Policy", "no-referrer"},
                             {"Cache-Control", "no-store"}});
    svr.set_pre_routing_handler(
        [this](const httplib::Request& req, httplib::Response& res) { return guard(req, res); });
    svr.set_error_handler([](const httplib::Request&, httplib::Response& res) {
      if (res.body.empty())
        send_error(res, res.status,
                   res.status == 404 ? "not found"
                   : res.status == 413
                       ? "request too large"
                       : "bad request (HTTP status " + std::to_string(res.status) + ")");
    });
    svr.set_exception_handler(
        [](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
          std::string what = "internal error";
          try {
            if (ep) std::rethrow_exception(ep);
          } catch (const std::exception& e) {
            what += std::string(": ") + e.what();
          } catch (...) {
          }
          send_error(res, 500, what);
        });

    svr.Get("/", wrap(&Impl::get_page));
    svr.Get(R"(/(app\.js|style\.css|favicon\.svg))", wrap(&Impl::get_asset));
    svr.Get(R"(/images/(.+))", wrap(&Impl::get_image_file));
    svr.Get("/api/info", wrap(&Impl::get_info));
    svr.Get("/api/status", wrap(&Impl::get_status));
    svr.Get("/api/images", wrap(&Impl::get_images));
    svr.Get(R"(/api/images/(.+))", wrap(&Impl::get_image_info));
    svr.Get("/api/next-unannotated", wrap(&Impl::get_next_unannotated));
    svr.Get("/api/embedding", wrap(&Impl::get_embedding));
    svr.Post("/api/predict", wrap(&Impl::post_predict));
    svr.Post("/api/annotations", wrap(&Impl::post_annotation));
    svr.Delete(R"(/api/annotations/(-?\d{1,18}))", wrap(&Impl::delete_annotation));
    svr.Get("/api/export", wrap(&Impl::get_export));
  }

  void send_asset(httplib::Response& res, const std::string& path) {
    const WebAsset* a = find_web_asset(path);
    if (!a) throw HttpError(404, "not found");
    res.set_content(std::string(a->body), a->mime);
  }

  void get_page(const httplib::Request& req, httplib::Response& res) {
    send_asset(res, "index.html");
    res.set_header("Content-Security-Policy",
                   "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; "
                   "script-src 'self'; connect-src 'self'; frame-ancestors 'none'");
    // The URL printed at start carries the token once; afterwards the cookie does.
    if (!opt.token.empty() && req.has_param("token"))
      res.set_header("Set-Cookie",
                     "sam_token=" + opt.token + "; Path=/; HttpOnly; SameSite=Strict");
  }

  void get_asset(const httplib::Request& req, httplib::Response& res) {
    send_asset(res, req.matches[1]);
  }

  void get_image_file(const httplib::Request& req, httplib::Response& res) {
    // httplib has already percent-decoded the path; only names listed at start-up pass, so "..",
    // absolute paths and separators never reach the file system.
    const std::string name = req.matches[1];
    auto path = folder.resolve(name);
    if (!path) throw HttpError(404, "no image '" + name + "' in the image folder");
    std::ifstream in(*path, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (!in.good() && !in.eof()) throw HttpError(500, "cannot read " + name);
    res.set_header("Cache-Control", "private, max-age=3600");
    res.set_content(std::move(bytes), image_mime_type(name).c_str());
  }

  void get_info(const httplib::Request&, httplib::Response& res) {
    send_json(res, {{"user", opt.user},
                    {"model", segmenter->model_name()},
                    {"img_size", segmenter->img_size()},
                    {"num_images", folder.size()},
                    {"token_required", !opt.token.empty()},
                    {"slow_mask_seconds", 30}});
  }

  void get_status(const httplib::Request&, httplib::Response& res) {
    const auto s = segmenter->cache_stats();
    std::vector<double> lat;
    {
      std::lock_guard<std::mutex> lock(mu);
      lat.assign(recent_predict_ms.begin(), recent_predict_ms.end());
    }
    send_json(
        res,
        {{"cache",
          {{"bytes", s.bytes},
           {"limit_bytes", s.limit_bytes},
           {"entries", s.entries},
           {"hits", s.hits},
           {"misses", s.misses},
           {"computed", s.computed},
           {"evicted", s.evicted},
           {"failed", s.failed},
           {"compute_seconds", s.compute_seconds}}},
         {"predict_ms",
          {{"count", lat.size()}, {"p50", percentile(lat, 0.5)}, {"p99", percentile(lat, 0.99)}}}});
  }

  void get_images(const httplib::Request&, httplib::Response& res) {
    auto counts = annotation_counts();
    json list = json::array();
    for (size_t i = 0; i < folder.size(); ++i) {
      const auto& n = folder.names()[i];
      list.push_back({{"name", n}, {"index", i}, {"annotations", counts[n]}});
    }
    send_json(res, {{"images", list}});
  }

  void get_image_info(const httplib::Request& req, httplib::Response& res) {
    const std::string name = known_image(req.matches[1]);
    const size_t i = *folder.index_of(name);
    prefetch_around(name);
    const auto [h, w] = size_of(name);
    json anns = json::array();
    for (const auto& a : store.annotations_for(name)) anns.push_back(annotation_json(a));
    send_json(res, {{"name", name},
                    {"index", i},
                    {"count", folder.size()},
                    {"prev", i > 0 ? json(folder.names()[i - 1]) : json()},
                    {"next", i + 1 < folder.size() ? json(folder.names()[i + 1]) : json()},
                    {"width", w},
                    {"height", h},
                    {"url", "/images/" + url_encode(name)},
                    {"embedding", segmenter->embedding_state(name)},
                    {"annotations", anns}});
  }

  void get_embedding(const httplib::Request& req, httplib::Response& res) {
    if (!req.has_param("image")) throw HttpError(400, "missing parameter 'image'");
    const std::string name = known_image(req.get_param_value("image"));
    send_json(res, {{"image", name}, {"state", segmenter->embedding_state(name)}});
  }

  void get_next_unannotated(const httplib::Request& req, httplib::Response& res) {
    auto counts = annotation_counts();
    size_t start = 0;
    if (req.has_param("after"))
      start = *folder.index_of(known_image(req.get_param_value("after"))) + 1;
    json found;
    for (size_t k = 0; k < folder.size(); ++k) {
      const auto& n = folder.names()[(start + k) % folder.size()];
      if (counts[n] == 0) {
        found = n;
        break;
      }
    }
    send_json(res, {{"name", found}});
  }

  void post_predict(const httplib::Request& req, httplib::Response& res) {
    const auto t0 = std::chrono::steady_clock::now();
    const json body = parse_body(req, kMaxPredictBody);
    const std::string name = known_image(text(field(body, "image"), "image", 4096));
    const auto [h, w] = size_of(name);
    Prompt prompt;
    if (auto it = body.find("points"); it != body.end() && !it->is_null()) {
      if (!it->is_array()) throw HttpError(400, "'points' must be an array of [x, y, label]");
      if (it->size() > 64) throw HttpError(400, "at most 64 points per mask");
      for (size_t k = 0; k < it->size(); ++k) {
        const json& p = (*it)[k];
        const std::string nm = "points[" + std::to_string(k) + "]";
        if (!p.is_array() || p.size() != 3) throw HttpError(400, nm + " must be [x, y, label]");
        prompt.points.push_back({number(p[0], nm + ".x", 0, static_cast<double>(w)),
                                 number(p[1], nm + ".y", 0, static_cast<double>(h)),
                                 static_cast<int>(integer(p[2], nm + ".label", 0, 1))});
      }
    }
    if (auto it = body.find("box"); it != body.end() && !it->is_null()) {
      if (!it->is_array() || it->size() != 4)
        throw HttpError(400, "'box' must be [x0, y0, x1, y1]");
      std::array<double, 4> b{};
      for (int k = 0; k < 4; ++k)
        b[k] = number((*it)[k], "box[" + std::to_string(k) + "]", 0,
                      static_cast<double>(k % 2 == 0 ? w : h));
      if (!(b[0] < b[2] && b[1] < b[3])) throw HttpError(400, "'box' needs x0 < x1 and y0 < y1");
      prompt.box = b;
    }
    if (prompt.points.empty() && !prompt.box) throw HttpError(400, "give 'points' or a 'box'");
    prefetch_around(name);
    SegmentResult r;
    try {
      r = segmenter->segment(name, prompt);
    } catch (const PromptError&) {
      throw;
    } catch (const std::runtime_error& e) {
      const bool failed = segmenter->embedding_state(name).rfind("failed", 0) == 0;
      throw HttpError(failed ? 422 : 503, e.what());
    }
    json cands = json::array();
    for (const auto& c : r.candidates)
      cands.push_back({{"segmentation", mask::rle_to_json(c.rle, true)},
                       {"iou", c.iou},
                       {"token", c.token},
                       {"area", c.area}});
    const double total =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    {
      std::lock_guard<std::mutex> lock(mu);
      recent_predict_ms.push_back(total);
      if (recent_predict_ms.size() > 2000) recent_predict_ms.pop_front();
    }
    send_json(res, {{"image", name},
                    {"width", r.width},
                    {"height", r.height},
                    {"candidates", cands},
                    {"best", r.best},
                    {"timing_ms",
                     {{"wait", r.wait_ms},
                      {"decode", r.decode_ms},
                      {"upscale", r.upscale_ms},
                      {"rle", r.rle_ms},
                      {"total", total}}}});
  }

  // The accepted mask's provenance, validated and rebuilt from known keys only.
  json validated_clicks(const json& c, int64_t h, int64_t w) {
    json out = {{"points", json::array()},
                {"box", nullptr},
                {"candidate", nullptr},
                {"token", nullptr},
                {"strokes", json::array()}};
    if (c.is_null()) return out;
    if (!c.is_object()) throw HttpError(400, "'clicks' must be an object");
    if (auto it = c.find("points"); it != c.end() && !it->is_null()) {
      if (!it->is_array() || it->size() > kMaxClickPoints)
        throw HttpError(400, "'clicks.points' must be an array of at most " +
                                 std::to_string(kMaxClickPoints) + " [x, y, label]");
      for (const auto& p : *it) {
        if (!p.is_array() || p.size() != 3)
          throw HttpError(400, "'clicks.points' entries are [x, y, label]");
        out["points"].push_back({number(p[0], "clicks.points.x", 0, static_cast<double>(w)),
                                 number(p[1], "clicks.points.y", 0, static_cast<double>(h)),
                                 integer(p[2], "clicks.points.label", 0, 1)});
      }
    }
    if (auto it = c.find("box"); it != c.end() && !it->is_null()) {
      if (!it->is_array() || it->size() != 4)
        throw HttpError(400, "'clicks.box' must be [x0, y0, x1, y1]");
      for (int k = 0; k < 4; ++k)
        out["box"].push_back(number((*it)[k], "clicks.box", 0, static_cast<double>(k % 2 ? h : w)));
    }
    if (auto it = c.find("candidate"); it != c.end() && !it->is_null())
      out["candidate"] = integer(*it, "clicks.candidate", 0, 2);
    if (auto it = c.find("token"); it != c.end() && !it->is_null())
      out["token"] = integer(*it, "clicks.token", 0, 3);
    if (auto it = c.find("strokes"); it != c.end() && !it->is_null()) {
      if (!it->is_array()) throw HttpError(400, "'clicks.strokes' must be an array");
      size_t total = 0;
      for (const auto& s : *it) {
        if (!s.is_object()) throw HttpError(400, "'clicks.strokes' entries are objects");
        const std::string mode = text(field(s, "mode"), "clicks.strokes.mode", 16);
        if (mode != "brush" && mode != "erase")
          throw HttpError(400, "'clicks.strokes.mode' must be \"brush\" or \"erase\"");
        const double radius = number(field(s, "radius"), "clicks.strokes.radius", 0.5, 4096);
        const json& pts = field(s, "points");
        if (!pts.is_array() || pts.empty())
          throw HttpError(400, "'clicks.strokes.points' must be a non-empty array");
        total += pts.size();
        if (total > kMaxStrokePoints) throw HttpError(400, "too many stroke points");
        json sp = json::array();
        for (const auto& p : pts) {
          if (!p.is_array() || p.size() != 2)
            throw HttpError(400, "'clicks.strokes.points' entries are [x, y]");
          sp.push_back({number(p[0], "clicks.strokes.x", -4096, static_cast<double>(w) + 4096),
                        number(p[1], "clicks.strokes.y", -4096, static_cast<double>(h) + 4096)});
        }
        out["strokes"].push_back({{"mode", mode}, {"radius", radius}, {"points", sp}});
      }
    }
    return out;
  }

  void post_annotation(const httplib::Request& req, httplib::Response& res) {
    const json body = parse_body(req, opt.max_body_bytes);
    Annotation a;
    a.image = known_image(text(field(body, "image"), "image", 4096));
    const auto [h, w] = size_of(a.image);
    const json& seg = field(body, "segmentation");
    try {
      a.rle = mask::rle_from_json(seg);
    } catch (const std::exception& e) {
      throw HttpError(400, std::string("'segmentation' is not a valid COCO RLE: ") + e.what());
    }
    if (a.rle.h != h || a.rle.w != w)
      throw HttpError(400, "'segmentation' is " + std::to_string(a.rle.w) + "x" +
                               std::to_string(a.rle.h) + " but " + a.image + " is " +
                               std::to_string(w) + "x" + std::to_string(h));
    if (mask::rle_area(a.rle) == 0) throw HttpError(400, "'segmentation' is an empty mask");
    a.seconds = number(field(body, "seconds"), "seconds", 0, 1e7);
    if (auto it = body.find("predicted_iou"); it != body.end() && !it->is_null())
      a.predicted_iou = number(*it, "predicted_iou", -10, 10);
    a.clicks = validated_clicks(body.contains("clicks") ? body["clicks"] : json(), h, w);
    a.user = opt.user;
    a.id = store.add(a);  // durable when it returns: only then is the accept acknowledged
    auto stored = store.annotation(a.id);
    send_json(res, annotation_json(*stored), 201);
  }

  void delete_annotation(const httplib::Request& req, httplib::Response& res) {
    const int64_t id = std::stoll(req.matches[1]);
    if (!store.remove(id)) throw HttpError(404, "no annotation " + std::to_string(id));
    send_json(res, {{"deleted", id}});
  }

  void get_export(const httplib::Request& req, httplib::Response& res) {
    const std::string format = req.has_param("format") ? req.get_param_value("format") : "";
    if (format == "coco") {
      auto doc =
          export_coco(store, folder.names(), [this](const std::string& n) { return size_of(n); });
      res.set_header("Content-Disposition", "attachment; filename=\"annotations_coco.json\"");
      res.set_content(dump(doc), kJson);
    } else if (format == "sa1b" && req.has_param("image")) {
      const std::string name = known_image(req.get_param_value("image"));
      size_of(name);  // registers it, so an image without masks still exports
      res.set_header("Content-Disposition",
                     "attachment; filename=\"" + sa1b_json_name(name) + "\"");
      res.set_content(dump(export_sa1b_image(store, name)), kJson);
    } else if (format == "sa1b") {
      std::vector<std::pair<std::string, std::string>> files;
      for (const auto& rec : store.list_images())
        if (rec.num_annotations > 0)
          files.emplace_back(sa1b_json_name(rec.file_name),
                             dump(export_sa1b_image(store, rec.file_name)));
      res.set_header("Content-Disposition", "attachment; filename=\"sa1b_annotations.zip\"");
      res.set_content(zip_store(files), "application/zip");
    } else {
      throw HttpError(400, "'format' must be coco or sa1b (with an optional 'image')");
    }
  }

  ServerOptions opt;
  ImageFolder folder;
  AnnotationStore store;
  std::unique_ptr<Segmenter> segmenter;
  httplib::Server svr;
  int bound_port = -1;
  std::mutex mu;
  std::unordered_map<std::string, std::pair<int64_t, int64_t>> sizes;
  std::deque<double> recent_predict_ms;
};

AnnotateServer::AnnotateServer(ServerOptions options)
    : impl_(std::make_unique<Impl>(std::move(options))) {}

AnnotateServer::~AnnotateServer() {
  stop();
}

int AnnotateServer::bind() {
  auto& i = *impl_;
  if (i.opt.port == 0) {
    i.bound_port = i.svr.bind_to_any_port(i.opt.host);
  } else if (i.svr.bind_to_port(i.opt.host, i.opt.port)) {
    i.bound_port = i.opt.port;
  }
  if (i.bound_port <= 0)
    throw std::runtime_error("cannot listen on " + i.opt.host + ":" + std::to_string(i.opt.port) +
                             " (address in use or not local?)");
  return i.bound_port;
}

void AnnotateServer::serve() {
  impl_->svr.listen_after_bind();
}
void AnnotateServer::stop() {
  impl_->svr.stop();
}
int AnnotateServer::port() const {
  return impl_->bound_port;
}
const std::string& AnnotateServer::token() const {
  return impl_->opt.token;
}

std::string AnnotateServer::url() const {
  std::string host = impl_->opt.host;
  if (host.find(':') != std::string::npos) host = "[" + host + "]";
  std::string u = "http://" + host + ":" + std::to_string(port()) + "/";
  if (!token().empty()) u += "?token=" + token();
  return u;
}

}  // namespace sam::annotate
