// CRC-32 against published check values and against itself split anywhere:
// the checksum safetensors files carry must equal Python's zlib.crc32.
#include <doctest/doctest.h>

#include <string>

#include "train/crc32.h"

using namespace ember;

TEST_CASE("crc32: the standard check values (zlib.crc32)") {
  auto crc = [](const std::string& s) { return crc32_update(0, s.data(), s.size()); };
  CHECK(crc("") == 0u);
  CHECK(crc("123456789") == 0xCBF43926u);  // the CRC-32/ISO-HDLC check value
  CHECK(crc("a") == 0xE8B7BE43u);          // zlib.crc32(b"a")
  CHECK(crc("The quick brown fox jumps over the lazy dog") == 0x414FA339u);
}

TEST_CASE("crc32: a stream split at any point gives the same checksum") {
  std::string s;
  for (int i = 0; i < 100; ++i) s += static_cast<char>(i * 37 + 11);
  const uint32_t whole = crc32_update(0, s.data(), s.size());
  for (size_t cut = 0; cut <= s.size(); ++cut)
    CHECK(crc32_update(crc32_update(0, s.data(), cut), s.data() + cut, s.size() - cut) == whole);
}
