#include "security_service.h"

#include <optional>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "keel/authz/authz.h"
#include "keel/authz/proto_rules.h"
#include "keel/transport/grpc_status.h"
#include "keel/apis/builtin.h"

namespace keel::trustd {

namespace v1 = keel::security::v1;

namespace {

using transport::toGrpc;

// Every value of a reserved key apid set (keys reach the server in lower case).
std::vector<std::string> values(const grpc::ServerContext& ctx, std::string_view key) {
  std::vector<std::string> out;
  for (const auto& [k, v] : ctx.client_metadata()) {
    if (std::string_view(k.data(), k.size()) == key) out.emplace_back(v.data(), v.size());
  }
  return out;
}

// The call must carry apid's roles exactly once and pass the method's rule (the same
// table apid checked); the single values of identity, peer and the caller's certificate
// validity are returned.
struct Forwarded {
  std::vector<std::string> roles;
  std::string identity;
  std::string peer;
  std::optional<authz::CertValidity> presented;

  ClientCaller caller() const { return {identity, roles, presented}; }
};

Result<Forwarded> admit(const grpc::ServerContext& ctx, std::string_view method) {
  const auto rolesValues = values(ctx, authz::kRolesKey);
  const std::string full = std::string("/keel.security.v1.SecurityService/") + std::string(method);
  KEEL_RETURN_IF_ERROR(authz::checkForwardedCall(apis::builtinRules(), full, rolesValues));
  Forwarded f;
  f.roles = authz::parseRoles(rolesValues.front());
  const auto identity = values(ctx, authz::kIdentityKey);
  const auto peer = values(ctx, authz::kPeerKey);
  if (identity.size() > 1 || peer.size() > 1) {
    return Status(StatusCode::kPermissionDenied, "expected keel-identity and keel-peer at most once each");
  }
  if (!identity.empty()) f.identity = identity.front();
  if (!peer.empty()) f.peer = peer.front();
  // Absent on a call another node's apid forwarded; the Authority refuses to issue then.
  const auto validity = values(ctx, authz::kCertValidityKey);
  if (validity.size() > 1) {
    return Status(StatusCode::kPermissionDenied, fmt::format("expected {} at most once, found {} values",
                                                             authz::kCertValidityKey, validity.size()));
  }
  if (!validity.empty()) {
    auto parsed = authz::parseCertValidity(validity.front());
    if (!parsed.ok()) return Status(StatusCode::kPermissionDenied, parsed.status().message());
    f.presented = *parsed;
  }
  return f;
}

// The join and node-renewal methods are the ones apid's join listener forwards without
// roles: the token, or the current certificate with its proof, is the credential there.
// Through :50000 they carry roles and must pass their rule.
Result<Forwarded> admitJoin(const grpc::ServerContext& ctx, std::string_view method) {
  const auto rolesValues = values(ctx, authz::kRolesKey);
  const auto peer = values(ctx, authz::kPeerKey);
  if (peer.size() != 1) {
    return Status(StatusCode::kPermissionDenied, "expected the caller's address in keel-peer exactly once");
  }
  if (rolesValues.empty()) return Forwarded{{}, "", peer.front(), std::nullopt};
  KEEL_ASSIGN_OR_RETURN(auto f, admit(ctx, method));
  return f;
}

int64_t unixSeconds(TimePoint t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

}  // namespace

grpc::Status SecurityServiceImpl::SignNodeCertificate(grpc::ServerContext* ctx,
                                                      const v1::SignNodeCertificateRequest* req,
                                                      v1::SignNodeCertificateResponse* resp) {
  auto f = admitJoin(*ctx, "SignNodeCertificate");
  if (!f.ok()) return toGrpc(f.status());
  auto cert = authority_->signNodeCertificate(req->csr(), req->token(), f->peer);
  if (!cert.ok()) return toGrpc(cert.status());
  resp->set_certificate(cert->certificatePem);
  resp->set_ca_bundle(cert->caBundlePem);
  return grpc::Status::OK;
}

grpc::Status SecurityServiceImpl::RenewNodeCertificate(grpc::ServerContext* ctx,
                                                       const v1::RenewNodeCertificateRequest* req,
                                                       v1::RenewNodeCertificateResponse* resp) {
  auto f = admitJoin(*ctx, "RenewNodeCertificate");
  if (!f.ok()) return toGrpc(f.status());
  auto cert = authority_->renewNodeCertificate(req->csr(), req->certificate(), req->proof(), f->peer);
  if (!cert.ok()) return toGrpc(cert.status());
  resp->set_certificate(cert->certificatePem);
  resp->set_ca_bundle(cert->caBundlePem);
  return grpc::Status::OK;
}

grpc::Status SecurityServiceImpl::GenerateClientConfiguration(
    grpc::ServerContext* ctx, const v1::GenerateClientConfigurationRequest* req,
    v1::GenerateClientConfigurationResponse* resp) {
  auto f = admit(*ctx, "GenerateClientConfiguration");
  if (!f.ok()) return toGrpc(f.status());
  const std::vector<std::string> roles(req->roles().begin(), req->roles().end());
  auto out = authority_->generateClientConfig(roles, std::chrono::seconds(req->ttl_seconds()),
                                              req->identity(), f->caller());
  if (!out.ok()) return toGrpc(out.status());
  resp->set_keelconfig(out->keelconfig);
  resp->set_serial(out->serialHex);
  resp->set_not_after_unix(
      std::chrono::duration_cast<std::chrono::seconds>(out->notAfter.time_since_epoch()).count());
  return grpc::Status::OK;
}

grpc::Status SecurityServiceImpl::RenewClientCertificate(grpc::ServerContext* ctx,
                                                         const v1::RenewClientCertificateRequest* req,
                                                         v1::RenewClientCertificateResponse* resp) {
  auto f = admit(*ctx, "RenewClientCertificate");
  if (!f.ok()) return toGrpc(f.status());
  auto out =
      authority_->renewClientCertificate(req->csr(), f->caller(), std::chrono::seconds(req->ttl_seconds()));
  if (!out.ok()) return toGrpc(out.status());
  resp->set_certificate(out->certificatePem);
  resp->set_ca_bundle(out->caBundlePem);
  resp->set_not_after_unix(
      std::chrono::duration_cast<std::chrono::seconds>(out->notAfter.time_since_epoch()).count());
  return grpc::Status::OK;
}

grpc::Status LocalIssuerServiceImpl::IssueApidCertificates(grpc::ServerContext* ctx,
                                                           const v1::IssueApidCertificatesRequest* req,
                                                           v1::IssueApidCertificatesResponse* resp) {
  for (const auto& [k, v] : ctx->client_metadata()) {
    if (authz::isReservedKey(std::string_view(k.data(), k.size()))) {
      spdlog::warn("trustd: refused a forwarded call for apid's own certificates");
      return {grpc::StatusCode::PERMISSION_DENIED,
              "apid's certificates are issued to apid itself, never through it"};
    }
  }
  auto out = authority_->issueApidCertificates(req->serving_csr(), req->impersonator_csr());
  if (!out.ok()) return toGrpc(out.status());
  resp->set_serving_chain(out->servingChainPem);
  resp->set_impersonator_certificate(out->impersonatorPem);
  resp->set_ca_bundle(out->caBundlePem);
  return grpc::Status::OK;
}

grpc::Status SecurityServiceImpl::RevokeCertificate(grpc::ServerContext* ctx, const v1::RevokeCertificateRequest* req,
                                                    v1::RevokeCertificateResponse* resp) {
  auto f = admit(*ctx, "RevokeCertificate");
  if (!f.ok()) return toGrpc(f.status());
  auto added = authority_->revoke({req->certificate(), req->serial()}, f->identity);
  if (!added.ok()) return toGrpc(added.status());
  resp->set_serial(added->entry.serial);
  resp->set_not_after_unix(unixSeconds(added->entry.notAfter));
  resp->set_already_revoked(added->already);
  resp->set_list_sequence(added->sequence);
  return grpc::Status::OK;
}

grpc::Status SecurityServiceImpl::ListRevokedCertificates(grpc::ServerContext* ctx,
                                                          const keel::common::v1::Empty* /*req*/,
                                                          v1::ListRevokedCertificatesResponse* resp) {
  auto f = admit(*ctx, "ListRevokedCertificates");
  if (!f.ok()) return toGrpc(f.status());
  for (const auto& e : authority_->revocations().entries()) {
    auto* out = resp->add_certificates();
    out->set_serial(e.serial);
    out->set_not_after_unix(unixSeconds(e.notAfter));
    out->set_identity(e.identity);
    out->set_revoked_at_unix(unixSeconds(e.revokedAt));
    out->set_revoked_by(e.revokedBy);
  }
  resp->set_sequence(authority_->revocations().sequence());
  return grpc::Status::OK;
}

grpc::Status SecurityServiceImpl::GetRevocationList(grpc::ServerContext* ctx, const keel::common::v1::Empty* /*req*/,
                                                    v1::SignedRevocationList* resp) {
  if (!values(*ctx, authz::kRolesKey).empty()) {
    auto f = admit(*ctx, "GetRevocationList");
    if (!f.ok()) return toGrpc(f.status());
  }
  auto list = authority_->revocations().signedList();
  if (!list.ok()) return toGrpc(list.status());
  resp->set_list(list->list);
  resp->set_signature(list->signature);
  return grpc::Status::OK;
}

}  // namespace keel::trustd
