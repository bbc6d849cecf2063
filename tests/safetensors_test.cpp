// safetensors: a file built by hand from the format's description, round trips of every dtype
// with metadata, the writer's layout (alignment, order, header padding), an independent checker
// in Python's standard library, and malformed files (each a genai::Error naming the file).
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "genai/dtype.hpp"
#include "genai/error.hpp"
#include "genai/io.hpp"

namespace genai::io {
namespace {

template <class T>
std::vector<std::byte> bytes_of(const std::vector<T>& v) {
  const auto* b = reinterpret_cast<const std::byte*>(v.data());
  return {b, b + v.size() * sizeof(T)};
}

// 8-byte little-endian length, the header text, the buffer.
std::vector<std::byte> image(const std::string& header, const std::vector<std::byte>& buffer,
                             std::uint64_t length_field) {
  std::vector<std::byte> out(8);
  for (int i = 0; i < 8; ++i) out[i] = static_cast<std::byte>((length_field >> (8 * i)) & 0xff);
  for (const char c : header) out.push_back(static_cast<std::byte>(c));
  out.insert(out.end(), buffer.begin(), buffer.end());
  return out;
}
std::vector<std::byte> image(const std::string& header, const std::vector<std::byte>& buffer) {
  return image(header, buffer, header.size());
}

class SafetensorsFile : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("genai_safetensors_test_" +
            std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  // The message of the genai::Error that reading `file` throws.
  std::string error_reading(const std::vector<std::byte>& file) {
    const std::string p = path("bad.safetensors");
    write_file(p, file);
    try {
      read_safetensors(p);
    } catch (const Error& e) {
      return e.what();
    }
    return "(no error)";
  }
  void expect_error(const std::vector<std::byte>& file, const std::string& what) {
    const std::string m = error_reading(file);
    EXPECT_NE(m.find("genai::io: " + path("bad.safetensors") + ": "), std::string::npos) << m;
    EXPECT_NE(m.find(what), std::string::npos) << m;
  }

  std::filesystem::path dir_;
};

// The layout of the format's description, written out byte by byte.
TEST(Safetensors, ReadsAFileBuiltFromTheFormatDescription) {
  const std::string header =
      R"({"test":{"dtype":"I32","shape":[2,2],"data_offsets":[0,16]},"__metadata__":{"foo":"bar"}})";
  const auto file = image(header, bytes_of(std::vector<std::int32_t>{1, 2, -3, 4}));
  const Safetensors st = parse_safetensors(file, "spec");
  ASSERT_EQ(st.tensors.size(), 1u);
  const Array& a = st.tensors.at("test");
  EXPECT_EQ(a.dtype, DType::I32);
  EXPECT_EQ(a.shape, (std::vector<std::int64_t>{2, 2}));
  EXPECT_EQ(a.to_int64(), (std::vector<std::int64_t>{1, 2, -3, 4}));
  EXPECT_EQ(st.metadata.at("foo"), "bar");
}

Safetensors every_dtype() {
  Safetensors st;
  std::vector<float> f32(6);
  std::vector<double> f64(3);
  std::vector<fp16> f16(5);
  std::vector<bf16> b16(4);
  std::vector<std::int64_t> i64(2);
  std::vector<std::int32_t> i32(3);
  std::vector<std::uint8_t> u8(7);
  // Element i holds i * 0.25 - 3 (floats) or i - 5 (ints, u8: i): exact in every dtype.
  for (std::size_t i = 0; i < f32.size(); ++i) f32[i] = i * 0.25f - 3;
  for (std::size_t i = 0; i < f64.size(); ++i) f64[i] = i * 0.25 - 3;
  for (std::size_t i = 0; i < f16.size(); ++i) f16[i] = fp16(i * 0.25f - 3);
  for (std::size_t i = 0; i < b16.size(); ++i) b16[i] = bf16(i * 0.25f - 3);
  for (std::size_t i = 0; i < i64.size(); ++i) i64[i] = static_cast<std::int64_t>(i) - 5;
  for (std::size_t i = 0; i < i32.size(); ++i) i32[i] = static_cast<std::int32_t>(i) - 5;
  for (std::size_t i = 0; i < u8.size(); ++i) u8[i] = static_cast<std::uint8_t>(i);
  st.tensors["w.f32"] = {DType::F32, {2, 3}, bytes_of(f32)};
  st.tensors["a.f64"] = {DType::F64, {3}, bytes_of(f64)};
  st.tensors["h.f16"] = {DType::F16, {5}, bytes_of(f16)};
  st.tensors["b.bf16"] = {DType::BF16, {2, 2}, bytes_of(b16)};
  st.tensors["i.i64"] = {DType::I64, {2}, bytes_of(i64)};
  st.tensors["j.i32"] = {DType::I32, {1, 3}, bytes_of(i32)};
  st.tensors["u.u8"] = {DType::U8, {7}, bytes_of(u8)};
  st.tensors["scalar"] = {DType::F32, {}, bytes_of(std::vector<float>{-3.0f})};
  st.tensors["empty"] = {DType::F32, {0, 4}, {}};
  st.metadata = {{"format", "test"}, {"note", "unicode \xc3\xa9 and \"quotes\""}};
  return st;
}

TEST_F(SafetensorsFile, RoundTripsEveryDtypeWithMetadata) {
  const Safetensors st = every_dtype();
  write_safetensors(path("all.safetensors"), st);
  const Safetensors back = read_safetensors(path("all.safetensors"));
  EXPECT_EQ(back.metadata, st.metadata);
  ASSERT_EQ(back.tensors.size(), st.tensors.size());
  for (const auto& [name, a] : st.tensors) {
    const Array& b = back.tensors.at(name);
    EXPECT_EQ(b.dtype, a.dtype) << name;
    EXPECT_EQ(b.shape, a.shape) << name;
    EXPECT_EQ(b.bytes, a.bytes) << name;
  }
  EXPECT_EQ(back.tensors.at("h.f16").to_float(), (std::vector<float>{-3, -2.75f, -2.5f, -2.25f, -2}));
  EXPECT_EQ(back.tensors.at("b.bf16").to_double(), (std::vector<double>{-3, -2.75, -2.5, -2.25}));
  EXPECT_EQ(back.tensors.at("empty").size(), 0);
  // No metadata: no "__metadata__" key at all.
  Safetensors plain;
  plain.tensors["x"] = st.tensors.at("w.f32");
  const auto bytes = serialize_safetensors(plain);
  const std::string text(reinterpret_cast<const char*>(bytes.data()) + 8, bytes.size() - 8 - 24);
  EXPECT_EQ(text.find("__metadata__"), std::string::npos) << text;
  EXPECT_TRUE(parse_safetensors(bytes).metadata.empty());
}

TEST(Safetensors, WriterAlignsEachTensorAndPadsTheHeader) {
  const auto file = serialize_safetensors(every_dtype());
  std::uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= static_cast<std::uint64_t>(file[i]) << (8 * i);
  EXPECT_EQ(n % 8, 0u);
  const std::string header(reinterpret_cast<const char*>(file.data()) + 8, n);
  EXPECT_EQ(header.front(), '{');
  EXPECT_EQ(header.find_last_not_of(' '), header.rfind('}'));  // padded with spaces
  // Larger elements first (8-byte, then 4, 2, 1), so each tensor starts aligned to its size.
  const auto pos = [&](const std::string& name) { return header.find("\"data_offsets\":[", header.find(name)); };
  const auto begin = [&](const std::string& name) {
    return std::stoull(header.substr(pos(name) + 16));
  };
  EXPECT_EQ(begin("a.f64"), 0u);
  EXPECT_EQ(begin("i.i64"), 24u);
  EXPECT_EQ(begin("empty") % 4, 0u);
  EXPECT_EQ(begin("j.i32") % 4, 0u);
  EXPECT_EQ(begin("w.f32") % 4, 0u);
  EXPECT_EQ(begin("b.bf16") % 2, 0u);
  EXPECT_EQ(begin("h.f16") % 2, 0u);
  EXPECT_GT(begin("u.u8"), begin("h.f16"));
  EXPECT_EQ(file.size(), 8 + n + 24 + 16 + 12 + 24 + 4 + 0 + 8 + 10 + 7);
}

TEST(Safetensors, WriterRefusesInconsistentTensors) {
  Safetensors st;
  st.tensors["x"] = {DType::F32, {3}, std::vector<std::byte>(8)};
  try {
    serialize_safetensors(st);
    ADD_FAILURE() << "no error";
  } catch (const ArgumentError& e) {
    EXPECT_NE(std::string(e.what()).find("tensor 'x' has 8 bytes, its shape [3] of F32 needs 12"),
              std::string::npos)
        << e.what();
  }
  st.tensors.clear();
  st.tensors["__metadata__"] = {DType::U8, {1}, std::vector<std::byte>(1)};
  EXPECT_THROW(serialize_safetensors(st), ArgumentError);
}

TEST_F(SafetensorsFile, MalformedFilesAreClearErrors) {
  const auto f8 = bytes_of(std::vector<float>{1, 2});
  const std::string ok = R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  ASSERT_EQ(error_reading(image(ok, f8)), "(no error)");
  expect_error({std::byte{1}, std::byte{0}}, "too short for a safetensors file (2 bytes");
  expect_error(image(ok, f8, 1000), "header length 1000 runs past the end of the file");
  expect_error(image(ok, f8, std::uint64_t{1} << 40), "exceeds the limit of 100000000 bytes");
  expect_error(image(R"({"x": {"dtype": "F32",)", f8), "header is not valid JSON");
  expect_error(image("[1, 2]", f8), "header is not a JSON object");
  expect_error(image(R"({"x":{"dtype":"F33","shape":[2],"data_offsets":[0,8]}})", f8),
               "tensor 'x': unsupported dtype 'F33'");
  expect_error(image(R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,16]}})", f8),
               "tensor 'x': data_offsets [0, 16] past the end of the data buffer (8 bytes)");
  expect_error(image(R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", f8),
               "data_offsets [8, 0] end before begin");
  expect_error(image(R"({"x":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", f8),
               "tensor 'x': shape [3] of F32 needs 12 bytes, data_offsets [0, 8] hold 8");
  expect_error(image(R"({"x":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", f8),
               "'shape' has an entry that is not a non-negative integer: -2");
  expect_error(image(R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", f8),
               "'data_offsets' is not [begin, end] of two unsigned integers");
  expect_error(image(R"({"x":{"shape":[2],"data_offsets":[0,8]}})", f8), "has no string 'dtype'");
  expect_error(image(R"({"x":[1]})", f8), "tensor 'x': is not a JSON object");
  expect_error(
      image(R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"y":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
            f8),
      "tensor 'y' overlaps tensor 'x' (bytes [4, 8))");
  expect_error(
      image(R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", f8),
      "bytes [0, 4) of the data buffer belong to no tensor");
  auto f12 = f8;
  f12.resize(12);
  expect_error(image(ok, f12), "the tensors cover 8 bytes of the 12-byte data buffer");
  expect_error(image(R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"__metadata__":{"k":1}})", f8),
               "'__metadata__' entry 'k' is not a string");
  expect_error(image(R"({"__metadata__":[]})", {}), "'__metadata__' is not a JSON object");
  // A file that does not exist.
  try {
    read_safetensors(path("missing.safetensors"));
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("missing.safetensors: cannot open for reading"),
              std::string::npos);
  }
}

