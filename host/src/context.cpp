// genai::Context, device discovery, and the CUDA/cuBLAS/cuSOLVER status reporting.
#include "genai/context.hpp"

#include <cstdint>
#include <limits>
#include <mutex>

#if GENAI_WITH_CUDA
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cusolverDn.h>

#include "genai/cuda_check.hpp"
#endif

namespace genai {

std::string to_string(Device d) { return d == Device::CPU ? "cpu" : "cuda"; }

struct Context::Handles {
  std::mutex mu;
  cublasContext* cublas = nullptr;
  cusolverDnContext* cusolver = nullptr;
  ~Handles() {
#if GENAI_WITH_CUDA
    if (cublas) cublasDestroy(cublas);
    if (cusolver) cusolverDnDestroy(cusolver);
#endif
  }
};

Context::Context(Device d, int index, Stream s)
    : device_(d), index_(index), stream_(s), handles_(std::make_shared<Handles>()) {}

Context Context::cpu() { return Context(Device::CPU, -1, nullptr); }

#if GENAI_WITH_CUDA

int Context::cuda_device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky error so later calls start clean
    return 0;
  }
  return n;
}

std::string Context::cuda_unavailable_reason() {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    cudaGetLastError();
    return detail::concat("the CUDA runtime reports: ", cudaGetErrorString(e));
  }
  return n == 0 ? "no CUDA device is present" : "";
}

Context Context::cuda(int device, Stream stream) {
  const int n = cuda_device_count();
  if (n == 0)
    throw Error("genai::Context::cuda: no usable CUDA device (" + cuda_unavailable_reason() +
                "); use genai::Context::cpu() or --device cpu");
  if (device < 0 || device >= n)
    detail::throw_argument("genai::Context::cuda", "device", "must be in [0, ", n, ") (got ",
                           device, ")");
  GENAI_CUDA_CHECK(cudaSetDevice(device));
  // Buffers come from the device's stream-ordered pool (cudaMallocAsync). With its default
  // release threshold of 0 every synchronisation hands freed blocks back to the driver, and the
  // next call's scratch buffers pay for fresh allocations; keep them cached instead (as the
  // caching allocators of PyTorch and CuPy do), unless the application set a threshold itself.
  cudaMemPool_t pool = nullptr;
  GENAI_CUDA_CHECK(cudaDeviceGetMemPool(&pool, device));
  std::uint64_t threshold = 0;
  GENAI_CUDA_CHECK(cudaMemPoolGetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &threshold));
  if (threshold == 0) {
    threshold = std::numeric_limits<std::uint64_t>::max();
    GENAI_CUDA_CHECK(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &threshold));
  }
  return Context(Device::CUDA, device, stream);
}

cublasContext* Context::cublas() const {
  if (!is_cuda()) throw Error("genai::Context::cublas: a CPU context has no cuBLAS handle");
  std::lock_guard lock(handles_->mu);
  if (!handles_->cublas) {
    make_current();
    GENAI_CUBLAS_CHECK(cublasCreate(&handles_->cublas));
    GENAI_CUBLAS_CHECK(cublasSetStream(handles_->cublas, stream_));
  }
  return handles_->cublas;
}

cusolverDnContext* Context::cusolver() const {
  if (!is_cuda()) throw Error("genai::Context::cusolver: a CPU context has no cuSOLVER handle");
  std::lock_guard lock(handles_->mu);
  if (!handles_->cusolver) {
    make_current();
    GENAI_CUSOLVER_CHECK(cusolverDnCreate(&handles_->cusolver));
    GENAI_CUSOLVER_CHECK(cusolverDnSetStream(handles_->cusolver, stream_));
  }
  return handles_->cusolver;
}

void Context::make_current() const {
  if (is_cuda()) GENAI_CUDA_CHECK(cudaSetDevice(index_));
}

void Context::synchronize() const {
  if (is_cuda()) GENAI_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

namespace detail {
void throw_cuda(cudaError_t e, const char* expr, const char* file, int line) {
  throw Error(concat("CUDA error ", cudaGetErrorName(e), " (", cudaGetErrorString(e), ") in ",
                     expr, " at ", file, ":", line));
}
void throw_cublas(cublasStatus_t s, const char* expr, const char* file, int line) {
  throw Error(concat("cuBLAS error ", cublasGetStatusName(s), " (", cublasGetStatusString(s),
                     ") in ", expr, " at ", file, ":", line));
}
void throw_cusolver(cusolverStatus_t s, const char* expr, const char* file, int line) {
  throw Error(concat("cuSOLVER error status ", static_cast<int>(s), " in ", expr, " at ", file,
                     ":", line));
}
}  // namespace detail

#else  // CPU-only build

int Context::cuda_device_count() { return 0; }
std::string Context::cuda_unavailable_reason() {
  return "this build of genai-kernels has no CUDA support (GENAI_CUDA=OFF or no nvcc)";
}
Context Context::cuda(int, Stream) {
  throw Error("genai::Context::cuda: " + cuda_unavailable_reason() +
              "; use genai::Context::cpu() or --device cpu");
}
cublasContext* Context::cublas() const {
  throw Error("genai::Context::cublas: " + cuda_unavailable_reason());
}
cusolverDnContext* Context::cusolver() const {
  throw Error("genai::Context::cusolver: " + cuda_unavailable_reason());
}
void Context::make_current() const {}
void Context::synchronize() const {}

#endif

Context Context::best_available() { return cuda_device_count() > 0 ? cuda(0) : cpu(); }

Context Context::from_name(const std::string& name) {
  if (name == "cpu") return cpu();
  if (name == "cuda" || name == "gpu") return cuda(0);
  if (name == "auto") return best_available();
  detail::throw_argument("genai::Context::from_name", "device",
                         "must be cpu, cuda or auto (got '", name, "')");
}

}  // namespace genai
