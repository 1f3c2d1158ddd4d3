// The token cache: checking a cache against the text and the tokenizer,
// building it by streaming the text into tokens.bin, and the in-memory path
// for the built-in corpus and for gpt eval on another text.
#include "train/token_cache.h"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "train/crc32.h"
#include "train/default_corpus.h"

namespace ember {
namespace {

namespace fs = std::filesystem;
constexpr const char* kFormat = "ember-tokens-1";

struct CacheFiles {
  fs::path dir, tokens, manifest;
  explicit CacheFiles(const std::string& d) : dir(d), tokens(dir / "tokens.bin"), manifest(dir / "manifest.json") {}
};

// tokens.bin.tmp while the cache is built, with the CRC-32 of what went in.
class FileSink : public TokenSink {
 public:
  explicit FileSink(std::string path) : path_(std::move(path)), f_(std::fopen(path_.c_str(), "wb")) {
    EMBER_CHECK(f_ != nullptr, "tokens: cannot create '{}' ({})", path_, std::strerror(errno));
  }
  ~FileSink() override {
    if (f_) std::fclose(f_);
  }
  FileSink(const FileSink&) = delete;
  FileSink& operator=(const FileSink&) = delete;

  void write(const unsigned char* bytes, size_t n) override {
    EMBER_CHECK(std::fwrite(bytes, 1, n, f_) == n, "tokens: cannot write '{}' ({})", path_, std::strerror(errno));
    crc_ = crc32_update(crc_, bytes, n);
  }
  void close() {
    const bool ok = std::fflush(f_) == 0 && !std::ferror(f_);
    const int err = errno;
    std::fclose(f_);
    f_ = nullptr;
    EMBER_CHECK(ok, "tokens: cannot write '{}' ({})", path_, std::strerror(err));
  }
  uint32_t crc() const { return crc_; }

