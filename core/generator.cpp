// xoshiro256** (Blackman and Vigna) seeded through splitmix64, plus the
// Box-Muller transform for normal draws.
#include "core/generator.h"

#include <cmath>

#include "core/error.h"

namespace ember {
namespace {

uint64_t splitmix64(uint64_t& x) {
  uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

}  // namespace

Generator::Generator(uint64_t seed_value) { seed(seed_value); }

void Generator::seed(uint64_t seed_value) {
  uint64_t x = seed_value;
  for (auto& w : s_) w = splitmix64(x);
  has_spare_ = false;
  spare_ = 0.0;
}

uint64_t Generator::next_u64() {
  const uint64_t result = rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

float Generator::uniform() {
  // The top 24 bits give every float in [0, 1) with spacing 2^-24.
  return static_cast<float>(next_u64() >> 40) * (1.0f / 16777216.0f);
}

float Generator::normal(float mean, float std) {
  if (has_spare_) {
    has_spare_ = false;
    return mean + std * static_cast<float>(spare_);
  }
  // u1 in (0, 1] so log(u1) is finite.
  const double u1 = (static_cast<double>(next_u64() >> 11) + 1.0) * (1.0 / 9007199254740992.0);
  const double u2 = static_cast<double>(next_u64() >> 11) * (1.0 / 9007199254740992.0);
  const double r = std::sqrt(-2.0 * std::log(u1));
  spare_ = r * std::sin(2.0 * M_PI * u2);
  has_spare_ = true;
  return mean + std * static_cast<float>(r * std::cos(2.0 * M_PI * u2));
}

int64_t Generator::randint(int64_t low, int64_t high) {
  EMBER_CHECK(high > low, "randint: empty range [{}, {})", low, high);
  const uint64_t span = static_cast<uint64_t>(high - low);
  // Rejection sampling removes modulo bias.
  const uint64_t limit = UINT64_MAX - UINT64_MAX % span;
  uint64_t x;
  do x = next_u64();
  while (x >= limit);
  return low + static_cast<int64_t>(x % span);
}

Generator& default_generator() {
  static thread_local Generator g(1337);
  return g;
}

void manual_seed(uint64_t seed_value) { default_generator().seed(seed_value); }

}  // namespace ember
