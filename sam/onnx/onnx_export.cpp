// ONNX graphs of SAM written node by node (see onnx_export.h). The decoder follows Meta's
// SamOnnxModel step for step (segment_anything/utils/onnx.py): the same float operations in the
// same order, so its outputs match a file traced from the reference to float rounding.
#include "sam/onnx/onnx_export.h"

#include <onnx/checker.h>
#include <onnx/defs/schema.h>
#include <onnx/onnx_pb.h>
#include <onnx/shape_inference/implementation.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <stdexcept>
#include <variant>

#include <nlohmann/json.hpp>

namespace sam::onnx_export {
namespace {

using I64s = std::vector<int64_t>;
using Dim = std::variant<int64_t, std::string>;  // a fixed size or a named dynamic axis

/// One node attribute.
struct Attr {
  onnx::AttributeProto p;
  Attr(const char* name, int64_t v) {
    p.set_name(name);
    p.set_type(onnx::AttributeProto::INT);
    p.set_i(v);
  }
  Attr(const char* name, int v) : Attr(name, static_cast<int64_t>(v)) {}
  Attr(const char* name, float v) {
    p.set_name(name);
    p.set_type(onnx::AttributeProto::FLOAT);
    p.set_f(v);
  }
  Attr(const char* name, const I64s& v) {
    p.set_name(name);
    p.set_type(onnx::AttributeProto::INTS);
    for (auto x : v) p.add_ints(x);
  }
  Attr(const char* name, const char* s) {
    p.set_name(name);
    p.set_type(onnx::AttributeProto::STRING);
    p.set_s(s);
  }
};

/// A graph under construction: inputs, outputs, initializers and nodes with generated names.
class Graph {
 public:
  Graph(onnx::GraphProto* g, int opset) : g_(g), opset_(opset) {}
  int opset() const { return opset_; }
  int64_t weight_bytes() const { return weight_bytes_; }

  void input(const std::string& name, int elem, const std::vector<Dim>& dims) {
    value_info(g_->add_input(), name, elem, dims);
  }
  /// Declares graph output `name`, computed as `from`.
  void output(const std::string& name, const std::string& from, int elem, const std::vector<Dim>& dims) {
    if (from != name) node("Identity", {from}, {}, name);
    value_info(g_->add_output(), name, elem, dims);
  }

  /// A tensor initializer (float32 or int64), returned by name.
  std::string init(const std::string& name, torch::Tensor t) {
    t = t.detach().to(torch::kCPU).contiguous();
    auto* p = g_->add_initializer();
    p->set_name(name);
    for (auto d : t.sizes()) p->add_dims(d);
    if (t.scalar_type() == torch::kFloat) {
      p->set_data_type(onnx::TensorProto::FLOAT);
    } else if (t.scalar_type() == torch::kLong) {
      p->set_data_type(onnx::TensorProto::INT64);
    } else {
      throw std::invalid_argument("onnx export: tensor " + name + " has an unsupported dtype");
    }
    const size_t bytes = t.numel() * t.element_size();
    p->set_raw_data(std::string(static_cast<const char*>(t.data_ptr()), bytes));
    weight_bytes_ += static_cast<int64_t>(bytes);
    return name;
  }
  /// A 1-D int64 constant (shapes, axes, indices), shared between nodes that use the same values.
  std::string ints(const I64s& v) {
    auto it = ints_.find(v);
    if (it != ints_.end()) return it->second;
    const std::string name = "const_i64_" + std::to_string(ints_.size());
    init(name, torch::tensor(v, torch::kLong));
    return ints_[v] = name;
  }
  /// A scalar int64 constant (a Gather index that drops the axis).
  std::string index(int64_t i) {
    auto it = index_.find(i);
    if (it != index_.end()) return it->second;
    const std::string name = "const_index_" + std::to_string(i < 0 ? 1000 - i : i);
    init(name, torch::tensor(i, torch::kLong));
    return index_[i] = name;
  }
  /// A scalar float32 constant.
  std::string f32(float v) {
    auto it = floats_.find(v);
    if (it != floats_.end()) return it->second;
    const std::string name = "const_f32_" + std::to_string(floats_.size());
    init(name, torch::tensor(v, torch::kFloat));
    return floats_[v] = name;
  }

