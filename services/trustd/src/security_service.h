// The gRPC adapter of trustd: reads what apid forwarded (keel-roles, keel-identity,
// keel-peer, keel-cert-validity), re-checks the method's rule, and hands plain values to
// the Authority.
#pragma once

#include "keel/security/v1/security.grpc.pb.h"

#include "authority.h"

namespace keel::trustd {

class SecurityServiceImpl final : public keel::security::v1::SecurityService::Service {
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
