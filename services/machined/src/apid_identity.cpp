#include "apid_identity.h"

#include <limits.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <arpa/inet.h>
#include <spdlog/spdlog.h>

#include "keel/config/file_io.h"
#include "keel/pki/pki.h"

namespace keel::machined {

namespace fs = std::filesystem;

namespace {

// Nodes' clocks differ a little; a certificate minted on one must already be valid on
// the others.
constexpr auto kNotBeforeSkew = std::chrono::minutes(5);

bool isIpAddress(const std::string& text) {
  unsigned char buf[sizeof(in6_addr)];
  return inet_pton(AF_INET, text.c_str(), buf) == 1 || inet_pton(AF_INET6, text.c_str(), buf) == 1;
}

void addSan(pki::SubjectAltNames& sans, const std::string& name) {
  if (name.empty()) return;
  auto& list = isIpAddress(name) ? sans.ipAddresses : sans.dnsNames;
  if (std::find(list.begin(), list.end(), name) == list.end()) list.push_back(name);
}

struct Minted {
  std::string keyPem;
  std::string certPem;
};

Result<Minted> mint(const pki::CertificateAuthority& ca, const pki::CsrOptions& csrOptions,
                    const pki::IssuePolicy& policy, const Clock& clock) {
  KEEL_ASSIGN_OR_RETURN(auto key, pki::PrivateKey::generate(pki::KeyType::kEcdsaP256));
  KEEL_ASSIGN_OR_RETURN(auto csr, pki::CertificateRequest::create(key, csrOptions));
  KEEL_ASSIGN_OR_RETURN(auto cert, pki::issueCertificate(ca, csr, policy, clock));
  return Minted{key.toPem(), cert.toPem()};
}

// Key first: a reader that finds a certificate finds its key too (both are replaced
// together at every start, before apid runs).
Status writePair(const fs::path& keyPath, const fs::path& certPath, const Minted& minted) {
  KEEL_RETURN_IF_ERROR(config::writePrivateFile(keyPath, minted.keyPem, config::Overwrite::kYes));
  return config::writePrivateFile(certPath, minted.certPem, config::Overwrite::kYes);
}

}  // namespace

std::vector<fs::path> ApidIdentityFiles::all() const {
  std::vector<fs::path> out;
  for (const auto* p : {&ca, &serverKey, &serverCert, &impersonatorKey, &impersonatorCert}) {
    if (!p->empty()) out.push_back(*p);
  }
  return out;
}

Result<std::string> nodeHostname(const config::MachineConfig& cfg) {
  if (cfg.hostname && !cfg.hostname->empty()) return *cfg.hostname;
  char name[HOST_NAME_MAX + 1] = {};
  if (gethostname(name, sizeof name - 1) != 0) {
    return internalError(std::string("gethostname: ") + std::strerror(errno));
  }
  return std::string(name);
}

Result<ApidIdentityFiles> provisionApidIdentity(const config::MachineConfig& cfg,
                                                const ApidIdentityRequest& req, const Clock& clock) {
  if (req.nodeAddress.empty())
    return invalidArgument("apid identity: expected the node's address, found none");
  if (cfg.ca.crt.empty())
    return invalidArgument("apid identity: expected the OS CA certificate in machine.ca.crt, found none");
  ApidIdentityFiles files;
  files.ca = req.stateDir / kApidCaFile;
  KEEL_RETURN_IF_ERROR(config::writePrivateFile(files.ca, cfg.ca.crt, config::Overwrite::kYes));

  if (cfg.ca.key.empty()) {
    for (const char* stale :
         {kApidServerKeyFile, kApidServerCertFile, kApidImpersonatorKeyFile, kApidImpersonatorCertFile}) {
      std::error_code ec;
      fs::remove(req.stateDir / stale, ec);
      if (ec) return internalError("cannot remove " + (req.stateDir / stale).string() + ": " + ec.message());
    }
    spdlog::warn(
        "machined: this node holds no OS CA key, so apid has no serving certificate until it can get one "
        "from a control plane; it will refuse to start meanwhile");
    return files;
  }
  auto ca = pki::CertificateAuthority::fromPem(cfg.ca.crt, cfg.ca.key);
  if (!ca.ok())
    return invalidArgument("apid identity: the OS CA in the machine config is unusable: " +
                           ca.status().message());

  pki::CsrOptions server;
  server.subject.commonName = req.nodeAddress;
  addSan(server.subjectAltNames, req.nodeAddress);
  addSan(server.subjectAltNames, req.hostname);
  addSan(server.subjectAltNames, "127.0.0.1");
  for (const auto& san : cfg.certSans) addSan(server.subjectAltNames, san);
  pki::IssuePolicy serverPolicy;
  serverPolicy.extendedKeyUsages = {pki::ExtendedKeyUsage::kServerAuth};
  serverPolicy.keyUsage = pki::kDigitalSignature;
  serverPolicy.organizationPolicy = pki::IssuePolicy::Organizations::kStrip;
  serverPolicy.allowAnySubjectAltName = true;  // the SANs are ours, not a requester's
  serverPolicy.ttl = kApidCertificateLifetime;
  serverPolicy.notBeforeSkew = kNotBeforeSkew;
  auto serving = mint(*ca, server, serverPolicy, clock);
  if (!serving.ok()) return serving.status().withContext("apid serving certificate");
  // The file holds the chain apid presents: its certificate, then the OS CA's. Given the
  // chain, OpenSSL sends it as it is; given the leaf alone, it would build the same chain
  // from the trust store again at every handshake.
  serving->certPem += ca->certificate.toPem();
  files.serverKey = req.stateDir / kApidServerKeyFile;
  files.serverCert = req.stateDir / kApidServerCertFile;
  KEEL_RETURN_IF_ERROR(writePair(files.serverKey, files.serverCert, *serving));

  pki::CsrOptions impersonator;
  impersonator.subject.commonName = "apid@" + req.nodeAddress;
  pki::IssuePolicy impersonatorPolicy;
  impersonatorPolicy.extendedKeyUsages = {pki::ExtendedKeyUsage::kClientAuth};
  impersonatorPolicy.keyUsage = pki::kDigitalSignature;
  impersonatorPolicy.organizationPolicy = pki::IssuePolicy::Organizations::kSet;
  impersonatorPolicy.organizations = {kImpersonatorRole};
  impersonatorPolicy.ttl = kApidCertificateLifetime;
  impersonatorPolicy.notBeforeSkew = kNotBeforeSkew;
  auto forwarding = mint(*ca, impersonator, impersonatorPolicy, clock);
  if (!forwarding.ok()) return forwarding.status().withContext("apid impersonator certificate");
  files.impersonatorKey = req.stateDir / kApidImpersonatorKeyFile;
  files.impersonatorCert = req.stateDir / kApidImpersonatorCertFile;
  KEEL_RETURN_IF_ERROR(writePair(files.impersonatorKey, files.impersonatorCert, *forwarding));
  return files;
}

nlohmann::json apidIdentityConfig(const fs::path& stateDir, const ApidIdentityFiles& files) {
  nlohmann::json out = {{"tls",
                         {{"key", (stateDir / kApidServerKeyFile).string()},
                          {"cert", (stateDir / kApidServerCertFile).string()},
                          {"ca", files.ca.string()}}}};
  if (!files.impersonatorCert.empty()) {
    out["impersonator"] = {{"key", files.impersonatorKey.string()},
                           {"cert", files.impersonatorCert.string()}};
  }
  return out;
}

}  // namespace keel::machined