  /// Adds a node with one output, named `out` or generated; returns the output's name.
  std::string node(const std::string& op, const std::vector<std::string>& inputs,
                   const std::vector<Attr>& attrs = {}, const std::string& out = "") {
    return nodes(op, inputs, 1, attrs, out)[0];
  }
  std::vector<std::string> nodes(const std::string& op, const std::vector<std::string>& inputs, int n_out,
                                 const std::vector<Attr>& attrs = {}, const std::string& out = "") {
    auto* n = g_->add_node();
    n->set_op_type(op);
    n->set_name(op + "_" + std::to_string(counter_));
    for (const auto& i : inputs) n->add_input(i);
    std::vector<std::string> outs;
    for (int k = 0; k < n_out; ++k) {
      outs.push_back(!out.empty() && n_out == 1 ? out : op + "_" + std::to_string(counter_) + "_out" + std::to_string(k));
      n->add_output(outs.back());
    }
    for (const auto& a : attrs) *n->add_attribute() = a.p;
    ++counter_;
    return outs;
  }
  int64_t node_count() const { return g_->node_size(); }

 private:
  static void value_info(onnx::ValueInfoProto* v, const std::string& name, int elem, const std::vector<Dim>& dims) {
    v->set_name(name);
    auto* t = v->mutable_type()->mutable_tensor_type();
    t->set_elem_type(elem);
    auto* shape = t->mutable_shape();
    for (const auto& d : dims) {
      auto* dim = shape->add_dim();
      if (std::holds_alternative<int64_t>(d)) dim->set_dim_value(std::get<int64_t>(d));
      else dim->set_dim_param(std::get<std::string>(d));
    }
  }

  onnx::GraphProto* g_;
  int opset_;
  int64_t counter_ = 0;
  int64_t weight_bytes_ = 0;
  std::map<I64s, std::string> ints_;
  std::map<int64_t, std::string> index_;
  std::map<float, std::string> floats_;
};

constexpr int kFloat = onnx::TensorProto::FLOAT;
constexpr int kInt64 = onnx::TensorProto::INT64;

/// The model's tensors by state-dict name, and the layers built from them.
class Builder {
 public:
  Builder(Graph& g, Sam& model) : g(g) {
    for (auto& [name, t] : state_dict(*model)) sd_.emplace(name, t.detach().to(torch::kCPU, torch::kFloat));
  }

  const torch::Tensor& tensor(const std::string& key) const {
    auto it = sd_.find(key);
    if (it == sd_.end()) throw std::runtime_error("onnx export: the model has no tensor " + key);
    return it->second;
  }
  std::string weight(const std::string& key) { return g.init(key, tensor(key)); }

  // Elementwise and shape helpers.
  std::string add(const std::string& a, const std::string& b) { return g.node("Add", {a, b}); }
  std::string sub(const std::string& a, const std::string& b) { return g.node("Sub", {a, b}); }
  std::string mul(const std::string& a, const std::string& b) { return g.node("Mul", {a, b}); }
  std::string div(const std::string& a, const std::string& b) { return g.node("Div", {a, b}); }
  std::string matmul(const std::string& a, const std::string& b) { return g.node("MatMul", {a, b}); }
  std::string reshape(const std::string& x, const I64s& shape) { return g.node("Reshape", {x, g.ints(shape)}); }
  std::string transpose(const std::string& x, const I64s& perm) {
    return g.node("Transpose", {x}, {Attr("perm", perm)});
  }
  std::string unsqueeze(const std::string& x, const I64s& axes) { return g.node("Unsqueeze", {x, g.ints(axes)}); }
  std::string gather(const std::string& x, int64_t i, int64_t axis) {
    return g.node("Gather", {x, g.index(i)}, {Attr("axis", axis)});
  }
  std::string slice(const std::string& x, const I64s& starts, const I64s& ends, const I64s& axes) {
    return g.node("Slice", {x, g.ints(starts), g.ints(ends), g.ints(axes)});
  }
  std::string cast(const std::string& x, int to) { return g.node("Cast", {x}, {Attr("to", to)}); }
  std::string concat(const std::vector<std::string>& xs, int64_t axis) {
    return g.node("Concat", xs, {Attr("axis", axis)});
  }
  /// The first `n` entries of x's shape (int64 [n]).
  std::string leading_dims(const std::string& x, int64_t n) {
    return slice(g.node("Shape", {x}), {0}, {n}, {0});
  }

