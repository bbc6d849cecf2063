// safetensors reading and writing (genai/io.hpp has the format and the checks).
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>
#include <limits>
#include <optional>

#include "genai/error.hpp"
#include "genai/io.hpp"

namespace genai::io {
namespace {

using nlohmann::json;

// The reference implementation's limit on the header.
constexpr std::uint64_t kMaxHeaderBytes = 100'000'000;

constexpr DType kDTypes[] = {DType::F32, DType::F64, DType::F16, DType::BF16,
                             DType::I64, DType::I32, DType::U8};

[[noreturn]] void bad(const std::string& name, const std::string& what) {
  throw Error("genai::io: " + name + ": " + what);
}

// Bytes of `shape` elements of `elem` bytes, or nothing past 2^63.
std::optional<std::uint64_t> byte_count(const std::vector<std::int64_t>& shape, std::size_t elem) {
  constexpr auto limit = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
  std::uint64_t n = elem;
  for (const std::int64_t d : shape) {
    if (d < 0) return std::nullopt;
    const auto u = static_cast<std::uint64_t>(d);
    if (u != 0 && n > limit / u) return std::nullopt;
    n *= u;
  }
  return n;
}

std::string shape_string(const std::vector<std::int64_t>& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

struct Entry {
  std::string name;
  DType dtype;
  std::vector<std::int64_t> shape;
  std::uint64_t begin, end;
};

Entry parse_entry(const std::string& file, const std::string& key, const json& v,
                  std::uint64_t buffer_bytes) {
  const std::string t = "tensor '" + key + "': ";
  if (!v.is_object()) bad(file, t + "is not a JSON object");
  const auto dtype = v.find("dtype"), shape = v.find("shape"), offsets = v.find("data_offsets");
  if (dtype == v.end() || !dtype->is_string()) bad(file, t + "has no string 'dtype'");
  if (shape == v.end() || !shape->is_array()) bad(file, t + "has no array 'shape'");
  if (offsets == v.end() || !offsets->is_array() || offsets->size() != 2 ||
      !(*offsets)[0].is_number_unsigned() || !(*offsets)[1].is_number_unsigned())
    bad(file, t + "'data_offsets' is not [begin, end] of two unsigned integers");
  Entry e{key, DType::F32, {}, (*offsets)[0].get<std::uint64_t>(), (*offsets)[1].get<std::uint64_t>()};
  const auto name = dtype->get<std::string>();
  const auto* d = std::find_if(std::begin(kDTypes), std::end(kDTypes),
                               [&](DType k) { return safetensors_dtype(k) == name; });
  if (d == std::end(kDTypes))
    bad(file, t + "unsupported dtype '" + name + "' (supported: F32, F64, F16, BF16, I64, I32, U8)");
  e.dtype = *d;
  for (const json& dim : *shape) {
    if (!dim.is_number_unsigned() ||
        dim.get<std::uint64_t>() > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
      bad(file, t + "'shape' has an entry that is not a non-negative integer: " + dim.dump());
    e.shape.push_back(static_cast<std::int64_t>(dim.get<std::uint64_t>()));
  }
  const std::string span =
      "data_offsets [" + std::to_string(e.begin) + ", " + std::to_string(e.end) + "]";
  if (e.end < e.begin) bad(file, t + span + " end before begin");
  if (e.end > buffer_bytes)
    bad(file, t + span + " past the end of the data buffer (" + std::to_string(buffer_bytes) +
                  " bytes)");
  const auto need = byte_count(e.shape, size_of(e.dtype));
  if (!need || *need != e.end - e.begin)
    bad(file, t + "shape " + shape_string(e.shape) + " of " + name + " needs " +
                  (need ? std::to_string(*need) : std::string("more than 2^63")) + " bytes, " +
                  span + " hold " + std::to_string(e.end - e.begin));
  return e;
}

}  // namespace

std::string safetensors_dtype(DType t) {
  switch (t) {
    case DType::F32: return "F32";
    case DType::F64: return "F64";
    case DType::F16: return "F16";
    case DType::BF16: return "BF16";
    case DType::I64: return "I64";
    case DType::I32: return "I32";
    case DType::U8: return "U8";
  }
  return "?";
}

Safetensors parse_safetensors(std::span<const std::byte> file, const std::string& name) {
  if (file.size() < 8)
    bad(name, "too short for a safetensors file (" + std::to_string(file.size()) +
                  " bytes, the header length alone takes 8)");
  std::uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= static_cast<std::uint64_t>(file[i]) << (8 * i);
  if (n > kMaxHeaderBytes)
    bad(name, "header length " + std::to_string(n) + " exceeds the limit of " +
                  std::to_string(kMaxHeaderBytes) + " bytes");
  if (n > file.size() - 8)
    bad(name, "header length " + std::to_string(n) + " runs past the end of the file (" +
                  std::to_string(file.size()) + " bytes)");
  const auto* text = reinterpret_cast<const char*>(file.data() + 8);
  json header;
  try {
    header = json::parse(text, text + n);
  } catch (const json::exception& e) {
    bad(name, std::string("header is not valid JSON: ") + e.what());
  }
  if (!header.is_object()) bad(name, "header is not a JSON object");
  const std::span<const std::byte> buffer = file.subspan(8 + n);

  Safetensors out;
  std::vector<Entry> entries;
  for (const auto& [key, v] : header.items()) {
    if (key != "__metadata__") {
      entries.push_back(parse_entry(name, key, v, buffer.size()));
      continue;
    }
    if (!v.is_object()) bad(name, "'__metadata__' is not a JSON object");
    for (const auto& [mk, mv] : v.items()) {
      if (!mv.is_string()) bad(name, "'__metadata__' entry '" + mk + "' is not a string");
      out.metadata[mk] = mv.get<std::string>();
    }
  }
  // The tensors must tile the buffer: sorted by offsets, each begins where the last ended.
  std::vector<const Entry*> order;
  for (const Entry& e : entries) order.push_back(&e);
  std::sort(order.begin(), order.end(), [](const Entry* a, const Entry* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  std::uint64_t covered = 0;
  const Entry* last = nullptr;
  for (const Entry* e : order) {
    if (e->begin < covered)
      bad(name, "tensor '" + e->name + "' overlaps tensor '" + last->name + "' (bytes [" +
                    std::to_string(e->begin) + ", " + std::to_string(covered) + "))");
    if (e->begin > covered)
      bad(name, "bytes [" + std::to_string(covered) + ", " + std::to_string(e->begin) +
                    ") of the data buffer belong to no tensor");
    covered = e->end;
    last = e;
  }
  if (covered != buffer.size())
    bad(name, "the tensors cover " + std::to_string(covered) + " bytes of the " +
                  std::to_string(buffer.size()) + "-byte data buffer");
  for (const Entry& e : entries) {
    Array a{e.dtype, e.shape, {}};
    a.bytes.assign(buffer.begin() + e.begin, buffer.begin() + e.end);
    out.tensors.emplace(e.name, std::move(a));
  }
  return out;
}

Safetensors read_safetensors(const std::string& path) {
  return parse_safetensors(read_file(path), path);
}

std::vector<std::byte> serialize_safetensors(const Safetensors& s) {
  constexpr const char* fn = "genai::io::serialize_safetensors";
  std::vector<const std::pair<const std::string, Array>*> order;
  for (const auto& t : s.tensors) order.push_back(&t);
  std::stable_sort(order.begin(), order.end(), [](const auto* a, const auto* b) {
    return size_of(a->second.dtype) > size_of(b->second.dtype);  // then by name (map order)
  });
  json header = json::object();
  if (!s.metadata.empty()) header["__metadata__"] = s.metadata;
  std::uint64_t offset = 0;
  for (const auto* t : order) {
    const auto& [name, a] = *t;
    if (name == "__metadata__")
      detail::throw_argument(fn, "s", "has a tensor named '__metadata__', a reserved name");
    const auto need = byte_count(a.shape, size_of(a.dtype));
    if (!need || *need != a.bytes.size())
      detail::throw_argument(fn, "s", "tensor '", name, "' has ", a.bytes.size(),
                             " bytes, its shape ", shape_string(a.shape), " of ",
                             safetensors_dtype(a.dtype), " needs ",
                             need ? std::to_string(*need) : std::string("more than 2^63"));
    header[name] = {{"dtype", safetensors_dtype(a.dtype)},
                    {"shape", a.shape},
                    {"data_offsets", {offset, offset + a.bytes.size()}}};
    offset += a.bytes.size();
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  std::vector<std::byte> out(8 + text.size() + offset);
  for (int i = 0; i < 8; ++i) out[i] = static_cast<std::byte>((text.size() >> (8 * i)) & 0xff);
  std::memcpy(out.data() + 8, text.data(), text.size());
  std::size_t at = 8 + text.size();
  for (const auto* t : order) {
    const auto& bytes = t->second.bytes;
    if (!bytes.empty()) std::memcpy(out.data() + at, bytes.data(), bytes.size());
    at += bytes.size();
  }
  return out;
}

void write_safetensors(const std::string& path, const Safetensors& s) {
  write_file(path, serialize_safetensors(s));
}

}  // namespace genai::io
