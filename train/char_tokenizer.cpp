// CharTokenizer: one token per Unicode code point, with a strict UTF-8 decoder
// (errors carry the byte offset) and readable character names for messages.
// Trained on tinyshakespeare it gives nanoGPT's 65-character vocabulary.
#include <algorithm>

#include "core/error.h"
#include "train/tokenizer.h"

namespace ember {
namespace {

// `base` is text[0]'s offset in the whole input, so a streamed text reports
// the same offsets as one read whole.
[[noreturn]] void bad_utf8(std::string_view text, size_t pos, int64_t base, const char* why) {
  fail("char tokenizer: invalid UTF-8 at byte offset {} (byte 0x{:02X}): {}", base + static_cast<int64_t>(pos),
       static_cast<unsigned char>(text[pos]), why);
}

// Decodes the code point starting at text[pos] and advances pos past it.
// Rejects everything RFC 3629 forbids (overlong forms, surrogates, > U+10FFFF)
// so that every vocabulary entry re-encodes to exactly the bytes it came from.
char32_t next_code_point(std::string_view text, size_t& pos, int64_t base = 0) {
  const auto byte = [&](size_t i) { return static_cast<unsigned char>(text[i]); };
  const unsigned char lead = byte(pos);
  if (lead < 0x80) return text[pos++];
  size_t len = 0;
  char32_t cp = 0;
  if (lead >= 0xC2 && lead <= 0xDF) {
    len = 2;
    cp = lead & 0x1F;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    len = 3;
    cp = lead & 0x0F;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    len = 4;
    cp = lead & 0x07;
  } else if (lead <= 0xBF)
    bad_utf8(text, pos, base, "unexpected continuation byte");
  else
    bad_utf8(text, pos, base, "this byte never starts a UTF-8 sequence");

  // A non-continuation byte is reported before the end of the text, so a text
  // fed in pieces gets the message it would get whole.
  for (size_t k = 1; k < len; ++k) {
    if (pos + k >= text.size()) bad_utf8(text, pos, base, "truncated by the end of the text");
    const unsigned char c = byte(pos + k);
    if ((c & 0xC0) != 0x80) bad_utf8(text, pos, base, "truncated by a non-continuation byte");
    cp = (cp << 6) | (c & 0x3F);
  }
  const char* why = nullptr;
  if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000))
    why = "overlong encoding";
  else if (cp >= 0xD800 && cp <= 0xDFFF)
    why = "UTF-16 surrogate code point";
  else if (cp > 0x10FFFF)
    why = "code point above U+10FFFF";
  if (why != nullptr) bad_utf8(text, pos, base, why);
  pos += len;
  return cp;
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// 'Z' (U+005A), '\n' (U+000A): control characters are escaped so a message
// about a stray newline or NUL stays on one readable line.
std::string describe(char32_t cp) {
  std::string shown;
  if (cp == '\n')
    shown = "\\n";
  else if (cp == '\t')
    shown = "\\t";
  else if (cp == '\r')
    shown = "\\r";
  else if (cp < 0x20 || cp == 0x7F)
    shown = fmt::format("\\x{:02X}", uint32_t{cp});
  else
    append_utf8(shown, cp);
  return fmt::format("'{}' (U+{:04X})", shown, static_cast<uint32_t>(cp));
}

bool is_valid_code_point(char32_t cp) { return cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF); }

// The longest prefix of `text` that does not end inside a UTF-8 sequence: a
// cut before the last lead byte when its sequence runs past the end. Any
// other ending (ASCII, a complete sequence, invalid bytes) is kept, so the
// decoder meets an error at the offset it would meet it in the whole text.
size_t utf8_complete_prefix(std::string_view text) {
  const size_t n = text.size();
  for (size_t back = 1; back <= std::min<size_t>(4, n); ++back) {
    const auto c = static_cast<unsigned char>(text[n - back]);
    if ((c & 0xC0) == 0x80) continue;  // a continuation byte: the lead is further back
    const size_t len = c >= 0xF0 && c <= 0xF4 ? 4 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xC2 && c <= 0xDF ? 2 : 1;
    return len > back ? n - back : n;
  }
  return n;
}

}  // namespace

CharTokenizer CharTokenizer::train(std::string_view text) {
  CharVocabulary v;
  v.add(text, /*last=*/true, 0);
  return v.tokenizer();
}

size_t CharVocabulary::add(std::string_view text, bool last, int64_t offset) {
  const size_t end = last ? text.size() : utf8_complete_prefix(text);
  any_ |= end > 0;
  for (size_t pos = 0; pos < end;) {
    const auto c = static_cast<unsigned char>(text[pos]);
    if (c < 0x80) {
      ascii_[c] = true;
      ++pos;
    } else {
      other_[next_code_point(text, pos, offset)] = true;
    }
  }
  return end;
}

