// GENAI_HD marks the formulas both backends run (genai/detail/): __host__ __device__ inline
// under nvcc, plain inline in ordinary C++.
#pragma once

#if defined(__CUDACC__)
#define GENAI_HD __host__ __device__ __forceinline__
#else
#define GENAI_HD inline
#endif
