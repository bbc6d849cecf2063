// The IDX reader (genai/io.hpp): every element type, plain and gzip files the tests write,
// malformed files and gzip data rejected saying why.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <unistd.h>
#include <zlib.h>

#include "genai/io.hpp"
#include "test_util.hpp"

namespace genai {
namespace {

// An IDX image: magic, big-endian dims, then `payload` (already big-endian).
std::vector<unsigned char> idx_file(unsigned char type, const std::vector<std::uint32_t>& dims,
                                    const std::vector<unsigned char>& payload) {
  std::vector<unsigned char> f = {0, 0, type, static_cast<unsigned char>(dims.size())};
  for (std::uint32_t d : dims)
    for (int s = 24; s >= 0; s -= 8) f.push_back(static_cast<unsigned char>(d >> s));
  f.insert(f.end(), payload.begin(), payload.end());
  return f;
}

template <class T>
std::vector<unsigned char> big_endian_bytes(const std::vector<T>& v) {
  std::vector<unsigned char> out;
  for (T x : v) {
    unsigned char b[sizeof(T)];
    std::memcpy(b, &x, sizeof(T));
    for (int i = sizeof(T) - 1; i >= 0; --i) out.push_back(b[i]);  // little-endian host
  }
  return out;
}

std::string write_temp(const std::string& name, const std::vector<unsigned char>& bytes) {
  const auto path = std::filesystem::temp_directory_path() /
                    ("genai_idx_test_" + std::to_string(::getpid()) + "_" + name);
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  return path.string();
}

std::string idx_error(const std::vector<unsigned char>& bytes, const std::string& name = "f.idx",
                      std::uint64_t max_bytes = io::kIdxMaxBytes) {
  try {
    io::parse_idx(std::as_bytes(std::span<const unsigned char>(bytes)), name, max_bytes);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

// `bytes` as one gzip member (zlib's deflate with the gzip wrapper).
std::vector<unsigned char> gzip(const std::vector<unsigned char>& bytes) {
  z_stream z{};
  EXPECT_EQ(deflateInit2(&z, Z_BEST_COMPRESSION, Z_DEFLATED, 16 + MAX_WBITS, 8,
                         Z_DEFAULT_STRATEGY),
            Z_OK);
  std::vector<unsigned char> in = bytes, out(deflateBound(&z, in.size()));
  z.next_in = in.data();
  z.avail_in = static_cast<uInt>(in.size());
  z.next_out = out.data();
  z.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(deflate(&z, Z_FINISH), Z_STREAM_END);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

io::Array parse(const std::vector<unsigned char>& bytes) {
  return io::parse_idx(std::as_bytes(std::span<const unsigned char>(bytes)));
}

TEST(Idx, IdxFilesOfEveryType) {
  // uint8 images 2 x 3 x 4 (MNIST's layout), read from a file.
  std::vector<unsigned char> pixels(24);
  for (int i = 0; i < 24; ++i) pixels[i] = static_cast<unsigned char>(10 * i);
  const std::string path = write_temp("images.idx", idx_file(0x08, {2, 3, 4}, pixels));
  const io::Array img = io::read_idx(path);
  std::filesystem::remove(path);
  EXPECT_EQ(img.dtype, io::DType::U8);
  EXPECT_EQ(img.shape, (std::vector<std::int64_t>{2, 3, 4}));
  const auto px = img.to_double();
  for (int i = 0; i < 24; ++i) ASSERT_EQ(px[i], 10.0 * i);

  const std::vector<double> d = {1.5, -2, 3.25, 1e300};
  const io::Array a = parse(idx_file(0x0E, {2, 2}, big_endian_bytes(d)));
  EXPECT_EQ(a.dtype, io::DType::F64);
  EXPECT_EQ(a.to_double(), d);
  const std::vector<float> f = {0.25f, -7.5f, 3e38f};
  EXPECT_EQ(parse(idx_file(0x0D, {3}, big_endian_bytes(f))).to_float(), f);
  const std::vector<std::int16_t> s16 = {-2, 300, -32768};
  EXPECT_EQ(parse(idx_file(0x0B, {3}, big_endian_bytes(s16))).to_int64(),
            (std::vector<std::int64_t>{-2, 300, -32768}));
  const std::vector<std::int32_t> s32 = {-70000, 5};
  EXPECT_EQ(parse(idx_file(0x0C, {2}, big_endian_bytes(s32))).to_int64(),
            (std::vector<std::int64_t>{-70000, 5}));
  EXPECT_EQ(parse(idx_file(0x09, {2}, {0xFF, 0x7F})).to_int64(),
            (std::vector<std::int64_t>{-1, 127}));
}

::testing::AssertionResult has(const std::string& msg, const std::string& want) {
  return msg.find(want) != std::string::npos ? ::testing::AssertionSuccess()
                                             : ::testing::AssertionFailure() << msg;
}

TEST(Idx, MalformedIdxFilesAreRejectedSayingWhy) {
  EXPECT_TRUE(has(idx_error({}), "f.idx: truncated header: 0 bytes"));
  EXPECT_TRUE(has(idx_error({1, 0, 8, 1, 0, 0, 0, 0}), "not an IDX file"));
  EXPECT_TRUE(has(idx_error(idx_file(0x0A, {1}, {0})), "unsupported data type 0xa"));
  EXPECT_TRUE(has(idx_error({0, 0, 8, 0}), "has 0 dimensions"));
  EXPECT_TRUE(has(idx_error({0, 0, 8, 2, 0, 0, 0, 1}), "truncated header: 8 bytes for 2 dimensions"));
  EXPECT_TRUE(has(idx_error(idx_file(0x08, {2, 3}, {1, 2, 3})), "truncated data: 3 bytes"));
  EXPECT_TRUE(has(idx_error(idx_file(0x0E, {0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF}, {})),
                  "truncated data: 0 bytes after the header, the shape needs 9223372036854775808 "
                  "or more"));
  EXPECT_TRUE(has(idx_error(idx_file(0x08, {2}, {1, 2, 3})), "1 bytes after the data"));
  EXPECT_THROW(io::read_idx("/nonexistent/genai.idx"), Error);
}

// MNIST's train-images-idx3-ubyte.gz: gzip is recognised by its magic bytes (here in a file
// without .gz, written by zlib's gzwrite), also as concatenated members, and gives the same
// array as the plain file.
TEST(Idx, GzipIdxFilesAreRead) {
  std::vector<unsigned char> pixels(3 * 4 * 5);
  for (std::size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<unsigned char>(7 * i + 1);
  const auto plain = idx_file(0x08, {3, 4, 5}, pixels);
  const auto path = std::filesystem::temp_directory_path() /
                    ("genai_idx_test_" + std::to_string(::getpid()) + "_images.idx");
  gzFile gz = gzopen(path.c_str(), "wb");
  ASSERT_NE(gz, nullptr);
  ASSERT_EQ(gzwrite(gz, plain.data(), static_cast<unsigned>(plain.size())), int(plain.size()));
  ASSERT_EQ(gzclose(gz), Z_OK);
  const io::Array img = io::read_idx(path.string());
  EXPECT_EQ(img.dtype, io::DType::U8);
  EXPECT_EQ(img.shape, (std::vector<std::int64_t>{3, 4, 5}));
  EXPECT_EQ(img.bytes, parse(plain).bytes);
  const auto px = img.to_double();
  for (std::size_t i = 0; i < pixels.size(); ++i) ASSERT_EQ(px[i], pixels[i]);
  // The file is small: a limit of its content's size passes, one byte less does not.
  EXPECT_EQ(io::read_idx(path.string(), plain.size()).shape, img.shape);
  EXPECT_THROW(io::read_idx(path.string(), plain.size() - 1), Error);
  std::filesystem::remove(path);

  const std::vector<double> d = {1.5, -2, 3.25, 1e300, -0.0, 7};
  const auto f64 = idx_file(0x0E, {3, 2}, big_endian_bytes(d));
  EXPECT_EQ(parse(gzip(f64)).to_double(), d);
  // Header and data in two gzip members, as `cat a.gz b.gz` makes.
  auto two = gzip({f64.begin(), f64.begin() + 12});
  const auto rest = gzip({f64.begin() + 12, f64.end()});
  two.insert(two.end(), rest.begin(), rest.end());
  const io::Array joined = parse(two);
  EXPECT_EQ(joined.shape, (std::vector<std::int64_t>{3, 2}));
  EXPECT_EQ(joined.to_double(), d);
}

// Corrupt or truncated gzip data, malformed IDX content inside valid gzip, and content over the
// size limit: each a genai::Error naming the file and the fault.
TEST(Idx, MalformedGzipIdxFilesAreRejectedSayingWhy) {
  std::vector<unsigned char> pixels(2 * 8 * 8);
  for (std::size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<unsigned char>(i * i);
  const auto good = gzip(idx_file(0x08, {2, 8, 8}, pixels));
  ASSERT_EQ(parse(good).size(), 128);

  // Truncated: mid-stream, and with only the 8-byte trailer (CRC-32, length) missing.
  EXPECT_TRUE(has(idx_error({good.begin(), good.begin() + good.size() / 2}, "f.gz"),
                  "f.gz: truncated gzip data"));
  EXPECT_TRUE(has(idx_error({good.begin(), good.end() - 8}, "f.gz"), "f.gz: truncated gzip data"));
  EXPECT_TRUE(has(idx_error({0x1f, 0x8b}, "f.gz"), "f.gz: truncated gzip data"));
  // Corrupt: a wrong CRC-32, an unknown compression method.
  auto crc = good;
  crc[crc.size() - 8] ^= 0x01;
  EXPECT_TRUE(has(idx_error(crc, "f.gz"), "f.gz: corrupt gzip data (zlib: incorrect data check)"));
  auto method = good;
  method[2] = 7;
  EXPECT_TRUE(has(idx_error(method, "f.gz"), "f.gz: corrupt gzip data (zlib: unknown compression"));
  auto trailing = good;
  trailing.insert(trailing.end(), {0, 0, 0});
  EXPECT_TRUE(has(idx_error(trailing, "f.gz"), "f.gz: 3 bytes after the gzip data"));

  // Valid gzip whose content is not a valid IDX file.
  EXPECT_TRUE(has(idx_error(gzip({}), "f.gz"), "f.gz (gzip content): truncated header: 0 bytes"));
  EXPECT_TRUE(has(idx_error(gzip({'h', 'e', 'l', 'l', 'o'}), "f.gz"),
                  "f.gz (gzip content): not an IDX file"));
  EXPECT_TRUE(has(idx_error(gzip(idx_file(0x08, {2, 8, 8}, {1, 2, 3})), "f.gz"),
                  "f.gz (gzip content): truncated data: 3 bytes after the header, the shape "
                  "needs 128"));
  EXPECT_TRUE(has(idx_error(gzip(idx_file(0x0F, {1}, {0})), "f.gz"),
                  "f.gz (gzip content): unsupported data type 0xf"));

  // A gzip bomb: 64 MiB of zeros in ~64 KiB, refused at a 1 MiB limit after decompressing
  // at most 1 MiB + one 64 KiB chunk, not 64 MiB.
  const std::uint32_t side = 8192;
  const auto bomb = gzip(idx_file(0x08, {side, side}, std::vector<unsigned char>(side * side)));
  EXPECT_LT(bomb.size(), 100u * 1024);
  EXPECT_TRUE(has(idx_error(bomb, "bomb.gz", 1 << 20),
                  "bomb.gz: gzip content is larger than 1048576 bytes, the limit (max_bytes)"));

  const std::string path = write_temp("cut.idx.gz", {good.begin(), good.end() - 20});
  try {
    io::read_idx(path);
    ADD_FAILURE() << "a truncated gzip file was read";
  } catch (const Error& e) {
    EXPECT_TRUE(has(e.what(), "genai::io: " + path + ": truncated gzip data"));
  }
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace genai
