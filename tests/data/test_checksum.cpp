// data/checksum.h: the two CRC-32s against published check values, and little-endian integers.
#include <catch2/catch.hpp>

#include <cstring>
#include <string>

#include "data/checksum.h"

using sam::data::crc32;
using sam::data::crc32c;

TEST_CASE("crc32 (ZIP, IEEE 802.3): the CRC catalogue's check value", "[checksum]") {
  const std::string digits = "123456789";
  CHECK(crc32(digits.data(), digits.size()) == 0xCBF43926u);
  CHECK(crc32("", 0) == 0u);
  CHECK(crc32("a", 1) == 0xE8B7BE43u);
}

TEST_CASE("crc32c (Castagnoli): the check values of RFC 3720 (iSCSI) and the CRC catalogue", "[checksum]") {
  const std::string digits = "123456789";
  CHECK(crc32c(digits.data(), digits.size()) == 0xE3069283u);
  unsigned char buf[32];
  std::memset(buf, 0, 32);
  CHECK(crc32c(buf, 32) == 0x8A9136AAu);
  std::memset(buf, 0xff, 32);
  CHECK(crc32c(buf, 32) == 0x62A8AB43u);
  for (int i = 0; i < 32; ++i) buf[i] = static_cast<unsigned char>(i);
  CHECK(crc32c(buf, 32) == 0x46DD794Eu);
  // Continued over two pieces, the same as over the whole.
  CHECK(crc32c(digits.data() + 4, 5, crc32c(digits.data(), 4)) == 0xE3069283u);
}

TEST_CASE("put_le: the low bytes, least significant first", "[checksum]") {
  std::string s;
  sam::data::put_le(s, 0x0102030405060708ull, 8);
  sam::data::put_le(s, 0xABCD1234u, 2);
  CHECK(s == std::string("\x08\x07\x06\x05\x04\x03\x02\x01\x34\x12", 10));
}
