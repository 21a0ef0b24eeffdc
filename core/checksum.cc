#include "core/checksum.h"

#include <algorithm>
#include <cstdio>
#include <cstring>

namespace cdmoe {
namespace {

// Odd 64-bit constants with well-spread bits (from the fractional parts of sqrt(2), sqrt(3),
// sqrt(5), sqrt(7)); odd, so multiplying by one is invertible modulo 2^64.
constexpr uint64_t kMul[4] = {0x6a09e667f3bcc909ULL, 0xbb67ae8584caa73bULL, 0x3c6ef372fe94f82bULL,
                              0xa54ff53a5f1d36f1ULL};

inline uint64_t rotl(uint64_t x, int n) { return (x << n) | (x >> (64 - n)); }

inline uint64_t read_word(const uint8_t* p) {
  uint64_t w;
  std::memcpy(&w, p, sizeof w);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  w = __builtin_bswap64(w);
#endif
  return w;
}

// One lane step: for a fixed lane value a bijection of the word, and for a fixed word a
// bijection of the lane value, so no single-word change is ever lost.
inline uint64_t mix_word(uint64_t lane, uint64_t word, uint64_t mul) { return rotl((lane ^ word) * mul, 29) + word; }

// The final avalanche (every input bit reaches every output bit).
inline uint64_t finish(uint64_t x) {
  x ^= x >> 31;
  x *= kMul[1];
  x ^= x >> 29;
  x *= kMul[2];
  x ^= x >> 32;
  return x;
}

}  // namespace

Checksum64::Checksum64() : lanes_{kMul[0], kMul[1], kMul[2], kMul[3]} {}

void Checksum64::consume_block(const uint8_t* block) {
  for (int i = 0; i < 4; ++i) lanes_[size_t(i)] = mix_word(lanes_[size_t(i)], read_word(block + 8 * i), kMul[i]);
}

void Checksum64::update(const void* data, size_t size) {
  const auto* bytes = static_cast<const uint8_t*>(data);
  total_bytes_ += size;
  if (pending_size_ > 0) {
    size_t take = std::min(size, pending_.size() - pending_size_);
    std::memcpy(pending_.data() + pending_size_, bytes, take);
    pending_size_ += take, bytes += take, size -= take;
    if (pending_size_ < pending_.size()) return;
    consume_block(pending_.data());
    pending_size_ = 0;
  }
  for (; size >= 32; bytes += 32, size -= 32) consume_block(bytes);
  std::memcpy(pending_.data(), bytes, size);
  pending_size_ = size;
}

uint64_t Checksum64::digest() const {
  uint64_t x = total_bytes_ * kMul[3];
  for (int i = 0; i < 4; ++i) x = rotl(x, 17) ^ finish(lanes_[size_t(i)] + uint64_t(i));
  // The tail: whole words, then the last bytes zero-padded (the length above tells them apart).
  uint8_t tail[32] = {};
  std::memcpy(tail, pending_.data(), pending_size_);
  for (size_t at = 0; at < pending_size_; at += 8) x = mix_word(x, read_word(tail + at), kMul[(at / 8) % 4]);
  return finish(x);
}

std::string Checksum64::hex_digest() const {
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(digest()));
  return text;
}

}  // namespace cdmoe