  /// x @ W^T + b for torch::nn::Linear `key` on the last axis.
  std::string linear(const std::string& x, const std::string& key) {
    const auto w = g.init(key + ".weight_t", tensor(key + ".weight").t());
    std::string y = matmul(x, w);
    if (sd_.count(key + ".bias")) y = add(y, weight(key + ".bias"));
    return y;
  }
  /// LayerNorm over the last axis.
  std::string layer_norm(const std::string& x, const std::string& key, double eps) {
    const auto w = weight(key + ".weight"), b = weight(key + ".bias");
    if (g.opset() >= 17)
      return g.node("LayerNormalization", {x, w, b}, {Attr("axis", -1), Attr("epsilon", static_cast<float>(eps))});
    const auto mean = g.node("ReduceMean", {x}, {Attr("axes", I64s{-1}), Attr("keepdims", 1)});
    const auto d = sub(x, mean);
    const auto var = g.node("ReduceMean", {mul(d, d)}, {Attr("axes", I64s{-1}), Attr("keepdims", 1)});
    const auto y = div(d, g.node("Sqrt", {add(var, g.f32(static_cast<float>(eps)))}));
    return add(mul(y, w), b);
  }
  /// LayerNorm2d (SAM's, over the channels of NCHW) as the reference computes it.
  std::string layer_norm2d(const std::string& x, const std::string& key, double eps) {
    const auto& w = tensor(key + ".weight");
    const auto wn = g.init(key + ".weight", w.view({-1, 1, 1}));
    const auto bn = g.init(key + ".bias", tensor(key + ".bias").view({-1, 1, 1}));
    const auto u = g.node("ReduceMean", {x}, {Attr("axes", I64s{1}), Attr("keepdims", 1)});
    const auto d = sub(x, u);
    const auto s = g.node("ReduceMean", {g.node("Pow", {d, g.f32(2.0f)})}, {Attr("axes", I64s{1}), Attr("keepdims", 1)});
    const auto y = div(d, g.node("Sqrt", {add(s, g.f32(static_cast<float>(eps)))}));
    return add(mul(wn, y), bn);
  }
  std::string gelu(const std::string& x, bool approximate) {
    if (!approximate) {  // x/2 (1 + erf(x / sqrt 2))
      const auto e = g.node("Erf", {div(x, g.f32(static_cast<float>(std::sqrt(2.0))))});
      return mul(mul(x, g.f32(0.5f)), add(e, g.f32(1.0f)));
    }
    // x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
    const auto x3 = mul(mul(x, x), x);
    const auto inner = mul(add(x, mul(x3, g.f32(0.044715f))), g.f32(static_cast<float>(std::sqrt(2.0 / M_PI))));
    return mul(mul(x, g.f32(0.5f)), add(g.node("Tanh", {inner}), g.f32(1.0f)));
  }
  std::string relu(const std::string& x) { return g.node("Relu", {x}); }
  std::string conv(const std::string& x, const std::string& key, int64_t k, int64_t stride, int64_t pad) {
    std::vector<std::string> in{x, weight(key + ".weight")};
    if (sd_.count(key + ".bias")) in.push_back(weight(key + ".bias"));
    return g.node("Conv", in,
                  {Attr("kernel_shape", I64s{k, k}), Attr("strides", I64s{stride, stride}),
                   Attr("pads", I64s{pad, pad, pad, pad})});
  }
  std::string conv_transpose(const std::string& x, const std::string& key) {
    return g.node("ConvTranspose", {x, weight(key + ".weight"), weight(key + ".bias")},
                  {Attr("kernel_shape", I64s{2, 2}), Attr("strides", I64s{2, 2})});
  }
  /// SAM's MLP (mask_decoder.MLP): linear layers with ReLU between, none after the last.
  std::string mlp(std::string x, const std::string& key, int layers) {
    for (int i = 0; i < layers; ++i) {
      x = linear(x, key + ".layers." + std::to_string(i));
      if (i + 1 < layers) x = relu(x);
    }
    return x;
  }

  Graph& g;

