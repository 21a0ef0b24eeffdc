// Portable seeded randomness: the same seed gives the same draws with every compiler and
// standard library (std::uniform_int_distribution does not promise that; std::mt19937_64's raw
// output does). Used wherever a choice is recorded by its seed (ARCHITECTURE.md §6).
#pragma once

#include <cstdint>
#include <limits>
#include <random>

namespace cdmoe {

// Uniform in [0, n), n > 0, by rejection sampling of the raw 64-bit stream.
inline uint64_t uniform_below(std::mt19937_64& rng, uint64_t n) {
  const uint64_t limit = std::numeric_limits<uint64_t>::max() - std::numeric_limits<uint64_t>::max() % n;
  uint64_t draw;
  do {
    draw = rng();
  } while (draw >= limit);
  return draw % n;
}

}  // namespace cdmoe
