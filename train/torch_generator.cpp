// TorchGenerator: PyTorch 1.13's CPU sampling rules over std::mt19937 (the
// same engine and seeding as torch's CPU generator).
#include "train/torch_generator.h"

#include <cmath>
#include <numbers>
#include <sstream>

#include "core/error.h"

namespace ember {
namespace {

// uniform_real_distribution<float>(0, 1) of one draw: the low 24 bits / 2^24.
double unit_uniform(std::mt19937& engine) {
  return static_cast<double>(engine() & ((1u << 24) - 1)) * (1.0 / (1u << 24));
}

// PyTorch's normal_fill_16: Box-Muller on 16 uniforms in place, pairing j and j + 8.
void box_muller_16(float* d, float mean, float std) {
  for (int j = 0; j < 8; ++j) {
    const float u1 = 1.0f - d[j], u2 = d[j + 8];  // u1 in (0, 1] for the log
    const float radius = std::sqrt(-2.0f * std::log(u1));
    const float theta = static_cast<float>(2.0 * std::numbers::pi * u2);
    d[j] = radius * std::cos(theta) * std + mean;
    d[j + 8] = radius * std::sin(theta) * std + mean;
  }
}

}  // namespace

TorchGenerator::TorchGenerator(uint64_t seed) : engine_(static_cast<uint32_t>(seed)) {
  EMBER_CHECK(seed < (uint64_t{1} << 32), "TorchGenerator: seed {} must be below 2^32", seed);
}

int64_t TorchGenerator::randint(int64_t high) {
  EMBER_CHECK(high > 0 && high < (int64_t{1} << 32), "TorchGenerator::randint: high {} must be in (0, 2^32)", high);
  return static_cast<int64_t>(engine_() % static_cast<uint64_t>(high));
}

void TorchGenerator::uniform(float* x, int64_t n, float from, float to) {
  for (int64_t i = 0; i < n; ++i)
    x[i] = static_cast<float>(unit_uniform(engine_) * (static_cast<double>(to) - from) + from);
}

void TorchGenerator::normal(float* x, int64_t n, float mean, float std) {
  EMBER_CHECK(n >= 16, "TorchGenerator::normal: needs at least 16 values, got {}", n);
  for (int64_t i = 0; i < n; ++i) x[i] = static_cast<float>(unit_uniform(engine_));
  for (int64_t i = 0; i + 16 <= n; i += 16) box_muller_16(x + i, mean, std);
  if (n % 16 != 0) {
    float* tail = x + n - 16;
    for (int i = 0; i < 16; ++i) tail[i] = static_cast<float>(unit_uniform(engine_));
    box_muller_16(tail, mean, std);
  }
}

std::string TorchGenerator::state() const {
  std::ostringstream out;
  out << engine_;
  return out.str();
}

void TorchGenerator::set_state(const std::string& s) {
  std::istringstream in(s);
  std::mt19937 engine;
  in >> engine;
  EMBER_CHECK(!in.fail(), "TorchGenerator: not an mt19937 state");
  engine_ = engine;
}

}  // namespace ember
