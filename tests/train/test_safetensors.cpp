// Tests for safetensors reading and writing: bit-exact round trips, byte-identical
// output to the Python reference writer, the committed golden files, atomic saves
// that keep the old file on failure, and one clear Error for each kind of bad file.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>

#include "core/error.h"
#include "tests/train/temp_dir.h"
#include "train/safetensors.h"

using namespace ember;
namespace fs = std::filesystem;

namespace {

const std::string kOps = "tests/reference/data/ops.safetensors";
const std::string kGptLearned = "tests/reference/data/gpt_learned.safetensors";

std::string error_of_load(const std::string& path) {
  try {
    load_safetensors(path);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

std::string read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void write_bytes(const fs::path& p, const std::string& bytes) {
  std::ofstream(p, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// A safetensors file by hand: little-endian length `n`, then `header`, then `data`.
std::string raw_file(uint64_t n, const std::string& header, const std::string& data) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out + header + data;
}
std::string raw_file(const std::string& header, const std::string& data) {
  return raw_file(header.size(), header, data);
}

template <typename T>
std::string bytes_of(const std::vector<T>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}

// Bitwise equality, so NaN payloads, -0.0 and denormals must survive exactly.
bool same_bits(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape()) return false;
  const std::vector<float> x = a.to_vector(), y = b.to_vector();
  return x.empty() || std::memcmp(x.data(), y.data(), x.size() * sizeof(float)) == 0;
}

using ember::testing::TempDir;

SafetensorsFile sample_file() {
  SafetensorsFile f;
  const float nan = std::numeric_limits<float>::quiet_NaN();
  f.tensors["w"] = tensor({2, 3}, {1.5f, -0.0f, nan, 1e-40f, 3.4e38f, -7.25f});
  f.tensors["bias"] = tensor({3}, {0.1f, 0.2f, 0.3f});
  f.tensors["loss"] = scalar_tensor(2.71828f);
  f.tensors["empty"] = zeros({0, 4});
  f.tensors["t"] = arange(6).view({2, 3}).transpose(0, 1);  // non-contiguous: saved as [3, 2] row-major
  f.int_tensors["ids"] = IntTensor({2, 2}, {0, -1, INT64_MAX, INT64_MIN});
  f.metadata["pos"] = "learned";
  f.metadata["note"] = "héllo \"quoted\"\n";
  return f;
}

}  // namespace

TEST_CASE("safetensors: save then load gives back every tensor bit-exactly") {
  TempDir dir;
  const SafetensorsFile f = sample_file();
  save_safetensors(dir / "a.safetensors", f);
  const SafetensorsFile g = load_safetensors(dir / "a.safetensors");
  CHECK(g.tensors.size() == 5);
  // Pairs, not structured bindings: clang < 16 cannot capture those in CHECK_MESSAGE.
  for (const auto& entry : f.tensors) CHECK_MESSAGE(same_bits(g.tensor(entry.first), entry.second), entry.first);
  CHECK(g.tensor("loss").dim() == 0);
  CHECK(g.tensor("empty").shape() == Shape{0, 4});
  CHECK(g.tensor("t").shape() == Shape{3, 2});
  CHECK(g.tensor("t").to_vector() == std::vector<float>{0, 3, 1, 4, 2, 5});
  CHECK(g.int_tensors.size() == 1);
  CHECK(g.ints("ids").shape == Shape{2, 2});
  CHECK(g.ints("ids").data == std::vector<int64_t>{0, -1, INT64_MAX, INT64_MIN});
  std::map<std::string, std::string> with_checksum = f.metadata;
  with_checksum["data_crc32"] = g.metadata.at("data_crc32");  // its value is checked against zlib's below
  CHECK(g.metadata == with_checksum);
  CHECK_FALSE(g.tensor("w").requires_grad());
}

TEST_CASE("safetensors: the header is the Python writer's: sorted, compact, space-padded to 8 bytes") {
  TempDir dir;
  SafetensorsFile f;
  f.tensors["b"] = tensor({1}, {1.0f});
  f.int_tensors["a"] = IntTensor({2}, {7, -1});
  f.metadata["k"] = "v";
  save_safetensors(dir / "x.safetensors", f);
  // From safetensors_io.write_raw on the same tensors: 159 bytes of JSON + 1
  // space; data_crc32 is Python's zlib.crc32 of the 20 data bytes.
  const std::string header =
      R"({"__metadata__":{"data_crc32":"7d83916e","k":"v"},"a":{"data_offsets":[0,16],"dtype":"I64","shape":[2]},)"
      R"("b":{"data_offsets":[16,20],"dtype":"F32","shape":[1]}} )";
  REQUIRE(header.size() % 8 == 0);
  const std::string expected =
      raw_file(header, bytes_of(std::vector<int64_t>{7, -1}) + bytes_of(std::vector<float>{1}));
  CHECK(read_bytes(dir / "x.safetensors") == expected);
}

TEST_CASE("safetensors: saving the same tensors twice writes identical bytes") {
  TempDir dir;
  save_safetensors(dir / "a.safetensors", sample_file());
  save_safetensors(dir / "b.safetensors", sample_file());
  const std::string a = read_bytes(dir / "a.safetensors");
  CHECK(a.size() > 8);
  CHECK(a == read_bytes(dir / "b.safetensors"));
  save_safetensors(dir / "a.safetensors", load_safetensors(dir / "a.safetensors"));
  CHECK(read_bytes(dir / "a.safetensors") == a);
}

TEST_CASE("safetensors: ops golden file has the documented tensors, shapes and ids") {
  const SafetensorsFile f = load_safetensors(kOps);
  CHECK(f.tensor("softmax.dim1.x").shape() == Shape{3, 5, 4});
  CHECK(f.tensor("layer_norm.last.grad_weight").shape() == Shape{8});
  CHECK(f.tensor("matmul.bcast.a").shape() == Shape{2, 1, 3, 4});
  CHECK(f.tensor("matmul.bcast.out").shape() == Shape{2, 5, 3, 2});
  CHECK(f.tensor("cross_entropy.flat.loss").dim() == 0);
  CHECK(f.ints("cross_entropy.flat.targets").shape == Shape{6});
  const std::vector<int64_t>& t = f.ints("cross_entropy.flat.targets").data;
  for (int i = 0; i < 6; ++i) CHECK_MESSAGE((t[i] == -1) == (i == 1 || i == 4), "targets[", i, "] = ", t[i]);
  CHECK(f.ints("cross_entropy.btv.targets").data[3] == -1);  // targets[1, 0]
  CHECK(f.ints("embedding.repeat.ids").data == std::vector<int64_t>{1, 4, 4, 9, 0, 4, 7, 1, 1, 3});
  // GELU inputs are -6, -5.75, ..., 6 then 0.1: exact in float32 except 0.1.
  const std::vector<float> x = f.tensor("gelu.erf.x").to_vector();
  REQUIRE(x.size() == 50);
  CHECK(x[0] == -6.0f);
  CHECK(x[24] == 0.0f);
  CHECK(x[48] == 6.0f);
  CHECK(x[49] == 0.1f);
  CHECK(f.metadata.contains("seed"));
}

TEST_CASE("safetensors: gpt_learned golden file has the documented config, ids and parameters") {
  const SafetensorsFile f = load_safetensors(kGptLearned);
  CHECK(f.metadata.at("vocab_size") == "17");
  CHECK(f.metadata.at("n_embd") == "32");
  CHECK(f.metadata.at("pos") == "learned");
  CHECK(f.metadata.at("tie_weights") == "true");
  CHECK(f.ints("idx").shape == Shape{3, 8});
  const IntTensor& targets = f.ints("targets");
  REQUIRE(targets.shape == Shape{3, 8});
  for (int64_t i = 0; i < 24; ++i) {
    const bool ignored = i == 3 || i == 23;  // targets[0, 3] and targets[2, 7]
    CHECK_MESSAGE((targets.data[i] == -1) == ignored, "targets flat ", i, " = ", targets.data[i]);
    if (!ignored) CHECK((targets.data[i] >= 0 && targets.data[i] < 17));
  }
  CHECK(f.tensor("param.transformer.wte.weight").shape() == Shape{17, 32});
  CHECK(f.tensor("param.transformer.wpe.weight").shape() == Shape{8, 32});
  CHECK(f.tensor("param.transformer.h.1.attn.c_attn.weight").shape() == Shape{96, 32});
  CHECK(f.tensor("param.transformer.h.0.mlp.c_proj.weight").shape() == Shape{32, 128});
  CHECK(f.tensor("logits").shape() == Shape{3, 8, 17});
  CHECK(f.tensor("loss").dim() == 0);
  CHECK(same_bits(f.tensor("param.lm_head.weight"), f.tensor("param.transformer.wte.weight")));  // tied
  // Stored as float32 of the double schedule 0.005, 0.01, 0.0055.
  CHECK(f.tensor("adamw.lr").to_vector() == std::vector<float>{0.005f, 0.01f, 0.0055f});
  CHECK(f.tensor("adamw.loss").at({0}) == f.tensor("loss").item());
}

TEST_CASE("safetensors: re-saving every Python-written golden file reproduces it byte for byte") {
  TempDir dir;
  for (const auto& entry : fs::directory_iterator("tests/reference/data")) {
    if (entry.path().extension() != ".safetensors") continue;
    const std::string original = read_bytes(entry.path());
    const SafetensorsFile f = load_safetensors(entry.path().string());
    save_safetensors(dir / "copy.safetensors", f);
    CHECK_MESSAGE(read_bytes(dir / "copy.safetensors") == original, entry.path());
    const SafetensorsFile g = load_safetensors(dir / "copy.safetensors");
    CHECK(g.metadata == f.metadata);
    CHECK(g.tensors.size() == f.tensors.size());
    for (const auto& entry : f.tensors) CHECK_MESSAGE(same_bits(g.tensor(entry.first), entry.second), entry.first);
    for (const auto& entry : f.int_tensors) CHECK_MESSAGE(g.ints(entry.first).data == entry.second.data, entry.first);
  }
}

TEST_CASE("safetensors: I32 tensors load widened to int64") {
  TempDir dir;
  write_bytes(dir / "i32.safetensors", raw_file(R"({"ids":{"dtype":"I32","shape":[3],"data_offsets":[0,12]}})",
                                                bytes_of(std::vector<int32_t>{5, -1, INT32_MIN})));
  const SafetensorsFile f = load_safetensors(dir / "i32.safetensors");
  CHECK(f.ints("ids").data == std::vector<int64_t>{5, -1, INT32_MIN});
  CHECK(f.tensors.empty());
  CHECK(f.metadata.empty());
}

TEST_CASE("safetensors: a failed save leaves the previous file intact and no .tmp behind") {
  TempDir dir;
  const std::string path = dir / "ckpt.safetensors";
  save_safetensors(path, sample_file());
  const std::string before = read_bytes(path);

  SafetensorsFile bad = sample_file();
  bad.tensors["zzz"] = Tensor();  // undefined: rejected before any byte is written
  CHECK_THROWS_WITH_AS(save_safetensors(path, bad),
                       ("safetensors: " + path + ": cannot save: tensor 'zzz' is undefined").c_str(), Error);
  CHECK(read_bytes(path) == before);
  CHECK_FALSE(fs::exists(path + ".tmp"));

  // A disk that fills up mid-write: the temporary file is a link to /dev/full.
  if (fs::exists("/dev/full")) {
    fs::create_symlink("/dev/full", path + ".tmp");
    CHECK_THROWS_AS(save_safetensors(path, sample_file()), Error);
    CHECK(read_bytes(path) == before);
    CHECK_FALSE(fs::is_symlink(path + ".tmp"));
  }

  // A stale .tmp from an earlier crash is simply overwritten.
  write_bytes(path + ".tmp", "half a file");
  SafetensorsFile small;
  small.tensors["x"] = tensor({1}, {3.0f});
  save_safetensors(path, small);
  CHECK(load_safetensors(path).tensor("x").item() == 3.0f);
  CHECK_FALSE(fs::exists(path + ".tmp"));

  const std::string missing = dir / "no/such/dir/ckpt.safetensors";
  CHECK_THROWS_WITH_AS(
      save_safetensors(missing, small),
      ("safetensors: " + missing + ": cannot create " + missing + ".tmp (No such file or directory)").c_str(), Error);
  CHECK_FALSE(fs::exists(dir / "no"));
}

TEST_CASE("safetensors: save rejects clashing, reserved and malformed entries") {
  const std::string p = "unused.safetensors";
  SafetensorsFile f;
  f.tensors["x"] = ones({2});
  f.int_tensors["x"] = IntTensor({1}, {0});
  CHECK_THROWS_WITH_AS(save_safetensors(p, f),
                       "safetensors: unused.safetensors: cannot save: 'x' is both an F32 and an I64 tensor", Error);
  SafetensorsFile r;
  r.tensors["__metadata__"] = ones({1});
  CHECK_THROWS_WITH_AS(save_safetensors(p, r),
                       "safetensors: unused.safetensors: cannot save: the name '__metadata__' is reserved", Error);
  SafetensorsFile m;
  m.int_tensors["ids"].shape = {2, 3};
  m.int_tensors["ids"].data = {1, 2};
  CHECK_THROWS_WITH_AS(save_safetensors(p, m),
                       "safetensors: unused.safetensors: cannot save: int tensor 'ids' has shape [2, 3] but 2 values",
                       Error);
  SafetensorsFile u;
  u.metadata["bad"] = "\xff";
  CHECK_THROWS_AS(save_safetensors(p, u), Error);  // not UTF-8: JSON cannot carry it
  CHECK_FALSE(fs::exists(p));
  CHECK_FALSE(fs::exists(p + ".tmp"));
}

TEST_CASE("safetensors: lookups of missing keys name the key and hint at the right one") {
  const SafetensorsFile f = load_safetensors(kGptLearned);
  CHECK_THROWS_WITH_AS(f.tensor("idx"), "safetensors: 'idx' is an I64 tensor, not F32: use ints()", Error);
  CHECK_THROWS_WITH_AS(f.ints("loss"), "safetensors: 'loss' is an F32 tensor, not I64: use tensor()", Error);
  CHECK_THROWS_WITH_AS(f.tensor("transformer.wpe.weight"),
                       fmt::format("safetensors: no F32 tensor 'transformer.wpe.weight' among the {} in this file; "
                                   "did you mean 'adamw.grad1.transformer.wpe.weight' or "
                                   "'adamw.grad2.transformer.wpe.weight' or 'after.transformer.wpe.weight' or "
                                   "'grad.transformer.wpe.weight'?",
                                   f.tensors.size())
                           .c_str(),
                       Error);
  CHECK_THROWS_WITH_AS(f.ints("nope"), "safetensors: no I64 tensor 'nope' among the 2 in this file", Error);
}

TEST_CASE("safetensors: unreadable or truncated files give one clear error") {
  TempDir dir;
  const std::string p = dir / "bad.safetensors";
  CHECK(error_of_load(p) == "safetensors: " + p + ": no such file");
  CHECK(error_of_load(dir.path.string()) == "safetensors: " + dir.path.string() + ": not a regular file");
  write_bytes(p, std::string("\x05\0\0\0\0", 5));
  CHECK(error_of_load(p) == "safetensors: " + p + ": file is 5 bytes, too short for the 8-byte header length");
  const std::string header = R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})";
  write_bytes(p, raw_file(header.size() + 1, header, ""));
  CHECK(error_of_load(p) == fmt::format("safetensors: {}: header length {} exceeds the {} bytes after the length "
                                        "field (truncated, or not a safetensors file)",
                                        p, header.size() + 1, header.size()));
  write_bytes(p, raw_file(header, ""));  // header intact, data cut off
  CHECK(error_of_load(p) ==
        "safetensors: " + p + ": tensor 'x' has data_offsets [0, 4] beyond the 0-byte data section");
  // A huge claimed header in a file big enough to hold it (sparse, so cheap).
  write_bytes(p, raw_file(100'000'008, "", ""));
  fs::resize_file(p, 100'000'100);
  CHECK(error_of_load(p) == "safetensors: " + p + ": header length 100000008 is over the 100000000-byte limit");
}

