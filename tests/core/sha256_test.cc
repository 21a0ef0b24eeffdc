#include "core/sha256.h"

#include <gtest/gtest.h>

#include "core/error.h"
#include "tests/test_util.h"

namespace cdmoe {
namespace {

// Vectors from FIPS 180-4 examples / NIST CAVP.
TEST(Sha256, KnownVectors) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(sha256_hex(std::string(1000000, 'a')),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256, ChunkedUpdatesEqualOneShot) {
  std::string text;
  for (int i = 0; i < 1000; ++i) text += char('a' + i % 26);
  for (size_t chunk : {1u, 7u, 63u, 64u, 65u, 999u}) {
    Sha256 hash;
    for (size_t at = 0; at < text.size(); at += chunk) hash.update(std::string_view(text).substr(at, chunk));
    EXPECT_EQ(hash.hex_digest(), sha256_hex(text)) << "chunk " << chunk;
  }
}

TEST(Sha256, FileHashAndMissingFile) {
  testing::TempDir dir;
  testing::write_file(dir.file("f"), "abc");
  EXPECT_EQ(sha256_file(dir.file("f")), sha256_hex("abc"));
  try {
    sha256_file(dir.file("missing"));
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.exit_code(), 2);
    EXPECT_NE(std::string(e.what()).find("missing"), std::string::npos);
  }
}

}  // namespace
}  // namespace cdmoe
