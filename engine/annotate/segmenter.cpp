#include "engine/annotate/segmenter.h"

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cmath>
#include <condition_variable>
#include <deque>
#include <future>
#include <mutex>
#include <thread>

#include <torch/torch.h>

#include "sam/upscale.h"
#include "sam/predictor.h"

namespace sam::annotate {

namespace {

constexpr size_t kMaxPoints = 64;

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

// A cached embedding with the predictor bound to it (coordinate transform, sizes).
struct Embedded {
  Predictor predictor;
  int64_t bytes;
};

// The threads that run clicks through the decoder. Decoding on a few fixed threads rather than on
// whichever HTTP thread took the request keeps the number of OpenMP thread teams (one per calling
// thread, each spinning for a while after its work) bounded, which matters on a 2-core machine.
class DecodePool {
 public:
  explicit DecodePool(int n) {
    for (int i = 0; i < std::max(1, n); ++i) threads_.emplace_back([this] { work(); });
  }
  ~DecodePool() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
  }
  /// Runs `fn` on a pool thread and waits for it; its exception is rethrown here.
  void run(const std::function<void()>& fn) {
    std::packaged_task<void()> task(fn);
    auto done = task.get_future();
    {
      std::lock_guard<std::mutex> lock(mu_);
      queue_.push_back(std::move(task));
    }
    cv_.notify_one();
    done.get();
  }

 private:
  void work() {
    for (;;) {
      std::packaged_task<void()> task;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
        if (stop_ && queue_.empty()) return;
        task = std::move(queue_.front());
        queue_.pop_front();
      }
      task();
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::packaged_task<void()>> queue_;
  std::vector<std::thread> threads_;
  bool stop_ = false;
};

Sam make_model(const std::string& model, const std::string& checkpoint) {
  auto config = model_config_resolve(model);
  torch::manual_seed(0);
  Sam m(config);
  if (!checkpoint.empty()) load_checkpoint(m, checkpoint);
  return m;
}

}  // namespace

struct Segmenter::Impl {
  Impl(const std::string& model, const std::string& checkpoint, LoadImage load,
       SegmenterOptions opts)
      : options(opts),
        name(model),
        proto(make_model(model, checkpoint), torch::Device(opts.device)),
        load_image(std::move(load)),
        pool(opts.decode_slots) {
    torch::NoGradGuard ng;
    dense_pe = proto.model()->prompt_encoder->get_dense_pe();
    cache = std::make_unique<EmbeddingCache<Embedded>>(
        opts.cache_bytes, [this](const std::string& key) { return embed(key); },
        [](const Embedded& e) { return e.bytes; },
        [nice = opts.encoder_nice] {
          // Linux applies nice per thread, and the intra-op threads this thread starts inherit it.
          if (nice != 0) setpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)), nice);
        });
  }

  std::shared_ptr<const Embedded> embed(const std::string& key) {
    int h = 0, w = 0;
    std::vector<uint8_t> rgb = load_image(key, &h, &w);
    if (h <= 0 || w <= 0 || rgb.size() != static_cast<size_t>(h) * w * 3)
      throw std::runtime_error(key + ": the image loader returned inconsistent pixels");
    auto image = torch::from_blob(rgb.data(), {h, w, 3}, torch::kUInt8);
    Predictor bound = proto;  // set_image writes into the predictor: a private copy per image
    bound.set_image(image);
    const auto& emb = bound.embedding();  // the embedding and the decoder's per-image cache
    const int64_t bytes = static_cast<int64_t>(emb.numel()) * static_cast<int64_t>(emb.element_size()) +
                          bound.decoder_cache().bytes();
    return std::make_shared<const Embedded>(Embedded{std::move(bound), bytes});
  }

  // The torch part of a click, on a pool thread: prompt encoder, decoder, upscale, RLE.
  void decode(const Embedded& e, const Prompt& prompt, const std::vector<float>& xy,
              const std::vector<int64_t>& labels, std::chrono::steady_clock::time_point t_start,
              SegmentResult& out);

  SegmenterOptions options;
  std::string name;
  Predictor proto;
  LoadImage load_image;
  torch::Tensor dense_pe;
  DecodePool pool;
  std::unique_ptr<EmbeddingCache<Embedded>> cache;  ///< last: its worker uses the members above
};

Segmenter::Segmenter(const std::string& model, const std::string& checkpoint, LoadImage load_image,
                     SegmenterOptions options)
    : impl_(std::make_unique<Impl>(model, checkpoint, std::move(load_image), options)) {}

Segmenter::~Segmenter() = default;

void Segmenter::prefetch(const std::vector<std::string>& images) {
  impl_->cache->prefetch(images);
}

std::string Segmenter::embedding_state(const std::string& image) const {
  return impl_->cache->state(image);
}

bool Segmenter::wait_embedding(const std::string& image, std::chrono::milliseconds timeout) {
  return impl_->cache->get(image, timeout) != nullptr;
}

CacheStats Segmenter::cache_stats() const {
  return impl_->cache->stats();
}
std::string Segmenter::model_name() const {
  return impl_->name;
}
int Segmenter::img_size() const {
  return impl_->proto.config().img_size;
}

