// Randomness as an injectable dependency: production code draws from the OS CSPRNG
// (through OpenSSL), tests can substitute a scripted source to check, for instance,
// that token generation rejects biased bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace keel::config {

class RandomSource {
 public:
  virtual ~RandomSource() = default;
  // Fills `out` with uniformly random bytes. Crashes if the CSPRNG fails: there is no
  // safe way to continue making secrets without randomness.
  virtual void fill(std::span<uint8_t> out) = 0;
};

// OpenSSL's RAND_bytes. Thread-safe.
class SystemRandom final : public RandomSource {
 public:
  void fill(std::span<uint8_t> out) override;
};

std::vector<uint8_t> randomBytes(RandomSource& random, size_t count);

// `count` characters drawn uniformly from `alphabet` (1 to 256 characters), using
// rejection sampling so no character is more likely than another.
std::string randomString(RandomSource& random, std::string_view alphabet, size_t count);

// A token "[a-z0-9]{6}.[a-z0-9]{16}" (the join and bootstrap token format).
std::string generateToken(RandomSource& random);

// True when `token` has the form "[a-z0-9]{6}.[a-z0-9]{16}".
bool isValidToken(std::string_view token);

}  // namespace keel::config
