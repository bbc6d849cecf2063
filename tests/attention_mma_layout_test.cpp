// The tensor-core attention kernel's index maps (kernels/attention_mma_layout.hpp), checked on
// the host: the shared-memory swizzle is a bijection without bank conflicts, and an emulation of
// ldmatrix delivers the mma.sync fragments.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "kernels/attention_mma_layout.hpp"
#include "test_util.hpp"

namespace genai {
namespace {

namespace ml = cuda::mma_layout;

// The swizzle is a bijection of each [rows][D] tile that keeps 16-byte chunks whole, and the
// accesses the kernel makes never hit one 16-byte bank group twice in a phase: ldmatrix (8 row
// addresses of one matrix) for Q, K and V, and cp.async (8 consecutive chunks, 128 bytes).
TEST(AttentionMmaLayout, SwizzleIsABijectionWithoutBankConflicts) {
  auto group = [](int offset) { return (offset * 2 / 16) % 8; };  // 16-bit elements
  for (int D : {64, 128, 256}) {
    const int rows = 64;
    std::vector<int> seen(rows * D, 0);
    for (int r = 0; r < rows; ++r)
      for (int c = 0; c < D; ++c) {
        const int o = ml::swizzle(r, c, D);
        ASSERT_TRUE(o >= 0 && o < rows * D);
        ++seen[o];
        if (c % 8 == 0) {
          ASSERT_EQ(o % 8, 0);
        } else {
          ASSERT_EQ(o, ml::swizzle(r, c - 1, D) + 1);
        }
      }
    for (int n : seen) ASSERT_EQ(n, 1);
    for (int e = 0; e < rows * D / 8; e += 8) {  // cp.async: thread e writes chunk e
      int used = 0;
      for (int t = e; t < e + 8; ++t) used |= 1 << group(ml::swizzle(t / (D / 8), (t % (D / 8)) * 8, D));
      ASSERT_EQ(used, 0xFF) << "D " << D << " chunk " << e;
    }
    using Map = ml::RowCol (*)(int, int, int);
    for (Map map : {Map{ml::ldsm_a}, Map{ml::ldsm_b}, Map{ml::ldsm_bt}})
      for (int x = 0; x < 64; x += 16)
        for (int y = 0; y < D; y += 16)
          for (int j = 0; j < 4; ++j) {  // matrix j: lanes 8 j .. 8 j + 7
            int used = 0;
            for (int lane = 8 * j; lane < 8 * j + 8; ++lane) {
              const ml::RowCol rc = map(lane, x, y);
              used |= 1 << group(ml::swizzle(rc.row, rc.col, D));
            }
            ASSERT_EQ(used, 0xFF) << "D " << D << " matrix " << j;
          }
  }
}

// ldmatrix.x4 emulated from the PTX ISA's rule: matrix j's rows come from lanes 8 j .. 8 j + 7;
// register j of a lane holds row lane / 4, cols 2 (lane % 4) + e (.trans: row 2 (lane % 4) + e,
// col lane / 4). Returns [lane][register][half].
using Frags = std::vector<std::array<std::array<int, 2>, 4>>;
Frags ldmatrix_x4(const std::vector<int>& tile, int D, ml::RowCol (*map)(int, int, int), int x,
                  int y, bool trans) {
  Frags f(32);
  for (int lane = 0; lane < 32; ++lane)
    for (int j = 0; j < 4; ++j)
      for (int e = 0; e < 2; ++e) {
        const int row = trans ? 2 * (lane % 4) + e : lane / 4;
        const int col = trans ? lane / 4 : 2 * (lane % 4) + e;
        const ml::RowCol start = map(8 * j + row, x, y);
        f[lane][j][e] = tile[ml::swizzle(start.row, start.col + col, D)];
      }
  return f;
}

// Through these row addresses, ldmatrix delivers exactly the mma.m16n8k16 fragments of the PTX
// tables: A = Q (16 x 16 at rows m0, depth k0), B = K^T for key blocks n0 and n0 + 8, and B = V
// (.trans) for column blocks c0 and c0 + 8; and the S accumulators of key blocks 2 kk, 2 kk + 1
// are, element for element, the A operand of the P V mma.
TEST(AttentionMmaLayout, LdmatrixDeliversTheMmaFragments) {
  const int D = 128, rows = 64;
  std::vector<int> tile(rows * D);
  auto id = [&](int r, int c) { return r * 1000 + c; };
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < D; ++c) tile[ml::swizzle(r, c, D)] = id(r, c);
  for (int x = 0; x < rows; x += 16)
    for (int y = 0; y < D; y += 16) {
      const Frags a = ldmatrix_x4(tile, D, ml::ldsm_a, x, y, false);
      const Frags k = ldmatrix_x4(tile, D, ml::ldsm_b, x, y, false);
      const Frags v = ldmatrix_x4(tile, D, ml::ldsm_bt, x, y, true);
      for (int lane = 0; lane < 32; ++lane)
        for (int r = 0; r < 4; ++r)
          for (int e = 0; e < 2; ++e) {
            const ml::RowCol ae = ml::a_elem(lane, r, e);
            ASSERT_EQ(a[lane][r][e], id(x + ae.row, y + ae.col)) << lane << " " << r << " " << e;
            const ml::RowCol be = ml::b_elem(lane, r % 2, e);  // (k, n) of block r / 2
            ASSERT_EQ(k[lane][r][e], id(x + 8 * (r / 2) + be.col, y + be.row));  // K[n][k]
            ASSERT_EQ(v[lane][r][e], id(x + be.row, y + 8 * (r / 2) + be.col));  // V[k][n]
          }
    }
  for (int lane = 0; lane < 32; ++lane)
    for (int r = 0; r < 4; ++r)
      for (int e = 0; e < 2; ++e) {
        const ml::RowCol ae = ml::a_elem(lane, r, e), ce = ml::acc(lane, 2 * (r % 2) + e);
        EXPECT_EQ(ae.row, ce.row);
        EXPECT_EQ(ae.col, ce.col + 8 * (r / 2));
      }
}

}  // namespace
}  // namespace genai
