// The cluster's revocation list, as the OS CA's holder keeps it: entries on trustd's
// state disk (they survive restarts), and the list every apid fetches, signed with the
// OS CA's key. An entry leaves the list once the certificate it names has expired, so the
// list stays small. Thread-safe.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "keel/common/clock.h"
#include "keel/common/status.h"
#include "keel/pki/pki.h"

namespace keel::trustd {

// More would not fit what a worker fetches through a join listener; a cluster that needs
// more has a leaked CA problem, which rotating the CA solves.
inline constexpr std::size_t kMaxRevokedCertificates = 10'000;

struct RevokedEntry {
  std::string serial;  // lower-case hex, whole bytes (pki::Certificate::serialHex)
  TimePoint notAfter;  // the entry leaves the list after this
  std::string identity;  // the certificate's CN; empty when revoked by serial alone
  TimePoint revokedAt;
  std::string revokedBy;
};

// The document apid verifies: a serialized keel.security.v1.RevocationList, and the
// CA key's signature over exactly those bytes.
struct SignedList {
  std::string list;
  std::string signature;
  uint64_t sequence = 0;
};

class Revocations {
 public:
  // Reads `file` (absent: an empty list; an empty path: a list kept in memory only, for
  // tests). Errors: a file that is not a list this class
  // wrote (its message names the file).
  static Result<std::unique_ptr<Revocations>> open(std::filesystem::path file, pki::PrivateKey signingKey,
                                                   const Clock& clock);

  struct Added {
    RevokedEntry entry;    // as listed (the earlier entry when it was there already)
    bool already = false;  // nothing changed
    uint64_t sequence = 0;
  };
  // Adds `entry` and writes the file before it returns; when the write fails nothing
  // changes. Errors: RESOURCE_EXHAUSTED (list full), INTERNAL (the file).
  Result<Added> add(RevokedEntry entry);
  // True when `serial` (pki::Certificate::serialHex) is listed.
  bool isRevoked(const std::string& serial);
  // The entries in force now, and the list's sequence.
  std::vector<RevokedEntry> entries();
  uint64_t sequence();
  // The signed list, signed again only after a change (an entry added or expired).
  Result<SignedList> signedList();

 private:
  Revocations(std::filesystem::path file, pki::PrivateKey key, const Clock& clock)
      : file_(std::move(file)), key_(std::move(key)), clock_(clock) {}
  // Drops expired entries (a change: a new sequence, the file written). Holding mu_.
  Status pruneLocked();
  // A sequence greater than the last, from the clock where it allows. Holding mu_.
  uint64_t nextSequenceLocked() const;
  Status writeLocked(const std::vector<RevokedEntry>& entries, uint64_t sequence) const;

  const std::filesystem::path file_;
  const pki::PrivateKey key_;
  const Clock& clock_;
  std::mutex mu_;
  std::vector<RevokedEntry> entries_;
  uint64_t sequence_ = 0;
  SignedList signed_;  // signed_.sequence != sequence_: to be signed again
};

}  // namespace keel::trustd
