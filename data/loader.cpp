// The training loader: sharded epoch order, per-sample RNG, worker threads with an in-order
// reorder buffer bounded by `prefetch`.
#include "data/loader.h"

#include <opencv2/core.hpp>

#include <condition_variable>
#include <iostream>
#include <cmath>
#include <map>
#include <mutex>
#include <numeric>
#include <set>
#include <stdexcept>
#include <thread>

#include "data/embedding_store.h"
#include "data/log.h"
#include "data/rng.h"
#include "data/transforms.h"

namespace sam::data {
namespace {

constexpr int kJitterTries = 8;

int64_t shard_len(size_t n, const LoaderOptions& o) {
  const int64_t N = static_cast<int64_t>(n), R = o.world_size;
  if (o.drop_last) return N / R;
  return N > o.rank ? (N - o.rank + R - 1) / R : 0;
}

// round(f n), the slots of a part in every epoch.
size_t mix_slots(const MixPart& m) {
  return static_cast<size_t>(std::llround(m.factor * static_cast<double>(m.end - m.begin)));
}

// The epoch's visits: a permutation of [0, n), or of the multiset `mix` makes of it.
std::vector<uint32_t> epoch_order(size_t n, const LoaderOptions& o, int64_t epoch) {
  std::vector<uint32_t> order;
  if (o.mix.empty()) {
    order.resize(n);
    std::iota(order.begin(), order.end(), 0u);
  } else {
    order.reserve(epoch_length(n, o));
    for (size_t p = 0; p < o.mix.size(); ++p) {
      const MixPart& m = o.mix[p];
      const size_t size = m.end - m.begin, slots = mix_slots(m);
      std::vector<uint32_t> part(size);
      std::iota(part.begin(), part.end(), static_cast<uint32_t>(m.begin));
      size_t left = slots;
      for (; left >= size && size > 0; left -= size) order.insert(order.end(), part.begin(), part.end());
      // The rest: the first `left` of a partial Fisher-Yates shuffle drawn from (seed, epoch, p).
      Rng rng(derive_seed({o.seed, static_cast<uint64_t>(epoch), 0x4D1Cu, static_cast<uint64_t>(p)}));
      for (size_t i = 0; i < left; ++i) {
        std::swap(part[i], part[i + static_cast<size_t>(rng.below(size - i))]);
        order.push_back(part[i]);
      }
    }
  }
  if (o.shuffle) {
    Rng rng(derive_seed({o.seed, static_cast<uint64_t>(epoch), 0x0D0E0Fu}));
    rng.shuffle(order);
  }
  return order;
}

// What a worker produced for one shard position.
struct Result {
  bool ok = false;
  TrainSample sample;
  Problem problem = Problem::other;
  std::string file, message;
};

}  // namespace

nlohmann::json LoaderState::to_json() const {
  return {{"epoch", epoch}, {"position", position}};
}

LoaderState LoaderState::from_json(const nlohmann::json& j) {
  LoaderState s;
  if (!j.is_object() || !j.contains("epoch") || !j.contains("position") ||
      !j["epoch"].is_number_integer() || !j["position"].is_number_integer())
    throw std::invalid_argument("loader state: expected {\"epoch\": int, \"position\": int}, got " +
                                j.dump());
  s.epoch = j["epoch"].get<int64_t>();
  s.position = j["position"].get<int64_t>();
  if (s.epoch < 0 || s.position < 0)
    throw std::invalid_argument("loader state: negative value in " + j.dump());
  return s;
}

int64_t LoaderStats::skipped_total() const {
  int64_t t = 0;
  for (int64_t v : skipped) t += v;
  return t;
}

nlohmann::json LoaderStats::to_json() const {
  nlohmann::json sk = nlohmann::json::object();
  for (int i = 0; i < kProblemCount; ++i)
    if (skipped[size_t(i)]) sk[problem_name(static_cast<Problem>(i))] = skipped[size_t(i)];
  return {{"returned", returned}, {"skipped", sk}};
}

size_t epoch_length(size_t n, const LoaderOptions& o) {
  if (o.mix.empty()) return n;
  size_t at = 0, total = 0;
  for (const auto& m : o.mix) {
    if (m.begin != at || m.end < m.begin)
      throw std::invalid_argument("loader: the weighted parts must cover the dataset's indices in order; part [" +
                                  std::to_string(m.begin) + ", " + std::to_string(m.end) + ") follows " +
                                  std::to_string(at));
    if (!(m.factor > 0) || !std::isfinite(m.factor))
      throw std::invalid_argument("loader: a part's weight must be positive, got " + std::to_string(m.factor));
    at = m.end;
    total += mix_slots(m);
  }
  if (at != n)
    throw std::invalid_argument("loader: the weighted parts cover " + std::to_string(at) + " of " +
                                std::to_string(n) + " samples");
  return total;
}

torch::Tensor chw_tensor(const cv::Mat& rgb, bool pinned) {
  TORCH_CHECK(rgb.type() == CV_8UC3, "chw_tensor: expected an 8-bit 3-channel image");
  torch::Tensor t = torch::empty({3, rgb.rows, rgb.cols}, torch::TensorOptions().dtype(torch::kUInt8).pinned_memory(pinned));
  const size_t plane = size_t(rgb.rows) * size_t(rgb.cols);
  std::vector<cv::Mat> planes;
  for (int c = 0; c < 3; ++c) planes.emplace_back(rgb.rows, rgb.cols, CV_8UC1, t.data_ptr<uint8_t>() + size_t(c) * plane);
  cv::split(rgb, planes);
  return t;
}

torch::Tensor resized_image(const Sample& s, int image_size) {
  const cv::Mat img = s.load_image();
  return chw_tensor(apply_image(img, plan_resize_longest(img.rows, img.cols, image_size)));
}

std::vector<int64_t> shard_indices(size_t dataset_size, const LoaderOptions& o, int64_t epoch) {
  const auto order = epoch_order(dataset_size, o, epoch);
  const int64_t len = shard_len(epoch_length(dataset_size, o), o);
  std::vector<int64_t> out(static_cast<size_t>(len));
  for (int64_t p = 0; p < len; ++p) out[size_t(p)] = order[size_t(p * o.world_size + o.rank)];
  return out;
}

struct Loader::Impl {
  std::shared_ptr<Dataset> ds;
  LoaderOptions o;
  LoaderState start;
  int64_t len = 0;  // shard length

