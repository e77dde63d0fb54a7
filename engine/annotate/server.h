#pragma once
// The annotation tool's web server: the page (web/), the images, and the JSON API of
// docs/API.md over the Segmenter (clicks -> masks) and the AnnotationStore (accepted masks).
//
// Safety rules it enforces: loopback by default, and a token for any other address; only listed
// files of the image folder are served; request bodies are bounded; every field is validated and a
// bad request gets a 4xx with {"error": "..."}; an exception inside a handler is answered with a
// 500 and never ends the process. With no token on loopback, the Host header must name a loopback
// address (so a web page elsewhere cannot reach the API through DNS rebinding), and writes need a
// JSON content type and a same-origin Origin (so a cross-site form cannot post).
#include <cstdint>
#include <memory>
#include <string>

#include "engine/annotate/auth.h"
#include "engine/annotate/segmenter.h"

namespace sam::annotate {

struct ServerOptions {
  std::string images_dir;  ///< folder of images (listed non-recursively)
  std::string db_path;     ///< SQLite database (created if missing)
  std::string model;       ///< preset name or architecture file
  std::string checkpoint;  ///< weights; empty = random (timing only)
  std::string host = "127.0.0.1";
  int port = 8080;    ///< 0 = any free port (see AnnotateServer::port)
  std::string token;  ///< required on every request when set; generated for non-loopback
  std::string user = "annotator";            ///< recorded with every accepted mask
  int prefetch = 1;                          ///< images after the current one to embed ahead
  int http_threads = 16;                     ///< request handler threads
  size_t max_body_bytes = size_t{32} << 20;  ///< larger request bodies get 413
  SegmenterOptions segmenter;
};

class AnnotateServer {
 public:
  /// Opens the folder and database and loads the model (seconds); throws on any bad option, naming
  /// it. A non-loopback host without a token gets a generated one (see token()).
  explicit AnnotateServer(ServerOptions options);
  ~AnnotateServer();

  /// Binds the listening socket; returns the port (useful with port 0). Throws when it cannot.
  int bind();
  /// Serves until stop() (blocking); bind() first.
  void serve();
  /// Makes serve() return; callable from any thread.
  void stop();

  int port() const;
  const std::string& token() const;
  /// "http://host:port/" plus "?token=..." when a token is required.
  std::string url() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sam::annotate
