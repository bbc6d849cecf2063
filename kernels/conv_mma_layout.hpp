// Index maps of the implicit-GEMM convolution kernel (kernels/conv.cu): its tile shapes, the
// shared-memory layouts of the A, B and C tiles, which elements each thread copies in, and the
// elements of the tf32 mma.m16n8k8 fragments each lane reads. Plain constexpr C++ (no CUDA
// headers), so tests/conv_mma_layout_test.cpp checks them on the host: every tile element is
// copied once, the fragment reads are free of bank conflicts, and an emulation of mma.sync on
// the registers these maps fill gives the tile's product.
//
// PTX ISA, mma.m16n8k8 with .tf32 inputs and .f32 accumulators, g = lane / 4, t = lane % 4:
//   A (16 x 8, row-major), 4 registers: a_r holds row g + 8 (r % 2), col t + 4 (r / 2)
//   B (8 x 8, "col": B[k][n]), 2 registers: b_r holds k = t + 4 r, n = g
//   C / D (16 x 8 fp32), 4 values: c_e holds row g + 8 (e / 2), col 2 t + e % 2
// The sum over k does not care which real k a k slot holds, as long as A and B agree, nor
// which real row an mma row is, as long as A and C agree. So the kernel renames them: mma row
// i of a 16-row block is tile row 2 (i % 8) + i / 8, k slot j of an 8-deep step is tile k
// 2 (j % 4) + j / 4. A lane's two registers a_0, a_1 (rows g, g + 8) are then tile rows 2 g,
// 2 g + 1, and a_0, a_2 (slots t, t + 4) tile k 2 t, 2 t + 1: neighbours in shared memory, one
// 8-byte load each pair. Likewise b_0, b_1 (k 2 t, 2 t + 1), and c_0, c_2 (rows 2 g, 2 g + 1)
// for the epilogue's 8-byte stores.
#pragma once

