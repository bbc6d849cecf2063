// The CPU backend's threads (cpu_reference/parallel.hpp): every chunk runs once whatever the
// thread count, a chunk's exception reaches the caller, the thread count can be chosen.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <thread>
#include <vector>

#include "cpu_reference/parallel.hpp"
#include "parallel_test_util.hpp"

namespace genai {
namespace {

TEST(Parallel, EveryChunkRunsOnceOnAnyThreadCount) {
  for (int n : test::kThreadCounts) {
    const test::ScopedThreads t(n);
    EXPECT_EQ(ref::num_threads(), n);
    for (std::int64_t chunks : {0, 1, 2, 7, 100}) {
      std::vector<std::atomic<int>> runs(static_cast<std::size_t>(chunks));
      ref::parallel_for(chunks, [&](std::int64_t c) { ++runs[c]; });
      for (std::int64_t c = 0; c < chunks; ++c) EXPECT_EQ(runs[c], 1) << n << " threads, chunk " << c;
    }
  }
}

// With OpenMP, two chunks on two threads run at the same time on two threads: each chunk waits
// until both have started (a minute at most, so that a build that ran them in turn fails
// instead of hanging). The thread-count tests of the modules therefore compare real multi-thread
// runs with one-thread runs.
TEST(Parallel, TwoThreadsRunTwoChunksAtOnce) {
  if (!ref::have_openmp()) GTEST_SKIP() << "built without OpenMP: chunks run on the calling thread";
  const test::ScopedThreads t(2);
  std::atomic<int> started{0};
  std::thread::id ids[2];
  bool met[2] = {false, false};
  ref::parallel_for(2, [&](std::int64_t c) {
    ids[c] = std::this_thread::get_id();
    ++started;
    const auto until = std::chrono::steady_clock::now() + std::chrono::minutes(1);
    while (started < 2 && std::chrono::steady_clock::now() < until) std::this_thread::yield();
    met[c] = started == 2;
  });
  EXPECT_TRUE(met[0] && met[1]);
  EXPECT_NE(ids[0], ids[1]);
}

TEST(Parallel, RowsAreCutInChunksOfTheGivenSize) {
  const test::ScopedThreads t(3);
  std::vector<std::atomic<int>> seen(103);
  std::atomic<int> chunks{0};
  ref::parallel_rows(103, 10, [&](std::int64_t begin, std::int64_t end) {
    EXPECT_EQ(begin % 10, 0);
    EXPECT_EQ(end, std::min<std::int64_t>(begin + 10, 103));
    for (std::int64_t r = begin; r < end; ++r) ++seen[r];
    ++chunks;
  });
  EXPECT_EQ(chunks, 11);
  for (const auto& s : seen) EXPECT_EQ(s, 1);
}

TEST(Parallel, AChunksExceptionReachesTheCaller) {
  for (int n : test::kThreadCounts) {
    const test::ScopedThreads t(n);
    EXPECT_THROW(ref::parallel_for(50,
                                   [](std::int64_t c) {
                                     if (c == 17) throw std::runtime_error("chunk 17");
                                   }),
                 std::runtime_error);
  }
}

TEST(Parallel, ThreadCountFallsBackToTheEnvironment) {
  const int env = ref::num_threads();
  EXPECT_GE(env, 1);
  {
    const test::ScopedThreads t(env + 2);
    EXPECT_EQ(ref::num_threads(), env + 2);
  }
  EXPECT_EQ(ref::num_threads(), env);
}

}  // namespace
}  // namespace genai