TEST_CASE("safetensors: malformed headers give errors naming the key and the rule") {
  TempDir dir;
  const std::string p = dir / "bad.safetensors";
  const std::string four(4, '\0');
  auto load_error = [&](const std::string& header, const std::string& data) {
    write_bytes(p, raw_file(header, data));
    return error_of_load(p);
  };
  const std::string prefix = "safetensors: " + p + ": ";
  CHECK(load_error("{not json", "") == prefix + "header is not valid JSON (error at byte 3 of 9)");
  CHECK(load_error("{\"a\":\"\xff\"}", "") == prefix + "header is not valid JSON (error at byte 7 of 9)");
  CHECK(load_error("[1, 2]", "") == prefix + "header is not a JSON object");
  CHECK(load_error(R"({"h":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}})", four) ==
        prefix + "tensor 'h' has dtype F16; ember reads only F32, I64 and I32");
  CHECK(load_error(R"({"d":{"dtype":"F64","shape":[],"data_offsets":[0,8]}})", four + four) ==
        prefix + "tensor 'd' has dtype F64; ember reads only F32, I64 and I32");
  CHECK(load_error(R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[4,12]}})", four + four) ==
        prefix + "tensor 'x' has data_offsets [4, 12] beyond the 8-byte data section");
  CHECK(load_error(R"({"lm_head.weight":{"dtype":"F32","shape":[17,32],"data_offsets":[0,100]}})",
                   std::string(100, '\0')) ==
        prefix + "tensor 'lm_head.weight' has data_offsets [0, 100] but shape [17, 32] of F32 needs 2176 bytes");
  CHECK(load_error(R"({"x":{"dtype":"F32","shape":[2,-3],"data_offsets":[0,4]}})", four) ==
        prefix + "tensor 'x' has a negative size in shape [2, -3]");
  CHECK(load_error(R"({"x":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}})", four) ==
        prefix + "tensor 'x' has a shape that is not a list of integers: [1.5]");
  CHECK(load_error(R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}})", four) ==
        prefix + "tensor 'x' has data_offsets [4, 0] with begin after end");
  CHECK(load_error(R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[0]}})", four) ==
        prefix + "tensor 'x' has data_offsets [0]; expected [begin, end], two non-negative integers");
  CHECK(load_error(R"({"x":{"dtype":"F32","shape":[1]}})", four) ==
        prefix + "tensor 'x' entry needs dtype, shape and data_offsets, got a JSON object");
  CHECK(load_error(R"({"x":7})", "") == prefix + "tensor 'x' entry needs dtype, shape and data_offsets, got 7");
  CHECK(load_error(R"({"__metadata__":{"seed":3}})", "") == prefix + "__metadata__ entry 'seed' is not a string: 3");
  CHECK(load_error(R"({"__metadata__":[1]})", "") == prefix + "__metadata__ is not a map of strings to strings");
  // Shapes whose byte count overflows 64 bits must not wrap round to a small size.
  CHECK(load_error(R"({"x":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]}})", "") ==
        prefix +
            "tensor 'x' has data_offsets [0, 0] but shape [4294967296, 4294967296] of F32 needs more than 2^63 "
            "bytes");
  // Deep nesting is described, not printed: dump() recurses and would overflow the stack.
  const std::string deep = std::string(300'000, '[') + std::string(300'000, ']');
  CHECK(load_error(R"({"x":{"dtype":"F32","shape":)" + deep + R"(,"data_offsets":[0,0]}})", "") ==
        prefix + "tensor 'x' has a shape that is not a list of integers: a JSON array");
  // Control bytes in a key are escaped so the message stays on one line.
  CHECK(load_error("{\"a\\nb\":{\"dtype\":\"BF16\",\"shape\":[],\"data_offsets\":[0,2]}}", "xx") ==
        prefix + "tensor 'a\\x0ab' has dtype BF16; ember reads only F32, I64 and I32");
}

