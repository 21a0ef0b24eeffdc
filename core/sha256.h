// SHA-256 (FIPS 180-4), for plan hashes and content hashes of models and data files.
// Not thread-safe per object; independent objects may be used concurrently.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace cdmoe {

class Sha256 {
 public:
  Sha256();
  void update(const void* data, size_t size);
  void update(std::string_view text) { update(text.data(), text.size()); }
  // Finishes the hash; the object must not be updated afterwards.
  std::string hex_digest();

 private:
  void compress(const uint8_t* block);
  std::array<uint32_t, 8> state_;
  std::array<uint8_t, 64> buffer_;
  size_t buffered_ = 0;
  uint64_t total_bytes_ = 0;
};

// Lower-case hex digest of a byte string.
std::string sha256_hex(std::string_view bytes);

// Lower-case hex digest of a file's contents, streamed. Throws Error (bad input) naming the path
// when the file cannot be read.
std::string sha256_file(const std::string& path);

}  // namespace cdmoe