 private:
  std::string path_;
  std::FILE* f_;
  uint32_t crc_ = 0;
};

// Ids kept in memory, `width` bytes each: 1 or 2 bytes a token, not the text's 9.
struct MemorySink : TokenSink {
  std::shared_ptr<std::vector<unsigned char>> bytes = std::make_shared<std::vector<unsigned char>>();
  void write(const unsigned char* b, size_t n) override { bytes->insert(bytes->end(), b, b + n); }
};

// CRC-32 of a file read through a small buffer (a read, not a mapping, so the
// check does not add the file to the process's resident memory).
uint32_t file_crc(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<char> buf(size_t{1} << 20);
  uint32_t crc = 0;
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    crc = crc32_update(crc, buf.data(), static_cast<size_t>(in.gcount()));
  }
  return crc;
}

constexpr const char* kNoCache = "there is no cache yet";

// Why the cache cannot serve this text under this tokenizer, or "" when it
// can (then `tokens` maps its ids and `tokenizer` holds the manifest's
// tokenizer unless one was given). A cache failing any check is never trusted.
std::string check_cache(const CacheFiles& c, const TextFileId& id, const TokenizerRecipe& recipe,
                        const Tokenizer* given, TokenArray& tokens, std::unique_ptr<Tokenizer>& tokenizer) {
  std::error_code ec;
  if (!fs::exists(c.manifest, ec)) return fs::exists(c.tokens, ec) ? "manifest.json is missing" : kNoCache;
  std::ifstream in(c.manifest, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  const nlohmann::json j = nlohmann::json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return "manifest.json is not a JSON object";
  try {
    if (j.at("format") != kFormat) return "it was written in another format";
    const nlohmann::json& t = j.at("text");
    if (t.at("path") != id.path) return fmt::format("it holds the tokens of {}", t.at("path").dump());
    if (t.at("size") != id.size || t.at("mtime_ns") != id.mtime_ns)
      return "the text changed since (its size or modification time differ)";
    const Tokenizer* tok = given;
    if (given && j.at("tokenizer") != given->to_json()) return "it was made by another tokenizer";
    if (!given) {
      if (j.at("recipe").is_null()) return "it was made by a resumed run's tokenizer";
      if (j.at("recipe") != recipe.to_json())
        return fmt::format("it was made by another tokenizer ({})", j.at("recipe").dump());
      tokenizer = tokenizer_from_json(j.at("tokenizer"));
      tok = tokenizer.get();
    }
    const int width = token_width_from_name(j.at("dtype").get<std::string>());
    const auto count = j.at("tokens").get<int64_t>(), train = j.at("train_tokens").get<int64_t>();
    if (width != token_width(tok->vocab_size()) || count < 0 || train != train_token_count(count))
      return "manifest.json is inconsistent (dtype, token count or split point)";
    const auto bytes = static_cast<int64_t>(fs::file_size(c.tokens, ec));
    if (ec) return "tokens.bin is missing";
    if (bytes != count * width)
      return fmt::format("tokens.bin holds {} bytes, the manifest says {} (truncated?)", bytes, count * width);
    if (file_crc(c.tokens) != j.at("crc32").get<uint32_t>()) return "tokens.bin does not match its checksum (corrupt)";
    tokens = TokenArray::map_file(c.tokens.string(), count, width);
    return "";
  } catch (const nlohmann::json::exception& e) {
    return fmt::format("manifest.json is malformed ({})", e.what());
  } catch (const Error& e) {
    return fmt::format("it cannot be read ({})", e.what());
  }
}

// Writes `path` under a temporary name, then renames it into place.
void write_file_atomically(const fs::path& path, const std::string& contents) {
  const fs::path tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << contents;
    out.flush();
    EMBER_CHECK(out.good(), "tokens: cannot write '{}' ({})", tmp.string(), std::strerror(errno));
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  EMBER_CHECK(!ec, "tokens: cannot rename '{}' to '{}' ({})", tmp.string(), path.string(), ec.message());
}

// Encodes the text into tokens.bin and writes the manifest last: the old
// manifest goes first, so a crash part way leaves no manifest (rebuilt next
// time), and the checksum catches a tokens.bin that is not the manifest's.
// `recipe` is null for a tokenizer that was given (a resumed run's): it may
// not be what the recipe makes of this text, so a new run must not reuse it.
TokenArray build(const CacheFiles& c, const TextFileId& id, const nlohmann::json& recipe, const Tokenizer& tok,
                 const StreamOptions& o) {
  std::error_code ec;
  fs::create_directories(c.dir, ec);
  EMBER_CHECK(fs::is_directory(c.dir), "tokens: cannot create the cache directory '{}' ({})", c.dir.string(),
              ec ? ec.message() : "a file of that name is in the way");
  fs::remove(c.manifest, ec);
  const int width = token_width(tok.vocab_size());
  const fs::path tmp = c.tokens.string() + ".tmp";
  FileSink sink(tmp.string());
  int64_t count = 0;
  try {
    count = encode_file(tok, id, width, sink, o);
    sink.close();
  } catch (...) {
    fs::remove(tmp, ec);  // a full disk or a bad character: leave no half-written file behind
    throw;
  }
  fs::rename(tmp, c.tokens, ec);
  EMBER_CHECK(!ec, "tokens: cannot rename '{}' to '{}' ({})", tmp.string(), c.tokens.string(), ec.message());
  const nlohmann::json manifest = {
      {"format", kFormat},
      {"text", {{"path", id.path}, {"size", id.size}, {"mtime_ns", id.mtime_ns}}},
      {"recipe", recipe},
      {"tokenizer", tok.to_json()},
      {"dtype", token_dtype_name(width)},
      {"tokens", count},
      {"train_tokens", train_token_count(count)},
      {"crc32", sink.crc()},
  };
  write_file_atomically(c.manifest, manifest.dump(1) + "\n");
  return TokenArray::map_file(c.tokens.string(), count, width);
}

void say(const StreamOptions& o, const std::string& line) {
  if (o.quiet) return;
  fmt::print("{}\n", line);
  std::fflush(stdout);
}

}  // namespace

std::string token_cache_dir(const std::string& run_dir) { return (fs::path(run_dir) / "tokens").string(); }

std::string token_cache_dir_of_checkpoint(const std::string& ckpt) {
  const fs::path p(ckpt);
  std::error_code ec;
  if (fs::is_directory(p / "tokens", ec)) return (p / "tokens").string();
  return (p.lexically_normal().parent_path() / "tokens").string();  // run/ckpt-000250 -> run/tokens
}

TokenData load_token_data(const TokenDataOptions& o, const TokenizerRecipe& recipe, const Tokenizer* given) {
  TokenData d;
  const Tokenizer* tok = given;
  if (o.text.empty()) {  // the built-in corpus: a few hundred KB, made in memory
    const std::string corpus = default_corpus();
    if (!tok) tok = (d.tokenizer = train_tokenizer(recipe, corpus)).get();
    d.split = split_tokens(tok->encode(corpus));
    return d;
  }
  const TextFileId id = text_file_id(o.text);
  const bool cached = !o.cache_dir.empty();
  const CacheFiles files(cached ? o.cache_dir : ".");
  if (cached) {
    TokenArray tokens;
    const std::string why_not = check_cache(files, id, recipe, given, tokens, d.tokenizer);
    if (why_not.empty()) {
      d.cache_reused = true;
      say(o.stream, fmt::format("tokens: {} {} ids from {} ('{}' is unchanged)", tokens.size(),
                                token_dtype_name(tokens.width()), files.tokens.string(), o.text));
      d.split = split_tokens(tokens);
      return d;
    }
    d.tokenizer.reset();
    if (why_not != kNoCache) d.rebuilt_because = why_not;
    if (o.write_cache && why_not != kNoCache)
      say(o.stream, fmt::format("tokens: rebuilding the cache in {}: {}", files.dir.string(), why_not));
  }
  const auto start = std::chrono::steady_clock::now();
  if (!tok) tok = (d.tokenizer = train_tokenizer(recipe, id, o.stream)).get();
  TokenArray tokens;
  if (cached && o.write_cache) {
    tokens = build(files, id, given ? nlohmann::json() : recipe.to_json(), *tok, o.stream);
  } else {
    MemorySink sink;
    const int width = token_width(tok->vocab_size());
    sink.bytes->reserve(static_cast<size_t>(id.size * width));  // at most one id a byte; untouched pages cost nothing
    const int64_t count = encode_file(*tok, id, width, sink, o.stream);
    tokens = TokenArray(sink.bytes, sink.bytes->data(), count, width);
  }
  const double s = std::max(1e-3, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  say(o.stream, fmt::format("tokens: {:.1f} MB of text -> {} {} ids in {:.1f} s ({:.0f} MB/s){}", 1e-6 * id.size,
                            tokens.size(), token_dtype_name(tokens.width()), s, 1e-6 * id.size / s,
                            cached && o.write_cache ? ", cached in " + files.dir.string() : ""));
  d.split = split_tokens(tokens);
  return d;
}

}  // namespace ember
