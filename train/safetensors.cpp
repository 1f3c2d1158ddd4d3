// safetensors reading and writing. Loading validates the whole header (dtypes,
// shapes, byte ranges) before allocating anything, then reads each tensor straight
// into its buffer. Saving builds the header the way the reference Python writer
// does, so files are byte-for-byte deterministic, and replaces the old file only
// by an atomic rename after fsync.
#include "train/safetensors.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <tuple>
#include <vector>

#include "core/error.h"
#include "train/crc32.h"
#include "train/json_text.h"

namespace ember {

// The format is little-endian and ember copies bytes straight into tensors.
static_assert(std::endian::native == std::endian::little, "safetensors: big-endian hosts are not supported");

namespace {

using Json = nlohmann::json;

constexpr uint64_t kMaxHeaderBytes = 100'000'000;  // the Rust safetensors library's limit too
constexpr const char* kChecksumKey = "data_crc32";  // CRC-32 of the data section, in __metadata__

// One validated header entry: what to read and where.
struct Entry {
  std::string name;
  std::string dtype;  // F32, I64 or I32
  Shape shape;
  int64_t begin = 0, end = 0;  // relative to the start of the data section
};

// Names come from untrusted files; escape control bytes so an error stays one line.
std::string printable(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7f)
      out += fmt::format("\\x{:02x}", c);
    else
      out += static_cast<char>(c);
  }
  return out;
}

// A short, non-recursive description of a JSON value for an error message: the
// value itself when it is small and flat, else only its type (a hostile header
// could nest arrays millions deep, and dump() recurses).
std::string describe(const Json& js) {
  bool flat = js.is_primitive();
  if (js.is_array() && js.size() <= 16) {
    flat = true;
    for (const Json& v : js) flat = flat && v.is_primitive();
  }
  if (!flat) return std::string("a JSON ") + js.type_name();
  std::string text = printable(js.dump(-1, ' ', true, Json::error_handler_t::replace));
  if (text.size() > 80) text = text.substr(0, 77) + "...";
  return text;
}

int64_t item_size(const std::string& dtype) {
  if (dtype == "F32" || dtype == "I32") return 4;
  if (dtype == "I64") return 8;
  return 0;  // not one ember reads
}

// A JSON integer that fits int64 (JSON allows floats and huge numbers; we don't).
bool to_i64(const Json& v, int64_t& out) {
  if (v.is_number_unsigned()) {
    const uint64_t u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(INT64_MAX)) return false;
    out = static_cast<int64_t>(u);
    return true;
  }
  if (v.is_number_integer()) {
    out = v.get<int64_t>();
    return true;
  }
  return false;
}

Shape parse_shape(const std::string& path, const std::string& name, const Json& js) {
  EMBER_CHECK(js.is_array(), "safetensors: {}: tensor '{}' has a shape that is not a list of integers: {}", path,
              printable(name), describe(js));
  Shape shape;
  for (const Json& d : js) {
    int64_t v = 0;
    EMBER_CHECK(to_i64(d, v), "safetensors: {}: tensor '{}' has a shape that is not a list of integers: {}", path,
                printable(name), describe(js));
    shape.push_back(v);
  }
  for (int64_t d : shape)
    EMBER_CHECK(d >= 0, "safetensors: {}: tensor '{}' has a negative size in shape {}", path, printable(name),
                shape_str(shape));
  return shape;
}

