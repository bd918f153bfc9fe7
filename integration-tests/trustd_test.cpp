// The certificate lifecycle on a real local cluster: machined starts trustd on the
// control plane; every apid gets its certificates from it (locally, or through the join
// listener with the join token on a worker) and renews them; clients get configs and
// renewals through apid. Attacks on the join listener are made from outside with a real
// TLS client.
#include <set>

#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <sys/wait.h>

#include "keel/config/client_config.h"
#include "keel/config/join_tokens.h"
#include "keel/config/random.h"
#include "keel/security/v1/security.grpc.pb.h"

#include "apid_fixture.h"

namespace {

using namespace keel::integration;
using keel::testing::ProcessResult;
namespace sec = keel::security::v1;

constexpr const char* kCp = "127.0.1.1";

// A cluster made by keelctl: one control plane and `workers` workers on 127.0.1.2, …,
// all on ports picked now. The control plane lets joining nodes name 127.0.1.0/24, since
// on loopback every connection comes from 127.0.0.1.
struct LocalCluster {
  TempDir gen;
  TempDir libexec;
  int port = freePort();
  int joinPort = freePort();
  std::filesystem::path cpConfigFile = gen / "controlplane-patched.json";
  std::unique_ptr<Node> cp;
  std::vector<std::unique_ptr<Node>> workers;

  explicit LocalCluster(int workerCount, const std::string& nodeCertTtl = "24h") {
    chmod(gen.path().c_str(), 0711);
    REQUIRE(keel::testing::run({KEELCTL_PATH, "gen", "secrets", "-o", (gen / "secrets.json").string()})
                .exitCode == 0);
    const auto made = keel::testing::run({KEELCTL_PATH, "gen", "config", "test",
                                          std::string(kCp) + ":" + std::to_string(port), "--with-secrets",
                                          (gen / "secrets.json").string(), "-o", gen.path().string()});
    INFO(made.err);
    REQUIRE(made.exitCode == 0);
    installDaemons(libexec);
    auto cpConfig = nlohmann::json::parse(readFile(gen / "controlplane.json"));
    cpConfig["machine"]["trustd"] = {{"nodeCertTtl", nodeCertTtl}, {"joinExtraSans", {"127.0.1.0/24"}}};
    writeFile(cpConfigFile, cpConfig.dump());
    cp = std::make_unique<Node>(cpConfig, args(), kCp);
    REQUIRE(eventually([&] { return keelctl({"version"}).exitCode == 0; }, 30s));
    const auto workerConfig = nlohmann::json::parse(readFile(gen / "worker.json"));
    for (int i = 0; i < workerCount; ++i) {
      workers.push_back(std::make_unique<Node>(workerConfig, args(), workerAddress(i)));
    }
    for (int i = 0; i < workerCount; ++i) {
      INFO("worker " << workerAddress(i));
      REQUIRE(eventually(
          [&] {
            return keelctl({"-e", workerAddress(i), "-n", workerAddress(i), "version"}).exitCode == 0;
          },
          30s));
    }
  }

  std::vector<std::string> args() const {
    return {"--libexec",          libexec.path().string(), "--api-port",
            std::to_string(port), "--join-port",           std::to_string(joinPort)};
  }
  static std::string workerAddress(int i) { return "127.0.1." + std::to_string(i + 2); }

  ProcessResult keelctl(std::vector<std::string> a, const std::filesystem::path& keelconfig = {}) const {
    std::vector<std::string> argv = {KEELCTL_PATH, "--keelconfig",
                                     (keelconfig.empty() ? gen / "keelconfig" : keelconfig).string()};
    // -e without a port means the default one: name this cluster's port.
    for (size_t i = 0; i < a.size(); ++i) {
      if (a[i] == "-e" && i + 1 < a.size() && a[i + 1].find(':') == std::string::npos)
        a[i + 1] += ":" + std::to_string(port);
    }
    argv.insert(argv.end(), a.begin(), a.end());
    auto r = keel::testing::run(
        argv, {.workingDirectory = std::nullopt, .extraEnv = {}, .stdinData = "", .timeout = 60s});
    UNSCOPED_INFO("keelctl " << fmt::format("{}", fmt::join(a, " ")) << " -> " << r.exitCode << "\n"
                             << r.out << r.err);
    return r;
  }

