// CPU reference of the flow module (the module runs on the host only): the maps, their inverses
// and log-determinants, the chain rule through them, and the exact score, its divergence and
// Jacobian-vector products of a noised Gaussian mixture. No argument checks (host/src/flow.cpp).
#pragma once

#include <cstdint>
#include <vector>

#include "genai/flow.hpp"

namespace genai::ref {

// A^{-1} and log|det A| of A [d x d] by LU with partial pivoting (LAPACKE dgetrf, dgetri);
// false when A is singular.
bool invert(const std::vector<double>& A, std::int64_t d, std::vector<double>& inv,
            double& log_abs_det);

void flow_forward(const std::vector<FlowMap>& maps, const std::vector<Flow::Inverse>& inverses,
                  std::int64_t d, const double* z, std::int64_t n, double* x, double* logdet);
void flow_inverse(const std::vector<FlowMap>& maps, const std::vector<Flow::Inverse>& inverses,
                  std::int64_t d, const double* x, std::int64_t n, double* z, double* logdet);
void flow_log_prob(const std::vector<FlowMap>& maps, const std::vector<Flow::Inverse>& inverses,
                   std::int64_t d, const double* x, std::int64_t n, double* out, double* grad);

// One row x[d] of the mixture m noised to alpha_bar (components N(sqrt(ab) mu_k,
// ab var_k + 1 - ab)): returns log p(x); writes the score s[d] and tr(ds/dx) (trace) when not
// null, and for each of `probes` vectors v[p*d ..], jv[p*d ..] = (ds/dx) v
// = sum_k r_k (g_k (g_k . v) - v / v_k) - s (s . v). logits: scratch of m.K.
double mixture_row(const GaussianMixture& m, double alpha_bar, const double* x, double* s,
                   double* trace, std::int64_t probes, const double* v, double* jv,
                   std::vector<double>& logits);

}  // namespace genai::ref