CharTokenizer CharVocabulary::tokenizer() const {
  EMBER_CHECK(any_, "char tokenizer: cannot train on empty text");
  std::vector<char32_t> chars;  // sorted by code point, as train() always gave
  for (char32_t cp = 0; cp < 0x80; ++cp)
    if (ascii_[cp]) chars.push_back(cp);
  for (char32_t cp = 0x80; cp < other_.size(); ++cp)
    if (other_[cp]) chars.push_back(cp);
  return CharTokenizer(std::move(chars));
}

CharTokenizer::CharTokenizer(std::vector<char32_t> chars) : chars_(std::move(chars)) {
  EMBER_CHECK(!chars_.empty(), "char tokenizer: the vocabulary is empty");
  ascii_id_.fill(-1);
  for (size_t id = 0; id < chars_.size(); ++id) {
    const char32_t cp = chars_[id];
    EMBER_CHECK(is_valid_code_point(cp),
                "char tokenizer: vocabulary entry {} is U+{:X}, which is not a valid "
                "Unicode code point",
                id, static_cast<uint32_t>(cp));
    const auto [it, fresh] = id_of_.emplace(cp, static_cast<int32_t>(id));
    EMBER_CHECK(fresh,
                "char tokenizer: character {} appears twice in the vocabulary "
                "(ids {} and {})",
                describe(cp), it->second, id);
    if (cp < 0x80) ascii_id_[cp] = static_cast<int32_t>(id);
  }
}

size_t CharTokenizer::encode_prefix(std::string_view text, bool last, int64_t offset, std::vector<int32_t>& ids) const {
  const size_t end = last ? text.size() : utf8_complete_prefix(text);
  ids.reserve(ids.size() + end);
  for (size_t pos = 0; pos < end;) {
    const size_t start = pos;
    const auto c = static_cast<unsigned char>(text[pos]);
    int32_t id = -1;
    char32_t cp = c;
    if (c < 0x80) {
      id = ascii_id_[c];
      ++pos;
    } else {
      cp = next_code_point(text, pos, offset);  // never reads past `end` unless the text is invalid there
      const auto it = id_of_.find(cp);
      if (it != id_of_.end()) id = it->second;
    }
    if (id < 0) {
      fail(
          "char tokenizer: character {} at byte offset {} is not in the vocabulary of "
          "{} characters",
          describe(cp), offset + static_cast<int64_t>(start), chars_.size());
    }
    ids.push_back(id);
  }
  return end;
}

std::string CharTokenizer::decode(std::span<const int32_t> ids) const {
  std::string out;
  out.reserve(ids.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    const int32_t id = ids[i];
    EMBER_CHECK(id >= 0 && id < vocab_size(), "char tokenizer: id {} at position {} is out of range [0, {})", id, i,
                vocab_size());
    append_utf8(out, chars_[id]);
  }
  return out;
}

int32_t CharTokenizer::vocab_size() const { return static_cast<int32_t>(chars_.size()); }

std::string CharTokenizer::kind() const { return "char"; }

nlohmann::json CharTokenizer::to_json() const {
  nlohmann::json chars = nlohmann::json::array();
  for (const char32_t cp : chars_) {
    std::string s;
    append_utf8(s, cp);
    chars.push_back(std::move(s));
  }
  return {{"kind", "char"}, {"chars", std::move(chars)}};
}

CharTokenizer CharTokenizer::from_json(const nlohmann::json& j) {
  const auto it = j.find("chars");
  EMBER_CHECK(it != j.end() && it->is_array(),
              "char tokenizer json: field \"chars\" must be an array of one-character "
              "strings");
  std::vector<char32_t> chars;
  for (size_t id = 0; id < it->size(); ++id) {
    const nlohmann::json& entry = (*it)[id];
    EMBER_CHECK(entry.is_string(),
                "char tokenizer json: chars[{}] is {}, expected a "
                "string",
                id, entry.dump());
    const std::string& s = entry.get_ref<const std::string&>();
    size_t pos = 0;
    EMBER_CHECK(!s.empty(), "char tokenizer json: chars[{}] is an empty string", id);
    const char32_t cp = next_code_point(s, pos);
    EMBER_CHECK(pos == s.size(),
                "char tokenizer json: chars[{}] is \"{}\", which holds "
                "more than one character",
                id, s);
    chars.push_back(cp);
  }
  return CharTokenizer(std::move(chars));
}

}  // namespace ember
