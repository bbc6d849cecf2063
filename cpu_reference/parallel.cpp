#include "cpu_reference/parallel.hpp"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <thread>

#if GENAI_WITH_OPENMP
#include <omp.h>
#endif

#if GENAI_HAVE_OPENBLAS_THREADS
extern "C" {
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);
}
#endif

namespace genai::ref {
namespace {

#if GENAI_WITH_OPENMP
constexpr bool kOpenMP = true;
#else
constexpr bool kOpenMP = false;
#endif

// The leading positive number of an environment variable ("4" and "4,2" give 4), else 0.
int env_threads(const char* name) {
  const char* s = std::getenv(name);
  if (s == nullptr) return 0;
  char* end = nullptr;
  const long v = std::strtol(s, &end, 10);
  return end != s && v > 0 && v < 1 << 16 ? static_cast<int>(v) : 0;
}

int environment_threads() {
  static const int n = [] {
    if (const int g = env_threads("GENAI_NUM_THREADS")) return g;
    if (const int o = env_threads("OMP_NUM_THREADS")) return o;
    return std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  }();
  return n;
}

std::atomic<int> chosen_threads{0};

}  // namespace

int num_threads() {
  const int n = chosen_threads.load(std::memory_order_relaxed);
  return n > 0 ? n : environment_threads();
}

void set_num_threads(int n) { chosen_threads.store(std::max(n, 0), std::memory_order_relaxed); }

bool have_openmp() { return kOpenMP; }

#if GENAI_HAVE_OPENBLAS_THREADS
BlasThreads::BlasThreads(int n) : saved_(openblas_get_num_threads()) {
  if (n != saved_) openblas_set_num_threads(n);
}
BlasThreads::~BlasThreads() {
  if (openblas_get_num_threads() != saved_) openblas_set_num_threads(saved_);
}
#else
BlasThreads::BlasThreads(int) {}
BlasThreads::~BlasThreads() = default;
#endif

void run_chunks(std::int64_t chunks, ChunkFn fn, void* context) {
  if (chunks <= 0) return;
  const BlasThreads one(1);
  const int threads = static_cast<int>(std::min<std::int64_t>(num_threads(), chunks));
#if GENAI_WITH_OPENMP
  if (threads > 1) {
    std::exception_ptr error;
    std::mutex error_mutex;
    std::atomic<bool> failed{false};
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1)
    for (std::int64_t c = 0; c < chunks; ++c) {
      if (failed.load(std::memory_order_relaxed)) continue;
      try {
        fn(context, c);
      } catch (...) {
        const std::lock_guard<std::mutex> lock(error_mutex);
        if (!error) error = std::current_exception();
        failed.store(true, std::memory_order_relaxed);
      }
    }
    if (error) std::rethrow_exception(error);
    return;
  }
#else
  (void)threads;
#endif
  for (std::int64_t c = 0; c < chunks; ++c) fn(context, c);
}

}  // namespace genai::ref
