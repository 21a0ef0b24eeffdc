// Checksum64: a fast 64-bit checksum of bytes, for detecting damage to large files we wrote
// ourselves (fine-tuning checkpoints: gigabytes of optimizer state written every few steps,
// where SHA-256's ~150 MB/s here would cost more than the step). Not cryptographic: it finds
// flipped, zeroed or truncated bytes (any change to one 8-byte word always changes the result;
// other changes collide with probability ~2^-64), not deliberate forgeries. Four independent
// lanes of 64-bit words (multiply by an odd constant, rotate: a bijection of the lane for each
// word), then the lanes, the tail and the length are mixed. Little-endian byte order, so the
// value is the same on every x86-64 and ARM64 machine. Not thread-safe per object.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

namespace cdmoe {

class Checksum64 {
 public:
  Checksum64();
  void update(const void* data, size_t size);
  uint64_t digest() const;      // of everything updated so far; the object stays usable
  std::string hex_digest() const;  // 16 lower-case hex digits

 private:
  void consume_block(const uint8_t* block);  // 32 bytes
  std::array<uint64_t, 4> lanes_;
  std::array<uint8_t, 32> pending_{};
  size_t pending_size_ = 0;
  uint64_t total_bytes_ = 0;
};

}  // namespace cdmoe
