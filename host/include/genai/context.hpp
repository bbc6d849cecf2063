// genai::Context: where the data of a call lives (CPU, or a CUDA device + stream), and the
// lazily created cuBLAS / cuSOLVER handles of that device. Copies share the same handles.
#pragma once

#include <memory>
#include <string>

#include "genai/config.hpp"
#include "genai/error.hpp"

// The CUDA handle types, declared without CUDA headers (identical to cudaStream_t,
// cublasHandle_t and cusolverDnHandle_t), so this header also serves CPU-only users.
struct CUstream_st;
struct cublasContext;
struct cusolverDnContext;

namespace genai {

enum class Device { CPU, CUDA };

std::string to_string(Device d);

class Context {
 public:
  using Stream = CUstream_st*;  // == cudaStream_t

  // Host pointers, CPU reference implementation.
  static Context cpu();
  // Device pointers on CUDA device `device`, work ordered on `stream` (nullptr: legacy default
  // stream). Throws genai::Error when this build has no CUDA or no such device is usable.
  static Context cuda(int device = 0, Stream stream = nullptr);
  // The first CUDA device when one is usable, the CPU otherwise.
  static Context best_available();
  // "cpu", "cuda" (throws if unusable) or "auto" (best_available); as the CLI's --device.
  static Context from_name(const std::string& name);

  // Number of usable CUDA devices: 0 in a CPU-only build and whenever the runtime reports an
  // error (no driver, driver too old, no device) -- never throws.
  static int cuda_device_count();
  // Why cuda_device_count() is 0, in words ("" when it is not).
  static std::string cuda_unavailable_reason();

  Device device() const { return device_; }
  bool is_cuda() const { return device_ == Device::CUDA; }
  int device_index() const { return index_; }
  Stream stream() const { return stream_; }

  cublasContext* cublas() const;          // created on first use, bound to stream()
  cusolverDnContext* cusolver() const;    // created on first use, bound to stream()
  void synchronize() const;               // waits for stream(); no-op on the CPU
  // Makes this context's device the calling thread's current CUDA device (kernel launches and
  // allocations go there); every launcher calls it first. No-op on the CPU.
  void make_current() const;

 private:
  struct Handles;
  Context(Device d, int index, Stream s);
  Device device_ = Device::CPU;
  int index_ = -1;
  Stream stream_ = nullptr;
  std::shared_ptr<Handles> handles_;
};

}  // namespace genai
