// sam_annotate: the assisted-manual annotation tool (paper section 4, stage 1). Serves a page where
// a person clicks objects and SAM answers each click with masks, and stores the accepted masks in
// SQLite; `sam_annotate export` writes them as COCO or SA-1B JSON.
#include <CLI/CLI.hpp>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <thread>

#include "data/image.h"
#include "engine/annotate/export.h"
#include "engine/annotate/image_folder.h"
#include "engine/annotate/server.h"
#include "engine/annotate/store.h"
#include "data/log.h"
#include "tools/tool_common.h"

namespace {

int run_export(const std::string& db, const std::string& images, const std::string& format,
               const std::string& out) {
  namespace ann = sam::annotate;
  if (!std::filesystem::exists(db)) throw std::invalid_argument("--db " + db + ": no such file");
  ann::AnnotationStore store(db, /*read_only=*/true);
  if (format == "coco") {
    std::vector<std::string> names;
    std::filesystem::path root;
    if (!images.empty()) {
      ann::ImageFolder folder(images);
      names = folder.names();
      root = folder.root();
    }
    auto doc = ann::export_coco(store, names, [&](const std::string& n) {
      cv::Mat m = sam::data::image_read_rgb((root / n).string());
      return std::pair<int64_t, int64_t>{m.rows, m.cols};
    });
    const auto parent = std::filesystem::path(out).parent_path();
    if (!parent.empty()) std::filesystem::create_directories(parent);
    std::ofstream f(out);
    f << doc.dump() << "\n";
    if (!f) throw std::runtime_error("--out " + out + ": cannot write");
    sam::log::info("sam_annotate: wrote " + std::to_string(doc["images"].size()) + " images and " +
                   std::to_string(doc["annotations"].size()) + " annotations to " + out);
  } else if (format == "sa1b") {
    const int64_t n = ann::export_sa1b_folder(store, out);
    sam::log::info("sam_annotate: wrote " + std::to_string(n) + " SA-1B files to " + out);
  } else {
    throw std::invalid_argument("--format " + format + ": expected coco or sa1b");
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "Assisted-manual annotation with SAM: a browser page over the model and a SQLite store"};
  sam::tools::add_log_level_option(app);
  sam::annotate::ServerOptions opt;
  int threads = 0;
  double cache_mb = 1024, max_body_mb = 32;
  app.add_option("--images", opt.images_dir, "folder of images to annotate");
  app.add_option("--db", opt.db_path, "annotation database (SQLite; created if missing)");
  app.add_option("--model", opt.model, "vit_b, vit_l, vit_h or an architecture .json/.yaml");
  app.add_option("--checkpoint", opt.checkpoint,
                 "weights (.pth); omit for random weights (timing only)");
  app.add_option("--host", opt.host, "address to listen on (non-loopback requires a token)")
      ->capture_default_str();
  app.add_option("--port", opt.port, "port (0 = any free port)")->capture_default_str();
  app.add_option("--token", opt.token,
                 "access token (generated and printed for non-loopback hosts)");
  app.add_option("--user", opt.user, "annotator name stored with each mask")->capture_default_str();
  app.add_option("--cache-mb", cache_mb, "memory budget of the embedding cache (MiB)")
      ->capture_default_str();
  app.add_option("--threads", threads, "CPU threads for the model (0 = all cores)")
      ->capture_default_str();
  app.add_option("--prefetch", opt.prefetch, "images after the current one to embed ahead")
      ->capture_default_str();
  app.add_option("--decode-slots", opt.segmenter.decode_slots, "clicks decoded at once")
      ->capture_default_str();
  app.add_option("--encoder-nice", opt.segmenter.encoder_nice,
                 "nice value of the background embedding thread (clicks go first)")
      ->capture_default_str();
  app.add_option("--http-threads", opt.http_threads, "request handler threads")
      ->capture_default_str();
  app.add_option("--max-body-mb", max_body_mb, "largest request body (MiB)")->capture_default_str();
  app.add_option("--device", opt.segmenter.device, "cpu or cuda")->capture_default_str();

  std::string ex_db, ex_images, ex_format, ex_out;
  auto* ex = app.add_subcommand("export", "write the annotations as COCO or SA-1B JSON");
  ex->add_option("--db", ex_db, "annotation database")->required();
  ex->add_option("--images", ex_images, "image folder (COCO: lists images without masks too)");
  ex->add_option("--format", ex_format, "coco (one file) or sa1b (a folder, one file per image)")
      ->required();
  ex->add_option("--out", ex_out, "output file (coco) or folder (sa1b)")->required();
  CLI11_PARSE(app, argc, argv);

  return sam::tools::run_main("sam_annotate", [&]() {
    if (ex->parsed()) return run_export(ex_db, ex_images, ex_format, ex_out);
    for (const auto& [flag, value] :
         {std::pair<const char*, std::string*>{"--images", &opt.images_dir},
          {"--db", &opt.db_path},
          {"--model", &opt.model}})
      if (value->empty()) throw std::invalid_argument(std::string(flag) + " is required");
    if (!(cache_mb > 0)) throw std::invalid_argument("--cache-mb must be positive");
    if (!(max_body_mb >= 1 && max_body_mb <= 1024))
      throw std::invalid_argument("--max-body-mb must be in 1..1024");
    opt.segmenter.cache_bytes = static_cast<int64_t>(cache_mb * 1024 * 1024);
    opt.max_body_bytes = static_cast<size_t>(max_body_mb * 1024 * 1024);
    sam::tools::set_threads(threads);
    sam::tools::parse_device(opt.segmenter.device);

    // SIGINT/SIGTERM end the server cleanly: blocked here (inherited by every thread started
    // later) and taken by one waiting thread.
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

    if (opt.checkpoint.empty())
      sam::log::warn("sam_annotate: warning: no --checkpoint, the model has random weights");
    sam::annotate::AnnotateServer server(opt);
    server.bind();
    std::thread([&server, stop_signals] {
      int sig = 0;
      sigwait(&stop_signals, &sig);
      server.stop();
    }).detach();
    sam::log::info("sam_annotate: model " + opt.model +
                   (opt.checkpoint.empty() ? std::string(" (random weights)") : " with " + opt.checkpoint));
    sam::log::info("sam_annotate: " + opt.images_dir + " -> " + opt.db_path);
    sam::log::info("sam_annotate: listening on " + server.url());
    server.serve();
    sam::log::info("sam_annotate: stopped");
    return 0;
  });
}
