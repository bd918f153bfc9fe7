#include "authority.h"

#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>
#include <nlohmann/json.hpp>

#include "keel/config/client_config.h"

namespace keel::trustd {
namespace {

using Catch::Matchers::ContainsSubstring;

const TimePoint kStart = std::chrono::sys_days{std::chrono::year{2030} / 1 / 2};
constexpr const char* kToken = "abcdef.0123456789abcdef";

struct Fixture {
  ManualClock clock{kStart};
  pki::CertificateAuthority ca = [this] {
    pki::CaOptions o;
    o.subject.commonName = "keel-os";
    o.subject.organizations = {"keel-os"};
    return pki::createSelfSignedCa(o, clock).value();
  }();
  TrustdConfig config = [this] {
    TrustdConfig c;
    c.socket = "/run/keel/trustd.sock";
    c.nodeAddress = "10.0.0.1";
    c.hostname = "cp-1";
    c.clusterName = "prod";
    c.apiEndpoint = "10.0.0.1:50000";
    c.caCertPem = ca.certificate.toPem();
    c.caKeyPem = ca.key.toPem();
    c.caBundlePem = c.caCertPem;
    c.joinTokens = {"zzzzzz.zzzzzzzzzzzzzzzz", kToken};
    c.allowedUids = {1000};
    c.joinBurst = 3;
    c.joinRatePerMinute = 60;
    return c;
  }();

