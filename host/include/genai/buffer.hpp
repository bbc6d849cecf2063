// genai::Buffer<T>: an owning array on the host or on a CUDA device, with copy helpers.
// Device buffers are allocated and freed in the order of their context's stream.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "genai/context.hpp"

namespace genai {
namespace detail {
// Implemented in host/src/memory.cpp; byte-level, so this header needs no CUDA headers.
// Device memory is stream-ordered (cudaMallocAsync / cudaFreeAsync on ctx's stream).
void* allocate(const Context& ctx, std::size_t bytes);
void release(const Context& ctx, void* p) noexcept;
// Copies `bytes` between any two places (host<->device, device<->device), ordered on ctx's
// stream and complete when it returns.
void copy_bytes(const Context& ctx, void* dst, Device dst_where, const void* src,
                Device src_where, std::size_t bytes);
void fill_bytes(const Context& ctx, void* dst, Device where, int value, std::size_t bytes);
}  // namespace detail

template <class T>
class Buffer {
 public:
  Buffer() = default;
  // `n` elements on ctx's device (uninitialised).
  Buffer(const Context& ctx, std::size_t n)
      : ctx_(ctx), n_(n),
        p_(static_cast<T*>(detail::allocate(ctx, n * sizeof(T)))) {}
  // A copy of host data on ctx's device.
  Buffer(const Context& ctx, std::span<const T> host) : Buffer(ctx, host.size()) {
    copy_from_host(host);
  }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  Buffer(Buffer&& o) noexcept { swap(o); }
  Buffer& operator=(Buffer&& o) noexcept {
    Buffer(std::move(o)).swap(*this);
    return *this;
  }
  ~Buffer() { detail::release(ctx_, p_); }

  T* data() { return p_; }
  const T* data() const { return p_; }
  std::size_t size() const { return n_; }
  std::size_t bytes() const { return n_ * sizeof(T); }
  Device where() const { return ctx_.device(); }
  const Context& context() const { return ctx_; }

  void copy_from_host(std::span<const T> host) {
    if (host.size() != n_)
      detail::throw_argument("genai::Buffer::copy_from_host", "host", "has ", host.size(),
                             " elements, the buffer ", n_);
    detail::copy_bytes(ctx_, p_, where(), host.data(), Device::CPU, bytes());
  }
  void copy_to_host(std::span<T> host) const {
    if (host.size() != n_)
      detail::throw_argument("genai::Buffer::copy_to_host", "host", "has ", host.size(),
                             " elements, the buffer ", n_);
    detail::copy_bytes(ctx_, host.data(), Device::CPU, p_, where(), bytes());
  }
  std::vector<T> to_host() const {
    std::vector<T> v(n_);
    copy_to_host(v);
    return v;
  }
  // Sets every byte to `value` (0xFF turns floats into NaN: the tests' poison).
  void fill_bytes(int value) { detail::fill_bytes(ctx_, p_, where(), value, bytes()); }

  void swap(Buffer& o) noexcept {
    std::swap(ctx_, o.ctx_);
    std::swap(n_, o.n_);
    std::swap(p_, o.p_);
  }

 private:
  Context ctx_ = Context::cpu();
  std::size_t n_ = 0;
  T* p_ = nullptr;
};

}  // namespace genai
