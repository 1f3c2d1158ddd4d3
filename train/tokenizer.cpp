// The parts shared by every tokenizer: rebuilding one from JSON by its "kind",
// and saving/loading that JSON to a file (atomically, with errors that name the
// path and what was wrong with it).
#include "train/tokenizer.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "train/json_text.h"

namespace ember {

std::vector<int32_t> Tokenizer::encode(std::string_view text) const {
  std::vector<int32_t> ids;
  encode_prefix(text, /*last=*/true, 0, ids);
  return ids;
}

std::unique_ptr<Tokenizer> tokenizer_from_json(const nlohmann::json& j) {
  EMBER_CHECK(j.is_object(),
              "tokenizer json: expected an object with a \"kind\" field, "
              "got {}",
              j.type_name());
  const auto kind = j.find("kind");
  EMBER_CHECK(kind != j.end() && kind->is_string(),
              "tokenizer json: missing string field \"kind\" (\"char\" or \"bpe\")");
  const std::string& name = kind->get_ref<const std::string&>();
  if (name == "char") return std::make_unique<CharTokenizer>(CharTokenizer::from_json(j));
  if (name == "bpe") return std::make_unique<BpeTokenizer>(BpeTokenizer::from_json(j));
  fail("tokenizer json: unknown kind \"{}\" (expected \"char\" or \"bpe\")", name);
}

void save_tokenizer(const Tokenizer& t, const std::string& path) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    EMBER_CHECK(out.is_open(), "save tokenizer: cannot open '{}' for writing: {}", tmp, std::strerror(errno));
    out << t.to_json().dump(1) << '\n';
    out.flush();
    EMBER_CHECK(out.good(), "save tokenizer: writing '{}' failed: {}", tmp, std::strerror(errno));
  }
  // rename() replaces path in one step: readers see the old file or the new one.
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  EMBER_CHECK(!ec, "save tokenizer: cannot rename '{}' to '{}': {}", tmp, path, ec.message());
}

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path) {
  std::error_code ec;
  EMBER_CHECK(std::filesystem::is_regular_file(path, ec), "load tokenizer: '{}' is missing (or not a regular file)",
              path);
  std::ifstream in(path, std::ios::binary);
  EMBER_CHECK(in.is_open(), "load tokenizer: cannot open '{}': {}", path, std::strerror(errno));
  std::stringstream buffer;
  buffer << in.rdbuf();
  const nlohmann::json j = parse_json_text(buffer.str(), fmt::format("load tokenizer: '{}'", path));
  try {
    return tokenizer_from_json(j);
  } catch (const Error& e) {
    fail("load tokenizer: '{}': {}", path, e.what());
  }
}

}  // namespace ember