  std::unique_ptr<Authority> authority() {
    auto a = Authority::create(config, clock);
    REQUIRE(a.ok());
    return std::move(a).value();
  }
};

std::string csrPem(pki::CsrOptions options, pki::PrivateKey* keyOut = nullptr) {
  auto key = pki::PrivateKey::generate(pki::KeyType::kEcdsaP256).value();
  auto csr = pki::CertificateRequest::create(key, options).value();
  if (keyOut != nullptr) *keyOut = key;
  return csr.toPem();
}

// A caller that presented its own certificate to this node's apid, issued by trustd at
// kStart for `ttl` (notBefore backdated by trustd's five minutes).
ClientCaller directCaller(std::string identity, std::vector<std::string> roles,
                          std::chrono::seconds ttl = std::chrono::hours(24 * 365)) {
  return {std::move(identity), std::move(roles),
          authz::CertValidity{kStart - std::chrono::minutes(5), kStart + ttl}};
}

const ClientCaller kAdmin = directCaller("admin", {"os:admin"});

// The validity of a certificate as apid would read it.
authz::CertValidity validityOf(const std::string& pem) {
  auto crt = pki::Certificate::fromPem(pem).value();
  return {crt.notBefore(), crt.notAfter()};
}

pki::CsrOptions clientCsr(const std::string& cn) {
  pki::CsrOptions o;
  o.subject.commonName = cn;
  return o;
}

pki::CsrOptions nodeCsr(const std::string& cn, std::vector<std::string> ips,
                        std::vector<std::string> dns = {}, std::vector<std::string> orgs = {}) {
  pki::CsrOptions o;
  o.subject.commonName = cn;
  o.subject.organizations = std::move(orgs);
  o.subjectAltNames.ipAddresses = std::move(ips);
  o.subjectAltNames.dnsNames = std::move(dns);
  return o;
}

TEST_CASE("a joining node with an accepted token gets a serverAuth-only certificate for its source address",
          "[trustd]") {
  Fixture f;
  auto a = f.authority();
  auto cert =
      a->signNodeCertificate(csrPem(nodeCsr("10.0.0.7", {"10.0.0.7"})), kToken, "ipv4:10.0.0.7:40001");
  REQUIRE(cert.ok());
  auto parsed = pki::Certificate::fromPem(cert->certificatePem).value();
  CHECK(parsed.extendedKeyUsages() == std::vector{pki::ExtendedKeyUsage::kServerAuth});
  CHECK(parsed.subject().organizations.empty());
  CHECK(parsed.subjectAltNames().ipAddresses == std::vector<std::string>{"10.0.0.7"});
  CHECK_FALSE(parsed.isCa());
  CHECK(parsed.notAfter() == kStart + std::chrono::hours(24));
  CHECK(cert->caBundlePem == f.config.caBundlePem);
  CHECK(pki::verifyCertificate(parsed, {f.ca.certificate},
                               {.requiredUsage = pki::ExtendedKeyUsage::kServerAuth, .intermediates = {}},
                               f.clock)
            .isOk());
}

// A joined node: its key and the certificate trustd issued it through a join.
struct JoinedNode {
  pki::PrivateKey key = pki::PrivateKey::generate(pki::KeyType::kEcdsaP256).value();
  std::string certificatePem;
};

JoinedNode join(Authority& a, const pki::CsrOptions& options, const std::string& peer) {
  JoinedNode n;
  auto csr = pki::CertificateRequest::create(n.key, options).value();
  auto cert = a.signNodeCertificate(csr.toPem(), kToken, peer);
  REQUIRE(cert.ok());
  n.certificatePem = cert->certificatePem;
  return n;
}

// A renewal request: a new key's CSR with `options`, signed over by `proofKey`.
struct Renewal {
  pki::PrivateKey key;
  std::string csrPem;
  std::string proof;
};

Renewal renewal(const pki::CsrOptions& options, const pki::PrivateKey& proofKey) {
  auto key = pki::PrivateKey::generate(pki::KeyType::kEcdsaP256).value();
  auto csr = pki::CertificateRequest::create(key, options).value();
  return {key, csr.toPem(), pki::signPossession(proofKey, csr).value()};
}

TEST_CASE("a joined node renews with its current certificate and a proof by its key, without a token",
          "[trustd]") {
  Fixture f;
  f.config.joinBurst = 100;
  auto a = f.authority();
  const auto options = nodeCsr("10.0.0.7", {"10.0.0.7"});
  const auto node = join(*a, options, "ipv4:10.0.0.7:1");
  f.clock.advance(std::chrono::hours(12));
  const auto r = renewal(options, node.key);
  // From another address: the names were verified at the join, not by where the renewal comes from.
  auto cert = a->renewNodeCertificate(r.csrPem, node.certificatePem, r.proof, "ipv4:10.9.9.9:1");
  REQUIRE(cert.ok());
  const auto parsed = pki::Certificate::fromPem(cert->certificatePem).value();
  CHECK(parsed.subjectAltNames() == pki::SubjectAltNames{{}, {"10.0.0.7"}});
  CHECK(parsed.subject().commonName == "10.0.0.7");
  CHECK(parsed.extendedKeyUsages() == std::vector{pki::ExtendedKeyUsage::kServerAuth});
  CHECK(parsed.notAfter() == f.clock.now() + f.config.nodeCertTtl);
  CHECK(parsed.serialHex() != pki::Certificate::fromPem(node.certificatePem).value().serialHex());
  // The renewed certificate renews in turn with the new key, and no longer with the old one.
  const auto next = renewal(options, r.key);
  CHECK(a->renewNodeCertificate(next.csrPem, cert->certificatePem, next.proof, "10.0.0.7").ok());
  const auto stale = renewal(options, node.key);
  CHECK_FALSE(a->renewNodeCertificate(stale.csrPem, cert->certificatePem, stale.proof, "10.0.0.7").ok());
}

TEST_CASE("a revoked node certificate does not renew, and the refusal says so", "[trustd][revoke]") {
  Fixture f;
  f.config.joinBurst = 100;
  auto a = f.authority();
  const auto options = nodeCsr("10.0.0.7", {"10.0.0.7"});
  const auto node = join(*a, options, "ipv4:10.0.0.7:1");
  REQUIRE(a->revoke({node.certificatePem, ""}, "admin").ok());
  const auto r = renewal(options, node.key);
  auto cert = a->renewNodeCertificate(r.csrPem, node.certificatePem, r.proof, "10.0.0.7");
  CHECK(cert.status().code() == StatusCode::kUnauthenticated);
  CHECK_THAT(cert.status().message(), ContainsSubstring("revoked"));
}

TEST_CASE("a node renewal with a forged proof is refused as UNAUTHENTICATED", "[trustd]") {
  Fixture f;
  f.config.joinBurst = 100;
  auto a = f.authority();
  const auto options = nodeCsr("10.0.0.7", {"10.0.0.7"});
  const auto node = join(*a, options, "10.0.0.7");
  SECTION("signed by another key") {
    const auto thief = pki::PrivateKey::generate(pki::KeyType::kEcdsaP256).value();
    const auto r = renewal(options, thief);
    auto cert = a->renewNodeCertificate(r.csrPem, node.certificatePem, r.proof, "10.0.0.7");
    REQUIRE_FALSE(cert.ok());
    CHECK(cert.status().code() == StatusCode::kUnauthenticated);
    CHECK_THAT(cert.status().message(), ContainsSubstring("does not verify"));
  }
  SECTION("a proof made for another CSR") {
    const auto r = renewal(options, node.key);
    const auto other = renewal(options, node.key);
    auto cert = a->renewNodeCertificate(other.csrPem, node.certificatePem, r.proof, "10.0.0.7");
    REQUIRE_FALSE(cert.ok());
    CHECK(cert.status().code() == StatusCode::kUnauthenticated);
  }
  SECTION("no proof, no certificate") {
    const auto r = renewal(options, node.key);
    CHECK(a->renewNodeCertificate(r.csrPem, node.certificatePem, "", "10.0.0.7").status().code() ==
          StatusCode::kUnauthenticated);
    CHECK(a->renewNodeCertificate(r.csrPem, "", r.proof, "10.0.0.7").status().code() ==
          StatusCode::kUnauthenticated);
    CHECK(a->renewNodeCertificate(r.csrPem, "not a certificate", r.proof, "10.0.0.7").status().code() ==
          StatusCode::kUnauthenticated);
  }
}

TEST_CASE("a node renewal is refused for a certificate of another CA or one that expired", "[trustd]") {
  Fixture f;
  f.config.joinBurst = 100;
  auto a = f.authority();
  const auto options = nodeCsr("10.0.0.7", {"10.0.0.7"});
  SECTION("another CA, even one with the same name") {
    Fixture other;
    auto b = other.authority();
    const auto node = join(*b, options, "10.0.0.7");
    const auto r = renewal(options, node.key);
    auto cert = a->renewNodeCertificate(r.csrPem, node.certificatePem, r.proof, "10.0.0.7");
    REQUIRE_FALSE(cert.ok());
    CHECK(cert.status().code() == StatusCode::kUnauthenticated);
    CHECK_THAT(cert.status().message(), ContainsSubstring("unknown authority"));
  }
  SECTION("expired") {
    const auto node = join(*a, options, "10.0.0.7");
    f.clock.advance(f.config.nodeCertTtl + std::chrono::seconds(1));
    const auto r = renewal(options, node.key);
    auto cert = a->renewNodeCertificate(r.csrPem, node.certificatePem, r.proof, "10.0.0.7");
    REQUIRE_FALSE(cert.ok());
    CHECK(cert.status().code() == StatusCode::kUnauthenticated);
    CHECK_THAT(cert.status().message(), ContainsSubstring("expired"));
  }
}

TEST_CASE("a node renewal names exactly the current certificate's names, never more or others", "[trustd]") {
  Fixture f;
  f.config.joinBurst = 100;
  f.config.joinExtraSans = {"worker-1.keel"};
  auto a = f.authority();
  const auto node = join(*a, nodeCsr("10.0.0.7", {"10.0.0.7"}), "10.0.0.7");
  for (const auto& options : {nodeCsr("10.0.0.7", {"10.0.0.7", "10.0.0.1"}),
                              nodeCsr("10.0.0.7", {"10.0.0.7"}, {"worker-1.keel"}),
                              nodeCsr("10.0.0.1", {"10.0.0.1"}), nodeCsr("10.0.0.7", {})}) {
    const auto r = renewal(options, node.key);
    auto cert = a->renewNodeCertificate(r.csrPem, node.certificatePem, r.proof, "10.0.0.7");
    REQUIRE_FALSE(cert.ok());
    CHECK(cert.status().code() == StatusCode::kInvalidArgument);
    CHECK_THAT(cert.status().message(), ContainsSubstring("expected CN '10.0.0.7', IP [10.0.0.7], DNS [none]"));
  }
}

TEST_CASE("a client certificate presented as a node's never renews", "[trustd]") {
  Fixture f;
  f.config.joinBurst = 100;
  auto a = f.authority();
  auto admin = a->generateClientConfig({"os:admin"}, std::chrono::hours(1), "admin", kAdmin);
  REQUIRE(admin.ok());
  const auto ctx = config::parseClientConfig(admin->keelconfig).value().contexts.begin()->second;
  const auto clientKey = pki::PrivateKey::fromPem(ctx.key).value();
  const auto r = renewal(clientCsr("admin"), clientKey);
  auto cert = a->renewNodeCertificate(r.csrPem, ctx.crt, r.proof, "10.0.0.7");
  REQUIRE_FALSE(cert.ok());
  CHECK(cert.status().code() == StatusCode::kUnauthenticated);
  // Issued for apid on this node, its impersonator certificate is a client's too.
  auto servingKey = pki::PrivateKey::generate(pki::KeyType::kEcdsaP256).value();
  auto impersonatorKey = pki::PrivateKey::generate(pki::KeyType::kEcdsaP256).value();
  auto apid = a->issueApidCertificates(
      pki::CertificateRequest::create(servingKey, nodeCsr("10.0.0.1", {"10.0.0.1"})).value().toPem(),
      pki::CertificateRequest::create(impersonatorKey, clientCsr("apid@10.0.0.1")).value().toPem());
  REQUIRE(apid.ok());
  const auto asNode = renewal(nodeCsr("apid@10.0.0.1", {}), impersonatorKey);
  auto refused = a->renewNodeCertificate(asNode.csrPem, apid->impersonatorPem, asNode.proof, "10.0.0.1");
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.status().code() == StatusCode::kUnauthenticated);
  CHECK_THAT(refused.status().message(), ContainsSubstring("clientAuth"));
}

TEST_CASE("node renewals count against the join rate limit", "[trustd]") {
  Fixture f;
  f.config.joinBurst = 2;
  auto a = f.authority();
  const auto options = nodeCsr("10.0.0.7", {"10.0.0.7"});
  const auto node = join(*a, options, "10.0.0.7");
  const auto r = renewal(options, node.key);
  CHECK(a->renewNodeCertificate(r.csrPem, node.certificatePem, r.proof, "10.0.0.7").ok());
  auto limited = a->renewNodeCertificate(r.csrPem, node.certificatePem, r.proof, "10.0.0.7");
  REQUIRE_FALSE(limited.ok());
  CHECK(limited.status().code() == StatusCode::kResourceExhausted);
}

TEST_CASE("rejects a CSR that asks for O=os:admin", "[trustd]") {
  Fixture f;
  auto a = f.authority();
  auto cert = a->signNodeCertificate(
      csrPem(nodeCsr("10.0.0.7", {"10.0.0.7"}, {}, {"os:admin", "os:impersonator"})), kToken, "10.0.0.7");
  REQUIRE_FALSE(cert.ok());
  CHECK(cert.status().code() == StatusCode::kInvalidArgument);
  CHECK_THAT(cert.status().message(), ContainsSubstring("O=os:admin, os:impersonator"));
}

TEST_CASE("refuses a wrong, empty or truncated join token as UNAUTHENTICATED", "[trustd]") {
  Fixture f;
  f.config.joinBurst = 100;
  auto a = f.authority();
  for (const std::string token :
       {"", "abcdef.0123456789abcdee", "abcdef.0123456789abcde", "ABCDEF.0123456789ABCDEF"}) {
    CAPTURE(token);
    auto cert = a->signNodeCertificate(csrPem(nodeCsr("10.0.0.7", {"10.0.0.7"})), token, "10.0.0.7");
    REQUIRE_FALSE(cert.ok());
    CHECK(cert.status().code() == StatusCode::kUnauthenticated);
    CHECK_THAT(cert.status().message(), ContainsSubstring("join token is not accepted"));
    CHECK_THAT(cert.status().message(), !ContainsSubstring("abcdef"));
  }
  CHECK(tokenAccepted(kToken, f.config.joinTokens));
  CHECK(tokenAccepted("zzzzzz.zzzzzzzzzzzzzzzz", f.config.joinTokens));
  CHECK_FALSE(tokenAccepted("", {""}));
}

TEST_CASE(
    "refuses IP SANs other than the caller's source address, and DNS SANs, unless the config allows them",
    "[trustd]") {
  Fixture f;
  f.config.joinBurst = 100;
  SECTION("someone else's address") {
    auto cert = f.authority()->signNodeCertificate(csrPem(nodeCsr("10.0.0.7", {"10.0.0.7", "10.0.0.1"})),
                                                   kToken, "ipv4:10.0.0.7:1");
    REQUIRE_FALSE(cert.ok());
    CHECK(cert.status().code() == StatusCode::kInvalidArgument);
    CHECK_THAT(cert.status().message(), ContainsSubstring("SAN IP:10.0.0.1"));
    CHECK_THAT(cert.status().message(), ContainsSubstring("source address 10.0.0.7"));
  }
  SECTION("a DNS name") {
    auto cert = f.authority()->signNodeCertificate(csrPem(nodeCsr("w", {"10.0.0.7"}, {"cp-1"})), kToken,
                                                   "ipv4:10.0.0.7:1");
    REQUIRE_FALSE(cert.ok());
    CHECK_THAT(cert.status().message(), ContainsSubstring("SAN DNS:cp-1"));
  }
  SECTION("allowed by join.extraSans") {
    f.config.joinExtraSans = {"127.0.1.0/24", "worker-1.keel", "fd00::/8"};
    auto a = f.authority();
    auto cert =
        a->signNodeCertificate(csrPem(nodeCsr("127.0.1.3", {"127.0.1.3", "fd00::3"}, {"WORKER-1.keel"})),
                               kToken, "ipv4:127.0.0.1:5");
    REQUIRE(cert.ok());
    auto outside =
        a->signNodeCertificate(csrPem(nodeCsr("127.0.2.3", {"127.0.2.3"})), kToken, "ipv4:127.0.0.1:5");
    CHECK_FALSE(outside.ok());
  }
  SECTION("a bad extraSans entry is refused at start") {
    f.config.joinExtraSans = {"10.0.0.0/33"};
    CHECK_FALSE(Authority::create(f.config, f.clock).ok());
  }
}

TEST_CASE("a joining node's certificate names exactly what trustd verified: no SAN-less CSR, no CN of its own",
          "[trustd]") {
  Fixture f;
  f.config.joinBurst = 100;
  f.config.joinExtraSans = {"worker-1.keel"};
  auto a = f.authority();
  SECTION("a CN and no SAN is refused, since clients would match the CN as a host name") {
    auto cert = a->signNodeCertificate(csrPem(nodeCsr("cp.example.com", {})), kToken, "ipv4:10.0.0.7:1");
    REQUIRE_FALSE(cert.ok());
    CHECK(cert.status().code() == StatusCode::kInvalidArgument);
    CHECK_THAT(cert.status().message(), ContainsSubstring("at least one SAN"));
  }
  SECTION("a CN that is none of the SANs is refused") {
    for (const std::string cn : {"cp.example.com", "10.0.0.1", "worker-1.keel"}) {
      CAPTURE(cn);
      auto cert = a->signNodeCertificate(csrPem(nodeCsr(cn, {"10.0.0.7"})), kToken, "ipv4:10.0.0.7:1");
      REQUIRE_FALSE(cert.ok());
      CHECK(cert.status().code() == StatusCode::kInvalidArgument);
      CHECK_THAT(cert.status().message(), ContainsSubstring("found CN '" + cn + "'"));
    }
  }
  SECTION("a CN that repeats an allowed SAN gives a certificate naming exactly the allowed set") {
    auto cert = a->signNodeCertificate(csrPem(nodeCsr("worker-1.keel", {"10.0.0.7"}, {"worker-1.keel"})),
                                       kToken, "ipv4:10.0.0.7:1");
    REQUIRE(cert.ok());
    const auto parsed = pki::Certificate::fromPem(cert->certificatePem).value();
    CHECK(parsed.subject().commonName == "worker-1.keel");
    CHECK(parsed.subjectAltNames() == pki::SubjectAltNames{{"worker-1.keel"}, {"10.0.0.7"}});
  }
}

TEST_CASE("refuses a tampered CSR, garbage and a peer that is not an IP address", "[trustd]") {
  Fixture f;
  f.config.joinBurst = 100;
  auto a = f.authority();
  std::string pem = csrPem(nodeCsr("10.0.0.7", {"10.0.0.7"}));
  // Flip one base64 character inside the signed part.
  const auto pos = pem.find('\n') + 40;
  pem[pos] = pem[pos] == 'A' ? 'B' : 'A';
  auto tampered = a->signNodeCertificate(pem, kToken, "10.0.0.7");
  REQUIRE_FALSE(tampered.ok());
  CHECK(tampered.status().code() == StatusCode::kInvalidArgument);
  CHECK_FALSE(a->signNodeCertificate("not a csr", kToken, "10.0.0.7").ok());
  CHECK_FALSE(a->signNodeCertificate("", kToken, "10.0.0.7").ok());
  auto unixPeer = a->signNodeCertificate(csrPem(nodeCsr("x", {})), kToken, "unix:/run/x.sock");
  REQUIRE_FALSE(unixPeer.ok());
  CHECK(unixPeer.status().code() == StatusCode::kInvalidArgument);
}

TEST_CASE("limits join attempts per source address and refills with time", "[trustd]") {
  Fixture f;
  auto a = f.authority();
  for (int i = 0; i < 3; ++i) CHECK_FALSE(a->signNodeCertificate("x", "wrong", "10.0.0.9").ok());
  auto limited = a->signNodeCertificate(csrPem(nodeCsr("10.0.0.9", {"10.0.0.9"})), kToken, "10.0.0.9");
  REQUIRE_FALSE(limited.ok());
  CHECK(limited.status().code() == StatusCode::kResourceExhausted);
  // Another address is not affected.
  CHECK(a->signNodeCertificate(csrPem(nodeCsr("10.0.0.8", {"10.0.0.8"})), kToken, "10.0.0.8").ok());
  f.clock.advance(std::chrono::seconds(1));
  CHECK(a->signNodeCertificate(csrPem(nodeCsr("10.0.0.9", {"10.0.0.9"})), kToken, "10.0.0.9").ok());
}

TEST_CASE("an IPv6 /64 is one source for the join limit, however many addresses it uses", "[trustd]") {
  Fixture f;
  SECTION("the default /64") {
    auto a = f.authority();
    // Three refused attempts from three addresses of one /64 use up its allowance.
    for (const char* peer : {"ipv6:[2001:db8:1:2::1]:1", "ipv6:[2001:db8:1:2::2]:1", "ipv6:[2001:db8:1:2:ffff::9]:1"}) {
      CHECK(a->signNodeCertificate("x", "wrong", peer).status().code() == StatusCode::kUnauthenticated);
    }
    auto limited = a->signNodeCertificate("x", kToken, "ipv6:[2001:db8:1:2:abcd::77]:1");
    REQUIRE_FALSE(limited.ok());
    CHECK(limited.status().code() == StatusCode::kResourceExhausted);
    CHECK_THAT(limited.status().message(), ContainsSubstring("2001:db8:1:2::/64"));
    // The next /64 has its own allowance.
    CHECK(a->signNodeCertificate("x", "wrong", "ipv6:[2001:db8:1:3::1]:1").status().code() ==
          StatusCode::kUnauthenticated);
  }
  SECTION("a configured /128 counts each address alone") {
    f.config.joinIpv6PrefixBits = 128;
    auto a = f.authority();
    for (int i = 1; i <= 5; ++i) {
      const auto peer = "ipv6:[2001:db8:1:2::" + std::to_string(i) + "]:1";
      CHECK(a->signNodeCertificate("x", "wrong", peer).status().code() == StatusCode::kUnauthenticated);
    }
  }
}

TEST_CASE("the rate limiter forgets the least recently seen address when full", "[trustd]") {
  ManualClock clock(kStart);
  RateLimiter limiter(1, 1, clock, 2);
  CHECK(limiter.allow("a"));
  clock.advance(std::chrono::milliseconds(1));
  CHECK(limiter.allow("b"));
  CHECK_FALSE(limiter.allow("b"));
  clock.advance(std::chrono::milliseconds(1));
  CHECK(limiter.allow("c"));  // forgets "a"
  CHECK(limiter.allow("a"));
}

TEST_CASE("apid's local certificates: its names only, and O=os:impersonator whatever the CSR asks",
          "[trustd]") {
  Fixture f;
  f.config.certSans = {"api.example.com"};
  auto a = f.authority();
  auto certs = a->issueApidCertificates(
      csrPem(nodeCsr("10.0.0.1", {"10.0.0.1", "127.0.0.1"}, {"cp-1", "api.example.com"})),
      csrPem(nodeCsr("apid@10.0.0.1", {}, {}, {"os:admin"})));
  REQUIRE(certs.ok());
  auto chain = pki::Certificate::bundleFromPem(certs->servingChainPem).value();
  REQUIRE(chain.size() == 2);
  CHECK(chain[1].fingerprintSha256() == f.ca.certificate.fingerprintSha256());
  CHECK(chain[0].extendedKeyUsages() == std::vector{pki::ExtendedKeyUsage::kServerAuth});
  auto imp = pki::Certificate::fromPem(certs->impersonatorPem).value();
  CHECK(imp.subject().organizations == std::vector<std::string>{"os:impersonator"});
  CHECK(imp.extendedKeyUsages() == std::vector{pki::ExtendedKeyUsage::kClientAuth});

  auto foreign = a->issueApidCertificates(csrPem(nodeCsr("10.0.0.1", {"10.0.0.2"})),
                                          csrPem(nodeCsr("apid@10.0.0.1", {})));
  CHECK_FALSE(foreign.ok());
  // apid's serving certificate follows the same rule as a joining node's.
  auto sanless = a->issueApidCertificates(csrPem(nodeCsr("api.example.com", {})),
                                          csrPem(nodeCsr("apid@10.0.0.1", {})));
  REQUIRE_FALSE(sanless.ok());
  CHECK_THAT(sanless.status().message(), ContainsSubstring("at least one SAN"));
  auto otherCn = a->issueApidCertificates(csrPem(nodeCsr("evil.example.com", {"10.0.0.1"})),
                                          csrPem(nodeCsr("apid@10.0.0.1", {})));
  REQUIRE_FALSE(otherCn.ok());
  CHECK_THAT(otherCn.status().message(), ContainsSubstring("found CN 'evil.example.com'"));
  auto wrongCn =
      a->issueApidCertificates(csrPem(nodeCsr("10.0.0.1", {"10.0.0.1"})), csrPem(nodeCsr("admin", {})));
  REQUIRE_FALSE(wrongCn.ok());
  CHECK_THAT(wrongCn.status().message(), ContainsSubstring("apid@10.0.0.1"));
}

TEST_CASE("a generated client configuration carries exactly the requested roles and a bounded TTL",
          "[trustd]") {
  Fixture f;
  f.config.clientCertMaxTtl = std::chrono::hours(48);
  f.config.clientCertDefaultTtl = std::chrono::hours(1);
  auto a = f.authority();
  auto out = a->generateClientConfig({"os:reader"}, std::chrono::seconds(0), "", kAdmin);
  REQUIRE(out.ok());
  auto cfg = config::parseClientConfig(out->keelconfig);
  REQUIRE(cfg.ok());
  CHECK(cfg->context == "prod");
  const auto& ctx = cfg->contexts.at("prod");
  CHECK(ctx.endpoints == std::vector<std::string>{"10.0.0.1:50000"});
  auto crt = pki::Certificate::fromPem(ctx.crt).value();
  CHECK(crt.subject().organizations == std::vector<std::string>{"os:reader"});
  CHECK(crt.subject().commonName == "reader");
  CHECK(crt.notAfter() == kStart + std::chrono::hours(1));
  CHECK(out->notAfter == crt.notAfter());

  CHECK(a->generateClientConfig({"os:operator"}, std::chrono::hours(48), "bob", kAdmin).ok());
  auto tooLong = a->generateClientConfig({"os:operator"}, std::chrono::hours(49), "bob", kAdmin);
  REQUIRE_FALSE(tooLong.ok());
  CHECK_THAT(tooLong.status().message(), ContainsSubstring("longer than this cluster allows"));
  for (const std::vector<std::string>& bad :
       {std::vector<std::string>{}, {"os:root"}, {"os:impersonator"}, {"os:reader", "admin"}}) {
    auto r = a->generateClientConfig(bad, std::chrono::seconds(0), "", kAdmin);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == StatusCode::kInvalidArgument);
  }
  CHECK_FALSE(a->generateClientConfig({"os:reader"}, std::chrono::seconds(-5), "", kAdmin).ok());
}

