// sam_annotate_bench: per-click latency of the annotation tool through its HTTP API: N clients
// (default 8) send point/box prompts as fast as the answers come, each timing request -> masks
// parsed; reports p50/p90/p99 with the server's own breakdown. Runs the server in-process on a
// loopback port (or drives one at --url), with every embedding computed before timing starts.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <fstream>
#include <iostream>
#include <random>
#include <thread>

#include <nlohmann/json.hpp>

#include "data/mask/rle.h"
#include "engine/annotate/http.h"
#include "engine/annotate/server.h"
#include "data/log.h"
#include "tools/tool_common.h"

namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

double pct(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())))];
}

json summary(const std::vector<double>& v) {
  double sum = 0;
  for (double x : v) sum += x;
  return {{"n", v.size()},
          {"p50", pct(v, 0.5)},
          {"p90", pct(v, 0.9)},
          {"p99", pct(v, 0.99)},
          {"mean", v.empty() ? 0 : sum / static_cast<double>(v.size())},
          {"max", v.empty() ? 0 : *std::max_element(v.begin(), v.end())}};
}

struct ImageInfo {
  std::string name, path_enc;
  int w = 0, h = 0;
};

// A random prompt as the page would send it: 1-3 points (mostly positive), sometimes a box.
json random_prompt(std::mt19937& rng, const ImageInfo& im) {
  std::uniform_real_distribution<double> ux(0, im.w), uy(0, im.h);
  json body = {{"image", im.name}, {"points", json::array()}};
  const int n = 1 + static_cast<int>(rng() % 3);
  for (int i = 0; i < n; ++i)
    body["points"].push_back({ux(rng), uy(rng), i == 0 || rng() % 3 ? 1 : 0});
  if (rng() % 4 == 0) {
    double x0 = ux(rng), x1 = ux(rng), y0 = uy(rng), y1 = uy(rng);
    if (x0 > x1) std::swap(x0, x1);
    if (y0 > y1) std::swap(y0, y1);
    body["box"] = {x0, y0, x1 + 1 > im.w ? im.w : x1 + 1, y1 + 1 > im.h ? im.h : y1 + 1};
  }
  return body;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Benchmark sam_annotate's click latency through its HTTP API"};
  sam::tools::add_log_level_option(app);
  sam::annotate::ServerOptions opt;
  std::string url, token, json_out;
  int clients = 8, requests = 400, single = 40, threads = 0;
  app.add_option("--images", opt.images_dir, "folder of images, every one used (not with --url)");
  app.add_option("--model", opt.model, "vit_b, vit_l, vit_h or an architecture file");
  app.add_option("--checkpoint", opt.checkpoint, "weights (random when omitted: timing only)");
  app.add_option("--url", url, "drive a running sam_annotate (host:port) instead of starting one");
  app.add_option("--token", token, "its token, if it needs one");
  app.add_option("--clients", clients, "concurrent clients")->capture_default_str();
  app.add_option("--requests", requests, "timed requests over all clients")->capture_default_str();
  app.add_option("--single", single, "requests timed first with one client alone")
      ->capture_default_str();
  app.add_option("--threads", threads, "model CPU threads (0 = all cores)")->capture_default_str();
  app.add_option("--decode-slots", opt.segmenter.decode_slots, "clicks decoded at once")
      ->capture_default_str();
  app.add_option("--json", json_out, "also write the figures here");
  CLI11_PARSE(app, argc, argv);

  return sam::tools::run_main("sam_annotate_bench", [&]() {
    sam::log::messages_to_stderr();  // stdout carries the JSON report
    std::unique_ptr<sam::annotate::AnnotateServer> server;
    std::thread serving;
    // Stops the in-process server on every way out, errors included.
    struct Stopper {
      std::unique_ptr<sam::annotate::AnnotateServer>& s;
      std::thread& t;
      ~Stopper() {
        if (s) s->stop();
        if (t.joinable()) t.join();
      }
    } stopper{server, serving};
    std::string host = "127.0.0.1";
    int port = 0;
    const auto tmp = std::filesystem::temp_directory_path() /
                     ("sam_annotate_bench_" + std::to_string(::getpid()));
    if (url.empty()) {
      if (opt.model.empty() || opt.images_dir.empty())
        throw std::invalid_argument("--model and --images are required without --url");
      sam::tools::set_threads(threads);
      std::filesystem::create_directories(tmp);
      opt.db_path = (tmp / "bench.sqlite").string();
      opt.port = 0;
      opt.prefetch = 0;
      server = std::make_unique<sam::annotate::AnnotateServer>(opt);
      port = server->bind();
      serving = std::thread([&] { server->serve(); });
    } else {
      const auto colon = url.rfind(':');
      if (colon == std::string::npos)
        throw std::invalid_argument("--url " + url + ": expected host:port");
      host = url.substr(0, colon);
      if (host.rfind("http://", 0) == 0) host = host.substr(7);
      port = std::stoi(url.substr(colon + 1));
    }
    httplib::Headers auth;
    if (!token.empty()) auth = {{"Authorization", "Bearer " + token}};
    auto make_client = [&] {
      auto c = std::make_unique<httplib::Client>(host, port);
      c->set_read_timeout(600);
      c->set_default_headers(auth);
      return c;
    };

    // Every image: its size, and its embedding made (a first click waits for it).
    auto c0 = make_client();
    auto list = c0->Get("/api/images");
    if (!list || list->status != 200)
      throw std::runtime_error("cannot list images at " + host + ":" + std::to_string(port) + ": " +
                               (list ? list->body : httplib::to_string(list.error())));
    std::vector<ImageInfo> images;
    const json listed = json::parse(list->body);
    for (const auto& i : listed["images"]) {
      ImageInfo im;
      im.name = i["name"];
      auto info = c0->Get(("/api/images/" + httplib::detail::encode_query_param(im.name)).c_str());
      if (!info || info->status != 200) {
        sam::log::warn("skipping " + im.name + ": " + (info ? info->body : httplib::to_string(info.error())));
        continue;
      }
      auto j = json::parse(info->body);
      im.w = j["width"];
      im.h = j["height"];
      const auto t0 = Clock::now();
      auto first =
          c0->Post("/api/predict",
                   json{{"image", im.name}, {"points", {{im.w / 2.0, im.h / 2.0, 1}}}}.dump(),
                   "application/json");
      if (!first || first->status != 200) {
        sam::log::warn("skipping " + im.name + ": " + (first ? first->body : httplib::to_string(first.error())));
        continue;
      }
      sam::log::info("embedded " + im.name + " (" + std::to_string(im.w) + "x" + std::to_string(im.h) + ") in " +
                     std::to_string(std::chrono::duration<double>(Clock::now() - t0).count()) + " s");
      images.push_back(im);
    }
    if (images.empty()) throw std::runtime_error("no usable image in " + opt.images_dir);

    // One client alone, then `clients` at once.
    auto run = [&](int n_clients, int n_requests) {
      std::vector<std::vector<double>> lat(n_clients), srv(n_clients), dec(n_clients),
          ups(n_clients), rle(n_clients), wait(n_clients);
      std::atomic<int> next{0}, errors{0}, ready{0};
      auto t0 = Clock::now();
      std::vector<std::thread> ts;
      for (int t = 0; t < n_clients; ++t)
        ts.emplace_back([&, t] {
          std::mt19937 rng(static_cast<unsigned>(7 + t));
          auto c = make_client();
          // Connect before timing (a page keeps its connections open): the server's listen
          // backlog is small, and a dropped SYN costs a 1 s retransmit that is not a click.
          auto hello = c->Get("/api/info");
          if (!hello) ++errors;
          ready++;
          while (ready < n_clients) std::this_thread::yield();
          while (next++ < n_requests) {
            const auto& im = images[rng() % images.size()];
            const std::string body = random_prompt(rng, im).dump();
            const auto s = Clock::now();
            auto r = c->Post("/api/predict", body, "application/json");
            if (!r || r->status != 200) {
              ++errors;
              continue;
            }
            auto j = json::parse(r->body);
            const auto& cand = j["candidates"][j["best"].get<int>()]["segmentation"];
            auto mask = sam::mask::rle_from_json(cand);  // the answer, usable
            lat[t].push_back(std::chrono::duration<double, std::milli>(Clock::now() - s).count());
            srv[t].push_back(j["timing_ms"]["total"]);
            wait[t].push_back(j["timing_ms"]["wait"]);
            dec[t].push_back(j["timing_ms"]["decode"]);
            ups[t].push_back(j["timing_ms"]["upscale"]);
            rle[t].push_back(j["timing_ms"]["rle"]);
            (void)mask;
          }
        });
      for (auto& t : ts) t.join();
      const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
      auto flat = [](const std::vector<std::vector<double>>& v) {
        std::vector<double> out;
        for (const auto& x : v) out.insert(out.end(), x.begin(), x.end());
        return out;
      };
      const auto all = flat(lat);
      return json{{"clients", n_clients},
                  {"latency_ms", summary(all)},
                  {"server_total_ms", summary(flat(srv))},
                  {"server_wait_ms", summary(flat(wait))},
                  {"server_decode_ms", summary(flat(dec))},
                  {"server_upscale_ms", summary(flat(ups))},
                  {"server_rle_ms", summary(flat(rle))},
                  {"errors", errors.load()},
                  {"clicks_per_s", static_cast<double>(all.size()) / secs}};
    };
    json out;
    out["images"] = json::array();
    for (const auto& im : images)
      out["images"].push_back({{"name", im.name}, {"width", im.w}, {"height", im.h}});
    out["model"] = url.empty() ? opt.model : "(remote)";
    out["checkpoint"] =
        url.empty() ? (opt.checkpoint.empty() ? "random" : opt.checkpoint) : "(remote)";
    out["threads"] = url.empty() ? torch::get_num_threads() : 0;
    out["decode_slots"] = opt.segmenter.decode_slots;
    if (single > 0) out["single_client"] = run(1, single);
    out["concurrent"] = run(clients, requests);
    std::cout << out.dump(2) << "\n";
    if (!json_out.empty()) std::ofstream(json_out) << out.dump(2) << "\n";
    if (server) std::filesystem::remove_all(tmp);
    return 0;
  });
}
