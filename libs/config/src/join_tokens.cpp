#include "keel/config/join_tokens.h"

#include <algorithm>
#include <array>

#include <fmt/format.h>
#include <openssl/evp.h>

#include "keel/config/random.h"
#include "secret_fields.h"

namespace keel::config {

namespace {

constexpr size_t kFingerprintHexDigits = 12;

Status forControlPlanes(const MachineConfig& config, const JoinTokenChange& change) {
  if (!change.present.empty()) {
    return failedPrecondition(
        "a control plane joins with no token, it accepts them: expected a token to accept or drop, found one to "
        "present");
  }
  if (change.drop.empty()) return Status::ok();
  const auto accepted = acceptedJoinTokens(config);
  const bool others = std::any_of(accepted.begin(), accepted.end(), [&](const auto& t) { return t != change.drop; });
  if (!others) {
    return failedPrecondition(fmt::format(
        "the token {} is the last one this control plane accepts, and the last one is never dropped: accept a new "
        "one first (keelctl rotate-token)",
        tokenFingerprint(change.drop)));
  }
  return Status::ok();
}

}  // namespace

Status checkJoinToken(std::string_view field, std::string_view token) { return detail::checkToken(field, token); }

std::string tokenFingerprint(std::string_view token) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
  unsigned int len = 0;
  KEEL_RELEASE_ASSERT(EVP_Digest(token.data(), token.size(), md.data(), &len, EVP_sha256(), nullptr) == 1,
                      "SHA-256 failed");
  std::string hex;
  for (unsigned int i = 0; i < len && hex.size() < kFingerprintHexDigits; ++i) hex += fmt::format("{:02x}", md[i]);
  return hex;
}

std::vector<std::string> acceptedJoinTokens(const MachineConfig& config) {
  std::vector<std::string> tokens = {config.token};
  for (const auto& t : config.trustd.acceptedTokens) {
    if (std::find(tokens.begin(), tokens.end(), t) == tokens.end()) tokens.push_back(t);
  }
  return tokens;
}

Result<MachineConfig> changeJoinTokens(const MachineConfig& config, const JoinTokenChange& change) {
  for (const auto& [field, token] : {std::pair{"accept", &change.accept}, std::pair{"drop", &change.drop},
                                     std::pair{"present", &change.present}}) {
    if (!token->empty()) KEEL_RETURN_IF_ERROR(checkJoinToken(field, *token));
  }
  MachineConfig next = config;
  if (config.type == MachineType::kWorker) {
    if (!change.accept.empty() || !change.drop.empty()) {
      return failedPrecondition(
          "a worker accepts no join tokens, it presents one: expected a token to present, found one to accept or "
          "drop");
    }
    if (!change.present.empty()) next.token = change.present;
    return next;
  }
  auto& extra = next.trustd.acceptedTokens;
  const auto accepted = acceptedJoinTokens(next);
  if (!change.accept.empty() && std::find(accepted.begin(), accepted.end(), change.accept) == accepted.end()) {
    extra.push_back(change.accept);
  }
  // Judged after the accept: a token accepted in the same change may replace the last one.
  KEEL_RETURN_IF_ERROR(forControlPlanes(next, change));
  if (!change.drop.empty()) {
    if (next.token == change.drop) {
      // forControlPlanes checked that another token is accepted.
      next.token = *std::find_if(extra.begin(), extra.end(), [&](const auto& t) { return t != change.drop; });
    }
    std::erase_if(extra, [&](const std::string& t) { return t == change.drop || t == next.token; });
  }
  KEEL_RETURN_IF_ERROR(validateMachineConfig(next));
  return next;
}

}  // namespace keel::config
