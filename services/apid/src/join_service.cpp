#include "join_service.h"

#include <grpcpp/create_channel.h>

#include "keel/authz/authz.h"

namespace keel::apid {

namespace v1 = keel::security::v1;

namespace {
constexpr auto kTrustdTimeout = std::chrono::seconds(10);
constexpr std::string_view kMethod = "/keel.security.v1.SecurityService/SignNodeCertificate";
}  // namespace

grpc::Status JoinService::SignNodeCertificate(grpc::ServerContext* ctx,
                                              const v1::SignNodeCertificateRequest* req,
                                              v1::SignNodeCertificateResponse* resp) {
  const auto started = clock_.now();
  // Nothing the caller sent besides the request travels on: no metadata at all.
  auto stub = v1::SecurityService::NewStub(
      grpc::CreateChannel("unix:" + trustdSocket_.string(), grpc::InsecureChannelCredentials()));
  grpc::ClientContext out;
  out.set_deadline(std::min(ctx->deadline(), std::chrono::system_clock::now() + kTrustdTimeout));
  out.AddMetadata(std::string(authz::kPeerKey), ctx->peer());
  grpc::Status st = stub->SignNodeCertificate(&out, *req, resp);
  if (st.error_code() == grpc::StatusCode::UNAVAILABLE) {
    st = grpc::Status(grpc::StatusCode::UNAVAILABLE,
                      "this node's certificate authority (trustd) is not reachable");
  }
  if (audit_ != nullptr) {
    AuditRecord r;
    r.peer = ctx->peer();
    r.identity = "<joining node>";
    r.method = std::string(kMethod);
    r.allowed = st.ok();
    r.code = static_cast<StatusCode>(st.error_code());
    if (!st.ok()) r.reason = st.error_message();
    r.duration = std::chrono::duration_cast<std::chrono::microseconds>(clock_.now() - started);
    audit_->write(r);
  }
  return st;
}

}  // namespace keel::apid