namespace genai::cuda::conv_layout {

#if defined(__CUDACC__)
#define GENAI_CONV_HD __host__ __device__
#else
#define GENAI_CONV_HD
#endif

struct RowCol {
  int row, col;
};

// Block tile kBM x kBN of C, kBK deep per pipeline stage; 4 warps, each a 64 x 32 warp tile
// (warp w: rows 64 (w % 2), columns 32 (w / 2)) of 4 x 4 mma tiles.
inline constexpr int kBM = 128, kBN = 64, kBK = 32, kStages = 3;
inline constexpr int kThreads = 128;
inline constexpr int kWarpM = 64, kWarpN = 32;
inline constexpr int kMmaTilesM = kWarpM / 16, kMmaTilesN = kWarpN / 8;

// Shared tiles, in floats. A is stored m-major ([k][m], m contiguous: the forward's and data
// gradient's gathers run along m) or k-major ([m][k]: the weight gradient's run along k); B is
// always k-major ([n][k]); C is staged n-major ([n][m]) for stores that run along m. The
// paddings make the fragment loads free of bank conflicts (the test checks them).
inline constexpr int kLdAm = kBM + 4;  // [k][m]
inline constexpr int kLdAk = kBK + 4;  // [m][k]
inline constexpr int kLdB = kBK + 8;   // [n][k]
inline constexpr int kLdC = kBM + 4;   // [n][m]

GENAI_CONV_HD constexpr int a_tile_floats(bool m_major) { return m_major ? kBK * kLdAm : kBM * kLdAk; }
inline constexpr int kBTileFloats = kBN * kLdB;
inline constexpr int kCTileFloats = kBN * kLdC;

GENAI_CONV_HD constexpr int a_offset(bool m_major, int m, int k) {
  return m_major ? k * kLdAm + m : m * kLdAk + k;
}
GENAI_CONV_HD constexpr int b_offset(int n, int k) { return n * kLdB + k; }
GENAI_CONV_HD constexpr int c_offset(int m, int n) { return n * kLdC + m; }

// ---- copies into shared memory (cp.async, 4 bytes each) ---------------------------------------

// Element i (< a_copies) a thread copies of the A tile, as (m, k): m-major, thread tid owns row
// tid and copies its kBK depths (consecutive threads, consecutive m); k-major, lane tid % 32 is
// the depth and the warp's rows step by 4.
inline constexpr int kACopies = kBM * kBK / kThreads;
inline constexpr int kBCopies = kBN * kBK / kThreads;
GENAI_CONV_HD constexpr RowCol a_copy(bool m_major, int tid, int i) {
  return m_major ? RowCol{tid % kBM, tid / kBM + i * (kThreads / kBM)}
                 : RowCol{tid / kBK + i * (kThreads / kBK), tid % kBK};
}
// Element i (< kBCopies) of the B tile, as (n, k).
GENAI_CONV_HD constexpr RowCol b_copy(int tid, int i) {
  return {tid / kBK + i * (kThreads / kBK), tid % kBK};
}

// ---- tf32 fragments -------------------------------------------------------------------------

// The renaming of the header comment.
GENAI_CONV_HD constexpr int mma_row(int i) { return 2 * (i % 8) + i / 8; }
GENAI_CONV_HD constexpr int mma_k(int j) { return 2 * (j % 4) + j / 4; }

// Tile (row, k) of A register r, (k, n) of B register r, (row, n) of accumulator e of a lane,
// relative to the 16 x 8 (A, C) or 8 x 8 (B) block: the PTX positions above, renamed.
GENAI_CONV_HD constexpr RowCol a_elem(int lane, int r) {
  return {mma_row(lane / 4 + 8 * (r % 2)), mma_k(lane % 4 + 4 * (r / 2))};
}
GENAI_CONV_HD constexpr RowCol b_elem(int lane, int r) { return {mma_k(lane % 4 + 4 * r), lane / 4}; }
GENAI_CONV_HD constexpr RowCol c_elem(int lane, int e) {
  return {mma_row(lane / 4 + 8 * (e / 2)), 2 * (lane % 4) + e % 2};
}

// A's registers come in two 8-byte loads j = 0, 1 from the block at (m0, k0): the load's
// offset, and the registers (first, second) its two floats fill. m-major: rows 2 g, 2 g + 1 at
// depth 2 t + j (registers j pairs (0, 1) and (2, 3)); k-major: depths 2 t, 2 t + 1 of row
// 2 g + j (registers (0, 2) and (1, 3)).
GENAI_CONV_HD constexpr int a_frag_load(bool m_major, int lane, int j, int m0, int k0) {
  return m_major ? a_offset(true, m0 + 2 * (lane / 4), k0 + 2 * (lane % 4) + j)
                 : a_offset(false, m0 + 2 * (lane / 4) + j, k0 + 2 * (lane % 4));
}
GENAI_CONV_HD constexpr RowCol a_load_regs(bool m_major, int j) {
  return m_major ? RowCol{2 * j, 2 * j + 1} : RowCol{j, j + 2};
}
// B's two registers: one 8-byte load of depths 2 t, 2 t + 1 of column n0 + g.
GENAI_CONV_HD constexpr int b_frag_load(int lane, int n0, int k0) {
  return b_offset(n0 + lane / 4, k0 + 2 * (lane % 4));
}
// The epilogue stages accumulators (c_j, c_{j + 2}) (rows 2 g, 2 g + 1 of column 2 t + j) with
// one 8-byte store at this offset, j = 0, 1.
GENAI_CONV_HD constexpr int c_frag_store(int lane, int j, int m0, int n0) {
  return c_offset(m0 + 2 * (lane / 4), n0 + 2 * (lane % 4) + j);
}

// ---- the fp32 (CUDA-core) path --------------------------------------------------------------

// Thread tid accumulates the 8 x 8 outputs (simt_m(tid, i), simt_n(tid, j)).
GENAI_CONV_HD constexpr int simt_m(int tid, int i) { return tid % 16 + 16 * i; }
GENAI_CONV_HD constexpr int simt_n(int tid, int j) { return tid / 16 + 8 * j; }

#undef GENAI_CONV_HD

}  // namespace genai::cuda::conv_layout
