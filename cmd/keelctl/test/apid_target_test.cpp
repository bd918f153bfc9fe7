// keelctl's network path: node targeting, per-node results, and the advice it gives
// when a certificate or the TLS connection to apid is wrong.
#include "apid_target.h"

#include <algorithm>
#include <mutex>
#include <sstream>

#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>

#include "keel/pki/pki.h"

#include "machine_client.h"
#include "machine_commands.h"
#include "test_pki.h"

namespace keel::keelctl {
namespace {

using Catch::Matchers::ContainsSubstring;
using Catch::Matchers::StartsWith;
namespace v1 = keel::machine::v1;

using Metadata = std::vector<std::pair<std::string, std::string>>;

using testpki::Leaf;
using testpki::makeCa;
using testpki::makeLeaf;

v1::Version versionEntry(const std::string& node, const std::string& version, const std::string& error = "",
                         int code = 0) {
  v1::Version v;
  v.mutable_metadata()->set_node(node);
  v.mutable_metadata()->set_error(error);
  v.mutable_metadata()->set_code(code);
  v.set_version(version);
  return v;
}

// A client that is never dialled: the printing code only needs the env around it.
MachineTarget localTarget() {
  MachineTarget t;
  t.socket = "/nonexistent/machined.sock";
  return t;
}

struct PrintFixture {
  MachineClient client{localTarget()};
  std::ostringstream out;
  std::ostringstream err;
  std::istringstream in;
  MachineCommandEnv env{client, OutputFormat::kTable, out, err, in, true};
};

// Answers Version as apid would after a fan-out to nodes a and b, where b failed, and
// keeps the metadata of the call.
class FanOutVersion final : public v1::MachineService::Service {
 public:
  grpc::Status Version(grpc::ServerContext* ctx, const keel::common::v1::Empty*,
                       v1::VersionResponse* resp) override {
    std::lock_guard lock(mu_);
    for (const auto& [k, v] : ctx->client_metadata())
      metadata_.emplace_back(std::string(k.data(), k.size()), std::string(v.data(), v.size()));
    *resp->add_messages() = versionEntry("a", "1.0.0");
    *resp->add_messages() = versionEntry("b", "", "connection refused", 14);
    return grpc::Status::OK;
  }
  Metadata metadata() const {
    std::lock_guard lock(mu_);
    return metadata_;
  }

 private:
  mutable std::mutex mu_;
  Metadata metadata_;
};

// An mTLS gRPC server on 127.0.0.1 at a port chosen at run time, serving with `serving`
// and accepting clients of `clientCa`. Stopped when it goes out of scope.
class TlsServer {
 public:
  TlsServer(const Leaf& serving, const pki::CertificateAuthority& clientCa) {
    grpc::SslServerCredentialsOptions options(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
    options.pem_root_certs = clientCa.certificate.toPem();
    options.pem_key_cert_pairs.push_back({serving.key.toPem(), serving.cert.toPem()});
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::SslServerCredentials(options), &port_);
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
    REQUIRE(server_ != nullptr);
    REQUIRE(port_ > 0);
  }
  ~TlsServer() { server_->Shutdown(std::chrono::system_clock::now()); }
  std::string endpoint() const { return "127.0.0.1:" + std::to_string(port_); }
  Metadata metadata() const { return service_.metadata(); }