TEST_CASE("renewal keeps the caller's identity and client roles, never impersonator", "[trustd]") {
  Fixture f;
  auto a = f.authority();
  pki::CsrOptions o;
  o.subject.commonName = "alice";
  o.subject.organizations = {"os:admin"};  // proposed; ignored
  auto renewed = a->renewClientCertificate(csrPem(o), directCaller("alice", {"os:impersonator", "os:reader"}),
                                           std::chrono::hours(2));
  REQUIRE(renewed.ok());
  auto crt = pki::Certificate::fromPem(renewed->certificatePem).value();
  CHECK(crt.subject().commonName == "alice");
  CHECK(crt.subject().organizations == std::vector<std::string>{"os:reader"});
  CHECK(crt.notAfter() == kStart + std::chrono::hours(2));

  auto other =
      a->renewClientCertificate(csrPem(o), directCaller("bob", {"os:reader"}), std::chrono::seconds(0));
  REQUIRE_FALSE(other.ok());
  CHECK_THAT(other.status().message(), ContainsSubstring("'bob'"));
  auto onlyImpersonator = a->renewClientCertificate(csrPem(o), directCaller("alice", {"os:impersonator"}),
                                                    std::chrono::seconds(0));
  REQUIRE_FALSE(onlyImpersonator.ok());
  CHECK(onlyImpersonator.status().code() == StatusCode::kPermissionDenied);
  pki::CsrOptions withSan = o;
  withSan.subjectAltNames.dnsNames = {"x"};
  CHECK_FALSE(a->renewClientCertificate(csrPem(withSan), directCaller("alice", {"os:reader"}),
                                        std::chrono::seconds(0))
                  .ok());
}

