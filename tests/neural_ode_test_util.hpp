// Helpers of the Neural ODE tests (tests/neural_ode_test.cpp, tests/neural_ode_gpu_test.cpp):
// a small MLP field, the layer run end to end on one context (host data in, host results out),
// and the double-precision oracle -- the MLP of tests/nn_test_util.hpp in double as a
// genai::ode_solve callable -- with the finite-difference gradient of a loss
// L = sum(w * trajectory) through it.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <span>
#include <vector>

#include "genai/neural_ode.hpp"
#include "genai/ode.hpp"
#include "nn_test_util.hpp"
#include "test_util.hpp"

namespace genai::test {

// f_theta: an MLP of widths {d (+ 1), hidden..., d}, tanh (smooth, for finite differences),
// initialised from `seed` (PyTorch's default initialisation).
inline Mlp field(const Context& ctx, std::int64_t d, std::vector<std::int64_t> hidden,
                 NeuralOdeTime time, std::uint64_t seed, Activation act = Activation::Tanh) {
  std::vector<std::int64_t> sizes{d + (time == NeuralOdeTime::Concat ? 1 : 0)};
  sizes.insert(sizes.end(), hidden.begin(), hidden.end());
  sizes.push_back(d);
  Mlp m(ctx, {.sizes = sizes, .activation = act});
  m.init(seed);
  return m;
}

// What one forward and backward of the layer gave, on the host.
struct NodeRun {
  std::vector<float> traj, dh0, grads;  // [T x batch x d], [batch x d], the flat gradients
  NeuralOdeStats forward, backward;
  std::size_t ws_bytes = 0;
};

// forward (h0 [batch x d], ts) then, unless gradient is None, backward with dtraj = w
// [T x batch x d]: every array copied to and from the layer's device, outputs poisoned first.
inline NodeRun run_layer(NeuralOde& layer, const std::vector<float>& h0, std::int64_t batch,
                         const std::vector<double>& ts, const std::vector<float>& w) {
  const Context& ctx = layer.mlp().context();
  const std::int64_t n = batch * layer.dim();
  Buffer<float> h(ctx, std::span<const float>(h0)), traj(ctx, ts.size() * n), dh0(ctx, n);
  poison(traj);
  poison(dh0);
  NeuralOdeWorkspace ws;
  NodeRun r;
  r.forward = layer.forward(ws, h.data(), batch, ts, traj.data());
  r.traj = traj.to_host();
  if (layer.options().gradient != NeuralOdeGradient::None) {
    Buffer<float> dtraj(ctx, std::span<const float>(w));
    r.backward = layer.backward(ws, dtraj.data(), dh0.data());
    r.dh0 = dh0.to_host();
    std::vector<float> g(layer.mlp().flat_size());
    detail::copy_bytes(ctx, g.data(), Device::CPU, layer.mlp().gradients(), ctx.device(),
                       g.size() * sizeof(float));
    r.grads = g;
  }
  r.ws_bytes = ws.bytes();
  return r;
}

// Slice k of a trajectory [T x batch x d] (n = batch d values).
inline std::vector<float> slice(const std::vector<float>& traj, std::size_t k, std::int64_t n) {
  return {traj.begin() + static_cast<std::int64_t>(k) * n,
          traj.begin() + static_cast<std::int64_t>(k + 1) * n};
}

// ---- the double oracle ----------------------------------------------------------------------

// The MLP in double on double inputs x [N x in] (no time embedding).
inline Vec mlp_eval_d(const MlpD& m, const Vec& x, std::int64_t N) {
  Vec h = x;
  const std::size_t L = m.W.size();
  for (std::size_t l = 0;; ++l) {
    const Vec z = dense_d(N, m.in[l], m.out[l], h, m.W[l], m.b[l]);
    if (l + 1 == L) return z;
    Vec next = activate_d(m.opts.activation, z);
    if (m.residual[l])
      for (std::size_t i = 0; i < next.size(); ++i) next[i] += h[i];
    h = std::move(next);
  }
}

// f(h, t) = MLP([h, t]) (or MLP(h)) in double, as a genai::ode_solve callable.
inline OdeFunction oracle_field(const MlpD& m, NeuralOdeTime time, std::int64_t d) {
  return [&m, time, d](const OdeEval& e) {
    const std::int64_t in = d + (time == NeuralOdeTime::Concat ? 1 : 0);
    Vec x(e.n * in);
    for (std::int64_t r = 0; r < e.n; ++r) {
      for (std::int64_t c = 0; c < d; ++c) x[r * in + c] = e.y[r * d + c];
      if (in > d) x[r * in + d] = e.t[r];
    }
    const Vec y = mlp_eval_d(m, x, e.n);
    for (std::int64_t i = 0; i < e.n * d; ++i) e.dydt[i] = y[i];
  };
}

// The trajectory [T x batch x d] of h0 at ts by genai::ode_solve in double with the oracle's
// field and `o` (its t_eval set to ts).
inline Vec oracle_trajectory(const MlpD& m, NeuralOdeTime time, std::int64_t d, const Vec& h0,
                             std::int64_t batch, const std::vector<double>& ts, OdeOptions o) {
  o.t_eval = ts;
  Vec y = h0, traj(ts.size() * h0.size());
  ode_solve(oracle_field(m, time, d), y.data(), batch, d, ts.front(), ts.back(), o, traj.data());
  return traj;
}

// Central differences of L = sum(w * trajectory) in double, step eps: dL/dtheta in the MLP's flat
// layout (padding 0) and dL/dh0.
struct OracleGradients {
  Vec dtheta, dh0;
};
inline OracleGradients oracle_gradients(Mlp& mlp, NeuralOdeTime time, const std::vector<float>& h0,
                                        std::int64_t batch, const std::vector<double>& ts,
                                        const std::vector<float>& w, const OdeOptions& o,
                                        double eps = 1e-6) {
  const std::int64_t d = mlp.output_dim();
  MlpD m = mlp_d(mlp);
  const Vec y0(h0.begin(), h0.end());
  auto loss = [&](const Vec& start) {
    const Vec traj = oracle_trajectory(m, time, d, start, batch, ts, o);
    double s = 0;
    for (std::size_t i = 0; i < traj.size(); ++i) s += w[i] * traj[i];
    return s;
  };
  auto central = [&](double& v, const Vec& start) {
    const double keep = v;
    v = keep + eps;
    const double up = loss(start);
    v = keep - eps;
    const double down = loss(start);
    v = keep;
    return (up - down) / (2 * eps);
  };
  OracleGradients g{Vec(mlp.flat_size(), 0.0), Vec(y0.size())};
  std::size_t layer = 0;
  for (const MlpParam& p : mlp.parameter_list()) {
    Vec& v = p.shape.size() == 2 ? m.W[layer] : m.b[layer];
    for (std::int64_t i = 0; i < p.size; ++i) g.dtheta[p.offset + i] = central(v[i], y0);
    if (p.shape.size() == 1) ++layer;
  }
  Vec start = y0;
  for (std::size_t i = 0; i < start.size(); ++i) g.dh0[i] = central(start[i], start);
  return g;
}

}  // namespace genai::test
