#include <algorithm>

#include "keel/pki/pki.h"

#include "internal.h"

namespace keel::pki {
namespace {

using namespace internal;

// Enough of the fingerprint to tell CAs apart in a message; the full one is in the PEM.
constexpr size_t kShortFingerprint = 8;

std::string quoted(const DistinguishedName& name) {
  return "'" + name.toString() + "'";
}

std::string describeCas(const std::vector<Certificate>& cas) {
  std::string out;
  for (const auto& ca : cas) {
    if (!out.empty()) out += ", ";
    out += quoted(ca.subject()) + " (sha256 " + ca.fingerprintSha256().substr(0, kShortFingerprint) + "…)";
  }
  return out;
}

// The certificate the verifier was looking at when it failed, as one of ours.
std::optional<Certificate> failedCertificate(X509_STORE_CTX* ctx) {
  X509* raw = X509_STORE_CTX_get_current_cert(ctx);
  if (raw == nullptr) return std::nullopt;
  unsigned char* der = nullptr;
  const int len = i2d_X509(raw, &der);
  if (len <= 0) return std::nullopt;
  OpensslBytes owner(der);
  auto cert = Certificate::fromDer(std::span<const uint8_t>(der, static_cast<size_t>(len)));
  if (!cert.ok()) return std::nullopt;
  return std::move(cert).value();
}

std::string notACa(const Certificate& issuer) {
  return "issuer " + quoted(issuer.subject()) +
         " is not a CA: expected basicConstraints CA:TRUE and key usage keyCertSign on every issuing "
         "certificate";
}

// The verifiers differ in where they notice a non-CA issuer: OpenSSL 3 finds the issuer
// and then rejects it, older BoringSSL skips it during the lookup and reports no issuer
// at all. Looking at the candidates by name gives one answer for both.
Status explainUnknownAuthority(const Certificate& failed, const std::vector<Certificate>& acceptedCas,
                               const VerifyOptions& options) {
  bool sameNameCa = false;
  auto inspect = [&](const Certificate& candidate) -> std::optional<Status> {
    if (X509_NAME_cmp(X509_get_subject_name(candidate.raw()), X509_get_issuer_name(failed.raw())) != 0) {
      return std::nullopt;
    }
    const uint32_t usage = candidate.keyUsage();
    if (!candidate.isCa() || (usage != kKeyUsageNone && (usage & kKeyCertSign) == 0)) {
      return unauthenticated(notACa(candidate));
    }
    sameNameCa = true;
    return std::nullopt;
  };
  for (const auto& cert : options.intermediates) {
    if (auto status = inspect(cert)) return *status;
  }
  for (const auto& cert : acceptedCas) {
    if (auto status = inspect(cert)) return *status;
  }
  std::string message = "certificate signed by unknown authority: issuer " + quoted(failed.issuer()) +
                        ", accepted: " + describeCas(acceptedCas);
  if (sameNameCa) message += " (a CA of that name is known, but its key did not sign this certificate)";
  return unauthenticated(std::move(message));
}

Status explainFailure(int error, const Certificate& failed, const std::vector<Certificate>& acceptedCas,
                      const VerifyOptions& options, TimePoint now) {
  const std::string who = "certificate " + quoted(failed.subject());
  switch (error) {
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN: return explainUnknownAuthority(failed, acceptedCas, options);
    case X509_V_ERR_CERT_HAS_EXPIRED:
      return unauthenticated(who + " expired at " + formatTime(failed.notAfter()) + " (now " +
                             formatTime(now) + ")");
    case X509_V_ERR_CERT_NOT_YET_VALID:
      return unauthenticated(who + " is not valid until " + formatTime(failed.notBefore()) + " (now " +
                             formatTime(now) + ")");
    case X509_V_ERR_CERT_SIGNATURE_FAILURE:
    case X509_V_ERR_UNABLE_TO_DECRYPT_CERT_SIGNATURE:
      return unauthenticated(who + " has a bad signature: expected a valid signature by its issuer " +
                             quoted(failed.issuer()) + ", but it does not verify");
    case X509_V_ERR_INVALID_CA:
    case X509_V_ERR_KEYUSAGE_NO_CERTSIGN: return unauthenticated(notACa(failed));
    case X509_V_ERR_PATH_LENGTH_EXCEEDED:
      return unauthenticated("chain through " + quoted(failed.subject()) +
                             " is longer than its CA's path length constraint allows");
    default: return unauthenticated(who + " failed verification: " + X509_verify_cert_error_string(error));
  }
}

std::string usageList(const std::vector<ExtendedKeyUsage>& usages) {
  std::string out;
  for (const auto usage : usages) {
    if (!out.empty()) out += ", ";
    out += extendedKeyUsageName(usage);
  }
  return out;
}

}  // namespace

Status verifyCertificate(const Certificate& leaf, const std::vector<Certificate>& acceptedCas,
                         const VerifyOptions& options, const Clock& clock) {
  ErrorQueueGuard guard;
  if (acceptedCas.empty()) {
    return unauthenticated("certificate signed by unknown authority: issuer " + quoted(leaf.issuer()) +
                           ", accepted: none (no CA configured)");
  }
  // A leaf in this list would be trusted as itself (partial chains are allowed below), so
  // a bundle that mixes in a non-CA is a configuration mistake to report, not to honour.
  for (const auto& ca : acceptedCas) {
    if (!ca.isCa()) {
      return unauthenticated("expected only CA certificates among the accepted CAs, got " +
                             quoted(ca.subject()) + " (sha256 " +
                             ca.fingerprintSha256().substr(0, kShortFingerprint) + "…) which is not a CA");
    }
  }
  StorePtr store(X509_STORE_new());
  KEEL_RELEASE_ASSERT(store != nullptr, "out of memory");
  std::vector<std::string> added;
  for (const auto& ca : acceptedCas) {
    // Older BoringSSL refuses a certificate already in the store.
    auto fingerprint = ca.fingerprintSha256();
    if (std::find(added.begin(), added.end(), fingerprint) != added.end()) continue;
    added.push_back(std::move(fingerprint));
    KEEL_RELEASE_ASSERT(X509_STORE_add_cert(store.get(), ca.raw()) == 1,
                        "cannot add a CA to a new X509_STORE");
  }
  X509StackPtr untrusted(sk_X509_new_null());
  KEEL_RELEASE_ASSERT(untrusted != nullptr, "out of memory");
  for (const auto& cert : options.intermediates) {
    KEEL_RELEASE_ASSERT(sk_X509_push(untrusted.get(), cert.raw()) != 0, "out of memory");
  }
  StoreCtxPtr ctx(X509_STORE_CTX_new());
  KEEL_RELEASE_ASSERT(ctx != nullptr, "out of memory");
  if (X509_STORE_CTX_init(ctx.get(), store.get(), leaf.raw(), untrusted.get()) != 1) {
    return cryptoError(StatusCode::kInternal, "cannot set up certificate verification");
  }
  X509_VERIFY_PARAM* param = X509_STORE_CTX_get0_param(ctx.get());
  const TimePoint now = clock.now();
  // The injected clock, never the wall clock: tests and replays depend on it.
  X509_VERIFY_PARAM_set_time(param, std::chrono::system_clock::to_time_t(now));
  // An accepted CA is a trust anchor even when it is itself an intermediate.
  X509_VERIFY_PARAM_set_flags(param, X509_V_FLAG_PARTIAL_CHAIN);

  if (X509_verify_cert(ctx.get()) != 1) {
    const int error = X509_STORE_CTX_get_error(ctx.get());
    const auto failed = failedCertificate(ctx.get());
    return explainFailure(error, failed.value_or(leaf), acceptedCas, options, now);
  }

  if (options.requiredUsage) {
    const auto usages = leaf.extendedKeyUsages();
    if (std::find(usages.begin(), usages.end(), *options.requiredUsage) == usages.end()) {
      return unauthenticated("certificate " + quoted(leaf.subject()) + " lacks extended key usage " +
                             std::string(extendedKeyUsageName(*options.requiredUsage)) + ": it has " +
                             (usages.empty() ? std::string("none") : usageList(usages)));
    }
  }
  return Status::ok();
}

}  // namespace keel::pki