TEST_CASE("a renewal keeps the lifetime the presented certificate was issued with, not the cluster's default",
          "[trustd]") {
  Fixture f;
  f.config.clientCertDefaultTtl = std::chrono::hours(24 * 30);
  auto a = f.authority();
  SECTION("a one-hour certificate renews into a one-hour one, not thirty days") {
    auto renewed = a->renewClientCertificate(csrPem(clientCsr("reader")),
                                             directCaller("reader", {"os:reader"}, std::chrono::hours(1)),
                                             std::chrono::seconds(0));
    REQUIRE(renewed.ok());
    CHECK(renewed->notAfter == kStart + std::chrono::hours(1));
  }
  SECTION("a one-year admin certificate renews into a one-year one, not thirty days") {
    auto renewed = a->renewClientCertificate(csrPem(clientCsr("admin")), kAdmin, std::chrono::seconds(0));
    REQUIRE(renewed.ok());
    CHECK(renewed->notAfter == kStart + std::chrono::hours(24 * 365));
  }
}

TEST_CASE("renewing again and again never lengthens a certificate, not even by trustd's notBefore skew",
          "[trustd]") {
  Fixture f;
  auto a = f.authority();
  auto generated = a->generateClientConfig({"os:operator"}, std::chrono::hours(1), "ops", kAdmin);
  REQUIRE(generated.ok());
  auto cfg = config::parseClientConfig(generated->keelconfig).value();
  authz::CertValidity presented = validityOf(cfg.contexts.at("prod").crt);
  const auto span = presented.notAfter - presented.notBefore;
  CHECK(span == std::chrono::minutes(65));  // the TTL asked for, and the skew before now
  for (int i = 1; i <= 5; ++i) {
    INFO("renewal " << i);
    f.clock.set(kStart + i * std::chrono::minutes(40));
    auto renewed = a->renewClientCertificate(
        csrPem(clientCsr("ops")), ClientCaller{"ops", {"os:operator"}, presented}, std::chrono::seconds(0));
    REQUIRE(renewed.ok());
    const auto next = validityOf(renewed->certificatePem);
    CHECK(next.notAfter - next.notBefore == span);
    CHECK(next.notAfter == f.clock.now() + std::chrono::hours(1));
    presented = next;
  }
}

