// The nn tests' oracle: a linear layer and the MLP as plain double loops (no BLAS), on the
// activation formulas of genai/detail/nn.hpp in double, with their backward written out by
// hand. Finite differences check this oracle; the oracle checks the library (CBLAS on the CPU,
// cuBLASLt on the GPU).
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

#include "genai/nn.hpp"

namespace genai::test {

using Vec = std::vector<double>;

inline Vec to_double(const std::vector<float>& v) { return Vec(v.begin(), v.end()); }

// z = x W^T + b (b may be empty), x [N x in], W [out x in].
inline Vec dense_d(std::int64_t N, std::int64_t in, std::int64_t out, const Vec& x, const Vec& W,
                   const Vec& b) {
  Vec z(N * out);
  for (std::int64_t r = 0; r < N; ++r)
    for (std::int64_t o = 0; o < out; ++o) {
      double s = b.empty() ? 0.0 : b[o];
      for (std::int64_t k = 0; k < in; ++k) s += x[r * in + k] * W[o * in + k];
      z[r * out + o] = s;
    }
  return z;
}

inline Vec activate_d(Activation a, const Vec& z) {
  Vec y(z.size());
  for (std::size_t i = 0; i < z.size(); ++i) y[i] = detail::activate(a, z[i]);
  return y;
}

struct LinearGradsD {
  Vec dx, dW, db;
};

// Backward of y = act(x W^T + b) given dy.
inline LinearGradsD linear_backward_d(std::int64_t N, std::int64_t in, std::int64_t out,
                                      const Vec& x, const Vec& W, const Vec& z, Activation a,
                                      const Vec& dy) {
  LinearGradsD g{Vec(N * in, 0.0), Vec(out * in, 0.0), Vec(out, 0.0)};
  for (std::int64_t r = 0; r < N; ++r)
    for (std::int64_t o = 0; o < out; ++o) {
      const double dz = dy[r * out + o] * detail::activate_grad(a, z[r * out + o]);
      g.db[o] += dz;
      for (std::int64_t k = 0; k < in; ++k) {
        g.dW[o * in + k] += dz * x[r * in + k];
        g.dx[r * in + k] += dz * W[o * in + k];
      }
    }
  return g;
}

// The time embedding in double on the float argument (the convention of genai/detail/nn.hpp).
inline Vec time_embedding_d(const std::vector<float>& t, std::int64_t dim,
                            const TimeEmbeddingOptions& o) {
  const std::int64_t N = static_cast<std::int64_t>(t.size()), half = dim / 2;
  Vec e(N * dim, 0.0);
  for (std::int64_t r = 0; r < N; ++r)
    for (std::int64_t c = 0; c < dim; ++c) {
      const detail::TimeColumn col = detail::time_column(c, dim, o.flip_sin_to_cos);
      if (col.i < 0) continue;
      const double a = detail::time_argument(
          t[r], o.scale, detail::time_frequency(col.i, half, o.max_period, o.downscale_freq_shift));
      e[r * dim + c] = col.cosine ? std::cos(a) : std::sin(a);
    }
  return e;
}

// The MLP in double: its parameters per layer, forward with a tape, backward.
struct MlpD {
  MlpOptions opts;
  std::vector<Vec> W, b;
  std::vector<std::int64_t> in, out;
  std::vector<bool> residual;
};

inline MlpD mlp_d(Mlp& m) {
  MlpD d{m.options(), {}, {}, {}, {}, {}};
  std::vector<float> p(m.flat_size());
  detail::copy_bytes(m.context(), p.data(), Device::CPU, m.parameters(), m.context().device(),
                     p.size() * sizeof(float));
  for (const MlpParam& q : m.parameter_list()) {
    Vec v(p.begin() + q.offset, p.begin() + q.offset + q.size);
    if (q.shape.size() == 2) {
      d.W.push_back(v);
      d.out.push_back(q.shape[0]);
      d.in.push_back(q.shape[1]);
      d.residual.push_back(m.is_residual(static_cast<int>(d.W.size()) - 1));
    } else {
      d.b.push_back(v);
    }
  }
  return d;
}

struct MlpTapeD {
  std::vector<Vec> h, z;  // per layer: its input, its pre-activation
};

// x in float (the library's input) or in double (an input computed by an oracle).
template <class X>
inline Vec mlp_forward_d(const MlpD& m, const std::vector<X>& x, const std::vector<float>& t,
                         std::int64_t N, MlpTapeD* tape = nullptr) {
  const std::int64_t xd = m.opts.sizes.front(), td = m.opts.time_embedding_dim;
  Vec h(N * (xd + td));
  const Vec e = td > 0 ? time_embedding_d(t, td, m.opts.time_embedding) : Vec();
  for (std::int64_t r = 0; r < N; ++r) {
    for (std::int64_t c = 0; c < xd; ++c) h[r * (xd + td) + c] = x[r * xd + c];
    for (std::int64_t c = 0; c < td; ++c) h[r * (xd + td) + xd + c] = e[r * td + c];
  }
  const std::size_t L = m.W.size();
  for (std::size_t l = 0; l < L; ++l) {
    const Vec z = dense_d(N, m.in[l], m.out[l], h, m.W[l], m.b[l]);
    if (tape) {
      tape->h.push_back(h);
      tape->z.push_back(z);
    }
    if (l + 1 == L) return z;
    Vec next = activate_d(m.opts.activation, z);
    if (m.residual[l])
      for (std::size_t i = 0; i < next.size(); ++i) next[i] += h[i];
    h = std::move(next);
  }
  return h;
}

// Gradients per layer (dW, db) and dx, from dy.
struct MlpGradsD {
  std::vector<Vec> dW, db;
  Vec dx;
};

inline MlpGradsD mlp_backward_d(const MlpD& m, const MlpTapeD& tape, std::int64_t N,
                                const Vec& dy) {
  const std::size_t L = m.W.size();
  MlpGradsD g{std::vector<Vec>(L), std::vector<Vec>(L), {}};
  Vec dh = dy;  // gradient w.r.t. the current layer's output
  for (std::size_t l = L; l-- > 0;) {
    const Activation a = l + 1 == L ? Activation::None : m.opts.activation;
    LinearGradsD lg =
        linear_backward_d(N, m.in[l], m.out[l], tape.h[l], m.W[l], tape.z[l], a, dh);
    if (m.residual[l])
      for (std::size_t i = 0; i < lg.dx.size(); ++i) lg.dx[i] += dh[i];
    g.dW[l] = std::move(lg.dW);
    g.db[l] = std::move(lg.db);
    dh = std::move(lg.dx);
  }
  const std::int64_t xd = m.opts.sizes.front(), width = m.in[0];
  g.dx.assign(N * xd, 0.0);
  for (std::int64_t r = 0; r < N; ++r)
    for (std::int64_t c = 0; c < xd; ++c) g.dx[r * xd + c] = dh[r * width + c];
  return g;
}

}  // namespace genai::test
