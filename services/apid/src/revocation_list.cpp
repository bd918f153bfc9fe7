#include "revocation_list.h"

#include <fmt/format.h>

#include "keel/security/v1/security.pb.h"

namespace keel::apid {

Result<bool> RevocationList::accept(std::string_view list, std::string_view signature,
                                    const std::vector<pki::Certificate>& cas) {
  Status why = permissionDenied("no accepted OS CA to verify the revocation list with");
  bool signedByCa = false;
  for (const auto& ca : cas) {
    why = pki::verifyDocumentSignature(ca, list, signature);
    if (why.isOk()) {
      signedByCa = true;
      break;
    }
  }
  if (!signedByCa) return permissionDenied("the revocation list is not signed by an accepted OS CA: " + why.message());
  keel::security::v1::RevocationList parsed;
  if (!parsed.ParseFromArray(list.data(), static_cast<int>(list.size()))) {
    return invalidArgument("the revocation list does not parse");
  }
  std::unordered_set<std::string> serials;
  for (const auto& c : parsed.certificates()) serials.insert(c.serial());

  std::lock_guard lock(mu_);
  if (parsed.sequence() < sequence_) {
    return failedPrecondition(fmt::format("the revocation list is stale: sequence {}, older than the list held ({})",
                                          parsed.sequence(), sequence_));
  }
  if (parsed.sequence() == sequence_) return false;
  sequence_ = parsed.sequence();
  serials_ = std::move(serials);
  size_.store(serials_.size(), std::memory_order_release);
  return true;
}

bool RevocationList::isRevoked(std::string_view serial) const {
  if (size_.load(std::memory_order_acquire) == 0) return false;
  std::lock_guard lock(mu_);
  return serials_.contains(std::string(serial));
}

uint64_t RevocationList::sequence() const {
  std::lock_guard lock(mu_);
  return sequence_;
}

}  // namespace keel::apid
