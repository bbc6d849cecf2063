// How the CPU backend uses the machine: threads over independent rows, the BLAS's own threads,
// and instruction-set clones of the hot float loops.
//
// Threads. Work is cut into chunks whose size never depends on the thread count (rows of a
// sampler, tiles of attention, members of a batch); chunks run on OpenMP threads in any order,
// and anything reduced across chunks is combined afterwards in chunk order. So a result is the
// same bits on 1 thread and on 64. Without OpenMP (the build did not find it) the chunks run in
// turn on the calling thread.
//
// The thread count is set_num_threads(n) when called with n >= 1, else GENAI_NUM_THREADS, else
// OMP_NUM_THREADS (its first number), else the machine's cores.
//
// BLAS threads (OpenBLAS): a BLAS call inside parallel_for runs on one BLAS thread, so the two
// thread pools never oversubscribe the cores; the few BLAS / LAPACK calls made outside (one large
// SVD) run under BlasThreads(num_threads()). Both restore OpenBLAS's setting when they end. Other
// CBLAS libraries are left as they are.
#pragma once

#include <cstdint>
#include <type_traits>

namespace genai::ref {

int num_threads();
// n >= 1: the thread count from now on; 0: back to the environment's.
void set_num_threads(int n);
// Whether the build has OpenMP (otherwise every chunk runs on the calling thread).
bool have_openmp();

// While alive: OpenBLAS runs on n threads (restored afterwards); nothing with another BLAS.
class BlasThreads {
 public:
  explicit BlasThreads(int n);
  ~BlasThreads();
  BlasThreads(const BlasThreads&) = delete;
  BlasThreads& operator=(const BlasThreads&) = delete;

 private:
  int saved_ = 0;
};

using ChunkFn = void (*)(void* context, std::int64_t chunk);
// fn(context, c) for every c in [0, chunks), on up to num_threads() threads, BLAS on one thread
// inside. The first exception thrown by a chunk is rethrown after every chunk has stopped.
void run_chunks(std::int64_t chunks, ChunkFn fn, void* context);

// body(c) for every chunk c in [0, chunks).
template <class F>
void parallel_for(std::int64_t chunks, F&& body) {
  using Body = std::remove_reference_t<F>;
  run_chunks(chunks, [](void* b, std::int64_t c) { (*static_cast<Body*>(b))(c); },
             const_cast<void*>(static_cast<const void*>(&body)));
}

// body(begin, end) over [0, n) in chunks of `size` rows (the last one shorter).
template <class F>
void parallel_rows(std::int64_t n, std::int64_t size, F&& body) {
  parallel_for((n + size - 1) / size,
               [&](std::int64_t c) { body(c * size, c * size + size < n ? c * size + size : n); });
}

}  // namespace genai::ref

// GENAI_CPU_CLONES before a function definition: GCC compiles it for x86-64-v4 (AVX-512),
// x86-64-v3 (AVX2 + FMA) and the baseline, and picks the clone at load time. The project builds
// with -ffp-contract=off and without -ffast-math, so every clone does the same IEEE operations
// in the same order: the same bits on any x86-64 (tests/rng_test.cpp and tests/nn_test.cpp check
// the clones' loops against the scalar formulas). GCC inlines only small functions into a clone:
// keep the loop in the cloned function itself ([[gnu::always_inline]] on larger helpers).
// Elsewhere it is empty.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define GENAI_CPU_CLONES \
  __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define GENAI_CPU_CLONES
#endif
