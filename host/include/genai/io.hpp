// NumPy .npy files (format versions 1.0-3.0): float32, float64, int32, int64, uint8; C order,
// little-endian. Malformed, truncated or unsupported files throw genai::Error naming the file
// and what is wrong with it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace genai::io {

enum class DType { F32, F64, I32, I64, U8 };

std::string to_string(DType t);              // the NumPy descr, e.g. "<f4"
std::size_t size_of(DType t);

struct Array {
  DType dtype = DType::F32;
  std::vector<std::int64_t> shape;           // () for a scalar
  std::vector<std::byte> bytes;              // size() * size_of(dtype), C order

  std::int64_t size() const;                 // product of shape (1 for a scalar)
  std::vector<float> to_float() const;       // converted from any dtype
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

// The bytes write_npy would write (header + data).
std::vector<std::byte> serialize_npy(const Array& a);

}  // namespace genai::io