 private:
  std::map<std::string, torch::Tensor> sd_;
};

// ---------------------------------------------------------------------------------------------
// The decoder (SamOnnxModel).

/// The two-way transformer's attention (transformer.Attention): q, k, v [B, N, D] -> [B, Nq, D].
std::string decoder_attention(Builder& b, const std::string& key, const std::string& q, const std::string& k,
                              const std::string& v, int64_t heads, int64_t internal_dim) {
  auto split = [&](const std::string& x) { return b.transpose(b.reshape(x, {0, 0, heads, -1}), {0, 2, 1, 3}); };
  const auto qh = split(b.linear(q, key + ".q_proj"));
  const auto kh = split(b.linear(k, key + ".k_proj"));
  const auto vh = split(b.linear(v, key + ".v_proj"));
  auto attn = b.matmul(qh, b.transpose(kh, {0, 1, 3, 2}));
  attn = b.div(attn, b.g.f32(static_cast<float>(std::sqrt(static_cast<double>(internal_dim / heads)))));
  attn = b.g.node("Softmax", {attn}, {Attr("axis", -1)});
  const auto out = b.reshape(b.transpose(b.matmul(attn, vh), {0, 2, 1, 3}), {0, 0, -1});
  return b.linear(out, key + ".out_proj");
}

struct Decoded {
  std::string masks, iou;  // all tokens' low-res masks [B, M, 4G, 4G] and IoU predictions [B, M]
};

Decoded mask_decoder(Builder& b, const ModelConfig& c, Sam& model, const std::string& image_embeddings,
                     const std::string& sparse, const std::string& dense, bool gelu_approximate) {
  auto& g = b.g;
  const int64_t D = c.prompt_dim, G = c.grid_size(), M = c.num_multimask_outputs + 1;
  const std::string t = "mask_decoder.transformer";
  // Tokens: the IoU token and the mask tokens, then the prompts' embeddings.
  const auto out_tokens = g.init(
      "mask_decoder.output_tokens",
      torch::cat({b.tensor("mask_decoder.iou_token.weight"), b.tensor("mask_decoder.mask_tokens.weight")}, 0)
          .unsqueeze(0));
  const auto tok_shape = b.concat({b.leading_dims(sparse, 1), g.ints({1 + M, D})}, 0);
  const auto tokens = b.concat({g.node("Expand", {out_tokens, tok_shape}), sparse}, 1);
  // src = image embedding (shared by the B prompts) + dense prompt embedding.
  const auto src = b.add(image_embeddings, dense);
  torch::Tensor pe;
  {
    torch::NoGradGuard ng;
    pe = model->prompt_encoder->get_dense_pe().to(torch::kCPU, torch::kFloat);  // [1, D, G, G]
  }
  const auto key_pe = g.init("image_pe_tokens", pe.flatten(2).permute({0, 2, 1}).contiguous());  // [1, HW, D]
  std::string keys = b.transpose(b.reshape(src, {0, D, -1}), {0, 2, 1});
  std::string queries = tokens;
  const std::string& query_pe = tokens;
  const int64_t heads = c.decoder_heads, down = c.attention_downsample_rate;
  for (int i = 0; i < c.decoder_depth; ++i) {
    const std::string l = t + ".layers." + std::to_string(i);
    if (i == 0) {  // skip_first_layer_pe
      queries = decoder_attention(b, l + ".self_attn", queries, queries, queries, heads, D);
    } else {
      const auto q = b.add(queries, query_pe);
      queries = b.add(queries, decoder_attention(b, l + ".self_attn", q, q, queries, heads, D));
    }
    queries = b.layer_norm(queries, l + ".norm1", 1e-5);
    auto q = b.add(queries, query_pe);
    auto k = b.add(keys, key_pe);
    queries = b.add(queries, decoder_attention(b, l + ".cross_attn_token_to_image", q, k, keys, heads, D / down));
    queries = b.layer_norm(queries, l + ".norm2", 1e-5);
    const auto m = b.linear(b.relu(b.linear(queries, l + ".mlp.lin1")), l + ".mlp.lin2");
    queries = b.layer_norm(b.add(queries, m), l + ".norm3", 1e-5);
    q = b.add(queries, query_pe);
    k = b.add(keys, key_pe);
    keys = b.add(keys, decoder_attention(b, l + ".cross_attn_image_to_token", k, q, queries, heads, D / down));
    keys = b.layer_norm(keys, l + ".norm4", 1e-5);
  }
  {
    const auto q = b.add(queries, query_pe);
    const auto k = b.add(keys, key_pe);
    queries = b.add(queries, decoder_attention(b, t + ".final_attn_token_to_image", q, k, keys, heads, D / down));
    queries = b.layer_norm(queries, t + ".norm_final_attn", 1e-5);
  }
  // Heads.
  const auto iou_token_out = b.gather(queries, 0, 1);                     // [B, D]
  const auto mask_tokens_out = b.slice(queries, {1}, {1 + M}, {1});        // [B, M, D]
  auto up = b.reshape(b.transpose(keys, {0, 2, 1}), {0, D, G, G});
  up = b.conv_transpose(up, "mask_decoder.output_upscaling.0");
  up = b.gelu(b.layer_norm2d(up, "mask_decoder.output_upscaling.1", 1e-6), gelu_approximate);
  up = b.gelu(b.conv_transpose(up, "mask_decoder.output_upscaling.3"), gelu_approximate);  // [B, D/8, 4G, 4G]
  std::vector<std::string> hyper;
  for (int64_t i = 0; i < M; ++i) {
    const auto h = b.mlp(b.gather(mask_tokens_out, i, 1), "mask_decoder.output_hypernetworks_mlps." + std::to_string(i), 3);
    hyper.push_back(b.unsqueeze(h, {1}));
  }
  const auto hyper_in = b.concat(hyper, 1);  // [B, M, D/8]
  const auto masks = b.reshape(b.matmul(hyper_in, b.reshape(up, {0, D / 8, -1})), {0, M, 4 * G, 4 * G});
  const auto iou = b.mlp(iou_token_out, "mask_decoder.iou_prediction_head", c.iou_head_depth);
  return {masks, iou};
}

/// Stability score (amg.calculate_stability_score) of logits [.., H, W] at threshold 0: the
/// pixel counts above +offset and above -offset summed in int32, their ratio in float32.
std::string stability(Builder& b, const std::string& masks, float offset) {
  auto count = [&](float thr) {
    const auto above = b.cast(b.g.node("Greater", {masks, b.g.f32(thr)}), onnx::TensorProto::INT32);
    const auto rows = b.g.node("ReduceSum", {above, b.g.ints({-1})}, {Attr("keepdims", 0)});
    return b.cast(b.g.node("ReduceSum", {rows, b.g.ints({-1})}, {Attr("keepdims", 0)}), kFloat);
  };
  return b.div(count(offset), count(-offset));
}

}  // namespace

namespace {

void check_opset(int opset) {
  if (opset < kMinOpset || opset > kMaxOpset)
    throw std::invalid_argument("onnx export: opset " + std::to_string(opset) + " is not supported (" +
                                std::to_string(kMinOpset) + ".." + std::to_string(kMaxOpset) + ")");
}

void start_model(onnx::ModelProto& m, Sam& model, int opset, const std::string& what, const nlohmann::json& options) {
  m.set_ir_version(onnx::IR_VERSION);
  m.set_producer_name("sam-cpp");
  m.set_producer_version("0.1.0");
  m.set_doc_string("Segment Anything " + what + " (sam_export onnx)");
  auto* op = m.add_opset_import();
  op->set_domain("");
  op->set_version(opset);
  auto meta = [&](const std::string& k, const std::string& v) {
    auto* p = m.add_metadata_props();
    p->set_key(k);
    p->set_value(v);
  };
  meta("sam.part", what);
  meta("sam.model_config", model_config_to_json(model->config).dump());
  meta("sam.export_options", options.dump());
  m.mutable_graph()->set_name("sam_" + what);
}

/// Checks the model (onnx's checker, then strict shape inference with type checks) and writes it,
/// moving the weights to `<path>.data` when asked or when the file would reach protobuf's 2 GiB.
ExportSummary finish_model(onnx::ModelProto& m, const Graph& g, const std::string& path, ExternalData external) {
  try {
    onnx::checker::check_model(m);
    onnx::shape_inference::InferShapes(m, onnx::OpSchemaRegistry::Instance(),
                                       onnx::ShapeInferenceOptions(/*check_type=*/true, /*error_mode=*/1,
                                                                   /*data_prop=*/true));
  } catch (const std::exception& e) {
    throw std::runtime_error("onnx export: " + path + " fails onnx's checks: " + e.what());
  }
  ExportSummary s;
  s.nodes = g.node_count();
  s.initializers = m.graph().initializer_size();
  s.weight_bytes = g.weight_bytes();
  s.opset = g.opset();
  const size_t limit = (size_t{1} << 31) - (size_t{64} << 20);
  s.external_data = external == ExternalData::kAlways || (external == ExternalData::kAuto && m.ByteSizeLong() >= limit);
  const std::filesystem::path out(path);
  if (out.has_parent_path()) std::filesystem::create_directories(out.parent_path());
  if (s.external_data) {
    const std::string data_name = out.filename().string() + ".data";
    const auto data_path = out.parent_path() / data_name;
    std::ofstream data(data_path, std::ios::binary | std::ios::trunc);
    if (!data) throw std::runtime_error("onnx export: cannot write " + data_path.string());
    int64_t offset = 0;
    for (auto& t : *m.mutable_graph()->mutable_initializer()) {
      if (t.raw_data().size() < 1024) continue;
      const int64_t pad = (4096 - offset % 4096) % 4096;  // page-aligned, so runtimes can map it
      data << std::string(pad, '\0');
      offset += pad;
      data.write(t.raw_data().data(), static_cast<std::streamsize>(t.raw_data().size()));
      auto kv = [&](const char* k, const std::string& v) {
        auto* e = t.add_external_data();
        e->set_key(k);
        e->set_value(v);
      };
      kv("location", data_name);
      kv("offset", std::to_string(offset));
      kv("length", std::to_string(t.raw_data().size()));
      offset += static_cast<int64_t>(t.raw_data().size());
      t.set_data_location(onnx::TensorProto::EXTERNAL);
      t.clear_raw_data();
    }
    if (!data.flush()) throw std::runtime_error("onnx export: cannot write " + data_path.string());
  }
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f || !m.SerializeToOstream(&f) || !f.flush())
    throw std::runtime_error("onnx export: cannot write " + path);
  f.close();
  if (s.external_data) {  // the checker again, now on the file and its data
    try {
      onnx::checker::check_model(path);
    } catch (const std::exception& e) {
      throw std::runtime_error("onnx export: " + path + " fails onnx's checks: " + e.what());
    }
  }
  return s;
}

}  // namespace

