// genai::Error and the argument-check helpers every public function uses.
#pragma once

#include <cstdint>
#include <sstream>
#include <stdexcept>
#include <string>

namespace genai {

// Every failure the library reports is a genai::Error, so `catch (const genai::Error&)` catches
// all of them. ArgumentError marks bad input (a caller bug); Error alone marks a failure of the
// machine (CUDA, cuBLAS, cuSOLVER, I/O). std::invalid_argument and std::runtime_error are
// siblings, so one catchable base cannot derive from both: we derive from std::runtime_error.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class ArgumentError : public Error {
 public:
  using Error::Error;
};

// A computation whose inputs were valid ran away: a sampler's states became non-finite (a step
// size past the stability limit, a model returning inf). The message says where (step or level),
// how many rows, and the limit when one is known. The outputs hold the states as they ended.
class DivergenceError : public Error {
 public:
  using Error::Error;
};

namespace detail {

template <class... Parts>
std::string concat(const Parts&... parts) {
  std::ostringstream os;
  os.precision(9);
  (os << ... << parts);
  return os.str();
}

// "genai::entropy: argument 'K' must be >= 1 (got 0)"
template <class... Parts>
[[noreturn]] void throw_argument(const char* fn, const char* arg, const Parts&... what) {
  throw ArgumentError(concat(fn, ": argument '", arg, "' ", what...));
}

inline void require_not_null(const char* fn, const char* arg, const void* p) {
  if (p == nullptr) throw_argument(fn, arg, "must not be null");
}

inline void require_at_least(const char* fn, const char* arg, std::int64_t v, std::int64_t lo) {
  if (v < lo) throw_argument(fn, arg, "must be >= ", lo, " (got ", v, ")");
}

}  // namespace detail
}  // namespace genai