  std::string osCa() const {
    return nlohmann::json::parse(readFile(gen / "secrets.json"))["certs"]["os"]["crt"];
  }
  std::string token() const {
    return nlohmann::json::parse(readFile(gen / "secrets.json"))["tokens"]["join"];
  }

  // A TLS client of the join listener that checks the server against the OS CA, as a
  // joining node does.
  std::unique_ptr<sec::SecurityService::Stub> joinStub() const {
    grpc::SslCredentialsOptions tls;
    tls.pem_root_certs = osCa();
    return sec::SecurityService::NewStub(
        grpc::CreateChannel(std::string(kCp) + ":" + std::to_string(joinPort), grpc::SslCredentials(tls)));
  }
};

std::string csrFor(const keel::pki::CsrOptions& options) {
  auto key = keel::pki::PrivateKey::generate(keel::pki::KeyType::kEcdsaP256);
  REQUIRE(key.ok());
  auto csr = keel::pki::CertificateRequest::create(*key, options);
  REQUIRE(csr.ok());
  return csr->toPem();
}

keel::pki::CsrOptions nodeCsr(const std::string& address) {
  keel::pki::CsrOptions o;
  o.subject.commonName = address;
  o.subjectAltNames.ipAddresses = {address};
  return o;
}

grpc::Status join(const LocalCluster& c, const std::string& csr, const std::string& token,
                  sec::SignNodeCertificateResponse* resp) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + 10s);
  sec::SignNodeCertificateRequest req;
  req.set_csr(csr);
  req.set_token(token);
  return c.joinStub()->SignNodeCertificate(&ctx, req, resp);
}

// The client certificate of a keelconfig's current context.
keel::pki::Certificate clientCertOf(const std::filesystem::path& keelconfig) {
  auto cfg = keel::config::parseClientConfig(readFile(keelconfig));
  REQUIRE(cfg.ok());
  auto crt = keel::pki::Certificate::fromPem(cfg->contexts.at(cfg->context).crt);
  REQUIRE(crt.ok());
  return std::move(crt).value();
}

keel::pki::Certificate servingCertOf(const Node& node) {
  auto chain = keel::pki::Certificate::bundleFromPem(readFile(node.root() / "var/lib/keel/apid/server.crt"));
  REQUIRE(chain.ok());
  return chain->front();
}

}  // namespace

TEST_CASE(
    "workers join with the token; fan-out from the control plane reaches both; a worker refuses to forward",
    "[trustd][cluster]") {
  LocalCluster c(2);
  auto ca = keel::pki::Certificate::fromPem(c.osCa());
  REQUIRE(ca.ok());
  keel::SystemClock clock;
  for (const auto& w : c.workers) {
    INFO(w->address());
    const auto cert = servingCertOf(*w);
    CHECK(keel::pki::verifyCertificate(
              cert, {*ca}, {.requiredUsage = keel::pki::ExtendedKeyUsage::kServerAuth, .intermediates = {}},
              clock)
              .isOk());
    CHECK(cert.extendedKeyUsages() == std::vector{keel::pki::ExtendedKeyUsage::kServerAuth});
    CHECK(cert.subject().organizations.empty());
    CHECK(cert.subjectAltNames().ipAddresses == std::vector<std::string>{w->address()});
    // No impersonator identity on a worker.
    CHECK_FALSE(std::filesystem::exists(w->root() / "var/lib/keel/apid/impersonator.crt"));
    // The strict parser agrees.
    const auto strict = keel::testing::run({"/usr/bin/python3", STRICT_DER_CHECK,
                                            (w->root() / "var/lib/keel/apid/server.crt").string(),
                                            (c.gen / "secrets.json").string()});
    INFO(strict.out << strict.err);
    CHECK(strict.exitCode == 0);
  }
  // trustd logged each issuance with the peer.
  const auto logs = c.keelctl({"logs", "trustd"});
  CHECK_THAT(logs.out, ContainsSubstring("issued a node certificate"));

  const auto fan = c.keelctl({"-n", "127.0.1.2,127.0.1.3", "version"});
  CHECK(fan.exitCode == 0);
  CHECK_THAT(fan.out, ContainsSubstring("127.0.1.2"));
  CHECK_THAT(fan.out, ContainsSubstring("127.0.1.3"));

  const auto forwarded = c.keelctl({"-e", "127.0.1.2", "-n", "127.0.1.3", "version"});
  CHECK(forwarded.exitCode != 0);
  CHECK_THAT(forwarded.err, ContainsSubstring("does not forward"));
}

