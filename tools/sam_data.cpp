// sam_data: dataset tools. RLE encode/decode, COCO -> SA-1B conversion, COCO export of any
// dataset, SA-1B validation, synthetic scenes, dataset info, the loader benchmark, and the image
// encoder's embeddings of a dataset (embed: decoder training on cached embeddings).
#include <CLI/CLI.hpp>
#include <opencv2/imgproc.hpp>

#include <cstdio>
#include <fstream>
#include <iostream>

#include <nlohmann/json.hpp>

#include "data/codec.h"
#include "data/bench.h"
#include "data/convert.h"
#include "data/synth.h"
#include "data/log.h"
#include "train/embed.h"
#include "train/trainer.h"
#include "tools/tool_common.h"

namespace {
namespace d = sam::data;

void parse_size(const std::string& s, int& w, int& h) {
  if (std::sscanf(s.c_str(), "%dx%d", &w, &h) != 2 || w <= 0 || h <= 0)
    throw std::invalid_argument("--size " + s + ": expected WIDTHxHEIGHT, e.g. 640x480");
}

void print_list(const char* title, const std::vector<std::string>& v, size_t limit) {
  for (size_t i = 0; i < v.size() && i < limit; ++i) std::cout << title << v[i] << "\n";
  if (v.size() > limit)
    std::cout << title << "... and " << v.size() - limit << " more (--all shows every line)\n";
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "Dataset tools: COCO RLE, SA-1B / COCO conversion and validation, synthetic scenes, loader "
      "benchmark"};
  sam::tools::add_log_level_option(app);
  app.require_subcommand(1);

  auto* rle =
      app.add_subcommand("rle", "COCO RLE of a mask image, and back")->require_subcommand(1);
  std::string rle_in, rle_out;
  size_t rle_index = 0;
  auto* enc = rle->add_subcommand(
      "encode", "print {\"size\":[h,w],\"counts\":...} of the nonzero pixels of MASK");
  enc->add_option("MASK", rle_in,
                  "mask image (any format; a pixel is set when a colour channel is nonzero)")
      ->required();
  auto* dec = rle->add_subcommand("decode", "write the mask of an RLE JSON as a 0/255 PNG");
  dec->add_option("RLE_JSON", rle_in, "{\"size\",\"counts\"}, an annotation, or an SA-1B/COCO file")
      ->required();
  dec->add_option("OUT", rle_out, "output PNG")->required();
  dec->add_option("--index", rle_index, "which annotation of a file with \"annotations\"");

  auto* c2s =
      app.add_subcommand("coco-to-sa1b", "convert a COCO instances file to an SA-1B folder");
  std::string coco_json, image_dir, out_dir;
  bool keep_names = false;
  c2s->add_option("INSTANCES_JSON", coco_json)->required();
  c2s->add_option("IMAGE_DIR", image_dir)->required();
  c2s->add_option("OUT_DIR", out_dir)->required();
  c2s->add_flag("--keep-names", keep_names, "keep COCO file stems instead of sa_<image_id>");

  auto* val = app.add_subcommand(
      "validate", "check every JSON, RLE and image of an SA-1B folder or .tar shard");
  std::string val_path;
  d::ValidateOptions vo;
  bool all = false;
  val->add_option("PATH", val_path, "SA-1B folder, .tar shard, or folder of shards")->required();
  val->add_flag("--no-images{false}", vo.decode_images,
                "only check that images exist, do not decode them");
  val->add_option("--jobs", vo.jobs, "threads (0 = all cores)");
  val->add_flag("--all", all, "print every problem and warning");

  auto* syn = app.add_subcommand("synth", "generate synthetic scenes as an SA-1B folder");
  std::string syn_out, syn_size = "640x480";
  d::SynthOptions so;
  int64_t syn_n = 100, syn_first = 1;
  bool syn_png = false;
  int syn_jobs = 0;
  syn->add_option("OUT", syn_out)->required();
  syn->add_option("--images", syn_n, "number of images")->check(CLI::NonNegativeNumber);
  syn->add_option("--seed", so.seed, "random seed (same seed, same bytes)");
  syn->add_option("--size", syn_size, "WIDTHxHEIGHT");
  syn->add_option("--min-objects", so.min_objects, "top-level objects per image, at least");
  syn->add_option("--max-objects", so.max_objects, "top-level objects per image, at most");
  syn->add_option("--part-prob", so.part_prob, "chance that an object has parts");
  syn->add_option("--max-parts", so.max_parts, "parts of one object, at most");
  syn->add_option("--part-size-min", so.part_size_min, "a part's smallest radius, a fraction of its whole's");
  syn->add_option("--part-size-max", so.part_size_max, "a part's largest radius, a fraction of its whole's");
  syn->add_option("--subpart-prob", so.subpart_prob, "chance that a part has sub-parts");
  syn->add_option("--min-area", so.min_area,
                  "instances with fewer visible pixels are not annotated");
  syn->add_option("--size-min", so.size_min,
                  "whole objects' smallest radius, a fraction of the short side");
  syn->add_option("--size-max", so.size_max,
                  "whole objects' largest radius, a fraction of the short side");
  syn->add_option("--pattern-prob", so.pattern_prob,
                  "chance that an object may be patterned (else solid or a gradient)");
  syn->add_option("--outline-prob", so.outline_prob, "chance that an object has an outline");
  syn->add_option("--hole-prob", so.hole_prob, "chance that a whole object has a hole");
  syn->add_option("--ground-prob", so.ground_prob, "chance of a ground region along the bottom");
  syn->add_option("--noise", so.noise, "sensor noise amplitude, at most (0: none)");
  syn->add_option("--blur-prob", so.blur_prob, "chance of a mild blur over the image");
  syn->add_option("--kinds", so.kinds,
                  "every whole object an instance of one of N kinds (0: each drawn anew)");
  syn->add_option("--kinds-seed", so.kinds_seed,
                  "seed of the kinds (shared by sets made with different --seed)");
  syn->add_option("--first-index", syn_first, "n of the first sa_<n>");
  syn->add_flag("--png", syn_png,
                "also write lossless sa_<n>.png (read them with sa1b:DIR?ext=png)");
  syn->add_option("--jobs", syn_jobs, "threads (0 = all cores)");

