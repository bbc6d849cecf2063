// NumPy .npy files (format versions 1.0-3.0): float32, float64, int32, int64, uint8; C order,
// little-endian. safetensors files (below) also hold float16 and bfloat16. Malformed, truncated or
// unsupported files throw genai::Error naming the file and what is wrong with it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

namespace genai::io {

// F16 and BF16 (genai::fp16 / genai::bf16 bits) are safetensors-only: .npy refuses them.
enum class DType { F32, F64, I32, I64, U8, F16, BF16 };

std::string to_string(DType t);              // the NumPy descr, e.g. "<f4" ("<f2", "bf16")
std::size_t size_of(DType t);

struct Array {
  DType dtype = DType::F32;
  std::vector<std::int64_t> shape;           // () for a scalar
  std::vector<std::byte> bytes;              // size() * size_of(dtype), C order

  std::int64_t size() const;                 // product of shape (1 for a scalar)
  std::vector<float> to_float() const;       // converted from any dtype (F16, BF16: exactly)
  std::vector<double> to_double() const;
  std::vector<std::int64_t> to_int64() const;  // integer dtypes only
};

// Parses a whole .npy image; `name` labels errors.
Array parse_npy(std::span<const std::byte> file, const std::string& name = "<memory>");
Array read_npy(const std::string& path);

// Writes atomically: to "<path>.tmp", then renamed, so a failed write leaves no half file.
void write_npy(const std::string& path, const Array& a);
void write_npy(const std::string& path, std::span<const float> data,
               const std::vector<std::int64_t>& shape);
void write_npy(const std::string& path, std::span<const double> data,
               const std::vector<std::int64_t>& shape);
void write_npy(const std::string& path, std::span<const std::int64_t> data,
               const std::vector<std::int64_t>& shape);

// Whole files: read_file's error names the path; write_file writes "<path>.tmp" and renames it.
std::vector<std::byte> read_file(const std::string& path);
void write_file(const std::string& path, std::span<const std::byte> bytes);

// The bytes write_npy would write (header + data).
std::vector<std::byte> serialize_npy(const Array& a);

// ---- safetensors -----------------------------------------------------------------------------
// The format (github.com/huggingface/safetensors): an 8-byte little-endian header length N, N
// bytes of JSON {"<name>": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
// "__metadata__": {"<key>": "<string>", ...}}, then the byte buffer; offsets are relative to the
// buffer, little-endian, C order. Dtypes here: F32, F64, F16, BF16, I64, I32, U8.
//
// The reader checks everything before it returns (header length within the file and at most
// 100 MB, valid JSON object, known dtype, shape product x dtype size = end - begin, offsets
// within the buffer, tensors neither overlapping nor leaving gaps, the last one ending at the
// file's end) and throws genai::Error "genai::io: <file>: <what>" otherwise: nothing is returned
// half-loaded. The writer orders tensors by dtype size, then name (each tensor aligned to its
// element size, as the reference implementation does) and pads the header with spaces to a
// multiple of 8 bytes.
struct Safetensors {
  std::map<std::string, Array> tensors;         // by name
  std::map<std::string, std::string> metadata;  // "__metadata__" (may be empty)
};

std::string safetensors_dtype(DType t);  // "F32", "F64", "F16", "BF16", "I64", "I32", "U8"

Safetensors parse_safetensors(std::span<const std::byte> file,
                              const std::string& name = "<memory>");
Safetensors read_safetensors(const std::string& path);
std::vector<std::byte> serialize_safetensors(const Safetensors& s);
// Atomically, as write_npy.
void write_safetensors(const std::string& path, const Safetensors& s);

// ---- IDX files (the MNIST format) ---------------------------------------------------------
//
// Magic 0x00 0x00 <type> <ndims>, ndims big-endian uint32 dimensions, then the elements in C
// order, big-endian. Types: 0x08 uint8 -> U8; 0x09 int8, 0x0B int16, 0x0C int32 -> I32;
// 0x0D float32 -> F32; 0x0E float64 -> F64 (host byte order in the io::Array).
// A gzip-compressed file (MNIST ships train-images-idx3-ubyte.gz) is recognised by its magic
// bytes 0x1f 0x8b, whatever its name, and decompressed with zlib (concatenated members too).
// Decompression stops with an error once the content passes max_bytes, so a gzip bomb is an
// error rather than an exhausted memory; the default 2 GiB holds Fashion-MNIST's training
// images (47 MB) and EMNIST's largest set (0.55 GB). Malformed, truncated or unsupported files,
// corrupt or truncated gzip data and content over the limit throw genai::Error naming the file
// and the fault (for the content of a gzip file: "<name> (gzip content): ...").
inline constexpr std::uint64_t kIdxMaxBytes = std::uint64_t{1} << 31;
Array parse_idx(std::span<const std::byte> file, const std::string& name = "<memory>",
                std::uint64_t max_bytes = kIdxMaxBytes);
Array read_idx(const std::string& path, std::uint64_t max_bytes = kIdxMaxBytes);

}  // namespace genai::io
