// Every certificate, CSR and key Keel writes must parse under a strict DER parser that
// does not use OpenSSL (Go's crypto/x509 and Python's cryptography are what Kubernetes,
// etcd and their clients use). strict_der_check.py runs Debian's python3-cryptography
// over the files of a real cluster: its secrets bundle, machine and client configs, and
// the files a running control-plane node wrote for apid and trustd.
#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>

#include "apid_fixture.h"

namespace {

using namespace keel::integration;
using keel::testing::ProcessResult;

constexpr const char* kPython = "/usr/bin/python3";

ProcessResult strictCheck(const std::vector<std::filesystem::path>& files) {
  std::vector<std::string> argv = {kPython, STRICT_DER_CHECK};
  for (const auto& f : files) argv.push_back(f.string());
  auto r = keel::testing::run(argv);
  UNSCOPED_INFO("strict_der_check: " << r.out << r.err);
  return r;
}

// Regular files directly in `dir`, except logs, sockets and the hidden temporaries a file
// is written through before it is renamed into place.
std::vector<std::filesystem::path> filesIn(const std::filesystem::path& dir) {
  std::vector<std::filesystem::path> out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (e.is_regular_file() && e.path().extension() != ".log" && !name.starts_with(".")) out.push_back(e.path());
  }
  return out;
}

}  // namespace

TEST_CASE("the strict parser refuses a CA whose basicConstraints encode TRUE as 0x01", "[strict-der]") {
  // Made by an earlier keelctl: cA written as the BOOLEAN byte 0x01.
  const auto r = strictCheck({LENIENT_CA_SAMPLE});
  CHECK(r.exitCode == 1);
  CHECK_THAT(r.out, ContainsSubstring("1 problems"));
}

TEST_CASE("every certificate, CSR and key Keel writes parses under a strict DER parser", "[strict-der]") {
  TempDir gen;
  TempDir libexec;
  chmod(gen.path().c_str(), 0711);
  const int port = freePort();
  REQUIRE(
      keel::testing::run({KEELCTL_PATH, "gen", "secrets", "-o", (gen / "secrets.json").string()}).exitCode ==
      0);
  REQUIRE(keel::testing::run({KEELCTL_PATH, "gen", "config", "test", "127.0.1.1:" + std::to_string(port),
                              "--with-secrets", (gen / "secrets.json").string(), "-o", gen.path().string()})
              .exitCode == 0);
  REQUIRE(keel::testing::run({KEELCTL_PATH, "config", "new", (gen / "reader.keelconfig").string(), "--roles",
                              "os:reader", "--from", (gen / "secrets.json").string()})
              .exitCode == 0);
  installDaemons(libexec);
  auto config = nlohmann::json::parse(readFile(gen / "controlplane.json"));
  Node node(config, {"--libexec", libexec.path().string(), "--api-port", std::to_string(port)});
  const auto apidState = node.root() / "var/lib/keel/apid";
  // impersonator.crt is the last file apid writes once trustd has signed its identity.
  REQUIRE(eventually([&] { return std::filesystem::exists(apidState / "impersonator.crt"); }, 30s));

  std::vector<std::filesystem::path> files = {
      gen / "secrets.json", gen / "controlplane.json", gen / "worker.json",
      gen / "keelconfig",   gen / "reader.keelconfig", node.root() / "etc/keel/config.json"};
  for (const char* service : {"apid", "trustd"}) {
    const auto more = filesIn(node.root() / "var/lib/keel" / service);
    files.insert(files.end(), more.begin(), more.end());
  }
  const auto r = strictCheck(files);
  CHECK(r.exitCode == 0);
  CHECK_THAT(r.out, ContainsSubstring(" 0 problems"));
  // The bundle's four CAs and the service-account key, the configs' copies, apid's chain
  // and impersonator certificate: far more than a handful.
  CHECK_THAT(r.out, !ContainsSubstring("strict DER: 0 certificates"));
}

TEST_CASE("CSRs and Ed25519 certificates from the PKI library parse under the strict parser",
          "[strict-der]") {
  TempDir dir;
  keel::SystemClock clock;
  for (const auto type : {keel::pki::KeyType::kEcdsaP256, keel::pki::KeyType::kEd25519}) {
    keel::pki::CaOptions o;
    o.subject.commonName = "keel-os";
    o.subject.organizations = {"keel-os"};
    o.keyType = type;
    auto ca = keel::pki::createSelfSignedCa(o, clock);
    REQUIRE(ca.ok());
    auto key = keel::pki::PrivateKey::generate(type);
    REQUIRE(key.ok());
    keel::pki::CsrOptions csrOptions;
    csrOptions.subject.commonName = "node-1";
    csrOptions.subject.organizations = {"os:reader"};
    csrOptions.subjectAltNames.dnsNames = {"node-1.keel"};
    csrOptions.subjectAltNames.ipAddresses = {"10.0.0.1", "fd00::1"};
    auto csr = keel::pki::CertificateRequest::create(*key, csrOptions);
    REQUIRE(csr.ok());
    keel::pki::IssuePolicy policy;
    policy.allowAnySubjectAltName = true;
    policy.extendedKeyUsages = {keel::pki::ExtendedKeyUsage::kServerAuth,
                                keel::pki::ExtendedKeyUsage::kClientAuth};
    auto leaf = keel::pki::issueCertificate(*ca, *csr, policy, clock);
    REQUIRE(leaf.ok());
    const std::string name(keel::pki::keyTypeName(type));
    writeFile(dir / (name + ".pem"),
              ca->certificate.toPem() + ca->key.toPem() + csr->toPem() + leaf->toPem() + key->toPem());
  }
  const auto r = strictCheck({dir / "ecdsa-p256.pem", dir / "ed25519.pem"});
  CHECK(r.exitCode == 0);
  CHECK_THAT(r.out, ContainsSubstring("4 certificates, 2 CSRs, 4 keys checked, 0 problems"));
}