  // Epoch permutations, computed once and shared by the workers (the two newest are kept).
  std::mutex order_mu;
  std::map<int64_t, std::shared_ptr<const std::vector<uint32_t>>> orders;

  // Tickets: seq s is shard position start.position + s, counted across epochs.
  std::mutex mu;
  std::condition_variable cv_work, cv_ready;
  int64_t next_claim = 0;  // next seq a worker will take
  int64_t consumed = 0;    // seq the consumer waits for
  std::map<int64_t, Result> ready;
  bool stop = false;
  std::vector<std::thread> threads;

  // Consumer-side bookkeeping (only touched by next() and the const getters under mu).
  LoaderState last;  // state after the last returned sample
  LoaderStats stats;
  std::set<std::string> logged;
  int64_t skip_run = 0;

  void seq_to_pos(int64_t seq, int64_t& epoch, int64_t& pos) const {
    const int64_t p = start.position + seq;
    epoch = start.epoch + p / len;
    pos = p % len;
  }

  std::shared_ptr<const std::vector<uint32_t>> order_for(int64_t epoch) {
    std::lock_guard<std::mutex> lock(order_mu);
    auto it = orders.find(epoch);
    if (it != orders.end()) return it->second;
    auto v = std::make_shared<const std::vector<uint32_t>>(epoch_order(ds->size(), o, epoch));
    orders[epoch] = v;
    while (orders.size() > 2) orders.erase(orders.begin());
    return v;
  }

