// Helpers of the ODE tests (tests/ode_test.cpp, tests/ode_gpu_test.cu): the kernels' per-row
// loop run on the host in float -- the GPU's arithmetic but for contraction into FMAs and the
// math library's last bits -- and the parity rule for two float runs of it.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "genai/detail/ode.hpp"
#include "genai/ode.hpp"

namespace genai::test {

struct OdeOutputs {
  std::vector<float> y, trajectory;
  OdeStats stats;
};

// detail::ode_row<float> over the rows of y0 [batch x d] with a host-callable
// f(row, t, y, dydt, d): what one GPU thread per row computes.
template <class F>
OdeOutputs float_rows(const F& f, const std::vector<float>& y0, std::int64_t batch, std::int64_t d,
                      double t0, double t1, const OdeOptions& o) {
  OdeOutputs out{y0, std::vector<float>(o.t_eval.size() * y0.size()), {}};
  const auto s = detail::make_ode_setup<float>(batch, d, t0, t1, o, o.t_eval.data(),
                                               out.trajectory.data());
  std::vector<detail::OdeRow<float>> rows(batch);
  detail::with_ode_method(o.method, [&](auto method) {
    constexpr OdeMethod M = decltype(method)::value;
    std::vector<float> w(detail::ode_arrays(M) * d);
    for (std::int64_t r = 0; r < batch; ++r) {
      std::copy_n(out.y.begin() + r * d, d, w.begin());
      detail::ode_row<float, M, 0>(f, s, r, rows[r], w.data());
      std::copy_n(w.begin(), d, out.y.begin() + r * d);
    }
  });
  out.stats = detail::ode_stats("float rows", s, rows.data());
  return out;
}

// Two float runs of the same rows (the device against float_rows): at most `max_off` rows with
// other counts (a decision can flip where an error norm is within rounding of 1), and the
// rows with the same counts within tol * max(1, |want|) in y and every trajectory record.
// Every value of `got` must be finite (an unwritten, poisoned one fails).
inline void expect_same_rows(const OdeOutputs& got, const OdeOutputs& want, std::int64_t batch,
                             std::int64_t d, std::int64_t max_off, double tol) {
  std::vector<bool> same(batch);
  std::int64_t off = 0;
  for (std::int64_t r = 0; r < batch; ++r) {
    same[r] = got.stats.nfev[r] == want.stats.nfev[r] &&
              got.stats.accepted[r] == want.stats.accepted[r] &&
              got.stats.rejected[r] == want.stats.rejected[r];
    off += !same[r];
  }
  EXPECT_LE(off, max_off) << "rows with other step counts";
  auto compare = [&](const std::vector<float>& g, const std::vector<float>& w, const char* what) {
    ASSERT_EQ(g.size(), w.size()) << what;
    for (std::size_t i = 0; i < g.size(); ++i) {
      ASSERT_TRUE(std::isfinite(g[i])) << what << " element " << i << " is " << g[i];
      const std::int64_t r = static_cast<std::int64_t>(i) / d % batch;
      if (same[r]) {
        ASSERT_LE(std::abs(g[i] - w[i]), tol * std::max(1.0f, std::abs(w[i])))
            << what << " element " << i << " (row " << r << ")";
      }
    }
  };
  compare(got.y, want.y, "y");
  compare(got.trajectory, want.trajectory, "trajectory");
}

}  // namespace genai::test
