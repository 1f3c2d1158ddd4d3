// The built-in corpus `gpt train` uses when no --data is given: short fables
// from a small seeded grammar. Word order carries the meaning ("the fox
// chased the hen" is not "the hen chased the fox"), so a model trained on it
// has to use positions.
#pragma once

#include <cstdint>
#include <string>

namespace ember {

// About `bytes` characters of text (whole lines), the same for the same seed.
std::string default_corpus(int64_t bytes = 400000, uint64_t seed = 7);

}  // namespace ember