TEST_CASE("safetensors: corrupted bytes anywhere in a file give an Error or valid data, never a crash") {
  TempDir dir;
  const std::string good_path = dir / "good.safetensors", p = dir / "bad.safetensors";
  save_safetensors(good_path, sample_file());
  const std::string good = read_bytes(good_path);
  std::mt19937 rng(1234);
  int errors = 0, loads = 0;
  auto try_load = [&](const std::string& bytes) {
    write_bytes(p, bytes);
    try {
      load_safetensors(p);  // any other exception, or a crash, fails the test
      ++loads;
    } catch (const Error&) {
      ++errors;
    }
  };
  for (size_t n = 0; n < good.size(); n += 7) try_load(good.substr(0, n));  // every 7th truncation point
  for (int i = 0; i < 500; ++i) {
    std::string bytes = good;
    const int flips = 1 + static_cast<int>(rng() % 3);
    for (int k = 0; k < flips; ++k) bytes[rng() % bytes.size()] = static_cast<char>(rng() % 256);
    try_load(bytes);
  }
  // Seeded, so the counts are fixed; the bounds only prove that both paths
  // were exercised. Flips in the data section fail the checksum now, so the
  // files that still load are those whose flips rewrote a metadata string.
  CHECK(errors > 500);  // the 71 truncations plus nearly every flip
  CHECK(loads >= 1);
}

