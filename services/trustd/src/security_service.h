// The gRPC adapter of trustd: each handler re-checks the method's rule with the backend
// SDK (compiled from security.proto's allowed_roles options, as apid compiles them),
// reads what apid vouched for (keel-identity, keel-peer, keel-cert-validity), and hands
// plain values to the Authority.
#pragma once

#include "keel/backend/authorize.h"
#include "keel/security/v1/security.grpc.pb.h"

#include "authority.h"

namespace keel::trustd {

// The join and node-renewal methods, and GetRevocationList, are also called without roles:
// by apid's join listener, where the token or the current certificate with its proof is
// the credential, and by apid fetching the list for itself. Through :50000 they carry
// roles and must pass their rule like every other method.
class SecurityServiceImpl final : public backend::AuthorizedService<keel::security::v1::SecurityService> {
 public:
  explicit SecurityServiceImpl(Authority* authority) : authority_(authority) {}

  grpc::Status SignNodeCertificate(grpc::ServerContext* ctx,
                                   const keel::security::v1::SignNodeCertificateRequest* req,
                                   keel::security::v1::SignNodeCertificateResponse* resp) override;
  grpc::Status RenewNodeCertificate(grpc::ServerContext* ctx,
                                    const keel::security::v1::RenewNodeCertificateRequest* req,
                                    keel::security::v1::RenewNodeCertificateResponse* resp) override;
  grpc::Status GenerateClientConfiguration(
      grpc::ServerContext* ctx, const keel::security::v1::GenerateClientConfigurationRequest* req,
      keel::security::v1::GenerateClientConfigurationResponse* resp) override;
  grpc::Status RenewClientCertificate(grpc::ServerContext* ctx,
                                      const keel::security::v1::RenewClientCertificateRequest* req,
                                      keel::security::v1::RenewClientCertificateResponse* resp) override;
  grpc::Status RevokeCertificate(grpc::ServerContext* ctx, const keel::security::v1::RevokeCertificateRequest* req,
                                 keel::security::v1::RevokeCertificateResponse* resp) override;
  grpc::Status ListRevokedCertificates(grpc::ServerContext* ctx, const keel::common::v1::Empty* req,
                                       keel::security::v1::ListRevokedCertificatesResponse* resp) override;
  // Public: apid fetches it for itself with no roles, and its join listener forwards it
  // for workers; through :50000 the method's rule applies.
  grpc::Status GetRevocationList(grpc::ServerContext* ctx, const keel::common::v1::Empty* req,
                                 keel::security::v1::SignedRevocationList* resp) override;

 private:
  Authority* authority_;
};

// apid asking for its own certificates. Refuses a call that apid forwarded for a client
// (one carrying keel-roles): only apid itself, as a direct peer, may ask.
class LocalIssuerServiceImpl final : public keel::security::v1::LocalIssuerService::Service {
 public:
  explicit LocalIssuerServiceImpl(Authority* authority) : authority_(authority) {}

  grpc::Status IssueApidCertificates(grpc::ServerContext* ctx,
                                     const keel::security::v1::IssueApidCertificatesRequest* req,
                                     keel::security::v1::IssueApidCertificatesResponse* resp) override;

 private:
  Authority* authority_;
};

}  // namespace keel::trustd