// Checks one header entry against the rules of the format and the data section size.
Entry parse_entry(const std::string& path, const std::string& name, const Json& js, int64_t data_bytes) {
  const std::string pname = printable(name);
  EMBER_CHECK(js.is_object() && js.contains("dtype") && js.contains("shape") && js.contains("data_offsets"),
              "safetensors: {}: tensor '{}' entry needs dtype, shape and data_offsets, got {}", path, pname,
              describe(js));
  Entry e;
  e.name = name;
  EMBER_CHECK(js["dtype"].is_string(), "safetensors: {}: tensor '{}' has a dtype that is not a string: {}", path, pname,
              describe(js["dtype"]));
  e.dtype = js["dtype"].get<std::string>();
  const int64_t size = item_size(e.dtype);
  EMBER_CHECK(size > 0, "safetensors: {}: tensor '{}' has dtype {}; ember reads only F32, I64 and I32", path, pname,
              printable(e.dtype));
  e.shape = parse_shape(path, name, js["shape"]);
  const Json& offs = js["data_offsets"];
  EMBER_CHECK(offs.is_array() && offs.size() == 2 && to_i64(offs[0], e.begin) && to_i64(offs[1], e.end) &&
                  e.begin >= 0 && e.end >= 0,
              "safetensors: {}: tensor '{}' has data_offsets {}; expected [begin, end], two non-negative integers",
              path, pname, describe(offs));
  EMBER_CHECK(e.begin <= e.end, "safetensors: {}: tensor '{}' has data_offsets [{}, {}] with begin after end", path,
              pname, e.begin, e.end);
  EMBER_CHECK(e.end <= data_bytes,
              "safetensors: {}: tensor '{}' has data_offsets [{}, {}] beyond the {}-byte data section", path, pname,
              e.begin, e.end, data_bytes);
  // Multiply with overflow checks: a hostile shape must not wrap round to a small size.
  int64_t need = size;
  bool overflow = false;
  for (int64_t d : e.shape) overflow = overflow || __builtin_mul_overflow(need, d, &need);
  EMBER_CHECK(!overflow && e.end - e.begin == need,
              "safetensors: {}: tensor '{}' has data_offsets [{}, {}] but shape {} of {} needs {} bytes", path, pname,
              e.begin, e.end, shape_str(e.shape), e.dtype,
              overflow ? std::string("more than 2^63") : std::to_string(need));
  return e;
}

void read_metadata(const std::string& path, const Json& js, std::map<std::string, std::string>& out) {
  if (js.is_null()) return;  // the Python reader accepts null as "no metadata"
  EMBER_CHECK(js.is_object(), "safetensors: {}: __metadata__ is not a map of strings to strings", path);
  for (const auto& [key, value] : js.items()) {
    EMBER_CHECK(value.is_string(), "safetensors: {}: __metadata__ entry '{}' is not a string: {}", path, printable(key),
                describe(value));
    out[key] = value.get<std::string>();
  }
}

// Reads the 8-byte length and the JSON header; returns the parsed header and sets
// data_start (the file offset of the data section) and data_bytes (its size).
Json read_header(const std::string& path, std::ifstream& in, int64_t& data_start, int64_t& data_bytes) {
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  EMBER_CHECK(std::filesystem::exists(status), "safetensors: {}: no such file", path);
  EMBER_CHECK(std::filesystem::is_regular_file(status), "safetensors: {}: not a regular file", path);
  const uint64_t file_size = std::filesystem::file_size(path, ec);
  EMBER_CHECK(!ec, "safetensors: {}: cannot read the file size ({})", path, ec.message());
  in.open(path, std::ios::binary);
  EMBER_CHECK(in.is_open(), "safetensors: {}: cannot open for reading ({})", path, std::strerror(errno));
  EMBER_CHECK(file_size >= 8, "safetensors: {}: file is {} bytes, too short for the 8-byte header length", path,
              file_size);
  unsigned char len_bytes[8];
  in.read(reinterpret_cast<char*>(len_bytes), 8);
  EMBER_CHECK(in.good(), "safetensors: {}: cannot read the header length", path);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | len_bytes[i];
  EMBER_CHECK(n <= file_size - 8,
              "safetensors: {}: header length {} exceeds the {} bytes after the length field (truncated, or not a "
              "safetensors file)",
              path, n, file_size - 8);
  EMBER_CHECK(n <= kMaxHeaderBytes, "safetensors: {}: header length {} is over the {}-byte limit", path, n,
              kMaxHeaderBytes);
  std::string text(n, '\0');
  in.read(text.data(), static_cast<std::streamsize>(n));
  EMBER_CHECK(in.good(), "safetensors: {}: cannot read the {}-byte header", path, n);
  const Json header = parse_json_text(text, fmt::format("safetensors: {}: header", path));
  EMBER_CHECK(header.is_object(), "safetensors: {}: header is not a JSON object", path);
  data_start = static_cast<int64_t>(8 + n);
  data_bytes = static_cast<int64_t>(file_size - 8 - n);
  return header;
}

