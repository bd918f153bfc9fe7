// The revocation list apid enforces: the serials trustd listed, in the last list whose
// OS CA signature apid verified. A listed client certificate is refused in admission
// (admission.h), before any backend sees the call. No gRPC types.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "keel/common/clock.h"
#include "keel/common/status.h"
#include "keel/pki/pki.h"

namespace keel::apid {

class RevocationList {
 public:
  // Takes a signed list (a serialized keel.security.v1.RevocationList and a signature
  // over exactly those bytes) when one of `cas` signed it and it is not older than the
  // list held. A list of the same sequence changes nothing. Errors (nothing changes):
  // PERMISSION_DENIED (no CA's signature: forged or damaged), INVALID_ARGUMENT (does not
  // parse), FAILED_PRECONDITION (stale: an older sequence than the one held).
  // Returns true when the list held changed.
  Result<bool> accept(std::string_view list, std::string_view signature, const std::vector<pki::Certificate>& cas);

  // Thread-safe and cheap when the list is empty: one atomic load.
  bool isRevoked(std::string_view serial) const;
  uint64_t sequence() const;
  std::size_t size() const { return size_.load(std::memory_order_acquire); }

 private:
  mutable std::mutex mu_;
  uint64_t sequence_ = 0;
  std::unordered_set<std::string> serials_;
  std::atomic<std::size_t> size_{0};
};

}  // namespace keel::apid