TEST_CASE(
    "the join listener refuses a wrong token, a tampered CSR, O=os:admin and someone else's IP SAN, and logs "
    "each",
    "[trustd][cluster]") {
  LocalCluster c(0);
  sec::SignNodeCertificateResponse resp;

  auto st = join(c, csrFor(nodeCsr("127.0.1.7")), "aaaaaa.bbbbbbbbbbbbbbbb", &resp);
  CHECK(st.error_code() == grpc::StatusCode::UNAUTHENTICATED);
  CHECK_THAT(st.error_message(), ContainsSubstring("join token is not accepted"));

  std::string tampered = csrFor(nodeCsr("127.0.1.7"));
  const auto pos = tampered.find('\n') + 40;
  tampered[pos] = tampered[pos] == 'A' ? 'B' : 'A';
  st = join(c, tampered, c.token(), &resp);
  CHECK(st.error_code() == grpc::StatusCode::INVALID_ARGUMENT);

  auto admin = nodeCsr("127.0.1.7");
  admin.subject.organizations = {"os:admin"};
  st = join(c, csrFor(admin), c.token(), &resp);
  CHECK(st.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK_THAT(st.error_message(), ContainsSubstring("O=os:admin"));

  auto foreign = nodeCsr("127.0.1.7");
  foreign.subjectAltNames.ipAddresses.push_back("10.20.30.40");
  st = join(c, csrFor(foreign), c.token(), &resp);
  CHECK(st.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK_THAT(st.error_message(), ContainsSubstring("10.20.30.40"));

  // Nothing but the join method is served there, and it is no way around mTLS.
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 10s);
    sec::RenewClientCertificateRequest req;
    sec::RenewClientCertificateResponse renew;
    CHECK(c.joinStub()->RenewClientCertificate(&ctx, req, &renew).error_code() ==
          grpc::StatusCode::UNIMPLEMENTED);
  }

  // A good request still works, and nothing refused was issued.
  st = join(c, csrFor(nodeCsr("127.0.1.7")), c.token(), &resp);
  CHECK(st.ok());
  const auto logs = c.keelctl({"logs", "trustd"});
  CHECK_THAT(logs.out, ContainsSubstring("join token is not accepted"));
  CHECK_THAT(logs.out, ContainsSubstring("asks for O=os:admin"));
  CHECK_THAT(logs.out, ContainsSubstring("10.20.30.40"));
  CHECK_THAT(logs.out, !ContainsSubstring(c.token()));
  size_t issued = 0;
  for (size_t p = logs.out.find("issued a node certificate"); p != std::string::npos;
       p = logs.out.find("issued a node certificate", p + 1)) {
    ++issued;
  }
  CHECK(issued == 1);
}

// A TLS server on 127.0.0.1 that presents `chainPem`; its one service answers every
// method UNIMPLEMENTED, so a client that gets that far has accepted the certificate.
struct PresentingServer {
  sec::SecurityService::Service service;
  int port = 0;
  std::unique_ptr<grpc::Server> server;
  PresentingServer(const std::string& chainPem, const std::string& keyPem) {
    grpc::SslServerCredentialsOptions tls;
    tls.pem_key_cert_pairs.push_back({keyPem, chainPem});
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::SslServerCredentials(tls), &port);
    builder.RegisterService(&service);
    server = builder.BuildAndStart();
    REQUIRE(server != nullptr);
    REQUIRE(port > 0);
  }
  ~PresentingServer() { server->Shutdown(std::chrono::system_clock::now() + 5s); }

  // A call from a client that trusts `caPem` and expects the server to be `name`.
  grpc::Status callExpecting(const std::string& caPem, const std::string& name) const {
    grpc::SslCredentialsOptions tls;
    tls.pem_root_certs = caPem;
    grpc::ChannelArguments args;
    args.SetSslTargetNameOverride(name);
    auto stub = sec::SecurityService::NewStub(grpc::CreateCustomChannel(
        "127.0.0.1:" + std::to_string(port), grpc::SslCredentials(tls), args));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 10s);
    sec::SignNodeCertificateRequest req;
    sec::SignNodeCertificateResponse resp;
    return stub->SignNodeCertificate(&ctx, req, &resp);
  }
};

