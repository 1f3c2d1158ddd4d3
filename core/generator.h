// Generator: a small, seedable random number generator (xoshiro256**) with
// uniform and normal draws. Its whole state is four words plus a cached
// normal, so a trainer can save and restore it and resume bit for bit.
#pragma once

#include <array>
#include <cstdint>

namespace ember {

class Generator {
 public:
  explicit Generator(uint64_t seed = 1337);
  void seed(uint64_t seed);

  uint64_t next_u64();
  float uniform();                             // [0, 1)
  float normal(float mean, float std);         // Box-Muller
  int64_t randint(int64_t low, int64_t high);  // [low, high)

  struct State {
    std::array<uint64_t, 4> words{};
    bool has_spare = false;
    double spare = 0.0;
  };
  State state() const { return {s_, has_spare_, spare_}; }
  void set_state(const State& st) {
    s_ = st.words;
    has_spare_ = st.has_spare;
    spare_ = st.spare;
  }

 private:
  std::array<uint64_t, 4> s_{};
  bool has_spare_ = false;
  double spare_ = 0.0;
};

// The generator factories use when none is passed (like torch.manual_seed).
Generator& default_generator();
void manual_seed(uint64_t seed);

}  // namespace ember