// An independent reading of our bytes: the format checked with Python's standard library alone
// (struct, json), and the values every_dtype() wrote.
constexpr const char* kChecker = R"PY(
import json, struct, sys
data = open(sys.argv[1], "rb").read()
(n,) = struct.unpack("<Q", data[:8])
assert n % 8 == 0 and 8 + n <= len(data), "header length"
header = json.loads(data[8:8 + n].decode("utf-8"))
meta = header.pop("__metadata__", {})
assert all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()), "metadata"
buf = data[8 + n:]
spans = sorted((v["data_offsets"][0], v["data_offsets"][1], k) for k, v in header.items())
pos = 0
for b, e, k in spans:
    assert b == pos and e >= b, "tensor %s at %d, expected %d" % (k, b, pos)
    pos = e
assert pos == len(buf), "buffer not covered"
fmt = {"F64": ("d", 8), "F32": ("f", 4), "F16": ("e", 2), "BF16": ("H", 2), "I64": ("q", 8),
       "I32": ("i", 4), "U8": ("B", 1)}
for k, v in header.items():
    code, size = fmt[v["dtype"]]
    count = 1
    for d in v["shape"]:
        count *= d
    b, e = v["data_offsets"]
    assert e - b == count * size and b % size == 0, k
    vals = struct.unpack("<%d%s" % (count, code), buf[b:e])
    if v["dtype"] == "BF16":
        vals = [struct.unpack("<f", struct.pack("<I", h << 16))[0] for h in vals]
    for i, x in enumerate(vals):
        if v["dtype"] == "U8":
            want = i
        elif v["dtype"] in ("I64", "I32"):
            want = i - 5
        else:
            want = i * 0.25 - 3
        assert x == want, "%s[%d] = %r, want %r" % (k, i, x, want)
print("checked %d tensors, metadata %s" % (len(header), json.dumps(meta, sort_keys=True)))
)PY";

TEST_F(SafetensorsFile, PythonStandardLibraryReadsOurBytes) {
  if (std::system("python3 -c 'import json, struct' > /dev/null 2>&1") != 0)
    GTEST_SKIP() << "python3 is not on PATH";
  std::ofstream(path("check.py")) << kChecker;
  write_safetensors(path("all.safetensors"), every_dtype());
  const std::string cmd = "python3 " + path("check.py") + " " + path("all.safetensors") + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[256];
  while (std::fgets(buf, sizeof buf, p)) out += buf;
  EXPECT_EQ(pclose(p), 0) << out;
  EXPECT_NE(out.find("checked 9 tensors, metadata {\"format\": \"test\""), std::string::npos) << out;
}

}  // namespace
}  // namespace genai::io
