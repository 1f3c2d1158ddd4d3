// safetensors files: model weights for checkpoints and the PyTorch golden files.
// Layout: u64 little-endian header length N, N bytes of JSON describing each
// tensor (dtype, shape, byte range), then the raw little-endian data. ember writes
// F32 and I64, reads F32, I64 and I32 (widened), and validates every byte range
// (they must tile the data section: no overlaps, gaps or trailing bytes), so a
// damaged or foreign file gives one clear Error and never a crash. ember's writer
// (and tests/reference/safetensors_io.py) store the CRC-32 of the data section in
// __metadata__ as "data_crc32"; the reader verifies it when present, so a flipped
// byte is reported. Other tools ignore the entry.
#pragma once

#include <map>
#include <string>

#include "core/tensor.h"

namespace ember {

struct SafetensorsFile {
  std::map<std::string, Tensor> tensors;         // F32, loaded contiguous, no grad
  std::map<std::string, IntTensor> int_tensors;  // I64 (I32 files are widened on load)
  std::map<std::string, std::string> metadata;   // the "__metadata__" string map

  // Lookups that throw ember::Error naming the missing key (and where it is, if
  // it is among the other kind of tensor) instead of std::out_of_range.
  const Tensor& tensor(const std::string& name) const;
  const IntTensor& ints(const std::string& name) const;
};

// Reads and validates the whole file. Throws ember::Error ("safetensors: <path>:
// <problem>") on a missing or unreadable file, a bad header, an unsupported dtype
// (F16, BF16, F64, ...), byte ranges that disagree with the shapes or do not
// tile the data section, or data that does not match its data_crc32.
SafetensorsFile load_safetensors(const std::string& path);

// Writes as tests/reference/safetensors_io.py does (sorted keys, compact JSON
// padded with spaces to a multiple of 8, data in key order, data_crc32 added to
// the metadata): the same tensors give the same bytes. Atomic: writes <path>.tmp, fsyncs it, then renames it over
// <path>, so a failure at any point leaves the previous file intact.
void save_safetensors(const std::string& path, const SafetensorsFile& file);

}  // namespace ember