TEST_CASE("safetensors: a changed byte anywhere in the data section is reported as damage") {
  TempDir dir;
  const std::string good_path = dir / "good.safetensors", p = dir / "bad.safetensors";
  save_safetensors(good_path, sample_file());
  const std::string good = read_bytes(good_path);
  uint64_t header_bytes = 0;
  std::memcpy(&header_bytes, good.data(), 8);
  int reported = 0, tried = 0;
  for (size_t i = 8 + header_bytes; i < good.size(); ++i, ++tried) {
    std::string bytes = good;
    bytes[i] = static_cast<char>(bytes[i] ^ (1 << (i % 8)));  // one bit
    write_bytes(p, bytes);
    try {
      load_safetensors(p);
    } catch (const Error& e) {
      reported += std::string(e.what()).find("does not match its checksum") != std::string::npos;
    }
  }
  CHECK(tried == 4 * (6 + 3 + 1 + 6) + 8 * 4);  // every data byte of sample_file
  CHECK(reported == tried);
}

TEST_CASE("safetensors: tensor byte ranges must tile the data section") {
  TempDir dir;
  const std::string p = dir / "bad.safetensors";
  auto load_error = [&](const std::string& header, const std::string& data) {
    write_bytes(p, raw_file(header, data));
    return error_of_load(p);
  };
  const std::string eight(8, 'x');
  // Two tensors on the same 4 bytes: overlap.
  CHECK(load_error(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],)"
                   R"("data_offsets":[0,4]}})",
                   eight)
            .find("tensor 'b' at bytes [0, 4] overlaps tensor 'a' at [0, 4]") != std::string::npos);
  // A gap before the second tensor.
  CHECK(load_error(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[0],)"
                   R"("data_offsets":[8,8]}})",
                   eight)
            .find("bytes [4, 8) of the data section belong to no tensor (before 'b')") != std::string::npos);
  // Bytes after the last tensor.
  CHECK(load_error(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", eight)
            .find("4 trailing bytes after the last tensor (data section 8 bytes)") != std::string::npos);
  // Ranges listed out of order but tiling exactly are fine (JSON keys carry no
  // order), and a file without data_crc32 (another writer's) loads unchecked.
  CHECK(load_error(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]},"b":{"dtype":"F32","shape":[1],)"
                   R"("data_offsets":[0,4]}})",
                   eight) == "");
  // A malformed checksum entry.
  CHECK(load_error(R"({"__metadata__":{"data_crc32":"XYZ"}})", "") ==
        "safetensors: " + p + ": __metadata__ data_crc32 is 'XYZ'; expected 8 lowercase hex digits");
}
