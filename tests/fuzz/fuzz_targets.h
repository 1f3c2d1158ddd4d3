// The fuzz targets: each reader of untrusted bytes, fed arbitrary input. An
// ember::Error is the expected answer to bad input; anything else escaping,
// a crash, a sanitizer report or a broken property is a finding. The same
// functions run under libFuzzer (`make fuzz`, tests/fuzz/fuzz_main.cpp) and,
// over every saved input in tests/fuzz/corpus/, inside the doctest suite.
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "core/error.h"
#include "train/checkpoint.h"
#include "train/json_text.h"
#include "train/random_stream.h"
#include "train/safetensors.h"
#include "train/tokenizer.h"
#include "train/train_config.h"

namespace ember::fuzz {

// The JSON readers parse file text with parse_json_text, then check the values.
inline nlohmann::json parse_input(const uint8_t* data, size_t size) {
  return parse_json_text(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz input");
}

// A safetensors file with these bytes, read through the real file path (an
// in-memory file, so no disk is touched).
inline int safetensors(const uint8_t* data, size_t size) {
  const int fd = memfd_create("ember_fuzz", 0);
  if (fd < 0) std::abort();
  if (size > 0 && write(fd, data, size) != static_cast<ssize_t>(size)) std::abort();
  try {
    load_safetensors("/proc/self/fd/" + std::to_string(fd));
  } catch (const Error&) {
  }
  close(fd);
  return 0;
}

// tokenizer.json: a tokenizer that loads must encode and decode consistently.
inline int tokenizer_json(const uint8_t* data, size_t size) {
  try {
    const std::unique_ptr<Tokenizer> t = tokenizer_from_json(parse_input(data, size));
    std::vector<int32_t> all(static_cast<size_t>(std::min(t->vocab_size(), 4096)));
    for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<int32_t>(i);
    const std::string text = t->decode(all);
    if (t->kind() == "bpe" && t->decode(t->encode(text)) != text) std::abort();  // byte-level: always round-trips
  } catch (const Error&) {
  }
  return 0;
}

inline int config_json(const uint8_t* data, size_t size) {
  try {
    config_from_json(parse_input(data, size), "config.json");
  } catch (const Error&) {
  }
  return 0;
}

// trainer.json: the state fields, then the settings a resumed run would use.
inline int trainer_json(const uint8_t* data, size_t size) {
  try {
    const TrainerState s = trainer_state_from_json(parse_input(data, size), "trainer.json");
    const TrainConfig c = TrainConfig::from_json(s.settings, "trainer.json");
    static const TokenSplit tokens{std::vector<int32_t>(5000, 1), std::vector<int32_t>(600, 2)};
    if (c.model.block_size < 500)
      make_random_stream({c.rng, c.seed, c.batch_size, c.model.block_size, c.eval_iters}, tokens)
          ->set_state(s.stream, "trainer.json");
  } catch (const Error&) {
  }
  return 0;
}

// Feeds text to encode_prefix as a stream does, `step` bytes at a time.
inline std::vector<int32_t> encode_in_pieces(const Tokenizer& t, std::string_view text, size_t step) {
  std::vector<int32_t> ids;
  size_t done = 0, have = std::min(step, text.size());
  for (;;) {
    const bool last = done + have == text.size();
    const size_t used = t.encode_prefix(text.substr(done, have), last, static_cast<int64_t>(done), ids);
    if (last) return ids;
    done += used;
    have = std::min(have - used + step, text.size() - done);
  }
}

// BPE encoding of arbitrary bytes: decode(encode(x)) == x, every id is in
// range, and encoding in pieces (the first byte picks their size) gives the same ids.
inline int bpe_encode(const uint8_t* data, size_t size) {
  static const BpeTokenizer bpe = BpeTokenizer::train(
      "the quick brown fox jumps over the lazy dog; the dog sleeps. It's the fox's den, isn't it?\n"
      "Ünïcödé wörds and   spaces\t\ttabs 12345 67890 the the the quick quick fox fox",
      300);
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const std::vector<int32_t> ids = bpe.encode(text);
  for (int32_t id : ids)
    if (id < 0 || id >= bpe.vocab_size()) std::abort();
  if (bpe.decode(ids) != text) std::abort();
  if (size > 0 && encode_in_pieces(bpe, text, 1 + data[0] % 32) != ids) std::abort();
  return 0;
}

}  // namespace ember::fuzz