 private:
  FanOutVersion service_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
};

TEST_CASE("a call targets one node with 'node' and several with 'nodes'", "[apid-target]") {
  CHECK(nodeTargetMetadata({}).empty());
  CHECK(nodeTargetMetadata({"10.0.0.2"}) == Metadata{{"node", "10.0.0.2"}});
  CHECK(nodeTargetMetadata({"10.0.0.2", "cp1", "10.0.0.4"}) == Metadata{{"nodes", "10.0.0.2,cp1,10.0.0.4"}});
}

TEST_CASE(
    "a command that talks to one node passes over the context's nodes, takes one -n and refuses several",
    "[apid-target]") {
  MachineTarget t;
  t.endpoint = "127.0.1.1:50000";
  // A context made by 'cluster create' names every node: the endpoint's node answers.
  t.nodes = {"127.0.1.1", "127.0.1.2", "127.0.1.3"};
  auto fromContext = oneNodeTarget(t, "certificates come from one node");
  REQUIRE(fromContext.ok());
  CHECK(fromContext->empty());

  t.nodesFromFlag = true;
  t.nodes = {"127.0.1.2"};
  auto named = oneNodeTarget(t, "certificates come from one node");
  REQUIRE(named.ok());
  CHECK(*named == std::vector<std::string>{"127.0.1.2"});

  t.nodes = {"127.0.1.1", "127.0.1.2"};
  auto several = oneNodeTarget(t, "certificates come from one node");
  REQUIRE_FALSE(several.ok());
  CHECK(several.status().code() == StatusCode::kInvalidArgument);
  CHECK(several.status().message() ==
        "certificates come from one node: expected at most one node with -n, found 2 (127.0.1.1, 127.0.1.2)");
}

TEST_CASE("connection failures are told apart from apid's own UNAVAILABLE answers", "[apid-target]") {
  CHECK(
      isConnectionFailure("failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:1: "
                          "Failed to connect to remote host: Connection refused"));
  CHECK(isConnectionFailure("Socket closed"));
  CHECK(isConnectionFailure("Ssl handshake failed: SSL_ERROR_SSL"));
  CHECK_FALSE(isConnectionFailure("backend machined (keel.machine.v1.MachineService) is not running"));
}

TEST_CASE("a table names each node and reports a failed node without hiding the others", "[apid-target]") {
  PrintFixture f;
  v1::VersionResponse resp;
  *resp.add_messages() = versionEntry("10.0.0.2", "1.2.3");
  *resp.add_messages() = versionEntry("10.0.0.3", "", "connection refused", 14);
  *resp.add_messages() = versionEntry("10.0.0.4", "1.2.4");
  const Status st = printVersions(f.env, resp);
  CHECK(st.code() == StatusCode::kUnavailable);
  CHECK(st.message() == "1 of 3 nodes failed");
  CHECK_THAT(f.out.str(), ContainsSubstring("NODE"));
  CHECK_THAT(f.out.str(), ContainsSubstring("10.0.0.2"));
  CHECK_THAT(f.out.str(), ContainsSubstring("1.2.4"));
  CHECK_THAT(f.out.str(), !ContainsSubstring("10.0.0.3"));
  CHECK(f.err.str() == "10.0.0.3: connection refused\n");
}

TEST_CASE("every node failing the same way fails the command with that code", "[apid-target]") {
  PrintFixture f;
  v1::VersionResponse resp;
  *resp.add_messages() = versionEntry("a", "", "role os:reader may not call Reboot", 7);
  *resp.add_messages() = versionEntry("b", "", "role os:reader may not call Reboot", 7);
  const Status st = printVersions(f.env, resp);
  CHECK(st.code() == StatusCode::kPermissionDenied);
  CHECK(st.message() == "2 of 2 nodes failed");
}

TEST_CASE("JSON output passes failed entries through and still fails the command", "[apid-target]") {
  PrintFixture f;
  f.env.format = OutputFormat::kJson;
  v1::VersionResponse resp;
  *resp.add_messages() = versionEntry("a", "1.0.0");
  *resp.add_messages() = versionEntry("b", "", "deadline exceeded", 4);
  const Status st = printVersions(f.env, resp);
  CHECK_FALSE(st.isOk());
  CHECK_THAT(f.out.str(), ContainsSubstring("deadline exceeded"));
  CHECK_THAT(f.out.str(), ContainsSubstring("\"node\": \"a\""));
}

TEST_CASE("an expired client certificate is refused before dialling, saying when and what to run",
          "[apid-target]") {
  ManualClock clock(TimePoint{std::chrono::seconds(1767225600)});  // 2026-01-01T00:00:00Z
  const auto ca = makeCa("keel-os", clock);
  const auto leaf = makeLeaf(ca, "admin", pki::ExtendedKeyUsage::kClientAuth, std::chrono::hours(1), clock);
  CHECK(checkClientCertificate(leaf.cert.toPem(), "prod", clock).isOk());
  clock.advance(std::chrono::hours(3));
  const Status st = checkClientCertificate(leaf.cert.toPem(), "prod", clock);
  CHECK(st.code() == StatusCode::kUnauthenticated);
  CHECK_THAT(st.message(), ContainsSubstring("context 'prod'"));
  CHECK_THAT(st.message(), ContainsSubstring("expired at 2026-01-01T01:00:00Z (now 2026-01-01T03:00:00Z)"));
  CHECK_THAT(st.message(), ContainsSubstring("keelctl config new"));
}

TEST_CASE("a client certificate that is not valid yet is refused, saying from when", "[apid-target]") {
  ManualClock clock(TimePoint{std::chrono::seconds(1767225600)});
  const auto ca = makeCa("keel-os", clock);
  const auto leaf = makeLeaf(ca, "admin", pki::ExtendedKeyUsage::kClientAuth, std::chrono::hours(1), clock);
  clock.advance(-std::chrono::hours(2));
  const Status st = checkClientCertificate(leaf.cert.toPem(), "prod", clock);
  CHECK(st.code() == StatusCode::kUnauthenticated);
  CHECK_THAT(st.message(), ContainsSubstring("not valid before 2026-01-01T00:00:00Z"));
}

TEST_CASE("a server with a certificate from another CA is named with both CAs' fingerprints",
          "[apid-target]") {
  ManualClock clock(std::chrono::system_clock::now());
  const auto ours = makeCa("keel-os-prod", clock);
  const auto theirs = makeCa("keel-os-staging", clock);
  const auto serving =
      makeLeaf(theirs, "127.0.0.1", pki::ExtendedKeyUsage::kServerAuth, std::chrono::hours(1), clock);
  const auto client =
      makeLeaf(ours, "admin", pki::ExtendedKeyUsage::kClientAuth, std::chrono::hours(1), clock);
  TlsServer server(serving, theirs);
  const TlsIdentity identity{
      .ca = ours.certificate.toPem(), .crt = client.cert.toPem(), .key = client.key.toPem()};

  // Through the client, as a command sees it.
  MachineTarget target;
  target.endpoint = server.endpoint();
  target.tls = identity;
  target.clock = &clock;
  MachineClient machine(target);
  auto ctx = machine.context(std::chrono::seconds(10));
  v1::VersionResponse resp;
  const auto grpcStatus = machine.stub().Version(ctx.get(), {}, &resp);
  REQUIRE(grpcStatus.error_code() == grpc::StatusCode::UNAVAILABLE);
  const Status st = fromGrpc(grpcStatus, machine.target());
  CHECK(st.code() == StatusCode::kUnavailable);
  CHECK_THAT(st.message(),
             ContainsSubstring("server " + server.endpoint() +
                               " presented a certificate issued by 'keel-os-staging' (sha256 "));
  // The server sends its CA along, so the issuer's own fingerprint is known.
  CHECK_THAT(st.message(),
             ContainsSubstring("'keel-os-staging' (sha256 " + theirs.certificate.fingerprintSha256() + ")"));
  CHECK_THAT(st.message(), ContainsSubstring("trusts only CA 'keel-os-prod' (sha256 " +
                                             ours.certificate.fingerprintSha256() + ")"));
}

TEST_CASE("over mutual TLS a command names its nodes, sends no roles, and reports the node that failed",
          "[apid-target]") {
  ManualClock clock(std::chrono::system_clock::now());
  const auto ca = makeCa("keel-os-prod", clock);
  const auto serving =
      makeLeaf(ca, "127.0.0.1", pki::ExtendedKeyUsage::kServerAuth, std::chrono::hours(1), clock);
  const auto client = makeLeaf(ca, "admin", pki::ExtendedKeyUsage::kClientAuth, std::chrono::hours(1), clock);
  TlsServer server(serving, ca);
  MachineTarget target;
  target.endpoint = server.endpoint();
  target.tls = {.ca = ca.certificate.toPem(), .crt = client.cert.toPem(), .key = client.key.toPem()};
  target.nodes = {"a", "b"};
  target.clock = &clock;
  MachineClient machine(target);
  std::ostringstream out;
  std::ostringstream err;
  std::istringstream in;
  MachineCommandEnv env{machine, OutputFormat::kTable, out, err, in, true};
  const Status st = cmdVersion(env);
  CHECK(st.code() == StatusCode::kUnavailable);
  CHECK(st.message() == "1 of 2 nodes failed");
  CHECK(err.str() == "b: connection refused\n");
  CHECK_THAT(out.str(), StartsWith("NODE"));
  CHECK_THAT(out.str(), ContainsSubstring("\na "));
  CHECK_THAT(out.str(), ContainsSubstring("1.0.0"));
  const auto md = server.metadata();
  CHECK(std::find(md.begin(), md.end(), std::make_pair(std::string("nodes"), std::string("a,b"))) !=
        md.end());
  for (const auto& [k, v] : md) CHECK(k != "keel-roles");
}

TEST_CASE("an endpoint that cannot be reached is skipped for the next one", "[apid-target]") {
  ManualClock clock(std::chrono::system_clock::now());
  const auto ca = makeCa("keel-os-prod", clock);
  const auto serving =
      makeLeaf(ca, "127.0.0.1", pki::ExtendedKeyUsage::kServerAuth, std::chrono::hours(1), clock);
  const auto client = makeLeaf(ca, "admin", pki::ExtendedKeyUsage::kClientAuth, std::chrono::hours(1), clock);
  // Started first, so the port of the one stopped below cannot be its own.
  TlsServer server(serving, ca);
  std::string dead;
  {
    TlsServer gone(serving, ca);
    dead = gone.endpoint();
  }
  MachineTarget target;
  target.endpoint = dead;
  target.fallbackEndpoints = {server.endpoint()};
  target.tls = {.ca = ca.certificate.toPem(), .crt = client.cert.toPem(), .key = client.key.toPem()};
  target.clock = &clock;
  MachineClient machine(target);
  std::ostringstream out;
  std::ostringstream err;
  std::istringstream in;
  MachineCommandEnv env{machine, OutputFormat::kTable, out, err, in, true};
  // The server's reply carries a failed node: the call itself went through.
  CHECK(cmdVersion(env).message() == "1 of 2 nodes failed");
  CHECK_THAT(err.str(), ContainsSubstring("cannot reach apid at " + dead));
  CHECK_THAT(err.str(), ContainsSubstring("trying " + server.endpoint()));
  CHECK(machine.target().endpoint == server.endpoint());
}

TEST_CASE("a server that refuses the client certificate is told apart from an unknown server",
          "[apid-target]") {
  ManualClock clock(std::chrono::system_clock::now());
  const auto ours = makeCa("keel-os-prod", clock);
  const auto theirs = makeCa("keel-os-staging", clock);
  // The server is ours, but accepts only the other cluster's clients.
  const auto serving =
      makeLeaf(ours, "127.0.0.1", pki::ExtendedKeyUsage::kServerAuth, std::chrono::hours(1), clock);
  const auto client =
      makeLeaf(ours, "admin", pki::ExtendedKeyUsage::kClientAuth, std::chrono::hours(1), clock);
  TlsServer server(serving, theirs);
  const TlsIdentity identity{
      .ca = ours.certificate.toPem(), .crt = client.cert.toPem(), .key = client.key.toPem()};
  const Status st = diagnoseUnavailable(server.endpoint(), identity, "failed to connect", clock);
  CHECK(st.code() == StatusCode::kUnavailable);
  CHECK_THAT(st.message(), ContainsSubstring("rejected the client certificate"));
}

TEST_CASE("a server certificate that does not name the host dialled is reported with the names it has",
          "[apid-target]") {
  ManualClock clock(std::chrono::system_clock::now());
  const auto ca = makeCa("keel-os-prod", clock);
  const auto serving = makeLeaf(ca, "127.0.1.7", pki::ExtendedKeyUsage::kServerAuth, std::chrono::hours(1),
                                clock, "127.0.1.7");
  const auto client = makeLeaf(ca, "admin", pki::ExtendedKeyUsage::kClientAuth, std::chrono::hours(1), clock);
  TlsServer server(serving, ca);
  const TlsIdentity identity{
      .ca = ca.certificate.toPem(), .crt = client.cert.toPem(), .key = client.key.toPem()};
  const Status st =
      diagnoseUnavailable(server.endpoint(), identity, "failed to connect to all addresses", clock);
  CHECK(st.code() == StatusCode::kUnavailable);
  CHECK_THAT(st.message(),
             ContainsSubstring("presented a certificate for 127.0.1.7, which does not name 127.0.0.1"));
}

TEST_CASE("nothing listening keeps the cannot-reach message", "[apid-target]") {
  ManualClock clock(std::chrono::system_clock::now());
  const auto ca = makeCa("keel-os-prod", clock);
  const auto client = makeLeaf(ca, "admin", pki::ExtendedKeyUsage::kClientAuth, std::chrono::hours(1), clock);
  // A port that was just free: bound by a server that is then stopped.
  std::string endpoint;
  {
    const auto serving =
        makeLeaf(ca, "127.0.0.1", pki::ExtendedKeyUsage::kServerAuth, std::chrono::hours(1), clock);
    TlsServer server(serving, ca);
    endpoint = server.endpoint();
  }
  const TlsIdentity identity{
      .ca = ca.certificate.toPem(), .crt = client.cert.toPem(), .key = client.key.toPem()};
  const Status st = diagnoseUnavailable(endpoint, identity, "connection refused", clock);
  CHECK(st.code() == StatusCode::kUnavailable);
  CHECK_THAT(st.message(), ContainsSubstring("cannot reach apid at " + endpoint + ": connection refused"));
}

TEST_CASE("the services table shows a backend's version and a dash for other services", "[apid-target]") {
  PrintFixture f;
  v1::ServiceListResponse resp;
  auto* list = resp.add_messages();
  list->mutable_metadata()->set_node("10.0.0.2");
  auto* apid = list->add_services();
  apid->set_id("apid");
  apid->set_state("running");
  auto* timed = list->add_services();
  timed->set_id("timed");
  timed->set_state("running");
  timed->set_version("0.1.0");
  REQUIRE(printServices(f.env, resp).isOk());
  std::istringstream lines(f.out.str());
  std::string header, first, second;
  std::getline(lines, header);
  std::getline(lines, first);
  std::getline(lines, second);
  CHECK_THAT(header, StartsWith("NODE"));
  CHECK(header.find("SERVICE") < header.find("VERSION"));
  CHECK(header.find("VERSION") < header.find("STATE"));
  // Each value sits under its column.
  CHECK(first.substr(header.find("VERSION"), 2) == "- ");
  CHECK(second.substr(header.find("VERSION"), 5) == "0.1.0");
}

}  // namespace
}  // namespace keel::keelctl
