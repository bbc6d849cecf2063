// NumPy .npy reading and writing: round trips, the exact header NumPy writes, hand-built images
// (versions 1.0-3.0, every dtype and conversion), malformed images rejected with a message naming
// the problem, a deterministic mutation fuzz of the parser, and the file-level guarantees of
// read_npy / write_npy (missing files, atomic writes, argument checks).
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <limits>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <type_traits>
#include <typeinfo>
#include <vector>

#include "genai/error.hpp"
#include "genai/io.hpp"
#include "test_util.hpp"

namespace genai::io {
namespace {

namespace fs = std::filesystem;

// ---- helpers ---------------------------------------------------------------------------------

std::vector<std::byte> to_bytes(const std::string& s) {
  const auto b = std::as_bytes(std::span<const char>(s.data(), s.size()));
  return {b.begin(), b.end()};
}

template <class T>
std::vector<std::byte> to_bytes(const std::vector<T>& v) {
  const auto b = std::as_bytes(std::span<const T>(v));
  return {b.begin(), b.end()};
}

// A .npy image with the given header dict (a '\n' is appended) and data, in format `major`.0.
std::vector<std::byte> npy_image(const std::string& dict, const std::vector<std::byte>& data = {},
                                 int major = 1) {
  const std::string header = dict + "\n";
  std::string prefix("\x93NUMPY", 6);
  prefix += static_cast<char>(major);
  prefix += '\0';
  const int len_bytes = major == 1 ? 2 : 4;
  for (int i = 0; i < len_bytes; ++i)
    prefix += static_cast<char>((header.size() >> (8 * i)) & 0xff);
  auto out = to_bytes(prefix + header);
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

std::string dict_for(const std::string& descr, const std::string& shape) {
  return "{'descr': '" + descr + "', 'fortran_order': False, 'shape': " + shape + ", }";
}

Array parse(const std::vector<std::byte>& image, const std::string& name = "<memory>") {
  return parse_npy(std::span<const std::byte>(image), name);
}

// Passes when `f` throws genai::Error (or a subclass) whose message contains `needle`.
::testing::AssertionResult throws_error(const std::function<void()>& f, const std::string& needle) {
  try {
    f();
  } catch (const Error& e) {
    if (std::string(e.what()).find(needle) != std::string::npos)
      return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "message \"" << e.what() << "\" lacks \"" << needle
                                         << "\"";
  } catch (const std::exception& e) {
    return ::testing::AssertionFailure() << "threw " << typeid(e).name() << " (not genai::Error): "
                                         << e.what();
  }
  return ::testing::AssertionFailure() << "did not throw (expected \"" << needle << "\")";
}

::testing::AssertionResult parse_fails(const std::vector<std::byte>& image,
                                       const std::string& needle) {
  return throws_error([&] { parse(image, "bad.npy"); }, needle);
}

// The parser's contract on arbitrary input: a consistent Array, or genai::Error.
::testing::AssertionResult parses_or_throws_error(std::span<const std::byte> image) {
  try {
    const Array a = parse_npy(image, "fuzz.npy");
    for (auto d : a.shape)
      if (d < 0) return ::testing::AssertionFailure() << "negative dimension " << d;
    if (a.size() < 0) return ::testing::AssertionFailure() << "negative size " << a.size();
    if (a.bytes.size() != static_cast<std::size_t>(a.size()) * size_of(a.dtype))
      return ::testing::AssertionFailure() << a.bytes.size() << " bytes for " << a.size()
                                           << " elements of " << to_string(a.dtype);
    if (a.size() <= 4096 && a.to_double().size() != static_cast<std::size_t>(a.size()))
      return ::testing::AssertionFailure() << "to_double() has the wrong length";
  } catch (const Error&) {
  } catch (const std::exception& e) {
    return ::testing::AssertionFailure() << "threw " << typeid(e).name() << " (not genai::Error): "
                                         << e.what();
  } catch (...) {
    return ::testing::AssertionFailure() << "threw something that is not a std::exception";
  }
  return ::testing::AssertionSuccess();
}

std::vector<std::byte> read_file(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::vector<char> raw((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  return to_bytes(std::string(raw.begin(), raw.end()));
}

std::int64_t product(const std::vector<std::int64_t>& shape) {
  std::int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

// Values that must survive bit for bit: signed zeros, extremes, subnormals, infinities, NaN.
template <class T>
std::vector<T> sample_values(std::int64_t n) {
  using L = std::numeric_limits<T>;
  std::vector<T> special;
  if constexpr (std::is_floating_point_v<T>)
    special = {T(0), -T(0), T(1), T(-1.5), L::max(), L::lowest(), L::min(), L::denorm_min(),
               L::infinity(), -L::infinity(), L::quiet_NaN(), T(0.1)};
  else
    special = {0, -1, 1, L::max(), L::min(), T(1) << 40, -(T(1) << 40), 123456789012345};
  std::vector<T> v(n);
  for (std::int64_t i = 0; i < n; ++i)
    v[i] = i < static_cast<std::int64_t>(special.size()) ? special[i] : T(i * 37 - 400) / T(8);
  return v;
}

template <class T>
auto bits(const std::vector<T>& v) {
  using U = std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>;
  std::vector<U> out;
  for (T x : v) out.push_back(std::bit_cast<U>(x));
  return out;
}

const std::vector<std::vector<std::int64_t>> kShapes = {{}, {0}, {5}, {3, 4}, {2, 3, 4}};
const std::vector<std::string> kShapeText = {"()", "(0,)", "(5,)", "(3, 4)", "(2, 3, 4)"};

// ---- fixture: a fresh temporary directory per test -------------------------------------------

class NpyFileTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = std::make_unique<test::TempDir>(); }
  void TearDown() override { dir_.reset(); }

  const fs::path& dir() const { return dir_->path(); }
  std::string path(const std::string& leaf) const { return (dir() / leaf).string(); }
  // Names of what the directory holds.
  std::vector<std::string> entries() const {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir()))
      names.push_back(e.path().filename().string());
    return names;
  }

  template <class T>
  void check_round_trips(DType dtype, const std::string& descr);

  std::unique_ptr<test::TempDir> dir_;
};

template <class T>
void NpyFileTest::check_round_trips(DType dtype, const std::string& descr) {
  for (std::size_t s = 0; s < kShapes.size(); ++s) {
    SCOPED_TRACE(descr + " shape " + kShapeText[s]);
    const auto& shape = kShapes[s];
    const std::int64_t n = product(shape);
    const std::vector<T> values = sample_values<T>(n);
    const std::string index = std::to_string(s);
    const std::string p = path("a" + index + ".npy");
    write_npy(p, std::span<const T>(values), shape);

    // The file: magic, version 1.0, a 64-byte aligned header NumPy would write, then the data.
    const auto file = read_file(p);
    ASSERT_GE(file.size(), 10u);
    const auto* c = reinterpret_cast<const char*>(file.data());
    EXPECT_EQ(std::string(c, 6), "\x93NUMPY");
    EXPECT_EQ(c[6], 1);
    EXPECT_EQ(c[7], 0);
    const std::size_t header_len =
        static_cast<unsigned char>(c[8]) | static_cast<unsigned char>(c[9]) << 8;
    EXPECT_EQ((10 + header_len) % 64, 0u) << "header length " << header_len;
    ASSERT_EQ(file.size(), 10 + header_len + n * sizeof(T));
    const std::string header(c + 10, header_len);
    const std::string dict = dict_for(descr, kShapeText[s]);
    EXPECT_EQ(header.substr(0, dict.size()), dict);
    EXPECT_EQ(header.back(), '\n');
    EXPECT_EQ(header.find_first_not_of(' ', dict.size()), header_len - 1)
        << "padding is not spaces then '\\n': \"" << header << "\"";
    EXPECT_EQ(std::vector<std::byte>(file.begin() + 10 + header_len, file.end()), to_bytes(values));
    Array expected{dtype, shape, to_bytes(values)};
    EXPECT_EQ(serialize_npy(expected), file);

    // Read back: same dtype, shape and bytes.
    const Array a = read_npy(p);
    EXPECT_EQ(to_string(a.dtype), descr);
    EXPECT_EQ(a.shape, shape);
    EXPECT_EQ(a.size(), n);
    EXPECT_EQ(a.bytes, to_bytes(values));
    if constexpr (std::is_same_v<T, float>) {
      EXPECT_EQ(bits(a.to_float()), bits(values));
    }
    if constexpr (std::is_same_v<T, double>) {
      EXPECT_EQ(bits(a.to_double()), bits(values));
    }
    if constexpr (std::is_same_v<T, std::int64_t>) {
      EXPECT_EQ(a.to_int64(), values);
    }
  }
}

// ---- round trips -----------------------------------------------------------------------------

TEST_F(NpyFileTest, RoundTripsFloat32) { check_round_trips<float>(DType::F32, "<f4"); }
TEST_F(NpyFileTest, RoundTripsFloat64) { check_round_trips<double>(DType::F64, "<f8"); }
TEST_F(NpyFileTest, RoundTripsInt64) { check_round_trips<std::int64_t>(DType::I64, "<i8"); }

TEST_F(NpyFileTest, RoundTripsInt32AndUint8ThroughArray) {
  const std::vector<std::int32_t> i32 = {-7, 0, 42, std::numeric_limits<std::int32_t>::max(),
                                         std::numeric_limits<std::int32_t>::min(), 1};
  write_npy(path("i32.npy"), Array{DType::I32, {2, 3}, to_bytes(i32)});
  const Array a = read_npy(path("i32.npy"));
  EXPECT_EQ(to_string(a.dtype), "<i4");
  EXPECT_EQ(a.shape, (std::vector<std::int64_t>{2, 3}));
  EXPECT_EQ(a.to_int64(), (std::vector<std::int64_t>{-7, 0, 42, 2147483647, -2147483648LL, 1}));

  const std::vector<std::uint8_t> u8 = {0, 1, 127, 128, 255};
  write_npy(path("u8.npy"), Array{DType::U8, {5}, to_bytes(u8)});
  const auto file = read_file(path("u8.npy"));
  EXPECT_NE(std::string(reinterpret_cast<const char*>(file.data()), file.size())
                .find("{'descr': '|u1', 'fortran_order': False, 'shape': (5,), }"),
            std::string::npos);
  EXPECT_EQ(read_npy(path("u8.npy")).to_int64(), (std::vector<std::int64_t>{0, 1, 127, 128, 255}));
}

TEST_F(NpyFileTest, OverwritesAnExistingFile) {
  const std::vector<float> first = {1, 2, 3, 4, 5, 6}, second = {7.5f};
  write_npy(path("a.npy"), std::span<const float>(first), {2, 3});
  write_npy(path("a.npy"), std::span<const float>(second), {1});
  const Array a = read_npy(path("a.npy"));
  EXPECT_EQ(a.shape, (std::vector<std::int64_t>{1}));
  EXPECT_EQ(a.to_float(), second);
  EXPECT_EQ(entries().size(), 1u);
}

// ---- hand-built images -----------------------------------------------------------------------

TEST(NpyParse, Version2Header) {
  const std::vector<float> v = {1.5f, -2.25f, 3.0f};
  const Array a = parse(npy_image(dict_for("<f4", "(3,)"), to_bytes(v), 2));
  EXPECT_EQ(a.dtype, DType::F32);
  EXPECT_EQ(a.shape, (std::vector<std::int64_t>{3}));
  EXPECT_EQ(a.to_float(), v);
}

TEST(NpyParse, Version3Header) {
  const std::vector<double> v = {0.5, -1e300};
  const Array a = parse(npy_image(dict_for("<f8", "(1, 2)"), to_bytes(v), 3));
  EXPECT_EQ(a.dtype, DType::F64);
  EXPECT_EQ(a.shape, (std::vector<std::int64_t>{1, 2}));
  EXPECT_EQ(a.to_double(), v);
}

TEST(NpyParse, Uint8Data) {
  const std::vector<std::uint8_t> v = {0, 1, 127, 128, 200, 255};
  for (const char* descr : {"|u1", "<u1"}) {
    SCOPED_TRACE(descr);
    const Array a = parse(npy_image(dict_for(descr, "(2, 3)"), to_bytes(v)));
    EXPECT_EQ(a.dtype, DType::U8);
    EXPECT_EQ(size_of(a.dtype), 1u);
    EXPECT_EQ(a.shape, (std::vector<std::int64_t>{2, 3}));
    EXPECT_EQ(a.size(), 6);
    EXPECT_EQ(a.to_int64(), (std::vector<std::int64_t>{0, 1, 127, 128, 200, 255}));  // unsigned
    EXPECT_EQ(a.to_float(), (std::vector<float>{0, 1, 127, 128, 200, 255}));
    EXPECT_EQ(a.to_double(), (std::vector<double>{0, 1, 127, 128, 200, 255}));
  }
}

TEST(NpyParse, Int32Data) {
  const std::vector<std::int32_t> v = {-7, 0, 42, std::numeric_limits<std::int32_t>::max(),
                                       std::numeric_limits<std::int32_t>::min()};
  const Array a = parse(npy_image(dict_for("<i4", "(5,)"), to_bytes(v)));
  EXPECT_EQ(a.dtype, DType::I32);
  EXPECT_EQ(size_of(a.dtype), 4u);
  EXPECT_EQ(a.to_int64(), (std::vector<std::int64_t>{-7, 0, 42, 2147483647, -2147483648LL}));
  EXPECT_EQ(a.to_double(), (std::vector<double>{-7, 0, 42, 2147483647.0, -2147483648.0}));
  EXPECT_EQ(a.to_float(), (std::vector<float>{-7, 0, 42, 2147483648.0f, -2147483648.0f}));
}

TEST(NpyParse, ConversionsBetweenDtypes) {
  const std::vector<double> f64 = {0.1, -3.0, 1.0 + 1e-12};
  const Array d = parse(npy_image(dict_for("<f8", "(3,)"), to_bytes(f64)));
  EXPECT_EQ(d.to_double(), f64);
  EXPECT_EQ(d.to_float(), (std::vector<float>{0.1f, -3.0f, 1.0f}));  // rounded to nearest

  const std::vector<float> f32 = {0.1f, -2.5f};
  const Array s = parse(npy_image(dict_for("<f4", "(2,)"), to_bytes(f32)));
  EXPECT_EQ(s.to_double(), (std::vector<double>{static_cast<double>(0.1f), -2.5}));

  const std::vector<std::int64_t> i64 = {-5, (std::int64_t{1} << 53) + 1, 9};
  const Array i = parse(npy_image(dict_for("<i8", "(3,)"), to_bytes(i64)));
  EXPECT_EQ(i.to_int64(), i64);
  EXPECT_EQ(i.to_double(), (std::vector<double>{-5, 9007199254740992.0, 9}));  // rounded
  EXPECT_EQ(i.to_float(), (std::vector<float>{-5, 9007199254740992.0f, 9}));
}

TEST(NpyParse, ToInt64OfAFloatArrayThrowsArgumentError) {
  const Array f = parse(npy_image(dict_for("<f4", "(2,)"), to_bytes(std::vector<float>{1, 2})));
  EXPECT_THROW(f.to_int64(), ArgumentError);
  EXPECT_TRUE(throws_error([&] { f.to_int64(); }, "dtype <f4, not an integer dtype"));
  const Array d = parse(npy_image(dict_for("<f8", "(1,)"), to_bytes(std::vector<double>{1})));
  EXPECT_THROW(d.to_int64(), ArgumentError);
}

TEST(NpyParse, ScalarAndEmptyArrays) {
  const std::vector<std::int64_t> minus3 = {-3};
  const Array scalar = parse(npy_image(dict_for("<i8", "()"), to_bytes(minus3)));
  EXPECT_TRUE(scalar.shape.empty());
  EXPECT_EQ(scalar.size(), 1);
  EXPECT_EQ(scalar.to_int64(), (std::vector<std::int64_t>{-3}));

  const Array empty = parse(npy_image(dict_for("<f4", "(2, 0, 3)")));
  EXPECT_EQ(empty.shape, (std::vector<std::int64_t>{2, 0, 3}));
  EXPECT_EQ(empty.size(), 0);
  EXPECT_TRUE(empty.bytes.empty());
  EXPECT_TRUE(empty.to_float().empty());
}

TEST(NpyParse, KeysInAnyOrderAndExtraSpaces) {
  const std::vector<double> v = {1, 2};
  const Array a = parse(npy_image("{'shape':( 2 , ),'fortran_order':False,  'descr' : '<f8'}   ",
                                  to_bytes(v)));
  EXPECT_EQ(a.dtype, DType::F64);
  EXPECT_EQ(a.shape, (std::vector<std::int64_t>{2}));
  EXPECT_EQ(a.to_double(), v);
}

// ---- malformed images ------------------------------------------------------------------------

const std::vector<std::byte> kData12(12, std::byte{0});  // three float32 zeros

TEST(NpyMalformed, ErrorNamesTheFile) {
  EXPECT_TRUE(throws_error([] { parse(to_bytes("nonsense"), "weights/layer0.npy"); },
                           "weights/layer0.npy"));
}

TEST(NpyMalformed, EmptyBuffer) {
  EXPECT_TRUE(parse_fails({}, "not a .npy file"));
  EXPECT_TRUE(throws_error([] { parse_npy({}); }, "not a .npy file"));
}

TEST(NpyMalformed, WrongMagic) {
  auto image = npy_image(dict_for("<f4", "(3,)"), kData12);
  image[1] = std::byte{'X'};  // "\x93XUMPY"
  EXPECT_TRUE(parse_fails(image, "missing the \\x93NUMPY magic"));
  EXPECT_TRUE(parse_fails(to_bytes("PK\x03\x04 this is a zip file"), "not a .npy file"));
  EXPECT_TRUE(parse_fails(to_bytes(std::string("\x93NUMPY\x01", 7)), "not a .npy file"));
}

TEST(NpyMalformed, UnsupportedVersion) {
  for (int major : {0, 4, 9, 255}) {
    auto image = npy_image(dict_for("<f4", "(3,)"), kData12);
    image[6] = static_cast<std::byte>(major);
    const std::string version = std::to_string(major);
    EXPECT_TRUE(parse_fails(image, "unsupported .npy format version " + version));
  }
}

TEST(NpyMalformed, TruncatedHeader) {
  const auto v1 = npy_image(dict_for("<f4", "(3,)"), kData12);
  // The length field counts the whole header; only part of it is there.
  EXPECT_TRUE(parse_fails(std::vector<std::byte>(v1.begin(), v1.begin() + 40), "truncated header"));
  EXPECT_TRUE(parse_fails(std::vector<std::byte>(v1.begin(), v1.begin() + 10), "truncated header"));
  auto huge = v1;
  huge[8] = huge[9] = std::byte{0xff};  // 65535 bytes of header claimed
  EXPECT_TRUE(parse_fails(huge, "truncated header"));

  const auto v2 = npy_image(dict_for("<f4", "(3,)"), kData12, 2);
  // Version 2.0 has a 4-byte length: 10 or 11 bytes cannot even hold it.
  EXPECT_TRUE(parse_fails(std::vector<std::byte>(v2.begin(), v2.begin() + 11), "truncated header"));
  EXPECT_TRUE(parse_fails(std::vector<std::byte>(v2.begin(), v2.begin() + 50), "truncated header"));
}

TEST(NpyMalformed, HeaderTooLong) {
  // A legal header padded to 2000 bytes still parses...
  std::string dict = dict_for("<f4", "(3,)");
  dict.append(2000 - 1 - dict.size(), ' ');
  EXPECT_EQ(parse(npy_image(dict, kData12)).size(), 3);
  // ...but a header of tens of KiB (a crafted file) is refused, not parsed.
  const std::string as(60000, 'a'), spaces(1 << 20, ' ');
  const std::string long_descr = "{'descr': '" + as + "', 'fortran_order': False, 'shape': (3,), }";
  EXPECT_TRUE(parse_fails(npy_image(long_descr, kData12), "header too long"));
  const std::string long_shape =
      "{'descr': '<f4', 'fortran_order': False, 'shape': (" + spaces + "3,), }";
  EXPECT_TRUE(parse_fails(npy_image(long_shape, kData12, 2), "header too long"));
}

TEST(NpyMalformed, HeaderNotADict) {
  EXPECT_TRUE(parse_fails(npy_image("['descr', '<f4', 'shape', (3,)]", kData12),
                          "header is not a Python dict"));
  EXPECT_TRUE(parse_fails(npy_image("{'descr': '<f4', 'fortran_order': False, 'shape': (3,)",
                                    kData12),
                          "header is not a Python dict"));
  EXPECT_TRUE(parse_fails(npy_image("", kData12), "header is not a Python dict"));
  // A header length of 0: nothing at all.
  EXPECT_TRUE(parse_fails(to_bytes(std::string("\x93NUMPY\x01\x00\x00\x00", 10)),
                          "header is not a Python dict"));
}

TEST(NpyMalformed, MissingKeys) {
  EXPECT_TRUE(parse_fails(npy_image("{'fortran_order': False, 'shape': (3,), }", kData12),
                          "header has no 'descr'"));
  EXPECT_TRUE(parse_fails(npy_image("{'descr': '<f4', 'shape': (3,), }", kData12),
                          "header has no 'fortran_order'"));
  EXPECT_TRUE(parse_fails(npy_image("{'descr': '<f4', 'fortran_order': False, }", kData12),
                          "header has no 'shape'"));
  EXPECT_TRUE(parse_fails(npy_image("{'descr': '<f4', 'fortran_order': 0, 'shape': (3,), }",
                                    kData12),
                          "header has no 'fortran_order'"));
}

TEST(NpyMalformed, FortranOrder) {
  EXPECT_TRUE(parse_fails(
      npy_image("{'descr': '<f4', 'fortran_order': True, 'shape': (3,), }", kData12),
      "Fortran-order arrays are not supported"));
}

TEST(NpyMalformed, UnsupportedDtypes) {
  for (const std::string descr : {">f4", "<c8", "|O", "<f2", ">i8", "|b1", "<U5", ""}) {
    SCOPED_TRACE(descr);
    EXPECT_TRUE(parse_fails(npy_image(dict_for(descr, "(3,)"), kData12),
                            "unsupported dtype '" + descr + "'"));
  }
}

TEST(NpyMalformed, MalformedShape) {
  for (const char* shape : {"(3, x)", "(-1,)", "(3 4)", "(,)", "(3,,)", "(1.5,)", "(+3,)",
                            "(0x10,)"}) {
    SCOPED_TRACE(shape);
    EXPECT_TRUE(parse_fails(npy_image(dict_for("<f4", shape), kData12), "malformed shape"));
  }
}

TEST(NpyMalformed, ShapeTooLarge) {
  EXPECT_TRUE(parse_fails(npy_image(dict_for("<f4", "(9999999999, 9999999999, 9999999999)"),
                                    kData12),
                          "shape too large"));
  // Fits in int64 as an element count, but not as a byte count (x 8).
  EXPECT_TRUE(parse_fails(npy_image(dict_for("<f8", "(999999999999999, 9000)"), kData12),
                          "shape too large"));
  // One dimension past int64.
  EXPECT_TRUE(parse_fails(npy_image(dict_for("<u1", "(99999999999999999999999,)"), kData12),
                          "shape dimension too large"));
}

TEST(NpyMalformed, TruncatedData) {
  // (2, 3) float32 needs 24 bytes; 12 are there.
  EXPECT_TRUE(parse_fails(npy_image(dict_for("<f4", "(2, 3)"), kData12),
                          "truncated data: 12 bytes for shape (2, 3) of <f4, which needs 24"));
  EXPECT_TRUE(parse_fails(npy_image(dict_for("<i8", "()")), "truncated data"));
  EXPECT_TRUE(parse_fails(npy_image(dict_for("<f4", "(999999999999999,)"), kData12),
                          "truncated data"));
}

// ---- fuzz ------------------------------------------------------------------------------------

TEST(NpyFuzz, MutatedAndTruncatedImagesParseOrThrowGenaiError) {
  const std::vector<float> v = {1, 2, 3, 4, 5, 6};
  const auto valid = serialize_npy(Array{DType::F32, {2, 3}, to_bytes(v)});
  const std::size_t header_end = valid.size() - v.size() * sizeof(float);
  ASSERT_TRUE(parses_or_throws_error(valid));
  ASSERT_EQ(parse(valid).to_float(), v);

  // Every strict prefix is missing data, so it must throw.
  for (std::size_t len = 0; len < valid.size(); ++len) {
    const std::vector<std::byte> prefix(valid.begin(), valid.begin() + len);
    ASSERT_TRUE(throws_error([&] { parse(prefix); }, "genai::io"))
        << "prefix of " << len << " bytes";
  }

  // Bytes the parser cares about, so that mutations often land on a still-meaningful header.
  const std::string interesting = "{}()[],:'\" -+0123456789TrueFalse<>|fiuc\n\t\x93";
  std::mt19937 rng(20240601);
  auto below = [&](std::size_t n) {  // uniform in [0, n)
    return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng);
  };
  int parsed = 0;
  for (int iter = 0; iter < 4000; ++iter) {
    auto image = valid;
    const std::size_t mutations = 1 + below(4);
    for (std::size_t m = 0; m < mutations; ++m) {
      auto& b = image[below(header_end)];
      switch (below(3)) {
        case 0: b ^= std::byte(1u << below(8)); break;                     // flip a bit
        case 1: b = std::byte(below(256)); break;                          // any byte
        default: b = std::byte(interesting[below(interesting.size())]);  // a syntax byte
      }
    }
    if (below(4) == 0) image.resize(below(image.size() + 1));  // and sometimes truncate
    const auto r = parses_or_throws_error(image);
    ASSERT_TRUE(r) << "iteration " << iter;
    try {
      parse(image);
      ++parsed;
    } catch (const Error&) {
    }
  }
  // Some mutations (padding bytes, shape digits) leave a valid file: both paths were exercised.
  EXPECT_GT(parsed, 0);
  EXPECT_LT(parsed, 4000);
}

// ---- files -----------------------------------------------------------------------------------

TEST_F(NpyFileTest, ReadMissingFileNamesThePath) {
  const std::string p = path("does_not_exist.npy");
  EXPECT_TRUE(throws_error([&] { read_npy(p); }, p));
  EXPECT_TRUE(throws_error([&] { read_npy(p); }, "cannot open for reading"));
}

TEST_F(NpyFileTest, ReadNonNpyFileNamesThePath) {
  const std::string p = path("text.npy");
  std::ofstream(p) << "hello";
  EXPECT_TRUE(throws_error([&] { read_npy(p); }, p + ": not a .npy file"));
}

TEST_F(NpyFileTest, WriteLeavesNoTmpFile) {
  const std::vector<double> v = {1, 2, 3};
  const std::string p = path("a.npy");
  write_npy(p, std::span<const double>(v), {3});
  EXPECT_TRUE(fs::exists(p));
  EXPECT_FALSE(fs::exists(p + ".tmp"));
  EXPECT_EQ(entries(), std::vector<std::string>{"a.npy"});
}

TEST_F(NpyFileTest, WriteIntoMissingDirectoryThrowsAndLeavesNothing) {
  const fs::path missing = dir() / "no_such_dir";
  const std::string p = (missing / "a.npy").string();
  const std::vector<float> v = {1, 2};
  EXPECT_TRUE(throws_error([&] { write_npy(p, std::span<const float>(v), {2}); }, p));
  EXPECT_FALSE(fs::exists(missing));
  EXPECT_TRUE(entries().empty());
}

TEST_F(NpyFileTest, WriteWithShapeDataMismatchThrowsArgumentErrorAndWritesNothing) {
  const std::vector<float> f = {1, 2, 3, 4, 5};
  const std::vector<double> d = {1, 2, 3, 4, 5};
  const std::vector<std::int64_t> i = {1, 2, 3, 4, 5};
  const std::string p = path("a.npy");
  EXPECT_THROW(write_npy(p, std::span<const float>(f), {2, 3}), ArgumentError);
  EXPECT_THROW(write_npy(p, std::span<const double>(d), {6}), ArgumentError);
  EXPECT_THROW(write_npy(p, std::span<const std::int64_t>(i), {}), ArgumentError);
  EXPECT_TRUE(throws_error([&] { write_npy(p, std::span<const float>(f), {2, 3}); },
                           "'shape' holds 6 elements, 'data' has 5"));
  // An Array whose bytes do not match its shape and dtype.
  EXPECT_THROW(write_npy(p, Array{DType::F64, {5}, to_bytes(f)}), ArgumentError);
  EXPECT_FALSE(fs::exists(p));
  EXPECT_FALSE(fs::exists(p + ".tmp"));
  EXPECT_TRUE(entries().empty());
}

TEST_F(NpyFileTest, WriteWithInvalidShapeThrowsArgumentErrorAndWritesNothing) {
  const std::vector<float> two = {1, 2};
  const std::vector<float> none;
  const std::string p = path("a.npy");
  // (-1, -2) holds "2" elements by a naive product; the file would be unreadable.
  EXPECT_TRUE(throws_error([&] { write_npy(p, std::span<const float>(two), {-1, -2}); },
                           "negative dimension (-1)"));
  EXPECT_THROW(write_npy(p, std::span<const float>(two), {-1, -2}), ArgumentError);
  // 2^32 x 2^32 wraps to 0 elements in 64 bits.
  const std::int64_t big = std::int64_t{1} << 32;
  EXPECT_THROW(write_npy(p, std::span<const float>(none), {big, big}), ArgumentError);
  // 2^61 elements of 8 bytes wrap to 0 bytes.
  EXPECT_THROW(write_npy(p, Array{DType::F64, {std::int64_t{1} << 61}, {}}), ArgumentError);
  EXPECT_TRUE(entries().empty());
}

}  // namespace
}  // namespace genai::io

namespace genai::io {
namespace {
TEST(NpyArray, ConversionRejectsBytesThatDoNotMatchTheShape) {
  Array a{DType::F32, {3}, std::vector<std::byte>(8)};  // 3 floats need 12 bytes
  EXPECT_THROW(a.to_float(), ArgumentError);
  a.shape = {-1};
  a.bytes.resize(4);
  EXPECT_THROW(a.to_double(), ArgumentError);
}
}  // namespace
}  // namespace genai::io
