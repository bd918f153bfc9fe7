// trustd's gRPC adapter in-process: who may call which method, as apid forwards it.
#include "security_service.h"

#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>
#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>

#include "keel/common/clock.h"
#include "keel/pki/pki.h"

namespace keel::trustd {
namespace {

using Catch::Matchers::ContainsSubstring;
namespace v1 = keel::security::v1;
using Metadata = std::vector<std::pair<std::string, std::string>>;

struct Served {
  ManualClock clock{std::chrono::sys_days{std::chrono::year{2030} / 1 / 2}};
  std::unique_ptr<Authority> authority;
  std::unique_ptr<SecurityServiceImpl> security;
  std::unique_ptr<LocalIssuerServiceImpl> local;
  std::unique_ptr<grpc::Server> server;
  std::unique_ptr<v1::SecurityService::Stub> stub;
  std::unique_ptr<v1::LocalIssuerService::Stub> localStub;

  Served() {
    pki::CaOptions o;
    o.subject.commonName = "keel-os";
    auto ca = pki::createSelfSignedCa(o, clock).value();
    TrustdConfig c;
    c.socket = "/run/keel/trustd.sock";
    c.nodeAddress = "10.0.0.1";
    c.clusterName = "prod";
    c.apiEndpoint = "10.0.0.1:50000";
    c.caCertPem = ca.certificate.toPem();
    c.caKeyPem = ca.key.toPem();
    c.caBundlePem = c.caCertPem;
    c.joinTokens = {"abcdef.0123456789abcdef"};
    c.allowedUids = {1000};
    auto created = Authority::create(c, clock);
    REQUIRE(created.ok());
    authority = std::move(created).value();
    security = std::make_unique<SecurityServiceImpl>(authority.get());
    REQUIRE(security->rules().status().isOk());
    local = std::make_unique<LocalIssuerServiceImpl>(authority.get());
    grpc::ServerBuilder builder;
    builder.RegisterService(security.get());
    builder.RegisterService(local.get());
    server = builder.BuildAndStart();
    stub = v1::SecurityService::NewStub(server->InProcessChannel({}));
    localStub = v1::LocalIssuerService::NewStub(server->InProcessChannel({}));
  }
  ~Served() { server->Shutdown(); }

  grpc::Status revocationList(const Metadata& metadata) {
    grpc::ClientContext ctx;
    for (const auto& [k, v] : metadata) ctx.AddMetadata(k, v);
    v1::SignedRevocationList out;
    return stub->GetRevocationList(&ctx, {}, &out);
  }
  grpc::Status listRevoked(const Metadata& metadata) {
    grpc::ClientContext ctx;
    for (const auto& [k, v] : metadata) ctx.AddMetadata(k, v);
    v1::ListRevokedCertificatesResponse out;
    return stub->ListRevokedCertificates(&ctx, {}, &out);
  }
  grpc::Status join(const Metadata& metadata) {
    grpc::ClientContext ctx;
    for (const auto& [k, v] : metadata) ctx.AddMetadata(k, v);
    v1::SignNodeCertificateRequest req;
    req.set_token("zzzzzz.zzzzzzzzzzzzzzzz");
    v1::SignNodeCertificateResponse out;
    return stub->SignNodeCertificate(&ctx, req, &out);
  }
};

constexpr auto kDenied = grpc::StatusCode::PERMISSION_DENIED;

}  // namespace

TEST_CASE("the revocation list is served to apid itself without roles, and through :50000 by its rule",
          "[trustd][service]") {
  Served s;
  CHECK(s.revocationList({}).ok());
  CHECK(s.revocationList({{"keel-roles", "os:reader"}}).ok());
  CHECK(s.revocationList({{"keel-roles", "os:impersonator"}}).error_code() == kDenied);
  CHECK(s.revocationList({{"keel-roles", "os:reader"}, {"keel-roles", "os:admin"}}).error_code() == kDenied);
  const auto twice = s.revocationList({{"keel-roles", "os:reader"}, {"keel-identity", "a"}, {"keel-identity", "b"}});
  CHECK(twice.error_code() == kDenied);
  CHECK_THAT(twice.error_message(), ContainsSubstring("at most once"));
}

TEST_CASE("listing revocations needs os:admin forwarded by apid", "[trustd][service]") {
  Served s;
  CHECK(s.listRevoked({}).error_code() == kDenied);
  const auto reader = s.listRevoked({{"keel-roles", "os:reader"}, {"keel-identity", "bob"}});
  CHECK(reader.error_code() == kDenied);
  CHECK_THAT(reader.error_message(), ContainsSubstring("os:admin"));
  CHECK(s.listRevoked({{"keel-roles", "os:admin"}, {"keel-identity", "alice"}}).ok());
  const auto validity = s.listRevoked({{"keel-roles", "os:admin"}, {"keel-cert-validity", "not a time"}});
  CHECK(validity.error_code() == kDenied);
}

TEST_CASE("a join needs the caller's address; without roles the token decides, with roles the rule first",
          "[trustd][service]") {
  Served s;
  const auto noPeer = s.join({});
  CHECK(noPeer.error_code() == kDenied);
  CHECK_THAT(noPeer.error_message(), ContainsSubstring("keel-peer exactly once"));
  const auto joining = s.join({{"keel-peer", "10.0.0.9:4000"}});
  CHECK_FALSE(joining.ok());
  CHECK_THAT(joining.error_message(), !ContainsSubstring("os:admin"));
  const auto reader = s.join({{"keel-peer", "10.0.0.9:4000"}, {"keel-roles", "os:reader"}});
  CHECK(reader.error_code() == kDenied);
  CHECK_THAT(reader.error_message(), ContainsSubstring("os:admin"));
}

TEST_CASE("apid's own certificates are refused to a call apid forwarded", "[trustd][service]") {
  Served s;
  grpc::ClientContext ctx;
  ctx.AddMetadata("keel-roles", "os:admin");
  v1::IssueApidCertificatesResponse out;
  const auto st = s.localStub->IssueApidCertificates(&ctx, {}, &out);
  CHECK(st.error_code() == kDenied);
  CHECK_THAT(st.error_message(), ContainsSubstring("apid itself"));
}

}  // namespace keel::trustd