  Result process(int64_t seq) {
    int64_t epoch, pos;
    seq_to_pos(seq, epoch, pos);
    const int64_t g = pos * o.world_size + o.rank;
    Result res;
    std::string id;
    try {
      const auto order = order_for(epoch);
      const size_t idx = (*order)[size_t(g)];
      id = ds->sample_id(idx);
      res.file = id;
      Sample s = ds->get(idx);
      res.file = s.annotation_file.empty() ? s.id : s.annotation_file;
      Rng rng(derive_seed({o.seed, static_cast<uint64_t>(epoch), static_cast<uint64_t>(g)}));

      if (o.images_only) {
        // Pixels alone (pre-training): no annotations read, no masks.
        const cv::Mat img = s.load_image();
        const bool flip = o.hflip && rng.chance(0.5);
        const Geometry geo =
            o.random_resized_crop ? plan_random_resized_crop(img.rows, img.cols, o.image_size, o.rrc_min_scale, flip, rng)
            : o.large_scale_jitter ? plan_lsj(img.rows, img.cols, o.image_size, o.lsj_min, o.lsj_max, flip, rng)
                                   : plan_resize_longest(img.rows, img.cols, o.image_size, flip);
        res.sample.image = chw_tensor(apply_image(img, geo), o.pin_memory);
        if (o.embeddings) {  // a teacher's embedding beside the image (distillation)
          res.sample.embedding = o.embeddings->read(image_key(s.image), img.rows, img.cols);
          if (o.pin_memory) res.sample.embedding = res.sample.embedding.pin_memory();
        }
        res.sample.id = s.id;
        res.sample.index = g;
        res.ok = true;
        return res;
      }
      // Usable masks (decoding every RLE string also validates it: a bad one skips the sample).
      const double limit = o.max_mask_area_frac * double(s.height) * double(s.width);
      const double floor = o.min_mask_area_frac * double(s.height) * double(s.width);
      std::vector<mask::Rle> cand;
      for (const Annotation& a : s.annotations) {
        if (a.iscrowd) continue;
        mask::Rle r = a.rle();
        if (r.h != s.height || r.w != s.width)
          throw DataError(Problem::bad_rle, res.file,
                          "mask size " + std::to_string(r.h) + "x" + std::to_string(r.w) +
                              " is not the image's " + std::to_string(s.height) + "x" +
                              std::to_string(s.width));
        const double area = double(mask::rle_area(r));
        if (area <= 0 || area > limit || area < floor) continue;
        cand.push_back(std::move(r));
      }
      if (cand.empty())
        throw DataError(Problem::no_usable_masks, res.file,
                        "image " + s.id + ": no usable mask (" + std::to_string(s.annotations.size()) +
                            " annotations; crowd, empty, < " + std::to_string(o.min_mask_area_frac) +
                            " and > " + std::to_string(o.max_mask_area_frac) +
                            " of the image are dropped)");
      // With an embedding store the image is not decoded: the store checks the sizes instead.
      cv::Mat img;
      if (!o.embeddings) img = s.load_image();
      const int H = o.embeddings ? static_cast<int>(s.height) : img.rows;
      const int W = o.embeddings ? static_cast<int>(s.width) : img.cols;
      if (H <= 0 || W <= 0)
        throw DataError(Problem::size_mismatch, res.file, "image " + s.id + " declares no size");

      for (int attempt = 0; attempt < kJitterTries; ++attempt) {
        const bool flip = o.hflip && rng.chance(0.5);
        const Geometry geo = o.large_scale_jitter
                                 ? plan_lsj(H, W, o.image_size, o.lsj_min, o.lsj_max, flip, rng)
                                 : plan_resize_longest(H, W, o.image_size, flip);
        std::vector<size_t> visit(cand.size());
        std::iota(visit.begin(), visit.end(), size_t(0));
        rng.shuffle(visit);
        const int64_t want = std::min<int64_t>(o.max_masks, int64_t(cand.size()));
        const auto u8 = torch::TensorOptions().dtype(torch::kUInt8).pinned_memory(o.pin_memory);
        torch::Tensor masks = torch::empty({want, geo.canvas_h, geo.canvas_w}, u8);
        const size_t plane = size_t(geo.canvas_h) * geo.canvas_w;
        uint8_t* base = masks.data_ptr<uint8_t>();
        int64_t kept = 0;
        for (size_t v = 0; v < visit.size() && kept < want; ++v)
          if (apply_rle(cand[visit[v]], geo, base + size_t(kept) * plane) > 0) ++kept;
        if (kept == 0) {
          if (!o.large_scale_jitter) break;  // nothing to redraw
          continue;
        }
        if (o.embeddings) {
          res.sample.embedding = o.embeddings->read(image_key(s.image), s.height, s.width);
          if (o.pin_memory) res.sample.embedding = res.sample.embedding.pin_memory();
        } else {
          res.sample.image = chw_tensor(apply_image(img, geo), o.pin_memory);
        }
        res.ok = true;
        res.sample.masks = kept == want ? masks : torch::empty({kept, geo.canvas_h, geo.canvas_w}, u8)
                                                      .copy_(masks.narrow(0, 0, kept));
        res.sample.id = s.id;
        res.sample.index = g;
        return res;
      }
      throw DataError(Problem::empty_after_transform, res.file,
                      "every mask is empty after the transform (" + std::to_string(cand.size()) +
                          " candidates)");
    } catch (const DataError& e) {
      res.problem = e.problem();
      res.file = e.file();
      res.message = e.what();
    } catch (const std::exception& e) {
      res.problem = Problem::other;
      if (res.file.empty()) res.file = id.empty() ? "sample " + std::to_string(g) : id;
      res.message = res.file + ": " + e.what();
    }
    res.ok = false;
    return res;
  }