// The tensors' byte ranges must tile the data section: in file order each
// starts where the one before ends, and the last ends at the end of the file
// (as the safetensors library requires). Overlaps would alias two tensors'
// bytes, and gaps or trailing bytes mean a damaged or doctored file. Sorts
// `entries` into file order.
void check_tiling(const std::string& path, std::vector<Entry>& entries, int64_t data_bytes) {
  std::sort(entries.begin(), entries.end(),
            [](const Entry& a, const Entry& b) { return std::tie(a.begin, a.end) < std::tie(b.begin, b.end); });
  int64_t at = 0;
  const Entry* previous = nullptr;
  for (const Entry& e : entries) {
    EMBER_CHECK(e.begin >= at, "safetensors: {}: tensor '{}' at bytes [{}, {}] overlaps tensor '{}' at [{}, {}]", path,
                printable(e.name), e.begin, e.end, previous ? printable(previous->name) : "", previous ? previous->begin : 0,
                at);
    EMBER_CHECK(e.begin == at, "safetensors: {}: bytes [{}, {}) of the data section belong to no tensor (before '{}')",
                path, at, e.begin, printable(e.name));
    at = e.end;
    previous = &e;
  }
  EMBER_CHECK(at == data_bytes, "safetensors: {}: {} trailing bytes after the last tensor (data section {} bytes)", path,
              data_bytes - at, data_bytes);
}

// The data_crc32 that ember's writer puts in __metadata__ (8 hex digits), if any.
std::optional<uint32_t> stored_checksum(const std::string& path, const std::map<std::string, std::string>& metadata) {
  const auto it = metadata.find(kChecksumKey);
  if (it == metadata.end()) return std::nullopt;
  const std::string& v = it->second;
  EMBER_CHECK(v.size() == 8 && v.find_first_not_of("0123456789abcdef") == std::string::npos,
              "safetensors: {}: __metadata__ {} is '{}'; expected 8 lowercase hex digits", path, kChecksumKey,
              printable(v));
  return static_cast<uint32_t>(std::stoul(v, nullptr, 16));
}

void read_bytes(const std::string& path, std::ifstream& in, const Entry& e, int64_t data_start, void* dst) {
  if (e.end == e.begin) return;
  in.seekg(data_start + e.begin);
  in.read(static_cast<char*>(dst), e.end - e.begin);
  EMBER_CHECK(in.good(), "safetensors: {}: reading tensor '{}' failed (did the file change while loading?)", path,
              printable(e.name));
}

}  // namespace

const Tensor& SafetensorsFile::tensor(const std::string& name) const {
  const auto it = tensors.find(name);
  if (it != tensors.end()) return it->second;
  EMBER_CHECK(!int_tensors.contains(name), "safetensors: '{}' is an I64 tensor, not F32: use ints()", name);
  // Golden files prefix keys (param., grad., after.); point at the likely intent.
  std::string hint;
  int shown = 0;
  for (const auto& [key, t] : tensors) {
    if (shown == 4 || !key.ends_with("." + name)) continue;
    hint += fmt::format("{}'{}'", shown++ == 0 ? "; did you mean " : " or ", key);
  }
  if (shown > 0) hint += "?";
  fail("safetensors: no F32 tensor '{}' among the {} in this file{}", name, tensors.size(), hint);
}