  auto* info = app.add_subcommand(
      "info", "describe a dataset spec (see data/dataset.h) and count its annotations");
  std::string spec;
  info->add_option(
          "SPEC", spec,
          "e.g. sa1b:DIR, coco:FILE.json:IMAGES, grabcut:DIR, berkeley:DIR, davis:DIR, folder:DIR")
      ->required();

  auto* show = app.add_subcommand("show", "draw a sample's masks over its image (PNG)");
  std::string show_out;
  size_t show_index = 0;
  show->add_option("SPEC", spec)->required();
  show->add_option("OUT_PNG", show_out)->required();
  show->add_option("--index", show_index, "sample index");

  auto* exp = app.add_subcommand("export-coco", "write a COCO instances JSON for any dataset spec");
  std::string exp_out, exp_root;
  exp->add_option("SPEC", spec)->required();
  exp->add_option("OUT_JSON", exp_out)->required();
  exp->add_option("--image-root", exp_root, "file_name relative to this folder");

  auto* ben = app.add_subcommand("bench", "loader throughput and memory; RLE speed");
  std::string bench_size = "2250x1500", bench_json;
  d::BenchOptions bo;
  d::LoaderOptions& lo = bo.loader;
  ben->add_option("--data", bo.data_dir,
                  "SA-1B folder to read (made with synth when it has no JSON)");
  ben->add_option("--make", bo.make, "images to synthesise when --data is empty");
  ben->add_option("--size", bench_size, "WIDTHxHEIGHT of synthesised images");
  ben->add_option("--samples", bo.samples, "samples timed (after 8 warm-up)");
  ben->add_option("--profile", bo.profile, "samples of the one-at-a-time per-step profile");
  ben->add_option("--workers", lo.workers);
  ben->add_option("--prefetch", lo.prefetch);
  ben->add_option("--image-size", lo.image_size);
  ben->add_option("--max-masks", lo.max_masks);
  ben->add_flag("--lsj", lo.large_scale_jitter, "large-scale jitter");
  ben->add_flag("--hflip", lo.hflip);
  ben->add_option("--rle-reps", bo.rle_reps, "repetitions of the RLE timing (best is reported)");
  ben->add_option("--json", bench_json, "also write the results here");

  auto* emb = app.add_subcommand(
      "embed",
      "store the image encoder's embeddings of a training configuration's data.train (for data.embeddings); "
      "resumable, sharded over torchrun ranks");
  std::string emb_config;
  std::vector<std::string> emb_data, emb_overrides;
  sam::train::EmbedOptions eo;
  emb->add_option("--config", emb_config, "the training configuration (model, init, data.train, train.device)")
      ->required();
  emb->add_option("--out", eo.out, "the store's folder (a rerun resumes it)")->required();
  emb->add_option("--data", emb_data, "dataset specs to embed instead of data.train (repeatable)");
  emb->add_option("--dtype", eo.dtype, "fp16, bf16 or fp32 on disk")->capture_default_str();
  emb->add_option("--batch", eo.batch, "images per encoder call")->capture_default_str();
  emb->add_option("--shard-size", eo.shard_size, "samples per shard (the unit of resume)")->capture_default_str();
  emb->add_option("overrides", emb_overrides, "key.sub=value overrides of the configuration");

