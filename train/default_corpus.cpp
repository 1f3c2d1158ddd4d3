// A tiny story grammar: who did what to whom, where, and what happened next.
#include "train/default_corpus.h"

#include <array>
#include <string_view>

#include "core/generator.h"

namespace ember {
namespace {

constexpr std::array<std::string_view, 10> kAnimals = {"fox",   "hen", "wolf", "lamb", "cat",
                                                       "mouse", "owl", "crow", "bear", "hare"};
constexpr std::array<std::string_view, 8> kVerbs = {"chased", "fed",    "found", "helped",
                                                    "bit",    "fooled", "saw",   "called"};
constexpr std::array<std::string_view, 6> kPlaces = {"in the wood",   "by the river",   "on the hill",
                                                     "near the farm", "under the moon", "at the well"};
constexpr std::array<std::string_view, 6> kMoods = {"happy", "angry", "tired", "hungry", "proud", "afraid"};

template <size_t N>
std::string_view pick(const std::array<std::string_view, N>& words, Generator& g) {
  return words[static_cast<size_t>(g.randint(0, static_cast<int64_t>(N)))];
}

std::string story(Generator& g) {
  const std::string_view a = pick(kAnimals, g);
  std::string_view b = pick(kAnimals, g);
  while (b == a) b = pick(kAnimals, g);
  const std::string_view verb = pick(kVerbs, g);
  std::string s = "the ";
  s.append(a).append(" ").append(verb).append(" the ").append(b).append(" ").append(pick(kPlaces, g)).append(".\n");
  // The second line refers back to who acted and who was acted on.
  switch (g.randint(0, 3)) {
    case 0:
      s.append("then the ").append(b).append(" was ").append(pick(kMoods, g)).append(".\n");
      break;
    case 1:
      s.append("so the ").append(a).append(" felt ").append(pick(kMoods, g)).append(".\n");
      break;
    default:
      s.append("and the ").append(b).append(" ").append(verb).append(" the ").append(a).append(" back.\n");
  }
  return s + "\n";
}

}  // namespace

std::string default_corpus(int64_t bytes, uint64_t seed) {
  Generator g(seed);
  std::string text;
  while (static_cast<int64_t>(text.size()) < bytes) text += story(g);
  return text;
}

}  // namespace ember