const IntTensor& SafetensorsFile::ints(const std::string& name) const {
  const auto it = int_tensors.find(name);
  if (it != int_tensors.end()) return it->second;
  EMBER_CHECK(!tensors.contains(name), "safetensors: '{}' is an F32 tensor, not I64: use tensor()", name);
  fail("safetensors: no I64 tensor '{}' among the {} in this file", name, int_tensors.size());
}

SafetensorsFile load_safetensors(const std::string& path) {
  std::ifstream in;
  int64_t data_start = 0, data_bytes = 0;
  const Json header = read_header(path, in, data_start, data_bytes);
  SafetensorsFile file;
  std::vector<Entry> entries;
  for (const auto& [name, value] : header.items()) {
    if (name == "__metadata__")
      read_metadata(path, value, file.metadata);
    else
      entries.push_back(parse_entry(path, name, value, data_bytes));
  }
  check_tiling(path, entries, data_bytes);
  const std::optional<uint32_t> stored_crc = stored_checksum(path, file.metadata);
  // Everything is validated; only now allocate and read, in file order.
  uint32_t crc = 0;
  for (const Entry& e : entries) {
    void* dst = nullptr;
    std::vector<int32_t> narrow;
    if (e.dtype == "F32") {
      dst = file.tensors.emplace(e.name, empty(e.shape)).first->second.data();
    } else if (e.dtype == "I64") {
      IntTensor& t = file.int_tensors.emplace(e.name, IntTensor(e.shape, std::vector<int64_t>(numel_of(e.shape))))
                         .first->second;
      dst = t.data.data();
    } else {
      narrow.resize(static_cast<size_t>(numel_of(e.shape)));
      dst = narrow.data();
    }
    read_bytes(path, in, e, data_start, dst);
    crc = crc32_update(crc, dst, static_cast<size_t>(e.end - e.begin));
    if (e.dtype == "I32")  // widened: ember's ids are int64
      file.int_tensors.emplace(e.name, IntTensor(e.shape, std::vector<int64_t>(narrow.begin(), narrow.end())));
  }
  EMBER_CHECK(!stored_crc || *stored_crc == crc,
              "safetensors: {}: the data does not match its checksum (data_crc32 {:08x}, computed {:08x}): the file "
              "is damaged",
              path, stored_crc.value_or(0), crc);
  return file;
}

