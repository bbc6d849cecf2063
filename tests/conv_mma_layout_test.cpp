// The implicit-GEMM convolution kernel's index maps (kernels/conv_mma_layout.hpp), checked on
// the host: the copies into shared memory cover each tile element once, without bank
// conflicts; the 8-byte fragment loads and the epilogue's stores are conflict-free; and an
// emulation of mma.sync.m16n8k8 (the PTX ISA's fragment tables) on the registers the loads fill
// gives, through the accumulator map, the product of the tile.
#include <gtest/gtest.h>

#include <array>
#include <set>
#include <vector>

#include "kernels/conv_mma_layout.hpp"

namespace genai {
namespace {

namespace cl = cuda::conv_layout;

int bank(int word) { return word % 32; }

// A warp's 4-byte accesses (one word per lane) need one wavefront when no two lanes hit the same
// bank at different words.
bool conflict_free_32(const std::array<int, 32>& words) {
  for (int a = 0; a < 32; ++a)
    for (int b = a + 1; b < 32; ++b)
      if (bank(words[a]) == bank(words[b]) && words[a] != words[b]) return false;
  return true;
}
// 8-byte accesses go in two phases of 16 lanes; each phase is conflict-free when its 32 words
// fall in distinct banks (or coincide).
bool conflict_free_64(const std::array<int, 32>& first_words) {
  for (int half = 0; half < 2; ++half) {
    std::array<int, 32> words{};
    for (int l = 0; l < 16; ++l) {
      words[2 * l] = first_words[16 * half + l];
      words[2 * l + 1] = first_words[16 * half + l] + 1;
    }
    if (!conflict_free_32(words)) return false;
  }
  return true;
}

TEST(ConvMmaLayout, CopiesCoverEachTileElementOnceWithoutConflicts) {
  for (const bool m_major : {true, false}) {
    std::vector<int> seen(cl::a_tile_floats(m_major), 0);
    for (int tid = 0; tid < cl::kThreads; ++tid)
      for (int i = 0; i < cl::kACopies; ++i) {
        const cl::RowCol rc = cl::a_copy(m_major, tid, i);
        ASSERT_TRUE(rc.row >= 0 && rc.row < cl::kBM && rc.col >= 0 && rc.col < cl::kBK);
        ++seen[cl::a_offset(m_major, rc.row, rc.col)];
      }
    int copied = 0;
    for (int v : seen) {
      ASSERT_LE(v, 1);
      copied += v;
    }
    EXPECT_EQ(copied, cl::kBM * cl::kBK);
    if (m_major)  // the m-major copies give each thread one row (the kernel keeps its entry)
      for (int tid = 0; tid < cl::kThreads; ++tid)
        for (int i = 0; i < cl::kACopies; ++i) ASSERT_EQ(cl::a_copy(true, tid, i).row, tid);
    else  // the k-major copies give each thread one depth per tile
      for (int tid = 0; tid < cl::kThreads; ++tid)
        for (int i = 0; i < cl::kACopies; ++i) ASSERT_EQ(cl::a_copy(false, tid, i).col, tid % cl::kBK);
    for (int w = 0; w < cl::kThreads / 32; ++w)
      for (int i = 0; i < cl::kACopies; ++i) {
        std::array<int, 32> words{};
        for (int l = 0; l < 32; ++l) {
          const cl::RowCol rc = cl::a_copy(m_major, 32 * w + l, i);
          words[l] = cl::a_offset(m_major, rc.row, rc.col);
        }
        EXPECT_TRUE(conflict_free_32(words)) << "A copy " << i << " warp " << w;
      }
  }
  std::vector<int> seen(cl::kBTileFloats, 0);
  for (int tid = 0; tid < cl::kThreads; ++tid)
    for (int i = 0; i < cl::kBCopies; ++i) {
      const cl::RowCol rc = cl::b_copy(tid, i);
      ASSERT_TRUE(rc.row >= 0 && rc.row < cl::kBN && rc.col >= 0 && rc.col < cl::kBK);
      ASSERT_EQ(rc.col, tid % cl::kBK);
      ++seen[cl::b_offset(rc.row, rc.col)];
    }
  int copied = 0;
  for (int v : seen) copied += v;
  EXPECT_EQ(copied, cl::kBN * cl::kBK);
  for (int i = 0; i < cl::kBCopies; ++i) {
    std::array<int, 32> words{};
    for (int l = 0; l < 32; ++l) {
      const cl::RowCol rc = cl::b_copy(l, i);
      words[l] = cl::b_offset(rc.row, rc.col);
    }
    EXPECT_TRUE(conflict_free_32(words)) << "B copy " << i;
  }
}

// Through the loads, each register holds the tile element of the renamed PTX position
// (a_elem / b_elem); every load is 8-byte aligned and conflict-free; and the epilogue's staging
// stores put each accumulator where c_elem says, also conflict-free.
TEST(ConvMmaLayout, FragmentLoadsDeliverTheRenamedElements) {
  for (const bool m_major : {true, false})
    for (int m0 = 0; m0 < cl::kBM; m0 += 16)
      for (int k0 = 0; k0 < cl::kBK; k0 += 8)
        for (int j = 0; j < 2; ++j) {
          std::array<int, 32> words{};
          for (int lane = 0; lane < 32; ++lane) {
            const int off = cl::a_frag_load(m_major, lane, j, m0, k0);
            ASSERT_EQ(off % 2, 0);
            words[lane] = off;
            const cl::RowCol regs = cl::a_load_regs(m_major, j);
            for (int half = 0; half < 2; ++half) {
              const int r = half == 0 ? regs.row : regs.col;
              const cl::RowCol e = cl::a_elem(lane, r);
              ASSERT_EQ(off + half, cl::a_offset(m_major, m0 + e.row, k0 + e.col))
                  << "m_major " << m_major << " lane " << lane << " register " << r;
            }
          }
          EXPECT_TRUE(conflict_free_64(words)) << "A m_major " << m_major << " m0 " << m0 << " j " << j;
        }
  for (int n0 = 0; n0 < cl::kBN; n0 += 8)
    for (int k0 = 0; k0 < cl::kBK; k0 += 8) {
      std::array<int, 32> words{};
      for (int lane = 0; lane < 32; ++lane) {
        const int off = cl::b_frag_load(lane, n0, k0);
        ASSERT_EQ(off % 2, 0);
        words[lane] = off;
        for (int r = 0; r < 2; ++r) {
          const cl::RowCol e = cl::b_elem(lane, r);  // (k, n)
          ASSERT_EQ(off + r, cl::b_offset(n0 + e.col, k0 + e.row)) << "lane " << lane;
        }
      }
      EXPECT_TRUE(conflict_free_64(words)) << "B n0 " << n0;
    }
  for (int m0 = 0; m0 < cl::kBM; m0 += 16)
    for (int n0 = 0; n0 < cl::kBN; n0 += 8)
      for (int j = 0; j < 2; ++j) {
        std::array<int, 32> words{};
        for (int lane = 0; lane < 32; ++lane) {
          const int off = cl::c_frag_store(lane, j, m0, n0);
          ASSERT_EQ(off % 2, 0);
          words[lane] = off;
          const cl::RowCol lo = cl::c_elem(lane, j), hi = cl::c_elem(lane, j + 2);
          ASSERT_EQ(off, cl::c_offset(m0 + lo.row, n0 + lo.col));
          ASSERT_EQ(off + 1, cl::c_offset(m0 + hi.row, n0 + hi.col));
        }
        EXPECT_TRUE(conflict_free_64(words)) << "C m0 " << m0 << " n0 " << n0;
      }
  // The warp tiles cover the block tile once.
  std::set<std::pair<int, int>> cells;
  for (int warp = 0; warp < cl::kThreads / 32; ++warp)
    for (int mt = 0; mt < cl::kMmaTilesM; ++mt)
      for (int nt = 0; nt < cl::kMmaTilesN; ++nt)
        for (int lane = 0; lane < 32; ++lane)
          for (int e = 0; e < 4; ++e) {
            const cl::RowCol c = cl::c_elem(lane, e);
            cells.insert({(warp % 2) * cl::kWarpM + 16 * mt + c.row, (warp / 2) * cl::kWarpN + 8 * nt + c.col});
          }
  EXPECT_EQ(cells.size(), static_cast<std::size_t>(cl::kBM * cl::kBN));
}

// mma.sync.m16n8k8 as the PTX ISA defines it, on registers filled through the kernel's maps:
// D[row][col] = sum_slot A[row][slot] B[slot][col] with A[g + 8 (r % 2)][t + 4 (r / 2)] = a_r,
// B[t + 4 r][g] = b_r, D[g + 8 (e / 2)][2 t + e % 2] = d_e. Mapped back through c_elem, D is the
// product of the 16 x 8 x 8 block of the tiles.
TEST(ConvMmaLayout, EmulatedMmaComputesTheTileProduct) {
  std::vector<double> At(16 * 8), Bt(8 * 8);  // A[m][k], B[k][n], small integers: exact
  for (int i = 0; i < 16 * 8; ++i) At[i] = (i * 7) % 11 - 5;
  for (int i = 0; i < 8 * 8; ++i) Bt[i] = (i * 5) % 13 - 6;
  double a[32][4], b[32][2];
  for (int lane = 0; lane < 32; ++lane) {
    for (int r = 0; r < 4; ++r) {
      const cl::RowCol e = cl::a_elem(lane, r);
      a[lane][r] = At[e.row * 8 + e.col];
    }
    for (int r = 0; r < 2; ++r) {
      const cl::RowCol e = cl::b_elem(lane, r);
      b[lane][r] = Bt[e.row * 8 + e.col];
    }
  }
  double A[16][8], B[8][8];
  for (int lane = 0; lane < 32; ++lane) {
    const int g = lane / 4, t = lane % 4;
    for (int r = 0; r < 4; ++r) A[g + 8 * (r % 2)][t + 4 * (r / 2)] = a[lane][r];
    for (int r = 0; r < 2; ++r) B[t + 4 * r][g] = b[lane][r];
  }
  for (int lane = 0; lane < 32; ++lane)
    for (int e = 0; e < 4; ++e) {
      const int g = lane / 4, t = lane % 4, row = g + 8 * (e / 2), col = 2 * t + e % 2;
      double d = 0;
      for (int slot = 0; slot < 8; ++slot) d += A[row][slot] * B[slot][col];
      const cl::RowCol c = cl::c_elem(lane, e);
      double want = 0;
      for (int k = 0; k < 8; ++k) want += At[c.row * 8 + k] * Bt[k * 8 + c.col];
      ASSERT_EQ(d, want) << "lane " << lane << " accumulator " << e;
    }
}

// The fp32 path: each thread's 8 x 8 outputs, over the block, cover the tile once.
TEST(ConvMmaLayout, SimtThreadsCoverTheTile) {
  std::set<std::pair<int, int>> cells;
  for (int tid = 0; tid < cl::kThreads; ++tid)
    for (int i = 0; i < 8; ++i)
      for (int j = 0; j < 8; ++j) cells.insert({cl::simt_m(tid, i), cl::simt_n(tid, j)});
  EXPECT_EQ(cells.size(), static_cast<std::size_t>(cl::kBM * cl::kBN));
  for (const auto& [m, n] : cells) ASSERT_TRUE(m < cl::kBM && n < cl::kBN);
}

}  // namespace
}  // namespace genai
