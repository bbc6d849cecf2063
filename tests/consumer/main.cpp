// Uses the installed library the way a user would: entropy of a fair coin is one bit.
#include <genai/genai.hpp>

#include <cstdio>

int main() {
  const float p[2] = {0.5f, 0.5f};
  float h = 0;
  genai::entropy(genai::Context::cpu(), p, 1, 2, &h);
  std::printf("genai %s (CUDA %s): H(fair coin) = %.6f bits\n", GENAI_VERSION,
              GENAI_WITH_CUDA ? "on" : "off", h);
  return h > 0.999999f && h < 1.000001f ? 0 : 1;
}