  void worker() {
    while (true) {
      int64_t seq;
      {
        std::unique_lock<std::mutex> lock(mu);
        cv_work.wait(lock, [&] { return stop || next_claim < consumed + o.prefetch; });
        if (stop) return;
        seq = next_claim++;
      }
      Result r = process(seq);
      {
        std::lock_guard<std::mutex> lock(mu);
        ready.emplace(seq, std::move(r));
      }
      cv_ready.notify_all();
    }
  }
};

Loader::Loader(std::shared_ptr<Dataset> dataset, LoaderOptions options, LoaderState start)
    : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  if (!dataset) throw std::invalid_argument("loader: no dataset");
  const auto& o = options;
  auto bad = [](const std::string& s) { throw std::invalid_argument("loader: " + s); };
  if (o.image_size < 16 || o.image_size > 16384)
    bad("image_size must be 16..16384, got " + std::to_string(o.image_size));
  if (o.max_masks < 1) bad("max_masks must be >= 1");
  if (!(o.max_mask_area_frac > 0 && o.max_mask_area_frac <= 1))
    bad("max_mask_area_frac must be in (0, 1]");
  if (!(o.min_mask_area_frac >= 0 && o.min_mask_area_frac < o.max_mask_area_frac))
    bad("min_mask_area_frac must be in [0, max_mask_area_frac)");
  if (o.large_scale_jitter && !(o.lsj_min > 0 && o.lsj_max >= o.lsj_min))
    bad("need 0 < lsj_min <= lsj_max");
  if (o.random_resized_crop && !o.images_only)
    bad("random_resized_crop is for images without masks (images_only)");
  if (o.random_resized_crop && !(o.rrc_min_scale > 0 && o.rrc_min_scale <= 1))
    bad("rrc_min_scale must be in (0, 1]");
  if (o.embeddings && (o.large_scale_jitter || o.hflip || o.random_resized_crop))
    bad("embeddings are of the unaugmented images: large-scale jitter, crops and flips must be off with them");
  if (o.workers < 0 || o.workers > 256) bad("workers must be 0..256");
  if (o.prefetch < 1) bad("prefetch must be >= 1");
  if (o.world_size < 1 || o.rank < 0 || o.rank >= o.world_size)
    bad("rank " + std::to_string(o.rank) +
        " not in [0, world_size = " + std::to_string(o.world_size) + ")");
  if (dataset->size() >= (size_t(1) << 32))
    bad("datasets of 2^32 samples or more are not supported");
  m.ds = std::move(dataset);
  m.o = options;
  m.len = shard_len(epoch_length(m.ds->size(), m.o), m.o);
  if (m.len <= 0)
    bad("rank " + std::to_string(o.rank) + " of " + std::to_string(o.world_size) +
        " gets no sample of " + m.ds->describe());
  if (start.epoch < 0 || start.position < 0 || start.position > m.len)
    bad("state (epoch " + std::to_string(start.epoch) + ", position " +
        std::to_string(start.position) + ") is outside a shard of " + std::to_string(m.len));
  if (start.position == m.len) start = {start.epoch + 1, 0};
  m.start = start;
  m.last = start;
  if (!m.o.log) m.o.log = [](const std::string& s) { log::warn(s); };
  for (int t = 0; t < m.o.workers; ++t) m.threads.emplace_back([&m] { m.worker(); });
}

Loader::~Loader() {
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->stop = true;
  }
  impl_->cv_work.notify_all();
  for (auto& t : impl_->threads) t.join();
}

TrainSample Loader::next() {
  Impl& m = *impl_;
  while (true) {
    Result r;
    int64_t seq;
    if (m.o.workers == 0) {
      seq = m.consumed;
      r = m.process(seq);
      std::lock_guard<std::mutex> lock(m.mu);
      ++m.consumed;
    } else {
      std::unique_lock<std::mutex> lock(m.mu);
      seq = m.consumed;
      m.cv_ready.wait(lock, [&] { return m.ready.count(seq) > 0; });
      auto it = m.ready.find(seq);
      r = std::move(it->second);
      m.ready.erase(it);
      ++m.consumed;
      lock.unlock();
      m.cv_work.notify_all();
    }
    int64_t epoch, pos;
    m.seq_to_pos(seq, epoch, pos);
    std::lock_guard<std::mutex> lock(m.mu);
    if (r.ok) {
      ++m.stats.returned;
      m.skip_run = 0;
      m.last = pos + 1 == m.len ? LoaderState{epoch + 1, 0} : LoaderState{epoch, pos + 1};
      return std::move(r.sample);
    }
    ++m.stats.skipped[size_t(r.problem)];
    if (m.logged.insert(r.file).second)
      m.o.log("loader: skipping " + r.message + " [" + problem_name(r.problem) + "]");
    if (++m.skip_run >= m.len)
      throw std::runtime_error("loader: no usable sample in a whole epoch of " +
                               std::to_string(m.len) + " samples of " + m.ds->describe() +
                               " (see the skip messages)");
  }
}

LoaderState Loader::state() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->last;
}

LoaderStats Loader::stats() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->stats;
}

int64_t Loader::shard_size() const {
  return impl_->len;
}

}  // namespace sam::data
