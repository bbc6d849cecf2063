// genai::Mlp: the layer plan, forward / backward over the nn primitives of either backend, the
// flat parameter and gradient buffers, safetensors save / load.
#include <algorithm>
#include <atomic>
#include <cstring>

#include "genai/io.hpp"
#include "genai/nn.hpp"
#include "genai/nvtx.hpp"
#include "host/src/nn_internal.hpp"
#if GENAI_WITH_CUDA
#include "kernels/nn.cuh"
#endif

namespace genai {
namespace {

std::atomic<std::uint64_t> next_model_id{1};

std::int64_t round4(std::int64_t n) { return (n + 3) / 4 * 4; }

constexpr const char* kFormat = "genai.mlp";

std::string join(const std::vector<std::int64_t>& v) {
  std::string s;
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (i) s += ',';
    s += std::to_string(v[i]);
  }
  return s;
}

}  // namespace

Mlp::Mlp(const Context& ctx, MlpOptions opts)
    : ctx_(ctx), opts_(std::move(opts)), id_(next_model_id++) {
  constexpr const char* fn = "genai::Mlp::Mlp";
  if (opts_.sizes.size() < 2)
    detail::throw_argument(fn, "opts.sizes", "needs at least 2 entries {in, out} (got ",
                           opts_.sizes.size(), ")");
  for (const std::int64_t s : opts_.sizes) detail::require_dim(fn, "opts.sizes[i]", s, 1);
  detail::require_activation(fn, "opts.activation", opts_.activation);
  detail::require_dim(fn, "opts.time_embedding_dim", opts_.time_embedding_dim, 0);
  if (opts_.time_embedding_dim > 0)
    detail::require_time_embedding(fn, opts_.time_embedding_dim, opts_.time_embedding);
  const int L = layers();
  std::int64_t offset = 0;
  for (int l = 0; l < L; ++l) {
    const std::int64_t in = l == 0 ? opts_.sizes[0] + opts_.time_embedding_dim : opts_.sizes[l];
    const std::int64_t out = opts_.sizes[l + 1];
    detail::require_dim(fn, "opts.sizes (the first layer's inputs)", in, 1);
    const bool residual = opts_.residual && l >= 1 && l + 1 < L && in == out;
    info_.push_back({in, out, offset, offset + round4(out * in), residual});
    offset += round4(out * in) + round4(out);
    count_ += out * in + out;
  }
  params_ = Buffer<float>(ctx_, static_cast<std::size_t>(offset));
  grads_ = Buffer<float>(ctx_, static_cast<std::size_t>(offset));
  params_.fill_bytes(0);
  grads_.fill_bytes(0);
}

bool Mlp::is_residual(int layer) const {
  if (layer < 0 || layer >= layers())
    detail::throw_argument("genai::Mlp::is_residual", "layer", "must be in [0, ", layers(),
                           ") (got ", layer, ")");
  return info_[layer].residual;
}

std::vector<MlpParam> Mlp::parameter_list() {
  std::vector<MlpParam> list;
  for (int l = 0; l < layers(); ++l) {
    const LayerInfo& i = info_[l];
    const std::string layer = "layers." + std::to_string(l);
    list.push_back({layer + ".weight", params_.data() + i.w_offset, grads_.data() + i.w_offset,
                    i.out * i.in, {i.out, i.in}, i.w_offset});
    list.push_back({layer + ".bias", params_.data() + i.b_offset, grads_.data() + i.b_offset,
                    i.out, {i.out}, i.b_offset});
  }
  return list;
}

void Mlp::init(std::uint64_t seed, Init init) {
  GENAI_NVTX_RANGE("genai::Mlp::init");
  for (int l = 0; l < layers(); ++l) {
    const LayerInfo& i = info_[l];
    init_linear(ctx_, i.out, i.in, params_.data() + i.w_offset, params_.data() + i.b_offset, init,
                seed, static_cast<std::uint32_t>(l));
  }
}