ExportSummary export_decoder(Sam& model, const DecoderOptions& o, const std::string& path, ExternalData external) {
  check_opset(o.opset);
  torch::NoGradGuard ng;
  model->eval();
  const ModelConfig& c = model->config;
  const int64_t D = c.prompt_dim, G = c.grid_size(), S = c.img_size, M = c.num_multimask_outputs + 1;
  onnx::ModelProto m;
  start_model(m, model, o.opset, o.batch_prompts ? "decoder_batch" : "decoder",
              {{"return_single_mask", o.return_single_mask},
               {"use_stability_score", o.use_stability_score},
               {"return_extra_metrics", o.return_extra_metrics},
               {"gelu_approximate", o.gelu_approximate},
               {"batch_prompts", o.batch_prompts},
               {"opset", o.opset}});
  Graph g(m.mutable_graph(), o.opset);
  Builder b(g, model);
  const Dim B = o.batch_prompts ? Dim{std::string("batch")} : Dim{int64_t{1}};
  g.input("image_embeddings", kFloat, {int64_t{1}, D, G, G});
  g.input("point_coords", kFloat, {B, std::string("num_points"), int64_t{2}});
  g.input("point_labels", kFloat, {B, std::string("num_points")});
  g.input("mask_input", kFloat, {B, int64_t{1}, 4 * G, 4 * G});
  g.input("has_mask_input", kFloat, {B});
  g.input("orig_im_size", kFloat, {int64_t{2}});

  // _embed_points: the random-Fourier encoding of (coords + 0.5) / S, zeroed for padding points
  // (label -1), plus the embedding of each point's label.
  auto coords = b.div(b.add("point_coords", g.f32(0.5f)), g.f32(static_cast<float>(S)));
  coords = b.sub(b.mul(g.f32(2.0f), coords), g.f32(1.0f));
  coords = b.mul(g.f32(static_cast<float>(2 * M_PI)),
                 b.matmul(coords, b.weight("prompt_encoder.pe_layer.positional_encoding_gaussian_matrix")));
  auto sparse = b.concat({g.node("Sin", {coords}), g.node("Cos", {coords})}, -1);
  const auto labels = b.unsqueeze("point_labels", {-1});
  auto is = [&](float v) { return b.cast(g.node("Equal", {labels, g.f32(v)}), kFloat); };
  sparse = b.mul(sparse, b.cast(g.node("Not", {g.node("Equal", {labels, g.f32(-1.0f)})}), kFloat));
  sparse = b.add(sparse, b.mul(b.weight("prompt_encoder.not_a_point_embed.weight"), is(-1.0f)));
  for (int i = 0; i < 4; ++i)
    sparse = b.add(sparse, b.mul(b.weight("prompt_encoder.point_embeddings." + std::to_string(i) + ".weight"),
                                 is(static_cast<float>(i))));

  // _embed_masks: has_mask_input * mask_downscaling(mask_input) + (1 - has) * no_mask_embed.
  std::string md = b.conv("mask_input", "prompt_encoder.mask_downscaling.0", 2, 2, 0);
  md = b.gelu(b.layer_norm2d(md, "prompt_encoder.mask_downscaling.1", 1e-6), o.gelu_approximate);
  md = b.conv(md, "prompt_encoder.mask_downscaling.3", 2, 2, 0);
  md = b.gelu(b.layer_norm2d(md, "prompt_encoder.mask_downscaling.4", 1e-6), o.gelu_approximate);
  md = b.conv(md, "prompt_encoder.mask_downscaling.6", 1, 1, 0);
  const auto has = b.reshape("has_mask_input", {-1, 1, 1, 1});
  const auto no_mask = g.init("prompt_encoder.no_mask_embed.weight", b.tensor("prompt_encoder.no_mask_embed.weight").view({1, D, 1, 1}));
  const auto dense = b.add(b.mul(has, md), b.mul(b.sub(g.f32(1.0f), has), no_mask));

  Decoded d = mask_decoder(b, c, model, "image_embeddings", sparse, dense, o.gelu_approximate);
  std::string masks = d.masks, scores = d.iou;
  int64_t out_masks = M;
  if (o.use_stability_score) scores = stability(b, masks, 1.0f);
  if (o.return_single_mask) {
    // select_masks: score = iou + (num_points - 2.5) * [1000, 0, ..]: the single-mask token for
    // three points and more, else the best multimask one.
    const auto n = b.cast(b.gather(g.node("Shape", {"point_coords"}), 1, 0), kFloat);
    std::vector<float> rw(M, 0.0f);
    rw[0] = 1000.0f;
    const auto reweight = g.init("select_masks_reweight", torch::tensor(rw).view({1, M}));
    const auto score = b.add(scores, b.mul(b.sub(n, g.f32(2.5f)), reweight));
    const auto best = g.node("ArgMax", {score}, {Attr("axis", 1), Attr("keepdims", 1)});  // [B, 1]
    const auto idx = g.node("Expand", {b.unsqueeze(best, {2, 3}),
                                       b.concat({b.leading_dims(masks, 1), g.ints({1, 4 * G, 4 * G})}, 0)});
    masks = g.node("GatherElements", {masks, idx}, {Attr("axis", 1)});
    scores = g.node("GatherElements", {scores, best}, {Attr("axis", 1)});
    out_masks = 1;
  }
  // mask_postprocessing: bilinear to S x S, crop to the resized image, bilinear to orig_im_size.
  // The crop follows orig_im_size, as SamOnnxModel computes it in Python; files traced from
  // segment-anything 1.0 (PyPI) have the crop of the export's dummy size baked in (Meta's issue
  // #56, fixed after that release).
  auto resize = [&](const std::string& x, const std::string& hw) {
    const auto sizes = b.concat({b.leading_dims(x, 2), hw}, 0);
    return g.node("Resize", {x, "", "", sizes},
                  {Attr("mode", "linear"), Attr("coordinate_transformation_mode", "pytorch_half_pixel")});
  };
  auto up = resize(masks, g.ints({S, S}));
  const auto longest = g.node("ReduceMax", {"orig_im_size"}, {Attr("keepdims", 0)});
  const auto scaled = b.mul(b.div(g.f32(static_cast<float>(S)), longest), "orig_im_size");
  const auto prepadded = b.cast(g.node("Floor", {b.add(scaled, g.f32(0.5f))}), kInt64);
  up = g.node("Slice", {up, g.ints({0, 0}), prepadded, g.ints({2, 3})});
  up = resize(up, b.cast("orig_im_size", kInt64));

  const Dim H{std::string("height")}, W{std::string("width")};
  g.output("masks", up, kFloat, {B, out_masks, H, W});
  g.output("iou_predictions", scores, kFloat, {B, out_masks});
  if (o.return_extra_metrics) {
    g.output("stability_scores", stability(b, up, 1.0f), kFloat, {B, out_masks});
    const auto fg = b.cast(g.node("Greater", {up, g.f32(0.0f)}), kInt64);
    const auto area = g.node("ReduceSum", {g.node("ReduceSum", {fg, g.ints({-1})}, {Attr("keepdims", 0)}), g.ints({-1})},
                             {Attr("keepdims", 0)});
    g.output("areas", area, kInt64, {B, out_masks});
  }
  g.output("low_res_masks", masks, kFloat, {B, out_masks, 4 * G, 4 * G});
  return finish_model(m, g, path, external);
}

