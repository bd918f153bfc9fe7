// apid's join listener (:50001): TLS 1.3 with server authentication only, since a
// joining node has no certificate yet. It serves one method, SignNodeCertificate, and
// forwards it to trustd with the caller's address in keel-peer and no roles: the join
// token, which trustd checks, is the credential. Every other method is UNIMPLEMENTED.
#pragma once

#include <filesystem>

#include "keel/common/clock.h"
#include "keel/security/v1/security.grpc.pb.h"

#include "audit.h"

namespace keel::apid {

// Join requests are a CSR and a token: a few KiB. Larger ones are refused unread.
inline constexpr int kJoinMaxMessageBytes = 64 * 1024;

class JoinService final : public keel::security::v1::SecurityService::Service {
 public:
  JoinService(std::filesystem::path trustdSocket, AuditLog* audit, const Clock& clock)
      : trustdSocket_(std::move(trustdSocket)), audit_(audit), clock_(clock) {}

  grpc::Status SignNodeCertificate(grpc::ServerContext* ctx,
                                   const keel::security::v1::SignNodeCertificateRequest* req,
                                   keel::security::v1::SignNodeCertificateResponse* resp) override;

 private:
  std::filesystem::path trustdSocket_;
  AuditLog* audit_;
  const Clock& clock_;
};

}  // namespace keel::apid