void Mlp::zero_grad() { grads_.fill_bytes(0); }

void Mlp::forward(MlpWorkspace& ws, const float* x, const float* t, std::int64_t batch,
                  float* y) const {
  constexpr const char* fn = "genai::Mlp::forward";
  GENAI_NVTX_RANGE(fn);
  detail::require_at_least(fn, "batch", batch, 0);
  if (opts_.time_embedding_dim == 0 && t)
    detail::throw_argument(fn, "t", "must be null: the model has no time embedding");
  if (batch > 0) {
    detail::require_not_null(fn, "x", x);
    if (opts_.time_embedding_dim > 0) detail::require_not_null(fn, "t", t);
    detail::require_not_null(fn, "y", y);
  }
  const int L = layers();
  const bool gpu = ctx_.is_cuda();
  // (Re)size the workspace: a fresh one, another model's, or too small a batch.
  std::int64_t width = 1;
  for (int l = 1; l < L; ++l) width = std::max(width, info_[l].in);
  if (ws.owner_ != id_ || ws.capacity_ < batch) {
    const std::int64_t C = std::max<std::int64_t>(batch, 1);
    std::int64_t act = 0, pre = 0, mask = 0;
    for (int l = 0; l < L; ++l) {
      act += C * info_[l].in;
      if (l + 1 < L) {
        pre += C * info_[l].out;
        if (gpu) mask += C * detail::relu_mask_ld(info_[l].out) / 32;
      }
    }
    ws = MlpWorkspace();
    ws.act_ = Buffer<float>(ctx_, act);
    ws.pre_ = Buffer<float>(ctx_, std::max<std::int64_t>(pre, 1));
    ws.scratch_ = Buffer<float>(ctx_, 3 * C * width + flat_size());
    ws.scratch_.fill_bytes(0);  // the accumulation scratch's padding stays 0
    if (gpu) {
      ws.mask_ = Buffer<std::uint32_t>(ctx_, std::max<std::int64_t>(mask, 1));
      // cuBLASLt's split-K reduction reads mask bytes back before it writes them
      // (compute-sanitizer initcheck on an H100): they start defined.
      ws.mask_.fill_bytes(0);
#if GENAI_WITH_CUDA
      ws.blas_ = Buffer<std::byte>(ctx_, cuda::kGemmWorkspaceBytes);
      ws.gemm_cache_ = cuda::make_gemm_cache();
#endif
    }
    ws.capacity_ = C;
    ws.owner_ = id_;
  }
  ws.batch_ = batch;
  ws.mask_written_.assign(L, false);
  if (batch == 0) return;

  const std::int64_t C = ws.capacity_;
  const detail::GemmEnv env{ws.blas_.data(), ws.blas_.size(), ws.gemm_cache_.get()};
  float* h = ws.act_.data();
  float* z = ws.pre_.data();
  std::uint32_t* mask = ws.mask_.data();
  detail::run_embed_input(ctx_, {batch, input_dim(), opts_.time_embedding_dim, x, t,
                                 opts_.time_embedding, h});
  for (int l = 0; l < L; ++l) {
    const LayerInfo& i = info_[l];
    const bool last = l + 1 == L;
    const Activation act = last ? Activation::None : opts_.activation;
    // A ReLU layer without a skip needs no z: its output tells relu'(z).
    const bool keep_z = !last && !(act == Activation::ReLU && !i.residual);
    const bool use_mask = gpu && !last && act == Activation::ReLU && !i.residual;
    float* next = last ? y : h + C * i.in;
    bool written = false;
    detail::run_dense_forward(ctx_,
                              {batch, i.in, i.out, h, i.in, params_.data() + i.w_offset,
                               params_.data() + i.b_offset, act, i.residual ? h : nullptr, next,
                               keep_z ? z : nullptr, use_mask ? mask : nullptr, &written},
                              env);
    ws.mask_written_[l] = written;
    h = next;
    if (!last) {
      z += C * i.out;
      if (gpu) mask += C * detail::relu_mask_ld(i.out) / 32;
    }
  }
}

