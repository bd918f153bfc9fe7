#include "keel/config/random.h"

#include <openssl/rand.h>

#include <climits>

#include "keel/common/assert.h"

namespace keel::config {

void SystemRandom::fill(std::span<uint8_t> out) {
  size_t done = 0;
  while (done < out.size()) {
    const size_t chunk = std::min<size_t>(out.size() - done, INT_MAX);
    KEEL_RELEASE_ASSERT(RAND_bytes(out.data() + done, static_cast<int>(chunk)) == 1, "RAND_bytes failed");
    done += chunk;
  }
}

std::vector<uint8_t> randomBytes(RandomSource& random, size_t count) {
  std::vector<uint8_t> out(count);
  random.fill(out);
  return out;
}

std::string randomString(RandomSource& random, std::string_view alphabet, size_t count) {
  KEEL_RELEASE_ASSERT(!alphabet.empty() && alphabet.size() <= 256, "randomString: alphabet of 1 to 256 characters");
  // Bytes at or above the largest multiple of the alphabet size would make the first
  // characters more likely than the others; they are drawn again.
  const unsigned limit = 256 - (256 % alphabet.size());
  std::string out;
  out.reserve(count);
  uint8_t buf[64];
  while (out.size() < count) {
    random.fill(buf);
    for (const uint8_t b : buf) {
      if (b >= limit) continue;
      out += alphabet[b % alphabet.size()];
      if (out.size() == count) break;
    }
  }
  return out;
}

namespace {
constexpr std::string_view kTokenAlphabet = "abcdefghijklmnopqrstuvwxyz0123456789";
bool isTokenChar(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
}  // namespace

std::string generateToken(RandomSource& random) {
  return randomString(random, kTokenAlphabet, 6) + "." + randomString(random, kTokenAlphabet, 16);
}

bool isValidToken(std::string_view token) {
  if (token.size() != 23 || token[6] != '.') return false;
  for (size_t i = 0; i < token.size(); ++i) {
    if (i != 6 && !isTokenChar(token[i])) return false;
  }
  return true;
}

}  // namespace keel::config