ExportSummary export_encoder(Sam& model, const EncoderOptions& o, const std::string& path, ExternalData external) {
  if (model->config.encoder != "vit")
    throw std::invalid_argument("ONNX export of the image encoder covers SAM's ViT; a " + model->config.encoder +
                                " encoder is not written yet (the decoder exports: leave --encoder out)");
  check_opset(o.opset);
  torch::NoGradGuard ng;
  model->eval();
  const ModelConfig& c = model->config;
  const int64_t S = c.img_size, G = c.grid_size(), C = c.embed_dim, nH = c.num_heads, hd = C / nH;
  onnx::ModelProto m;
  start_model(m, model, o.opset, "encoder", {{"gelu_approximate", o.gelu_approximate}, {"opset", o.opset}});
  Graph g(m.mutable_graph(), o.opset);
  Builder b(g, model);
  const Dim batch{std::string("batch")};
  g.input("x", kFloat, {batch, int64_t{3}, S, S});
  const std::string e = "image_encoder";
  auto x = b.conv("x", e + ".patch_embed.proj", c.patch_size, c.patch_size, 0);
  x = b.add(b.transpose(x, {0, 2, 3, 1}), b.weight(e + ".pos_embed"));  // [b, G, G, C]
  const double scale = 1.0 / std::sqrt(static_cast<double>(hd));
  for (int i = 0; i < c.depth; ++i) {
    const std::string k = e + ".blocks." + std::to_string(i);
    const bool global = std::find(c.global_attn_indexes.begin(), c.global_attn_indexes.end(), i) !=
                        c.global_attn_indexes.end();
    const int64_t ws = global ? 0 : c.window_size;
    const auto shortcut = x;
    auto h = b.layer_norm(x, k + ".norm1", c.layer_norm_eps);
    int64_t Hp = G, n = G;  // padded side, attention side
    if (ws > 0) {
      const int64_t pad = (ws - G % ws) % ws;
      Hp = G + pad;
      n = ws;
      if (pad > 0) h = g.node("Pad", {h, g.ints({0, 0, 0, 0, 0, pad, pad, 0})}, {Attr("mode", "constant")});
      h = b.reshape(h, {-1, Hp / ws, ws, Hp / ws, ws, C});
      h = b.reshape(b.transpose(h, {0, 1, 3, 2, 4, 5}), {-1, ws, ws, C});
    }
    // Attention over n x n tokens with decomposed relative positions (image_encoder.Attention).
    auto qkv = b.reshape(b.linear(h, k + ".attn.qkv"), {-1, n * n, 3, nH, hd});
    qkv = b.reshape(b.transpose(qkv, {2, 0, 3, 1, 4}), {3, -1, n * n, hd});
    const auto q = b.gather(qkv, 0, 0), kk = b.gather(qkv, 1, 0), v = b.gather(qkv, 2, 0);
    auto attn = b.matmul(b.mul(q, g.f32(static_cast<float>(scale))), b.transpose(kk, {0, 2, 1}));
    auto rel = [&](const std::string& table) {  // get_rel_pos for equal query and key sides
      const auto& t = b.tensor(k + ".attn." + table);
      if (t.size(0) != 2 * n - 1)
        throw std::runtime_error("onnx export: " + k + ".attn." + table + " has " + std::to_string(t.size(0)) +
                                 " rows, expected " + std::to_string(2 * n - 1));
      const auto r = torch::arange(n, torch::kLong);
      const auto idx = (r.unsqueeze(1) - r.unsqueeze(0) + (n - 1)).flatten();
      return g.init(k + ".attn." + table + "_gathered", t.index_select(0, idx).view({n, n, hd}));
    };
    const auto r_q = b.reshape(q, {-1, n, n, hd});
    const auto rel_h = g.node("Einsum", {r_q, rel("rel_pos_h")}, {Attr("equation", "bhwc,hkc->bhwk")});
    const auto rel_w = g.node("Einsum", {r_q, rel("rel_pos_w")}, {Attr("equation", "bhwc,wkc->bhwk")});
    attn = b.reshape(attn, {-1, n, n, n, n});
    attn = b.add(b.add(attn, b.unsqueeze(rel_h, {4})), b.unsqueeze(rel_w, {3}));
    attn = g.node("Softmax", {b.reshape(attn, {-1, n * n, n * n})}, {Attr("axis", -1)});
    auto out = b.reshape(b.matmul(attn, v), {-1, nH, n, n, hd});
    out = b.reshape(b.transpose(out, {0, 2, 3, 1, 4}), {-1, n, n, C});
    h = b.linear(out, k + ".attn.proj");
    if (ws > 0) {
      h = b.reshape(h, {-1, Hp / ws, Hp / ws, ws, ws, C});
      h = b.reshape(b.transpose(h, {0, 1, 3, 2, 4, 5}), {-1, Hp, Hp, C});
      if (Hp > G) h = b.slice(h, {0, 0}, {G, G}, {1, 2});
    }
    x = b.add(shortcut, h);
    const auto mlp = b.linear(b.gelu(b.linear(b.layer_norm(x, k + ".norm2", c.layer_norm_eps), k + ".mlp.lin1"),
                                     o.gelu_approximate),
                              k + ".mlp.lin2");
    x = b.add(x, mlp);
  }
  auto y = b.conv(b.transpose(x, {0, 3, 1, 2}), e + ".neck.0", 1, 1, 0);
  y = b.layer_norm2d(y, e + ".neck.1", c.layer_norm_eps);
  y = b.conv(y, e + ".neck.2", 3, 1, 1);
  y = b.layer_norm2d(y, e + ".neck.3", c.layer_norm_eps);
  g.output("image_embeddings", y, kFloat, {batch, int64_t{c.prompt_dim}, G, G});
  return finish_model(m, g, path, external);
}

}  // namespace sam::onnx_export