namespace {

// One tensor as it goes to disk: float data made contiguous, or int64 ids.
struct Outgoing {
  std::string name;
  Tensor floats;                    // defined for F32 entries
  const IntTensor* ints = nullptr;  // set for I64 entries
  int64_t bytes() const { return floats.defined() ? floats.numel() * 4 : ints->numel() * 8; }
  const void* data() const { return floats.defined() ? static_cast<const void*>(floats.data()) : ints->data.data(); }
};

// Validates the caller's tensors and merges both maps into one key order.
std::vector<Outgoing> outgoing(const std::string& path, const SafetensorsFile& file) {
  std::vector<Outgoing> out;
  for (const auto& [name, t] : file.tensors) {
    EMBER_CHECK(name != "__metadata__", "safetensors: {}: cannot save: the name '__metadata__' is reserved", path);
    EMBER_CHECK(t.defined(), "safetensors: {}: cannot save: tensor '{}' is undefined", path, name);
    EMBER_CHECK(!file.int_tensors.contains(name), "safetensors: {}: cannot save: '{}' is both an F32 and an I64 tensor",
                path, name);
    out.push_back({name, t.detach().contiguous(), nullptr});
  }
  for (const auto& [name, t] : file.int_tensors) {
    EMBER_CHECK(name != "__metadata__", "safetensors: {}: cannot save: the name '__metadata__' is reserved", path);
    bool ok = true;
    for (int64_t d : t.shape) ok = ok && d >= 0;
    EMBER_CHECK(ok && numel_of(t.shape) == t.numel(),
                "safetensors: {}: cannot save: int tensor '{}' has shape {} but {} values", path, name,
                shape_str(t.shape), t.numel());
    out.push_back({name, Tensor(), &t});
  }
  std::sort(out.begin(), out.end(), [](const Outgoing& a, const Outgoing& b) { return a.name < b.name; });
  return out;
}

// The JSON header exactly as safetensors_io.py writes it: sorted keys, compact,
// ASCII-escaped, padded with spaces to a multiple of 8 bytes.
std::string header_text(const std::string& path, const std::vector<Outgoing>& items,
                        const std::map<std::string, std::string>& metadata) {
  Json h = Json::object();
  int64_t offset = 0;
  for (const Outgoing& o : items) {
    const Shape& shape = o.floats.defined() ? o.floats.shape() : o.ints->shape;
    h[o.name] = {{"dtype", o.floats.defined() ? "F32" : "I64"},
                 {"shape", shape},
                 {"data_offsets", {offset, offset + o.bytes()}}};
    offset += o.bytes();
  }
  if (!metadata.empty()) h["__metadata__"] = metadata;
  std::string text;
  try {
    text = h.dump(-1, ' ', /*ensure_ascii=*/true);
  } catch (const Json::exception& e) {
    fail("safetensors: {}: cannot save: names and metadata must be valid UTF-8 ({})", path, e.what());
  }
  text.append((8 - text.size() % 8) % 8, ' ');
  return text;
}

// The temporary file of an atomic save; removed unless the rename committed it.
struct TempFile {
  std::string path;
  std::FILE* f = nullptr;
  bool committed = false;
  ~TempFile() {
    if (f) std::fclose(f);
    if (!committed) std::remove(path.c_str());
  }
};

void write_all(const std::string& path, TempFile& tmp, const void* data, size_t n) {
  EMBER_CHECK(n == 0 || std::fwrite(data, 1, n, tmp.f) == n, "safetensors: {}: writing {} failed ({})", path, tmp.path,
              std::strerror(errno));
}

// Makes the rename itself durable; best effort (some filesystems refuse).
void sync_directory(const std::string& path) {
  std::filesystem::path dir = std::filesystem::path(path).parent_path();
  if (dir.empty()) dir = ".";
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

}  // namespace

void save_safetensors(const std::string& path, const SafetensorsFile& file) {
  const std::vector<Outgoing> items = outgoing(path, file);
  std::map<std::string, std::string> metadata = file.metadata;
  uint32_t crc = 0;
  for (const Outgoing& o : items) crc = crc32_update(crc, o.data(), static_cast<size_t>(o.bytes()));
  metadata[kChecksumKey] = fmt::format("{:08x}", crc);
  const std::string header = header_text(path, items, metadata);
  TempFile tmp{path + ".tmp"};
  tmp.f = std::fopen(tmp.path.c_str(), "wb");
  EMBER_CHECK(tmp.f != nullptr, "safetensors: {}: cannot create {} ({})", path, tmp.path, std::strerror(errno));
  const uint64_t n = header.size();  // little-endian host: the bytes are already in file order
  write_all(path, tmp, &n, 8);
  write_all(path, tmp, header.data(), header.size());
  for (const Outgoing& o : items) write_all(path, tmp, o.data(), static_cast<size_t>(o.bytes()));
  EMBER_CHECK(std::fflush(tmp.f) == 0 && ::fsync(::fileno(tmp.f)) == 0, "safetensors: {}: flushing {} failed ({})",
              path, tmp.path, std::strerror(errno));
  const int closed = std::fclose(tmp.f);
  tmp.f = nullptr;
  EMBER_CHECK(closed == 0, "safetensors: {}: closing {} failed ({})", path, tmp.path, std::strerror(errno));
  EMBER_CHECK(std::rename(tmp.path.c_str(), path.c_str()) == 0, "safetensors: {}: renaming {} over it failed ({})",
              path, tmp.path, std::strerror(errno));
  tmp.committed = true;
  sync_directory(path);
}

}  // namespace ember