void Mlp::backward(MlpWorkspace& ws, const float* dy, float* dx, bool accumulate) {
  constexpr const char* fn = "genai::Mlp::backward";
  GENAI_NVTX_RANGE(fn);
  if (ws.owner_ != id_)
    detail::throw_argument(fn, "ws", "holds no forward of this model (call forward first)");
  const std::int64_t N = ws.batch_, C = ws.capacity_;
  const int L = layers();
  if (N == 0) {
    if (!accumulate) zero_grad();
    return;
  }
  detail::require_not_null(fn, "dy", dy);
  const detail::GemmEnv env{ws.blas_.data(), ws.blas_.size(), ws.gemm_cache_.get()};
  // Per layer: its input h_l, pre-activation z_l and mask, as forward laid them out.
  std::vector<float*> h(L), z(L);
  std::vector<std::uint32_t*> mask(L);
  {
    float* hp = ws.act_.data();
    float* zp = ws.pre_.data();
    std::uint32_t* mp = ws.mask_.data();
    for (int l = 0; l < L; ++l) {
      h[l] = hp, z[l] = zp, mask[l] = mp;
      hp += C * info_[l].in;
      if (l + 1 < L) {
        zp += C * info_[l].out;
        if (mp) mp += C * detail::relu_mask_ld(info_[l].out) / 32;
      }
    }
  }
  std::int64_t width = 1;
  for (int l = 1; l < L; ++l) width = std::max(width, info_[l].in);
  float* bufs[3] = {ws.scratch_.data(), ws.scratch_.data() + C * width,
                    ws.scratch_.data() + 2 * C * width};
  float* grads = accumulate ? ws.scratch_.data() + 3 * C * width : grads_.data();
  auto free_buffer = [&](const float* a, const float* b) {
    for (float* p : bufs)
      if (p != a && p != b) return p;
    return bufs[0];  // unreachable: three buffers, two excluded at most
  };
  const Activation act = opts_.activation;
  std::vector<bool> bias_done(L, false);
  const float* dz = dy;  // dL/dz of the layer at hand
  float* keep = nullptr;  // dL/dh of its input when that input is also a skip (residual layer)
  for (int l = L - 1; l >= 0; --l) {
    const LayerInfo& i = info_[l];
    const float* W = params_.data() + i.w_offset;
    detail::run_dense_backward_weight(
        ctx_, {N, i.in, i.out, dz, h[l], i.in, grads + i.w_offset,
               bias_done[l] ? nullptr : grads + i.b_offset, false},
        env);
    if (l == 0) {
      if (dx)
        detail::run_dense_backward_input(ctx_,
                                         {N, i.in, i.out, input_dim(), dz, W, nullptr, dx,
                                          Activation::None, nullptr, nullptr, nullptr},
                                         env);
      break;
    }
    const int p = l - 1;  // the hidden layer whose output h[l] is
    const LayerInfo& prev = info_[p];
    // relu' from the output when the layer kept no z (ReLU without a skip).
    const float* zp = act == Activation::ReLU && !prev.residual ? h[l] : z[p];
    float* g = i.residual ? keep : free_buffer(dz, keep);  // the skip's gradient added in place
    if (!prev.residual) {  // dz_p = (dz W (+ skip)) * act'(z_p), db_p fused
      detail::run_dense_backward_input(
          ctx_, {N, i.in, i.out, i.in, dz, W, i.residual ? keep : nullptr, g, act, zp,
                 ws.mask_written_[p] ? mask[p] : nullptr, grads + prev.b_offset},
          env);
      bias_done[p] = true;
      dz = g;
      keep = nullptr;
    } else {  // keep g = dL/dh_p for p's own skip
      detail::run_dense_backward_input(ctx_,
                                       {N, i.in, i.out, i.in, dz, W, i.residual ? keep : nullptr,
                                        g, Activation::None, nullptr, nullptr, nullptr},
                                       env);
      float* d = free_buffer(g, nullptr);
      detail::run_activation_backward(ctx_, act, zp, g, N * i.in, d);
      dz = d;
      keep = g;
    }
  }
  if (accumulate) detail::run_add_into(ctx_, grads_.data(), grads, flat_size());
}

