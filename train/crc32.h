// CRC-32 (the IEEE polynomial of zlib, PNG and Python's zlib.crc32) over a
// byte stream, so a checkpoint file can carry a checksum of its data and a
// flipped byte is reported on load instead of silently trained on.
#pragma once

#include <cstddef>
#include <cstdint>

namespace ember {

// Extends `crc` (0 for a new stream) by n bytes: crc32(ab) == crc32_update(crc32(a), b).
uint32_t crc32_update(uint32_t crc, const void* data, size_t n);

}  // namespace ember
