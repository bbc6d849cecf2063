// .npy reading and writing.
#include "genai/io.hpp"

#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <regex>
#include <type_traits>

#include "genai/dtype.hpp"
#include "genai/error.hpp"

namespace genai::io {
namespace {

constexpr char kMagic[] = "\x93NUMPY";
// NumPy writes headers of a few hundred bytes for these dtypes. A longer one is refused before the
// std::regex searches below, which recurse once per character matched (libstdc++), so a crafted
// header tens of KiB long would overflow the stack (under AddressSanitizer already at ~6 KiB).
constexpr std::size_t kMaxHeaderLen = 2048;

[[noreturn]] void bad(const std::string& name, const std::string& what) {
  throw Error("genai::io: " + name + ": " + what);
}

DType parse_descr(const std::string& d, const std::string& name) {
  if (d == "<f4") return DType::F32;
  if (d == "<f8") return DType::F64;
  if (d == "<i4") return DType::I32;
  if (d == "<i8") return DType::I64;
  if (d == "|u1" || d == "<u1") return DType::U8;
  bad(name, "unsupported dtype '" + d + "' (supported: <f4, <f8, <i4, <i8, |u1)");
}

std::int64_t checked_size(const std::vector<std::int64_t>& shape, const std::string& fn);

template <class To>
std::vector<To> convert(const Array& a) {
  const std::int64_t n = checked_size(a.shape, "genai::io::Array::to_*");
  if (a.bytes.size() / size_of(a.dtype) != static_cast<std::uint64_t>(n) ||
      a.bytes.size() % size_of(a.dtype) != 0)
    throw ArgumentError("genai::io::Array::to_*: argument 'this' has " +
                        std::to_string(a.bytes.size()) + " bytes for " + std::to_string(n) +
                        " elements of " + to_string(a.dtype));
  std::vector<To> out(n);
  auto read = [&](auto tag) {
    using From = decltype(tag);
    for (std::int64_t i = 0; i < n; ++i) {
      From v;
      std::memcpy(&v, a.bytes.data() + i * sizeof(From), sizeof(From));
      if constexpr (std::is_same_v<From, fp16> || std::is_same_v<From, bf16>)
        out[i] = static_cast<To>(static_cast<float>(v));
      else
        out[i] = static_cast<To>(v);
    }
  };
  switch (a.dtype) {
    case DType::F32: read(float{}); break;
    case DType::F64: read(double{}); break;
    case DType::I32: read(std::int32_t{}); break;
    case DType::I64: read(std::int64_t{}); break;
    case DType::U8: read(std::uint8_t{}); break;
    case DType::F16: read(fp16{}); break;
    case DType::BF16: read(bf16{}); break;
  }
  return out;
}

// Elements in `shape`, for the writers: a negative dimension or a count past int64 is a caller bug
// (Array::size() would overflow, and the file written could not be read back).
std::int64_t checked_size(const std::vector<std::int64_t>& shape, const std::string& fn) {
  std::int64_t n = 1;
  for (auto d : shape) {
    if (d < 0 || (d != 0 && n > std::numeric_limits<std::int64_t>::max() / d))
      throw ArgumentError(fn + ": argument 'shape' has " +
                          (d < 0 ? "a negative dimension (" + std::to_string(d) + ")"
                                 : std::string("more elements than an int64 holds")));
    n *= d;
  }
  return n;
}

}  // namespace

std::string to_string(DType t) {
  switch (t) {
    case DType::F32: return "<f4";
    case DType::F64: return "<f8";
    case DType::I32: return "<i4";
    case DType::I64: return "<i8";
    case DType::U8: return "|u1";
    case DType::F16: return "<f2";
    case DType::BF16: return "bf16";
  }
  return "?";
}

std::size_t size_of(DType t) {
  switch (t) {
    case DType::F32: case DType::I32: return 4;
    case DType::F64: case DType::I64: return 8;
    case DType::U8: return 1;
    case DType::F16: case DType::BF16: return 2;
  }
  return 0;
}

std::int64_t Array::size() const {
  std::int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

std::vector<float> Array::to_float() const { return convert<float>(*this); }
std::vector<double> Array::to_double() const { return convert<double>(*this); }
std::vector<std::int64_t> Array::to_int64() const {
  if (dtype == DType::F32 || dtype == DType::F64 || dtype == DType::F16 || dtype == DType::BF16)
    throw ArgumentError("genai::io::Array::to_int64: argument 'this' has dtype " +
                        to_string(dtype) + ", not an integer dtype");
  return convert<std::int64_t>(*this);
}

Array parse_npy(std::span<const std::byte> file, const std::string& name) {
  const auto* c = reinterpret_cast<const char*>(file.data());
  if (file.size() < 10 || std::memcmp(c, kMagic, 6) != 0)
    bad(name, "not a .npy file (missing the \\x93NUMPY magic)");
  const int major = static_cast<unsigned char>(c[6]);
  std::size_t header_len = 0, offset = 0;
  if (major == 1) {
    header_len = static_cast<unsigned char>(c[8]) | static_cast<unsigned char>(c[9]) << 8;
    offset = 10;
  } else if (major == 2 || major == 3) {
    if (file.size() < 12) bad(name, "truncated header");
    for (int i = 0; i < 4; ++i) header_len |= std::size_t(static_cast<unsigned char>(c[8 + i])) << (8 * i);
    offset = 12;
  } else {
    bad(name, "unsupported .npy format version " + std::to_string(major));
  }
  if (offset + header_len > file.size()) bad(name, "truncated header");
  if (header_len > kMaxHeaderLen)
    bad(name, "header too long (" + std::to_string(header_len) + " bytes, at most " +
                  std::to_string(kMaxHeaderLen) + ")");
  const std::string header(c + offset, header_len);

  static const std::regex descr_re(R"('descr'\s*:\s*'([^']*)')");
  static const std::regex order_re(R"('fortran_order'\s*:\s*(True|False))");
  static const std::regex shape_re(R"('shape'\s*:\s*\(([^)]*)\))");
  std::smatch m;
  if (header.empty() || header.front() != '{' || header.find('}') == std::string::npos)
    bad(name, "header is not a Python dict");
  if (!std::regex_search(header, m, descr_re)) bad(name, "header has no 'descr'");
  Array a;
  a.dtype = parse_descr(m[1], name);
  if (!std::regex_search(header, m, order_re)) bad(name, "header has no 'fortran_order'");
  if (m[1] == "True") bad(name, "Fortran-order arrays are not supported (save with C order)");
  if (!std::regex_search(header, m, shape_re)) bad(name, "header has no 'shape'");
  const std::string dims = m[1];
  static const std::regex dim_re(R"(\s*([0-9]+)\s*(,|$))");
  std::size_t pos = 0;
  const auto limit = std::numeric_limits<std::int64_t>::max();
  std::int64_t total = 1;
  while (pos < dims.size()) {
    std::smatch d;
    const std::string rest = dims.substr(pos);
    if (rest.find_first_not_of(" \t") == std::string::npos) break;
    if (!std::regex_search(rest, d, dim_re, std::regex_constants::match_continuous))
      bad(name, "malformed shape (" + dims + ")");
    if (d[1].length() > 15) bad(name, "shape dimension too large (" + d[1].str() + ")");
    const std::int64_t v = std::stoll(d[1]);
    if (v != 0 && total > limit / v) bad(name, "shape too large (" + dims + ")");
    total *= v;
    a.shape.push_back(v);
    pos += d.length();
  }
  const std::size_t elem = size_of(a.dtype);
  if (total > static_cast<std::int64_t>(limit / elem)) bad(name, "shape too large (" + dims + ")");
  const std::size_t need = static_cast<std::size_t>(total) * elem;
  const std::size_t have = file.size() - offset - header_len;
  if (have < need)
    bad(name, "truncated data: " + std::to_string(have) + " bytes for shape (" + dims + ") of " +
                  to_string(a.dtype) + ", which needs " + std::to_string(need));
  a.bytes.assign(file.begin() + offset + header_len, file.begin() + offset + header_len + need);
  return a;
}

std::vector<std::byte> read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) bad(path, "cannot open for reading");
  std::vector<char> raw((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  const auto b = std::as_bytes(std::span<const char>(raw));
  return {b.begin(), b.end()};
}

Array read_npy(const std::string& path) { return parse_npy(read_file(path), path); }

std::vector<std::byte> serialize_npy(const Array& a) {
  if (a.dtype == DType::F16 || a.dtype == DType::BF16)
    throw ArgumentError("genai::io::serialize_npy: argument 'a' has dtype " + to_string(a.dtype) +
                        ", which .npy files here do not hold (safetensors do)");
  const auto n = static_cast<std::uint64_t>(checked_size(a.shape, "genai::io::serialize_npy"));
  const std::size_t elem = size_of(a.dtype);
  if (a.bytes.size() % elem != 0 || a.bytes.size() / elem != n)
    throw ArgumentError("genai::io::serialize_npy: argument 'a' has " +
                        std::to_string(a.bytes.size()) + " bytes, its shape holds " +
                        std::to_string(n) + " elements of " + std::to_string(elem) + " bytes");
  std::string dims;
  for (std::size_t i = 0; i < a.shape.size(); ++i)
    dims += (i ? ", " : "") + std::to_string(a.shape[i]);
  if (a.shape.size() == 1) dims += ",";  // Python's one-element tuple: (3,)
  std::string header = "{'descr': '" + to_string(a.dtype) +
                       "', 'fortran_order': False, 'shape': (" + dims + "), }";
  const std::size_t unpadded = 10 + header.size() + 1;  // magic+version+len, header, '\n'
  header.append((64 - unpadded % 64) % 64, ' ');
  header.push_back('\n');
  std::vector<std::byte> out(10 + header.size() + a.bytes.size());
  std::memcpy(out.data(), kMagic, 6);
  out[6] = std::byte{1};
  out[7] = std::byte{0};
  out[8] = std::byte(header.size() & 0xff);
  out[9] = std::byte(header.size() >> 8);
  std::memcpy(out.data() + 10, header.data(), header.size());
  if (!a.bytes.empty()) std::memcpy(out.data() + 10 + header.size(), a.bytes.data(), a.bytes.size());
  return out;
}

void write_npy(const std::string& path, const Array& a) { write_file(path, serialize_npy(a)); }

void write_file(const std::string& path, std::span<const std::byte> image) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) bad(path, "cannot open for writing");
    f.write(reinterpret_cast<const char*>(image.data()), static_cast<std::streamsize>(image.size()));
    if (!f.flush()) {
      std::remove(tmp.c_str());
      bad(path, "write failed");
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    bad(path, "cannot rename the finished file into place");
  }
}

namespace {
template <class T>
void write_typed(const std::string& path, std::span<const T> data,
                 const std::vector<std::int64_t>& shape, DType t) {
  Array a{t, shape, {}};
  const std::int64_t n = checked_size(shape, "genai::io::write_npy");
  if (n != static_cast<std::int64_t>(data.size()))
    throw ArgumentError("genai::io::write_npy: argument 'shape' holds " + std::to_string(n) +
                        " elements, 'data' has " + std::to_string(data.size()));
  const auto b = std::as_bytes(data);
  a.bytes.assign(b.begin(), b.end());
  write_npy(path, a);
}
}  // namespace

void write_npy(const std::string& path, std::span<const float> data,
               const std::vector<std::int64_t>& shape) {
  write_typed(path, data, shape, DType::F32);
}
void write_npy(const std::string& path, std::span<const double> data,
               const std::vector<std::int64_t>& shape) {
  write_typed(path, data, shape, DType::F64);
}
void write_npy(const std::string& path, std::span<const std::int64_t> data,
               const std::vector<std::int64_t>& shape) {
  write_typed(path, data, shape, DType::I64);
}

}  // namespace genai::io