TEST_CASE("a renewal may ask for a shorter lifetime but is refused a longer one, naming both", "[trustd]") {
  Fixture f;
  auto a = f.authority();
  const auto caller = directCaller("reader", {"os:reader"}, std::chrono::hours(2));
  auto shorter = a->renewClientCertificate(csrPem(clientCsr("reader")), caller, std::chrono::minutes(30));
  REQUIRE(shorter.ok());
  CHECK(shorter->notAfter == kStart + std::chrono::minutes(30));
  CHECK(a->renewClientCertificate(csrPem(clientCsr("reader")), caller, std::chrono::hours(2)).ok());

  auto longer = a->renewClientCertificate(csrPem(clientCsr("reader")), caller, std::chrono::hours(48));
  REQUIRE_FALSE(longer.ok());
  CHECK(longer.status().code() == StatusCode::kInvalidArgument);
  CHECK_THAT(longer.status().message(), ContainsSubstring("at most 7200 s (2h)"));
  CHECK_THAT(longer.status().message(), ContainsSubstring("found 172800 s (48h)"));
  auto justLonger = a->renewClientCertificate(csrPem(clientCsr("reader")), caller,
                                              std::chrono::hours(2) + std::chrono::seconds(1));
  REQUIRE_FALSE(justLonger.ok());
  CHECK(justLonger.status().code() == StatusCode::kInvalidArgument);
  CHECK_FALSE(a->renewClientCertificate(csrPem(clientCsr("reader")), caller, std::chrono::seconds(-1)).ok());
}

