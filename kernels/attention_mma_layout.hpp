// Index maps of the fp16/bf16 tensor-core attention kernel (kernels/attention_mma.cu): the shared
// memory swizzle, the rows each lane hands to ldmatrix, and the elements of the mma.m16n8k16
// fragments. Plain constexpr C++ (no CUDA headers), so tests/attention_test.cpp checks them on
// the host: the swizzle is a bijection without bank conflicts, and ldmatrix through these
// addresses delivers exactly the fragments mma expects.
//
// PTX ISA, mma.m16n8k16 with .f16/.bf16 inputs and .f32 accumulators, g = lane / 4, t = lane % 4:
//   A (16 x 16, row-major), 4 registers of 2 halves: register r, half e holds
//       row g + 8 (r % 2), col 2 t + e + 8 (r / 2)
//   B (16 x 8, "col": B[k][n]), 2 registers: register r, half e holds k = 2 t + e + 8 r, n = g
//   C / D (16 x 8 fp32), 4 values: value e holds row g + 8 (e / 2), col 2 t + e % 2
// ldmatrix.x4 (b16): lanes 8 j .. 8 j + 7 give the row addresses (16 bytes each) of matrix j;
// register j of a lane holds matrix j's row lane / 4, cols 2 (lane % 4) + {0, 1}, or with .trans
// its rows 2 (lane % 4) + {0, 1} of col lane / 4.
#pragma once

namespace genai::cuda::mma_layout {

#if defined(__CUDACC__)
#define GENAI_MMA_HD __host__ __device__
#else
#define GENAI_MMA_HD
#endif

struct RowCol {
  int row, col;
};

// Element offset of (row, col) in a tile of rows x D 16-bit elements (D a multiple of 64): the
// 16-byte chunk col / 8 of each row is stored at chunk (col / 8) ^ (row % 8). Eight consecutive
// rows' chunk c then fall in eight different 16-byte bank groups, so every ldmatrix phase (8
// rows, one chunk each) and every 128-byte cp.async phase (8 chunks of one row) is free of bank
// conflicts, without padding.
GENAI_MMA_HD constexpr int swizzle(int row, int col, int D) {
  return row * D + ((((col >> 3) ^ (row & 7))) << 3) + (col & 7);
}

// The row a lane addresses for ldmatrix.x4 (no .trans) of the A fragment of the 16 x 16 block at
// (m0, k0) of a row-major [m][k] tile: matrices (rows 0-7, k 0-7), (8-15, 0-7), (0-7, 8-15),
// (8-15, 8-15) give registers a0..a3 in mma's order.
GENAI_MMA_HD constexpr RowCol ldsm_a(int lane, int m0, int k0) {
  const int j = lane / 8;
  return {m0 + (j % 2) * 8 + lane % 8, k0 + (j / 2) * 8};
}

// ldmatrix.x4 (no .trans) of B = K^T from a row-major [n][k] tile (K's rows are keys), for the
// two 8-key blocks n0 and n0 + 8 at depth k0: registers {b0, b1} of block n0, then of n0 + 8.
GENAI_MMA_HD constexpr RowCol ldsm_b(int lane, int n0, int k0) {
  const int j = lane / 8;
  return {n0 + (j / 2) * 8 + lane % 8, k0 + (j % 2) * 8};
}

// ldmatrix.x4.trans of B = V from a row-major [k][n] tile (V's rows are keys, its columns the
// head dim), for the two 8-column blocks c0 and c0 + 8 at key depth k0: registers {b0, b1} of
// block c0, then of c0 + 8.
GENAI_MMA_HD constexpr RowCol ldsm_bt(int lane, int k0, int c0) {
  const int j = lane / 8;
  return {k0 + (j % 2) * 8 + lane % 8, c0 + (j / 2) * 8};
}

// Row and column, in its 16 x 8 tile, of accumulator value e (0..3) of a lane.
GENAI_MMA_HD constexpr RowCol acc(int lane, int e) {
  return {lane / 4 + 8 * (e / 2), 2 * (lane % 4) + e % 2};
}

// Row and column of half e of A register r of a lane (the PTX table above).
GENAI_MMA_HD constexpr RowCol a_elem(int lane, int r, int e) {
  return {lane / 4 + 8 * (r % 2), 2 * (lane % 4) + e + 8 * (r / 2)};
}

// (k, n) of half e of B register r of a lane.
GENAI_MMA_HD constexpr RowCol b_elem(int lane, int r, int e) {
  return {2 * (lane % 4) + e + 8 * r, lane / 4};
}

#undef GENAI_MMA_HD

}  // namespace genai::cuda::mma_layout
