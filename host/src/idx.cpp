// IDX files (the MNIST format), plain or gzip-compressed (linalg.hpp, "IDX files").
#define ZLIB_CONST  // next_in is const
#include <zlib.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cstring>
#include <fstream>
#include <iterator>

#include "genai/error.hpp"
#include "genai/io.hpp"
#include "genai/nvtx.hpp"

namespace genai::io {
namespace {

[[noreturn]] void bad(const std::string& name, const std::string& what) {
  throw Error("genai::io: " + name + ": " + what);
}

// The big-endian element at p as a host value of type T (through the unsigned type U).
template <class T, class U>
T big_endian(const std::byte* p) {
  U u = 0;
  for (std::size_t i = 0; i < sizeof(U); ++i) u = static_cast<U>((u << 8) | U(p[i]));
  return std::bit_cast<T>(u);
}

bool is_gzip(std::span<const std::byte> f) {
  return f.size() >= 2 && f[0] == std::byte{0x1f} && f[1] == std::byte{0x8b};
}

// The content of a gzip file: its members decompressed one after another (as gunzip does),
// refused as soon as it passes max_bytes, so that a small file cannot claim all memory.
std::vector<std::byte> gunzip(std::span<const std::byte> gz, const std::string& name,
                              std::uint64_t max_bytes) {
  z_stream z{};
  if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK) bad(name, "cannot initialise zlib");
  struct End {
    z_stream* z;
    ~End() { inflateEnd(z); }
  } end{&z};
  std::vector<std::byte> out;
  std::array<std::byte, 1 << 16> chunk;
  std::size_t fed = 0;  // bytes of gz handed to zlib
  for (;;) {
    if (z.avail_in == 0 && fed < gz.size()) {  // avail_in is 32-bit: feed at most 1 GiB a time
      const std::size_t n = std::min<std::size_t>(gz.size() - fed, std::size_t{1} << 30);
      z.next_in = reinterpret_cast<const Bytef*>(gz.data() + fed);
      z.avail_in = static_cast<uInt>(n);
      fed += n;
    }
    z.next_out = reinterpret_cast<Bytef*>(chunk.data());
    z.avail_out = static_cast<uInt>(chunk.size());
    const int rc = inflate(&z, Z_NO_FLUSH);
    const std::size_t got = chunk.size() - z.avail_out;
    if (out.size() + got > max_bytes)
      bad(name, detail::concat("gzip content is larger than ", max_bytes,
                               " bytes, the limit (max_bytes)"));
    out.insert(out.end(), chunk.begin(), chunk.begin() + static_cast<std::ptrdiff_t>(got));
    if (rc == Z_OK) continue;
    if (rc == Z_STREAM_END) {
      const std::size_t rest = z.avail_in + (gz.size() - fed);
      if (rest == 0) return out;
      if (!is_gzip(gz.subspan(gz.size() - rest)))
        bad(name, detail::concat(rest, " bytes after the gzip data"));
      inflateReset(&z);  // another member follows
      continue;
    }
    if (rc == Z_BUF_ERROR)  // no progress with room to write: the input ran out mid-stream
      bad(name, detail::concat("truncated gzip data: the stream stops after ", gz.size(),
                               " compressed bytes (", out.size(), " decompressed)"));
    if (rc == Z_MEM_ERROR) bad(name, "out of memory while decompressing");
    bad(name, std::string("corrupt gzip data (zlib: ") + (z.msg ? z.msg : "error") + ")");
  }
}

Array parse_plain_idx(std::span<const std::byte> f, const std::string& name) {
  auto fail = [&](const std::string& what) { bad(name, what); };
  if (f.size() < 4)
    fail(detail::concat("truncated header: ", f.size(), " bytes, an IDX file starts with 4"));
  if (f[0] != std::byte{0} || f[1] != std::byte{0})
    fail("not an IDX file (its first two bytes must be 0x00 0x00)");
  const int type = static_cast<int>(f[2]), ndims = static_cast<int>(f[3]);
  struct Kind {
    int code;
    std::size_t bytes;
    DType dtype;
  };
  constexpr Kind kinds[] = {{0x08, 1, DType::U8},  {0x09, 1, DType::I32}, {0x0B, 2, DType::I32},
                            {0x0C, 4, DType::I32}, {0x0D, 4, DType::F32}, {0x0E, 8, DType::F64}};
  const Kind* kind = nullptr;
  for (const Kind& k : kinds)
    if (k.code == type) kind = &k;
  if (!kind)
    fail(detail::concat("unsupported data type 0x", std::hex, type,
                        " (supported: 0x08, 0x09, 0x0b, 0x0c, 0x0d, 0x0e)"));
  if (ndims == 0) fail("has 0 dimensions");
  const std::size_t header = 4 + 4 * static_cast<std::size_t>(ndims);
  if (f.size() < header)
    fail(detail::concat("truncated header: ", f.size(), " bytes for ", ndims,
                        " dimensions, which need ", header));
  Array a;
  a.dtype = kind->dtype;
  // Element count, saturated at 2^60 (far past any file, and times 8 no overflow).
  constexpr std::uint64_t kCap = std::uint64_t{1} << 60;
  std::uint64_t count = 1;
  for (int d = 0; d < ndims; ++d) {
    const auto dim = big_endian<std::uint32_t, std::uint32_t>(f.data() + 4 + 4 * d);
    a.shape.push_back(dim);
    count = dim != 0 && count > kCap / dim ? kCap : count * dim;
  }
  const std::uint64_t need = header + count * kind->bytes;
  if (f.size() < need)
    fail(detail::concat("truncated data: ", f.size() - header,
                        " bytes after the header, the shape needs ", count * kind->bytes,
                        count == kCap ? " or more" : ""));
  if (f.size() > need) fail(detail::concat(f.size() - need, " bytes after the data"));
  a.bytes.resize(count * size_of(a.dtype));
  for (std::uint64_t i = 0; i < count; ++i) {
    const std::byte* p = f.data() + header + i * kind->bytes;
    std::byte* out = a.bytes.data() + i * size_of(a.dtype);
    auto put = [&](auto v) { std::memcpy(out, &v, sizeof(v)); };
    switch (kind->code) {
      case 0x08: put(static_cast<std::uint8_t>(p[0])); break;
      case 0x09: put(static_cast<std::int32_t>(static_cast<std::int8_t>(p[0]))); break;
      case 0x0B: put(static_cast<std::int32_t>(big_endian<std::int16_t, std::uint16_t>(p))); break;
      case 0x0C: put(big_endian<std::int32_t, std::uint32_t>(p)); break;
      case 0x0D: put(big_endian<float, std::uint32_t>(p)); break;
      default: put(big_endian<double, std::uint64_t>(p)); break;
    }
  }
  return a;
}

}  // namespace

Array parse_idx(std::span<const std::byte> file, const std::string& name,
                std::uint64_t max_bytes) {
  if (!is_gzip(file)) return parse_plain_idx(file, name);
  return parse_plain_idx(gunzip(file, name, max_bytes), name + " (gzip content)");
}

Array read_idx(const std::string& path, std::uint64_t max_bytes) {
  GENAI_NVTX_RANGE("genai::io::read_idx");
  std::ifstream in(path, std::ios::binary);
  if (!in) bad(path, "cannot open for reading");
  const std::vector<char> raw((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return parse_idx(std::as_bytes(std::span<const char>(raw)), path, max_bytes);
}

}  // namespace genai::io
