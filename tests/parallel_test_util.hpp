// Helpers of the tests that check the CPU backend's threads (cpu_reference/parallel.hpp): a
// scoped thread count, and a run repeated on several thread counts with its bytes compared.
#pragma once

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "cpu_reference/parallel.hpp"

namespace genai::test {

// The CPU backend on n threads while alive (then back to the environment's count).
struct ScopedThreads {
  explicit ScopedThreads(int n) { ref::set_num_threads(n); }
  ~ScopedThreads() { ref::set_num_threads(0); }
  ScopedThreads(const ScopedThreads&) = delete;
  ScopedThreads& operator=(const ScopedThreads&) = delete;
};

// The thread counts the tests compare: one, the machine's two, and counts that do not divide
// the chunk counts evenly.
inline const std::vector<int> kThreadCounts = {1, 2, 3, 5};

// run() on every count of kThreadCounts; each result (a vector of arithmetic values, or a
// vector of such vectors) must have the same bytes as on one thread.
template <class V>
bool same_bytes(const std::vector<V>& a, const std::vector<V>& b) {
  if constexpr (std::is_arithmetic_v<V>) {
    return a.size() == b.size() &&
           (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(V)) == 0);
  } else {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
      if (!same_bytes(a[i], b[i])) return false;
    return true;
  }
}

template <class F>
void expect_same_on_any_thread_count(F&& run) {
  decltype(run()) one;
  {
    const ScopedThreads t(1);
    one = run();
  }
  for (int n : kThreadCounts) {
    const ScopedThreads t(n);
    EXPECT_TRUE(same_bytes(run(), one)) << "on " << n << " threads";
  }
}

}  // namespace genai::test