TEST_CASE("a renewal is capped by the cluster's maximum, and refused a TTL beyond it", "[trustd]") {
  Fixture f;
  f.config.clientCertMaxTtl = std::chrono::hours(48);
  f.config.clientCertDefaultTtl = std::chrono::hours(1);
  auto a = f.authority();
  auto capped = a->renewClientCertificate(csrPem(clientCsr("admin")), kAdmin, std::chrono::seconds(0));
  REQUIRE(capped.ok());
  CHECK(capped->notAfter == kStart + std::chrono::hours(48));
  auto beyond = a->renewClientCertificate(csrPem(clientCsr("admin")), kAdmin, std::chrono::hours(49));
  REQUIRE_FALSE(beyond.ok());
  CHECK_THAT(beyond.status().message(), ContainsSubstring("longer than this cluster allows"));
}

TEST_CASE("a presented certificate no longer than the notBefore skew is not renewed", "[trustd]") {
  Fixture f;
  auto a = f.authority();
  // Issued elsewhere, without a skew, for four minutes.
  const ClientCaller caller{
      "reader", {"os:reader"}, authz::CertValidity{kStart, kStart + std::chrono::minutes(4)}};
  auto r = a->renewClientCertificate(csrPem(clientCsr("reader")), caller, std::chrono::seconds(0));
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == StatusCode::kFailedPrecondition);
  CHECK_THAT(r.status().message(), ContainsSubstring("found one valid for 240 s"));
}

