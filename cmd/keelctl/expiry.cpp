#include "expiry.h"

#include <fmt/format.h>

#include "keel/pki/pki.h"

namespace keel::keelctl {

namespace {

std::string inWords(std::chrono::seconds left) {
  const auto hours = std::chrono::duration_cast<std::chrono::hours>(left).count();
  if (hours >= 48) return fmt::format("in {} days", hours / 24);
  if (hours >= 1) return fmt::format("in {} h", hours);
  return fmt::format("in {} min", std::max<int64_t>(1, std::chrono::duration_cast<std::chrono::minutes>(left).count()));
}

}  // namespace

bool expiresSoon(const pki::Certificate& certificate, TimePoint now) {
  const auto left = certificate.notAfter() - now;
  return left > TimePoint::duration::zero() && left <= kExpiryWarningWindow &&
         left * 2 <= certificate.notAfter() - certificate.notBefore();
}

std::optional<std::string> expiryWarning(const config::ClientConfig& cfg, TimePoint now) {
  const auto it = cfg.contexts.find(cfg.context);
  if (it == cfg.contexts.end()) return std::nullopt;
  const auto crt = pki::Certificate::fromPem(it->second.crt);
  if (!crt.ok()) return std::nullopt;
  const TimePoint notAfter = crt->notAfter();
  if (notAfter <= now) {
    return fmt::format(
        "the client certificate of context '{}' expired at {}: no node accepts it, and it cannot be renewed; "
        "ask an admin for a new keelconfig ('keelctl config generate')",
        cfg.context, formatTime(notAfter));
  }
  if (!expiresSoon(*crt, now)) return std::nullopt;
  const auto left = std::chrono::duration_cast<std::chrono::seconds>(notAfter - now);
  return fmt::format("the client certificate of context '{}' expires at {} ({}); renew it with 'keelctl config renew'",
                     cfg.context, formatTime(notAfter), inWords(left));
}

std::optional<std::string> expiryWarningForCommand(const std::optional<std::filesystem::path>& flag,
                                                   const config::ClientConfigEnv& env, TimePoint now) {
  const auto path = config::resolveClientConfigPath(flag, env);
  if (!path.ok()) return std::nullopt;
  std::error_code ec;
  if (!std::filesystem::exists(*path, ec)) return std::nullopt;
  const auto cfg = config::readClientConfigFile(*path);
  if (!cfg.ok()) return std::nullopt;
  return expiryWarning(*cfg, now);
}

}  // namespace keel::keelctl
