#include "security_service.h"

#include <optional>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "keel/authz/authz.h"
#include "keel/transport/grpc_status.h"

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

// What apid vouched for about the caller of a call whose roles passed the method's rule
// (so keel-roles is there exactly once): the roles, and the single values of identity,
// peer and the validity of the certificate the caller presented.
struct Forwarded {
  std::vector<std::string> roles;
  std::string identity;
  std::string peer;
  std::optional<authz::CertValidity> presented;

  ClientCaller caller() const { return {identity, roles, presented}; }
};

Result<Forwarded> forwarded(const grpc::ServerContext& ctx) {
  Forwarded f;
  f.roles = authz::parseRoles(backend::forwardedRoles(ctx).front());
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

// A method also called without roles (KEEL_AUTHORIZE_IF_FORWARDED): what apid vouched for
// is checked only on a call it forwarded for a client.
Status checkForwardedIfAny(const grpc::ServerContext& ctx) {
  if (backend::forwardedRoles(ctx).empty()) return Status::ok();
  return forwarded(ctx).status();
}

// The join listener's methods need the caller's address, whoever forwarded them.
Result<std::string> joinPeer(const grpc::ServerContext& ctx) {
  const auto peer = values(ctx, authz::kPeerKey);
  if (peer.size() != 1) {
    return Status(StatusCode::kPermissionDenied, "expected the caller's address in keel-peer exactly once");
  }
  return peer.front();
}

int64_t unixSeconds(TimePoint t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

}  // namespace

grpc::Status SecurityServiceImpl::SignNodeCertificate(grpc::ServerContext* ctx,
                                                      const v1::SignNodeCertificateRequest* req,
                                                      v1::SignNodeCertificateResponse* resp) {
  const auto peer = joinPeer(*ctx);
  if (!peer.ok()) return toGrpc(peer.status());
  KEEL_AUTHORIZE_IF_FORWARDED(ctx);
  if (const auto st = checkForwardedIfAny(*ctx); !st.isOk()) return toGrpc(st);
  auto cert = authority_->signNodeCertificate(req->csr(), req->token(), *peer);
  if (!cert.ok()) return toGrpc(cert.status());
  resp->set_certificate(cert->certificatePem);
  resp->set_ca_bundle(cert->caBundlePem);
  return grpc::Status::OK;
}

grpc::Status SecurityServiceImpl::RenewNodeCertificate(grpc::ServerContext* ctx,
                                                       const v1::RenewNodeCertificateRequest* req,
                                                       v1::RenewNodeCertificateResponse* resp) {
  const auto peer = joinPeer(*ctx);
  if (!peer.ok()) return toGrpc(peer.status());
  KEEL_AUTHORIZE_IF_FORWARDED(ctx);
  if (const auto st = checkForwardedIfAny(*ctx); !st.isOk()) return toGrpc(st);
  auto cert = authority_->renewNodeCertificate(req->csr(), req->certificate(), req->proof(), *peer);
  if (!cert.ok()) return toGrpc(cert.status());
  resp->set_certificate(cert->certificatePem);
  resp->set_ca_bundle(cert->caBundlePem);
  return grpc::Status::OK;
}

grpc::Status SecurityServiceImpl::GenerateClientConfiguration(
    grpc::ServerContext* ctx, const v1::GenerateClientConfigurationRequest* req,
    v1::GenerateClientConfigurationResponse* resp) {
  KEEL_AUTHORIZE(ctx);
  auto f = forwarded(*ctx);
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
  KEEL_AUTHORIZE(ctx);
  auto f = forwarded(*ctx);
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
  KEEL_AUTHORIZE(ctx);
  auto f = forwarded(*ctx);
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
  KEEL_AUTHORIZE(ctx);
  auto f = forwarded(*ctx);
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
  KEEL_AUTHORIZE_IF_FORWARDED(ctx);
  if (const auto st = checkForwardedIfAny(*ctx); !st.isOk()) return toGrpc(st);
  auto list = authority_->revocations().signedList();
  if (!list.ok()) return toGrpc(list.status());
  resp->set_list(list->list);
  resp->set_signature(list->signature);
  return grpc::Status::OK;
}

}  // namespace keel::trustd