SegmentResult Segmenter::segment(const std::string& image, const Prompt& prompt) {
  const auto t_start = std::chrono::steady_clock::now();
  if (prompt.points.empty() && !prompt.box) throw PromptError("give at least one point or a box");
  if (prompt.points.size() > kMaxPoints)
    throw PromptError("at most " + std::to_string(kMaxPoints) + " points per mask");

  auto entry = impl_->cache->get(image, impl_->options.embed_timeout);
  if (!entry) throw std::runtime_error(image + ": the image embedding is not ready yet");
  const Predictor& p = entry->predictor;
  const auto [H, W] = p.original_size();
  const std::string size = std::to_string(W) + "x" + std::to_string(H);

  std::vector<float> xy;
  std::vector<int64_t> labels;
  for (const auto& pt : prompt.points) {
    if (!std::isfinite(pt.x) || !std::isfinite(pt.y) || pt.x < 0 || pt.y < 0 || pt.x > W ||
        pt.y > H)
      throw PromptError("point (" + std::to_string(pt.x) + ", " + std::to_string(pt.y) +
                        ") is outside the " + size + " image " + image);
    if (pt.label != 0 && pt.label != 1)
      throw PromptError("point label must be 1 (positive) or 0 (negative), got " +
                        std::to_string(pt.label));
    xy.push_back(static_cast<float>(pt.x));
    xy.push_back(static_cast<float>(pt.y));
    labels.push_back(pt.label);
  }
  if (prompt.box) {
    const auto& b = *prompt.box;
    for (double v : b)
      if (!std::isfinite(v)) throw PromptError("box values must be finite numbers");
    if (!(b[0] >= 0 && b[1] >= 0 && b[0] < b[2] && b[1] < b[3] && b[2] <= W && b[3] <= H))
      throw PromptError("box must satisfy 0 <= x0 < x1 <= " + std::to_string(W) +
                        " and 0 <= y0 < y1 <= " + std::to_string(H) + " for " + image);
  }

  SegmentResult out;
  out.height = H;
  out.width = W;
  impl_->pool.run([&] { impl_->decode(*entry, prompt, xy, labels, t_start, out); });
  return out;
}

void Segmenter::Impl::decode(const Embedded& e, const Prompt& prompt, const std::vector<float>& xy,
                             const std::vector<int64_t>& labels,
                             std::chrono::steady_clock::time_point t_start, SegmentResult& out) {
  out.wait_ms = ms_since(t_start);
  const Predictor& p = e.predictor;
  const int64_t H = out.height, W = out.width;
  auto t0 = std::chrono::steady_clock::now();
  torch::NoGradGuard ng;
  Sam model = proto.model();
  torch::Tensor coords, labs, box;
  const auto dev = proto.device();
  if (!xy.empty()) {
    const auto n = static_cast<int64_t>(labels.size());
    coords = p.transform_coords(torch::tensor(xy).view({1, n, 2})).to(dev);
    labs = torch::tensor(labels).view({1, n}).to(dev);
  }
  if (prompt.box) {
    const auto& b = *prompt.box;
    auto t = torch::tensor(std::vector<float>{static_cast<float>(b[0]), static_cast<float>(b[1]),
                                              static_cast<float>(b[2]), static_cast<float>(b[3])});
    box = p.transform_coords(t.view({1, 2, 2})).view({1, 4}).to(dev);
  }
  auto emb = model->prompt_encoder->forward(coords, labs, box, torch::Tensor());
  auto dec = model->mask_decoder->predict_all(p.embedding(), dense_pe, emb.sparse, emb.dense, &p.decoder_cache());
  auto iou = dec.iou[0].to(torch::kCPU).contiguous();  // [4]
  const float* iv = iou.data_ptr<float>();
  std::vector<int64_t> tokens;
  const bool ambiguous = prompt.points.size() == 1 && !prompt.box;
  if (ambiguous) {
    tokens = {1, 2, 3};
    out.best = 0;
    for (int i = 1; i < 3; ++i)
      if (iv[tokens[i]] > iv[tokens[out.best]]) out.best = i;
  } else {
    std::vector<int64_t> multi = {1, 2, 3};
    std::stable_sort(multi.begin(), multi.end(),
                     [&](int64_t a, int64_t b) { return iv[a] > iv[b]; });
    tokens = {0, multi[0], multi[1]};
    out.best = 0;
  }
  auto low = dec.masks.index_select(1, torch::tensor(tokens).to(dev))
                 .to(torch::kCPU, torch::kFloat)
                 .contiguous();  // [1, 3, 4G, 4G]
  out.decode_ms = ms_since(t0);

  // Each candidate at the original size: the reference's two bilinear resizes and "> 0", composed
  // per axis (upscale.h), then run-length encoded.
  const int L = static_cast<int>(low.size(2)), S = proto.config().img_size;
  const auto [ih, iw] = p.input_size();
  std::vector<uint8_t> full(static_cast<size_t>(H * W));
  for (size_t i = 0; i < tokens.size(); ++i) {
    t0 = std::chrono::steady_clock::now();
    upscale_threshold(low.data_ptr<float>() + i * static_cast<size_t>(L) * L, L, S,
                      static_cast<int>(ih), static_cast<int>(iw), static_cast<int>(H),
                      static_cast<int>(W), full.data());
    out.upscale_ms += ms_since(t0);
    t0 = std::chrono::steady_clock::now();
    Candidate c;
    c.rle = mask::rle_encode(full.data(), H, W);
    c.area = static_cast<int64_t>(mask::rle_area(c.rle));
    c.iou = iv[tokens[i]];
    c.token = static_cast<int>(tokens[i]);
    out.candidates.push_back(std::move(c));
    out.rle_ms += ms_since(t0);
  }
}

}  // namespace sam::annotate