TEST_CASE("nothing is issued to a caller whose certificate this node's apid did not read (a forwarded call)",
          "[trustd]") {
  Fixture f;
  auto a = f.authority();
  // What trustd learns of a call another node's apid forwarded: roles and a "via"
  // identity, and no keel-cert-validity.
  const ClientCaller forwarded{"admin via apid@10.0.0.2", {"os:admin"}, std::nullopt};
  auto generated = a->generateClientConfig({"os:admin"}, std::chrono::seconds(0), "", forwarded);
  REQUIRE_FALSE(generated.ok());
  CHECK(generated.status().code() == StatusCode::kPermissionDenied);
  CHECK_THAT(generated.status().message(), ContainsSubstring("'admin via apid@10.0.0.2'"));
  CHECK_THAT(generated.status().message(), ContainsSubstring("os:impersonator"));
  CHECK_THAT(generated.status().message(), ContainsSubstring("keelctl -e 10.0.0.1,"));

  auto renewed = a->renewClientCertificate(csrPem(clientCsr("admin via apid@10.0.0.2")), forwarded,
                                           std::chrono::seconds(0));
  REQUIRE_FALSE(renewed.ok());
  CHECK(renewed.status().code() == StatusCode::kPermissionDenied);
  CHECK_THAT(renewed.status().message(), ContainsSubstring("presented its own certificate"));
}

}  // namespace
}  // namespace keel::trustd