  CLI11_PARSE(app, argc, argv);
  return sam::tools::run_main("sam_data", [&]() -> int {
    if (emb->parsed()) {
      auto cfg = sam::train::load_train_config(emb_config, emb_overrides);
      const auto specs = emb_data.empty() ? cfg.data.train : emb_data;
      if (specs.empty()) throw std::invalid_argument(emb_config + ": data.train is empty and no --data given");
      const auto env = sam::train::dist_env_from_environment();
      const auto device = sam::train::process_device(cfg.train.device, env);
      torch::set_num_threads(sam::train::threads_per_process(cfg.train.threads, env));
      auto comm = sam::train::Communicator::create(env, device, cfg.train.dist_backend);
      torch::manual_seed(cfg.train.seed);
      sam::Sam model(cfg.model);
      sam::train::load_initial_weights(model, cfg.init, [&](const std::string& line) {
        if (comm->rank() == 0) sam::log::info(line);
      });
      model->to(device);
      model->eval();
      eo.autocast = sam::train::uses_autocast(cfg.train, device);
      const auto ds = d::make_datasets(specs);
      const auto rep = sam::train::embed_dataset(model, *ds, specs, eo, *comm, device);
      if (comm->rank() == 0)
        std::cout << "embed: " << rep.images << " images in " << rep.shards << " shards of " << eo.out << " ("
                  << rep.shards_written << " written now, " << rep.shards_existing << " already there, "
                  << rep.skipped << " samples skipped)\n";
    } else if (enc->parsed()) {
      const cv::Mat m = d::read_mask_nonzero(rle_in);
      const auto r = sam::mask::rle_encode(m.data, m.rows, m.cols);
      std::cout << sam::mask::rle_to_json(r, true).dump() << "\n";
    } else if (dec->parsed()) {
      const auto r = d::read_rle_json(rle_in, rle_index);
      cv::Mat m(static_cast<int>(r.h), static_cast<int>(r.w), CV_8UC1);
      sam::mask::rle_decode(r, m.data);
      d::image_write(rle_out, m * 255);
    } else if (c2s->parsed()) {
      const auto rep = d::coco_to_sa1b(coco_json, image_dir, out_dir, keep_names, d::log_progress("coco-to-sa1b"));
      print_list("problem: ", rep.problems, all ? SIZE_MAX : 50);
      std::cout << "coco-to-sa1b: " << rep.images << " images, " << rep.masks
                << " masks written to " << out_dir << " (" << rep.crowd_skipped
                << " crowd regions and " << rep.empty_skipped << " empty masks left out, "
                << rep.problems.size() << " problems)\n";
      return rep.problems.empty() ? 0 : 1;
    } else if (val->parsed()) {
      const auto rep = d::validate_sa1b(val_path, vo, d::log_progress("validate"));
      print_list("problem: ", rep.problems, all ? SIZE_MAX : 100);
      print_list("warning: ", rep.warnings, all ? SIZE_MAX : 20);
      std::cout << "validate: " << val_path << ": " << rep.samples << " samples, " << rep.masks
                << " masks, " << rep.images_decoded << " images decoded; " << rep.problems.size()
                << " problems, " << rep.warnings.size()
                << " warnings: " << (rep.ok() ? "OK" : "FAILED") << "\n";
      return rep.ok() ? 0 : 1;
    } else if (syn->parsed()) {
      parse_size(syn_size, so.width, so.height);
      const auto st = d::synth_write(syn_out, so, syn_n, syn_first, syn_png, syn_jobs, d::log_progress("synth"));
      std::cout << "synth: " << st.images << " images, " << st.masks << " masks ("
                << (st.images ? st.masks / double(st.images) : 0) << " per image) in " << syn_out
                << "\n";
    } else if (info->parsed()) {
      const auto ds = d::make_dataset(spec);
      std::cout << ds->describe() << "\n";
      print_list("warning: ", ds->warnings(), 20);
      int64_t anns = 0, crowd = 0, bad = 0;
      for (size_t i = 0; i < ds->size(); ++i) {
        try {
          for (const auto& a : ds->get(i).annotations) anns += 1, crowd += a.iscrowd;
        } catch (const d::DataError& e) {
          ++bad;
          std::cout << "problem: " << e.what() << "\n";
        }
      }
      std::cout << ds->size() << " samples, " << anns << " annotations (" << crowd << " crowd), "
                << bad << " unreadable samples\n";
      return bad ? 1 : 0;
    } else if (show->parsed()) {
      const auto ds = d::make_dataset(spec);
      const d::Sample s = ds->get(show_index);
      cv::Mat bgr;
      cv::cvtColor(d::render_overlay(s, s.load_image()), bgr, cv::COLOR_RGB2BGR);
      d::image_write(show_out, bgr);
      std::cout << s.id << ": " << s.annotations.size() << " masks -> " << show_out << "\n";
    } else if (exp->parsed()) {
      const auto problems = d::export_coco(*d::make_dataset(spec), exp_out, exp_root);
      print_list("problem: ", problems, SIZE_MAX);
      std::cout << "export-coco: wrote " << exp_out << "\n";
      return problems.empty() ? 0 : 1;
    } else if (ben->parsed()) {
      sam::log::messages_to_stderr();  // stdout carries the JSON report
      parse_size(bench_size, bo.width, bo.height);
      const auto out =
          d::run_bench(bo, [](const std::string& m) { sam::log::info("bench: " + m); });
      std::cout << out.dump(2) << "\n";
      if (!bench_json.empty()) std::ofstream(bench_json) << out.dump(2) << "\n";
    }
    return 0;
  });
}