std::map<std::string, std::string> Mlp::metadata() const {
  return {{"format", kFormat},
          {"sizes", join(opts_.sizes)},
          {"activation", to_string(opts_.activation)},
          {"time_embedding_dim", std::to_string(opts_.time_embedding_dim)},
          {"flip_sin_to_cos", opts_.time_embedding.flip_sin_to_cos ? "true" : "false"},
          {"downscale_freq_shift", detail::concat(opts_.time_embedding.downscale_freq_shift)},
          {"max_period", detail::concat(opts_.time_embedding.max_period)},
          {"scale", detail::concat(opts_.time_embedding.scale)},
          {"residual", opts_.residual ? "true" : "false"}};
}

void Mlp::add_tensors(io::Safetensors& st, const std::string& prefix,
                      const std::vector<float>& flat) const {
  if (static_cast<std::int64_t>(flat.size()) != flat_size())
    detail::throw_argument("genai::Mlp::add_tensors", "flat", "has ", flat.size(),
                           " elements, the model's flat_size() is ", flat_size());
  for (int l = 0; l < layers(); ++l) {
    const LayerInfo& i = info_[l];
    const std::string layer = prefix + "layers." + std::to_string(l);
    auto tensor = [&](std::int64_t offset, std::vector<std::int64_t> shape, std::int64_t n) {
      const auto* b = reinterpret_cast<const std::byte*>(flat.data() + offset);
      return io::Array{io::DType::F32, std::move(shape), {b, b + n * sizeof(float)}};
    };
    st.tensors[layer + ".weight"] = tensor(i.w_offset, {i.out, i.in}, i.out * i.in);
    st.tensors[layer + ".bias"] = tensor(i.b_offset, {i.out}, i.out);
  }
}

void Mlp::save(const std::string& path, const std::map<std::string, std::string>& metadata) const {
  constexpr const char* fn = "genai::Mlp::save";
  GENAI_NVTX_RANGE(fn);
  io::Safetensors st;
  st.metadata = this->metadata();
  for (const auto& [k, v] : metadata)
    if (!st.metadata.emplace(k, v).second)
      detail::throw_argument(fn, "metadata", "key '", k, "' is one the model writes itself");
  add_tensors(st, "", params_.to_host());
  io::write_safetensors(path, st);
}

