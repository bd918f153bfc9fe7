// apid's own identity: it makes its keys, gets its certificates from trustd (the local
// trustd.sock on a control plane; a control plane's join listener with the join token
// on a worker), writes them where the TLS layers read them, and renews them at about
// half their lifetime, with jitter, retrying with backoff. The serving certificate is
// swapped in place: new handshakes get the new one, open connections keep theirs.
#pragma once

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "keel/common/clock.h"
#include "keel/common/status.h"
#include "keel/pki/pki.h"

namespace keel::apid {

struct IssuedIdentity {
  std::string servingChainPem;  // leaf first
  std::string impersonatorPem;  // empty when the issuer grants none (a worker)
};

// A joined node's proof for renewing without the join token: its current serving
// certificate and a signature by that certificate's key over the new serving CSR.
struct RenewalProof {
  std::string certificatePem;
  std::string signature;
};

struct IdentityRequest {
  std::string servingCsrPem;
  std::string impersonatorCsrPem;  // empty when not wanted
  // Set while apid holds a valid serving certificate; issuers that do not need it ignore it.
  std::optional<RenewalProof> renewal;
};

// Where certificates come from: a seam, so the renewal logic is tested without trustd.
class CertificateIssuer {
 public:
  virtual ~CertificateIssuer() = default;
  virtual Result<IssuedIdentity> issue(const IdentityRequest& request) = 0;
  // "trustd at /run/keel/trustd.sock", "control planes 10.0.0.1:50001": for log lines.
  virtual std::string describe() const = 0;
};

// trustd on this node, over its Unix socket (LocalIssuerService).
std::unique_ptr<CertificateIssuer> localTrustdIssuer(const std::filesystem::path& socket);
// A control plane's join listener, each endpoint in turn until one signs; the server is
// verified against the OS CA bundle at `caFile`. With a renewal proof it renews with the
// current certificate (RenewNodeCertificate) and presents `token` only when no control
// plane would (its names changed, the certificate is refused, an older control plane);
// without one it joins with `token`. `token` is secret.
std::unique_ptr<CertificateIssuer> joinIssuer(std::vector<std::string> endpoints, std::string token,
                                              std::filesystem::path caFile);

struct IdentityFiles {
  std::filesystem::path servingKey;
  std::filesystem::path servingCert;
  std::filesystem::path impersonatorKey;  // empty: no impersonator identity wanted
  std::filesystem::path impersonatorCert;
};

struct IdentityOptions {
  std::string nodeAddress;
  std::vector<std::string> sans;  // the serving certificate's SANs (addresses and DNS names)
  IdentityFiles files;
  std::chrono::milliseconds firstRetry{500};
  std::chrono::milliseconds maxRetry{30'000};
  // Renewal at this fraction of the lifetime, +/- jitter (both of the whole lifetime).
  double renewAt = 0.5;
  double jitter = 0.1;
  // apid's accepted CA bundle, the issuing CA first. When set, it is read every
  // `issuerCheck`, and certificates the issuing CA did not sign are renewed at once: a CA
  // rotation's re-issue step needs nothing else from apid.
  std::filesystem::path caBundle;
  std::chrono::milliseconds issuerCheck{2'000};
};

class IdentityManager {
 public:
  IdentityManager(IdentityOptions options, std::unique_ptr<CertificateIssuer> issuer, const Clock& clock,
                  uint64_t seed = std::random_device{}());
  ~IdentityManager();

  // Blocks until apid has a certificate (retrying with backoff, each failure logged with
  // its reason) or stop() is called. Errors: CANCELLED when stopped first.
  Status obtain();
  // One attempt: new keys and CSRs, the issuer's answer, the files written (keys first,
  // each atomically). Sets the next renewal time.
  Status renewOnce();
  // Renews in the background until stop(): at renewalTime(), then with backoff on failure.
  void startRenewing();
  void stop();

  // When the current certificate should be renewed (TimePoint::max() before the first).
  TimePoint renewalTime() const;
  TimePoint notAfter() const;

 private:
  void renewLoop();
  // Whether the issuing CA of caBundle (its first) did not sign a certificate apid holds.
  // Verifies again only when the bundle's file or the certificates held changed.
  bool issuedByAnotherCa();
  std::optional<RenewalProof> renewalProof(const std::string& csrPem) const;
  std::chrono::milliseconds backoff(int failures) const;

  IdentityOptions options_;
  std::unique_ptr<CertificateIssuer> issuer_;
  const Clock& clock_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::mt19937_64 random_;
  // The serving key and chain apid holds now, for the next renewal's proof.
  std::optional<std::pair<std::string, std::string>> current_;  // key PEM, chain PEM
  std::string impersonatorPem_;                                  // empty without one
  TimePoint renewAt_ = TimePoint::max();
  std::chrono::steady_clock::time_point retryAt_;  // after a failed renewal
  // issuedByAnotherCa's last input (the bundle's inode, size and mtime, and the PEMs held)
  // and verdict; the renewal thread's own.
  std::string issuerInput_;
  bool issuerVerdict_ = false;
  TimePoint notAfter_ = TimePoint::min();
  std::thread thread_;
};

}  // namespace keel::apid