TEST_CASE(
    "a joining node gets a certificate for exactly the names trustd verified, and a gRPC client expecting "
    "another name refuses a server presenting it",
    "[trustd][cluster]") {
  LocalCluster c(0);
  sec::SignNodeCertificateResponse resp;

  // The attack: a CN naming the control plane, with no SAN, which clients would match.
  keel::pki::CsrOptions borrowed;
  borrowed.subject.commonName = "cp.example.com";
  auto st = join(c, csrFor(borrowed), c.token(), &resp);
  CHECK(st.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK_THAT(st.error_message(), ContainsSubstring("at least one SAN"));
  // The same CN beside a SAN the node may have.
  borrowed.subjectAltNames.ipAddresses = {"127.0.1.7"};
  st = join(c, csrFor(borrowed), c.token(), &resp);
  CHECK(st.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK_THAT(st.error_message(), ContainsSubstring("found CN 'cp.example.com'"));

  // A node that names only its address gets exactly that name, in the SAN and the CN.
  auto key = keel::pki::PrivateKey::generate(keel::pki::KeyType::kEcdsaP256);
  REQUIRE(key.ok());
  auto csr = keel::pki::CertificateRequest::create(*key, nodeCsr("127.0.1.7"));
  REQUIRE(csr.ok());
  st = join(c, csr->toPem(), c.token(), &resp);
  INFO(st.error_message());
  REQUIRE(st.ok());
  auto cert = keel::pki::Certificate::fromPem(resp.certificate());
  REQUIRE(cert.ok());
  CHECK(cert->subject().commonName == "127.0.1.7");
  CHECK(cert->subjectAltNames() == keel::pki::SubjectAltNames{{}, {"127.0.1.7"}});

  // A real gRPC client trusting the OS CA: the certificate is good for its own name only.
  PresentingServer server(resp.certificate(), key->toPem());
  for (const std::string other : {"cp.example.com", "127.0.1.1", "localhost"}) {
    INFO("client expects " << other);
    const auto refused = server.callExpecting(c.osCa(), other);
    CHECK(refused.error_code() == grpc::StatusCode::UNAVAILABLE);
  }
  CHECK(server.callExpecting(c.osCa(), "127.0.1.7").error_code() == grpc::StatusCode::UNIMPLEMENTED);
  // Nothing refused was issued.
  const auto logs = c.keelctl({"logs", "trustd"});
  CHECK_THAT(logs.out, ContainsSubstring("cp.example.com"));
  size_t issued = 0;
  for (size_t p = logs.out.find("issued a node certificate"); p != std::string::npos;
       p = logs.out.find("issued a node certificate", p + 1)) {
    ++issued;
  }
  CHECK(issued == 1);
}

TEST_CASE(
    "a generated reader config can read but not reboot; config renew keeps its one-hour lifetime and "
    "refuses a longer one",
    "[trustd][cluster]") {
  LocalCluster c(0);
  const auto reader = c.gen / "reader.keelconfig";
  const auto made =
      c.keelctl({"config", "generate", reader.string(), "--roles", "os:reader", "--crt-ttl", "1h"});
  REQUIRE(made.exitCode == 0);
  CHECK(c.keelctl({"version"}, reader).exitCode == 0);
  const auto reboot = c.keelctl({"reboot", "--yes"}, reader);
  CHECK(reboot.exitCode != 0);
  CHECK_THAT(reboot.err, ContainsSubstring("os:operator"));
  // A reader may not mint configs, and unknown roles are refused.
  CHECK(c.keelctl({"config", "generate", (c.gen / "x").string(), "--roles", "os:reader"}, reader).exitCode !=
        0);
  const auto unknown = c.keelctl({"config", "generate", (c.gen / "y").string(), "--roles", "os:root"});
  CHECK(unknown.exitCode != 0);
  CHECK_THAT(unknown.err, ContainsSubstring("os:root"));

  const auto before = clientCertOf(reader);
  const auto renewed = c.keelctl({"config", "renew"}, reader);
  REQUIRE(renewed.exitCode == 0);
  const auto after = clientCertOf(reader);
  CHECK(after.serialHex() != before.serialHex());
  CHECK(after.subject() == before.subject());
  // No longer than the certificate it replaces, and not the cluster's 30-day default.
  CHECK(after.notAfter() - after.notBefore() <= before.notAfter() - before.notBefore());
  CHECK(after.notAfter() <= std::chrono::system_clock::now() + 1h);
  CHECK(after.notAfter() >= before.notAfter());
  CHECK(c.keelctl({"version"}, reader).exitCode == 0);

  // Asking for longer is refused, naming both lifetimes, and the config is left as it was.
  const auto longer = c.keelctl({"config", "renew", "--crt-ttl", "48h"}, reader);
  CHECK(longer.exitCode != 0);
  CHECK_THAT(longer.err, ContainsSubstring("never outlives the certificate it replaces"));
  CHECK_THAT(longer.err, ContainsSubstring("at most 3600 s (1h)"));
  CHECK_THAT(longer.err, ContainsSubstring("found 172800 s (48h)"));
  CHECK(clientCertOf(reader).serialHex() == after.serialHex());
  // Shorter is granted.
  REQUIRE(c.keelctl({"config", "renew", "--crt-ttl", "30m"}, reader).exitCode == 0);
  CHECK(clientCertOf(reader).notAfter() <= std::chrono::system_clock::now() + 30min);
}

TEST_CASE("a one-year admin config renews for a year, not for the cluster's 30-day default",
          "[trustd][cluster]") {
  LocalCluster c(0);
  const auto admin = c.gen / "admin.keelconfig";
  std::filesystem::copy_file(c.gen / "keelconfig", admin);
  const auto before = clientCertOf(admin);
  REQUIRE(before.notAfter() - before.notBefore() > std::chrono::hours(24 * 364));
  REQUIRE(c.keelctl({"config", "renew"}, admin).exitCode == 0);
  const auto after = clientCertOf(admin);
  CHECK(after.serialHex() != before.serialHex());
  CHECK(after.subject() == before.subject());
  CHECK(after.notAfter() - after.notBefore() <= before.notAfter() - before.notBefore());
  CHECK(after.notAfter() > std::chrono::system_clock::now() + std::chrono::hours(24 * 364));
  CHECK(c.keelctl({"version"}, admin).exitCode == 0);
}

TEST_CASE(
    "client certificates are never issued through another node's apid: generate and renew forwarded by "
    "a second control plane, or sent with its impersonator certificate, are refused",
    "[trustd][cluster]") {
  LocalCluster c(0);
  // A second control plane, with its own trustd and an impersonator certificate.
  Node cp2(nlohmann::json::parse(readFile(c.cpConfigFile)), c.args(), "127.0.1.2");
  REQUIRE(eventually(
      [&] {
        return c.keelctl({"-e", "127.0.1.2", "-n", "127.0.1.2", "version"}).exitCode == 0;
      },
      30s));
  const auto admin = c.gen / "admin.keelconfig";
  std::filesystem::copy_file(c.gen / "keelconfig", admin);
  const auto before = clientCertOf(admin);

  // Through 127.0.1.2 to 127.0.1.1: the call reaches 127.0.1.1's trustd as "admin via apid@127.0.1.2".
  const auto minted = c.gen / "minted.keelconfig";
  const auto generate = c.keelctl({"-e", "127.0.1.2", "-n", kCp, "config", "generate", minted.string(),
                                   "--roles", "os:admin", "--crt-ttl", "8760h"},
                                  admin);
  CHECK(generate.exitCode != 0);
  CHECK_THAT(generate.err, ContainsSubstring("presented its own certificate to this control plane's apid"));
  CHECK_THAT(generate.err, ContainsSubstring("'admin via apid@127.0.1.2'"));
  CHECK_FALSE(std::filesystem::exists(minted));
  const auto renew = c.keelctl({"-e", "127.0.1.2", "-n", kCp, "config", "renew"}, admin);
  CHECK(renew.exitCode != 0);
  CHECK_THAT(renew.err, ContainsSubstring("'admin via apid@127.0.1.2'"));
  CHECK(clientCertOf(admin).serialHex() == before.serialHex());

  // The same caller at either control plane's own apid is served.
  CHECK(c.keelctl({"-e", "127.0.1.2", "-n", "127.0.1.2", "config", "renew"}, admin).exitCode == 0);
  CHECK(c.keelctl({"-e", "127.0.1.2", "config", "generate", minted.string(), "--roles", "os:reader"}, admin)
            .exitCode == 0);

  // Whoever holds an apid's impersonator certificate (24 hours) mints nothing with it,
  // whatever roles and certificate validity it claims.
  const auto apidState = cp2.root() / "var/lib/keel/apid";
  grpc::SslCredentialsOptions tls;
  tls.pem_root_certs = c.osCa();
  tls.pem_cert_chain = readFile(apidState / "impersonator.crt");
  tls.pem_private_key = readFile(apidState / "impersonator.key");
  auto stub = sec::SecurityService::NewStub(
      grpc::CreateChannel(std::string(kCp) + ":" + std::to_string(c.port), grpc::SslCredentials(tls)));
  const auto forged = [](grpc::ClientContext& ctx) {
    ctx.set_deadline(std::chrono::system_clock::now() + 10s);
    ctx.AddMetadata("keel-roles", "os:admin");
    ctx.AddMetadata("keel-identity", "admin");
    ctx.AddMetadata("keel-cert-validity", "0,253402300799");
  };
  {
    grpc::ClientContext ctx;
    forged(ctx);
    sec::GenerateClientConfigurationRequest req;
    req.add_roles("os:admin");
    req.set_ttl_seconds(365 * 24 * 3600);
    sec::GenerateClientConfigurationResponse resp;
    const auto st = stub->GenerateClientConfiguration(&ctx, req, &resp);
    CHECK(st.error_code() == grpc::StatusCode::PERMISSION_DENIED);
    CHECK_THAT(st.error_message(), ContainsSubstring("'admin via apid@127.0.1.2'"));
    CHECK(resp.keelconfig().empty());
  }
  {
    grpc::ClientContext ctx;
    forged(ctx);
    keel::pki::CsrOptions o;
    o.subject.commonName = "admin via apid@127.0.1.2";
    sec::RenewClientCertificateRequest req;
    req.set_csr(csrFor(o));
    sec::RenewClientCertificateResponse resp;
    const auto st = stub->RenewClientCertificate(&ctx, req, &resp);
    CHECK(st.error_code() == grpc::StatusCode::PERMISSION_DENIED);
    CHECK(resp.certificate().empty());
  }
  const auto logs = c.keelctl({"logs", "trustd"});
  CHECK_THAT(logs.out, ContainsSubstring("refused a client configuration to 'admin via apid@127.0.1.2'"));
  CHECK_THAT(logs.out,
             ContainsSubstring("refused a renewed client certificate to 'admin via apid@127.0.1.2'"));
}

TEST_CASE("with TTLs of seconds, apid's certificates rotate several times while a stream stays open",
          "[trustd][cluster]") {
  LocalCluster c(0, "10s");
  const auto first = servingCertOf(*c.cp).serialHex();
  // A stream through apid that follows machined's log for the whole test.
  ChildProcess follow(
      {KEELCTL_PATH, "--keelconfig", (c.gen / "keelconfig").string(), "logs", "machined", "-f"},
      c.gen / "follow.log");
  std::set<std::string> serials = {first};
  int calls = 0;
  REQUIRE(eventually(
      [&] {
        serials.insert(servingCertOf(*c.cp).serialHex());
        CHECK(c.keelctl({"version"}).exitCode == 0);
        ++calls;
        return serials.size() >= 4;
      },
      60s));
  CHECK(follow.running());
  follow.signal(SIGTERM);
  CHECK(follow.wait(10s).has_value());
  // The stream's connection outlived every rotation: it printed lines and never failed.
  CHECK_THAT(follow.log(), !ContainsSubstring("keelctl:"));
  const auto logs = c.keelctl({"logs", "apid"});
  CHECK_THAT(logs.out, ContainsSubstring("new certificate from trustd"));
}

TEST_CASE("a worker's apid serves nothing until a control plane signs its certificate, and says why",
          "[trustd][cluster]") {
  LocalCluster c(0);
  // Take the control plane away, then start a worker: it has nobody to join.
  c.cp.reset();
  Node worker(nlohmann::json::parse(readFile(c.gen / "worker.json")), c.args(), "127.0.1.2");
  const auto apidLog = worker.root() / "var/log/keel/apid.log";
  REQUIRE(eventually([&] { return fileContains(apidLog, "no serving certificate yet"); }, 30s));
  CHECK(fileContains(apidLog, "127.0.1.1:" + std::to_string(c.joinPort)));
  CHECK(c.keelctl({"-e", "127.0.1.2", "-n", "127.0.1.2", "version"}).exitCode != 0);
  CHECK_FALSE(std::filesystem::exists(worker.root() / "var/lib/keel/apid/server.crt"));
  // The control plane comes back: the worker's next attempt succeeds.
  c.cp = std::make_unique<Node>(nlohmann::json::parse(readFile(c.cpConfigFile)), c.args(), kCp);
  CHECK(eventually(
      [&] {
        return c.keelctl({"-e", "127.0.1.2", "-n", "127.0.1.2", "version"}).exitCode == 0;
      },
      60s));
}

TEST_CASE("trustd dies by SIGSYS when a test hook makes it open an AF_INET socket", "[trustd][sandbox]") {
  TempDir dir;
  keel::SystemClock clock;
  keel::pki::CaOptions o;
  o.subject.commonName = "keel-os";
  auto ca = keel::pki::createSelfSignedCa(o, clock);
  REQUIRE(ca.ok());
  const nlohmann::json config = {{"socket", (dir / "trustd.sock").string()},
                                 {"nodeAddress", "127.0.1.1"},
                                 {"clusterName", "test"},
                                 {"apiEndpoint", "127.0.1.1:50000"},
                                 {"ca", {{"crt", ca->certificate.toPem()}, {"key", ca->key.toPem()}}},
                                 {"joinTokens", {"abcdef.0123456789abcdef"}},
                                 {"allowedUids", {geteuid()}}};
  writeFile(dir / "config.json", config.dump());
  chmod((dir / "config.json").c_str(), 0600);
  const auto r = keel::testing::run({TRUSTD_PATH, "--config", (dir / "config.json").string()},
                                    {.workingDirectory = std::nullopt,
                                     .extraEnv = {{"KEEL_TEST_FORBIDDEN_SYSCALL", "socket-inet"}},
                                     .stdinData = "",
                                     .timeout = 30s});
  INFO(r.out << r.err);
  CHECK(r.signal == SIGSYS);
  CHECK_THAT(r.out + r.err, ContainsSubstring("attempting forbidden call socket-inet"));
  CHECK_THAT(r.out + r.err, !ContainsSubstring("returned"));
}

namespace {

// Waits until the control plane's trustd runs again with a pid other than `before`: it
// takes a new token set by restarting.
bool trustdRestarted(Node& cp, int before) {
  return eventually(
      [&] {
        const auto s = cp.service("trustd");
        return s.pid() != before && s.state() == "running";
      },
      30s);
}

std::string lastLine(std::string text) {
  while (!text.empty() && text.back() == '\n') text.pop_back();
  return text.substr(text.rfind('\n') + 1);  // npos + 1 == 0: the whole text
}

}  // namespace

TEST_CASE(
    "rotate-token adds a token a node joins with, drops the old one, which is then refused, and a joined worker "
    "keeps renewing and answering",
    "[trustd][cluster][token]") {
  LocalCluster c(1, "30s");
  const std::string nodes = "127.0.1.1,127.0.1.2";
  const std::string oldToken = c.token();
  Node& worker = *c.workers[0];
  sec::SignNodeCertificateResponse resp;

  // The only token is never dropped.
  const auto last = c.keelctl({"-n", nodes, "rotate-token", "--drop", oldToken});
  CHECK(last.exitCode != 0);
  CHECK_THAT(last.err, ContainsSubstring("never dropped"));

  int trustdPid = c.cp->service("trustd").pid();
  const auto rotated = c.keelctl({"-n", nodes, "rotate-token"});
  REQUIRE(rotated.exitCode == 0);
  const std::string newToken = lastLine(rotated.out);
  REQUIRE(keel::config::isValidToken(newToken));
  const std::string oldPrint = keel::config::tokenFingerprint(oldToken);
  const std::string newPrint = keel::config::tokenFingerprint(newToken);
  CHECK_THAT(rotated.out, ContainsSubstring("127.0.1.1 (controlplane): accepts " + oldPrint + ", " + newPrint));
  CHECK_THAT(rotated.out, ContainsSubstring("127.0.1.2 (worker): presents " + newPrint));
  REQUIRE(trustdRestarted(*c.cp, trustdPid));

  // A new machine joins with the new token.
  auto st = join(c, csrFor(nodeCsr("127.0.1.7")), newToken, &resp);
  CHECK(st.ok());
  INFO(st.error_message());

  // A token a worker's config still presents is dropped only when the operator insists.
  const auto presented = c.keelctl({"-n", nodes, "rotate-token", "--drop", newToken});
  CHECK(presented.exitCode != 0);
  CHECK_THAT(presented.err, ContainsSubstring("127.0.1.2 still presents the token " + newPrint));
  CHECK_THAT(presented.err, ContainsSubstring("--force"));

  const auto before = servingCertOf(worker).serialHex();
  trustdPid = c.cp->service("trustd").pid();
  // The old token on stdin, as an operator keeps it out of the process list.
  const auto dropped = keel::testing::run(
      {KEELCTL_PATH, "--keelconfig", (c.gen / "keelconfig").string(), "-n", nodes, "rotate-token", "--drop", "-"},
      {.workingDirectory = std::nullopt, .extraEnv = {}, .stdinData = oldToken + "\n", .timeout = 60s});
  INFO(dropped.out << dropped.err);
  REQUIRE(dropped.exitCode == 0);
  CHECK_THAT(dropped.out, ContainsSubstring("127.0.1.1 (controlplane): accepts " + newPrint + "\n"));
  REQUIRE(trustdRestarted(*c.cp, trustdPid));

  st = join(c, csrFor(nodeCsr("127.0.1.8")), oldToken, &resp);
  CHECK(st.error_code() == grpc::StatusCode::UNAUTHENTICATED);
  CHECK(join(c, csrFor(nodeCsr("127.0.1.9")), newToken, &resp).ok());

  // The worker's apid still holds the old token (it reads its token when it starts), so
  // each renewal from now on shows that it renews with its certificate alone.
  std::set<std::string> serials = {before};
  REQUIRE(eventually(
      [&] {
        serials.insert(servingCertOf(worker).serialHex());
        return serials.size() >= 3;
      },
      120s));
  CHECK(c.keelctl({"-e", "127.0.1.2", "-n", "127.0.1.2", "version"}).exitCode == 0);
  CHECK(c.keelctl({"-n", nodes, "version"}).exitCode == 0);
  const auto apidLog = worker.root() / "var/log/keel/apid.log";
  CHECK_FALSE(fileContains(apidLog, "joining again with the join token"));
  CHECK(fileContains(c.cp->root() / "var/log/keel/trustd.log", "renewed a node certificate"));

  // Tokens are secrets: no log or audit line of either node holds one.
  for (const auto* node : {c.cp.get(), &worker}) {
    for (const auto& entry : std::filesystem::recursive_directory_iterator(node->root() / "var/log")) {
      if (!entry.is_regular_file()) continue;
      INFO(entry.path());
      CHECK_FALSE(fileContains(entry.path(), oldToken));
      CHECK_FALSE(fileContains(entry.path(), newToken));
    }
  }
}