MlpOptions Mlp::options_from_metadata(const std::map<std::string, std::string>& metadata,
                                      const std::string& file) {
  auto fail = [&](const std::string& what) -> Error {
    return Error("genai::Mlp::load: " + file + ": " + what);
  };
  auto meta = [&](const char* key) {
    const auto it = metadata.find(key);
    if (it == metadata.end()) throw fail(std::string("metadata has no '") + key + "'");
    return it->second;
  };
  auto flag = [&](const char* key) {
    const std::string v = meta(key);
    if (v != "true" && v != "false")
      throw fail(std::string("metadata '") + key + "' is '" + v + "', not true or false");
    return v == "true";
  };
  auto number = [&](const char* key) {
    const std::string v = meta(key);
    try {
      std::size_t used = 0;
      const double d = std::stod(v, &used);
      if (used == v.size()) return d;
    } catch (const std::exception&) {
    }
    throw fail(std::string("metadata '") + key + "' is '" + v + "', not a number");
  };
  if (meta("format") != kFormat)
    throw fail("metadata 'format' is '" + meta("format") + "', not '" + kFormat + "'");
  MlpOptions o;
  {
    const std::string sizes = meta("sizes");
    std::size_t at = 0;
    while (at <= sizes.size()) {
      const std::size_t comma = std::min(sizes.find(',', at), sizes.size());
      const std::string item = sizes.substr(at, comma - at);
      if (item.empty() || item.find_first_not_of("0123456789") != std::string::npos ||
          item.size() > 12)
        throw fail("metadata 'sizes' is '" + sizes + "', not a list like 2,128,2");
      o.sizes.push_back(std::stoll(item));
      at = comma + 1;
    }
  }
  try {
    o.activation = activation_from_string(meta("activation"));
  } catch (const ArgumentError& e) {
    throw fail(e.what());
  }
  const double tdim = number("time_embedding_dim");
  if (tdim < 0 || tdim > 1e9 || tdim != static_cast<double>(static_cast<std::int64_t>(tdim)))
    throw fail("metadata 'time_embedding_dim' is not a count");
  o.time_embedding_dim = static_cast<std::int64_t>(tdim);
  o.time_embedding.flip_sin_to_cos = flag("flip_sin_to_cos");
  o.time_embedding.downscale_freq_shift = static_cast<float>(number("downscale_freq_shift"));
  o.time_embedding.max_period = static_cast<float>(number("max_period"));
  o.time_embedding.scale = static_cast<float>(number("scale"));
  o.residual = flag("residual");
  // Validate against a CPU model of these options (no device memory yet).
  try {
    Mlp probe(Context::cpu(), o);
  } catch (const ArgumentError& e) {
    throw fail(std::string("the options in the metadata are not a valid model: ") + e.what());
  }
  return o;
}

std::vector<float> Mlp::read_tensors(const io::Safetensors& st, const std::string& prefix,
                                     const std::string& file) const {
  auto fail = [&](const std::string& what) -> Error {
    return Error("genai::Mlp::load: " + file + ": " + what);
  };
  std::vector<float> flat(flat_size(), 0.0f);
  std::size_t found = 0;
  auto take = [&](const std::string& name, std::int64_t offset,
                  const std::vector<std::int64_t>& shape) {
    const auto it = st.tensors.find(name);
    if (it == st.tensors.end()) throw fail("no tensor '" + name + "'");
    const io::Array& a = it->second;
    if (a.dtype != io::DType::F32)
      throw fail("tensor '" + name + "' has dtype " + io::safetensors_dtype(a.dtype) +
                 ", the model needs F32");
    if (a.shape != shape)
      throw fail("tensor '" + name + "' has shape " + join(a.shape) + ", the model needs " +
                 join(shape));
    std::memcpy(flat.data() + offset, a.bytes.data(), a.bytes.size());
    ++found;
  };
  for (int l = 0; l < layers(); ++l) {
    const LayerInfo& i = info_[l];
    const std::string layer = prefix + "layers." + std::to_string(l);
    take(layer + ".weight", i.w_offset, {i.out, i.in});
    take(layer + ".bias", i.b_offset, {i.out});
  }
  std::size_t under = 0;
  for (const auto& [name, a] : st.tensors) under += name.starts_with(prefix) ? 1 : 0;
  if (under != found)
    throw fail("the file has " + std::to_string(under) + " tensors" +
               (prefix.empty() ? "" : " under '" + prefix + "'") + ", the model " +
               std::to_string(found));
  return flat;
}

Mlp Mlp::load(const Context& ctx, const std::string& path, const std::string& prefix) {
  GENAI_NVTX_RANGE("genai::Mlp::load");
  const io::Safetensors st = io::read_safetensors(path);
  const MlpOptions o = options_from_metadata(st.metadata, path);
  // Every check on the host before anything is allocated on ctx.
  const std::vector<float> host = Mlp(Context::cpu(), o).read_tensors(st, prefix, path);
  Mlp m(ctx, o);
  m.params_.copy_from_host(host);
  return m;
}

}  // namespace genai
