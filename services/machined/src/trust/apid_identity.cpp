#include "src/trust/apid_identity.h"

#include <limits.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <sys/stat.h>

#include <fmt/format.h>

#include "keel/config/ca_rotation.h"
#include "keel/config/endpoint.h"
#include "keel/config/file_io.h"
#include "keel/config/join_tokens.h"
#include "keel/common/status.h"
#include "keel/contracts/trustd_config.h"

namespace keel::machined {

namespace fs = std::filesystem;

namespace {

std::string hostPort(const std::string& host, int port) {
  return host.find(':') != std::string::npos ? fmt::format("[{}]:{}", host, port) : fmt::format("{}:{}", host, port);
}

// A control plane's trustd signs every name of its own node. A worker asks a control
// plane, which allows its source address and only what its join.extraSans adds: so a
// worker asks for its address and the configured certSANs, not for names it cannot prove.
std::vector<std::string> servingSans(const config::MachineConfig& cfg, const ApidIdentityRequest& req) {
  std::vector<std::string> sans;
  auto add = [&](const std::string& s) {
    if (!s.empty() && std::find(sans.begin(), sans.end(), s) == sans.end()) sans.push_back(s);
  };
  add(req.nodeAddress);
  if (cfg.type == config::MachineType::kControlPlane) {
    add(req.hostname);
    add("127.0.0.1");
  }
  for (const auto& s : cfg.certSans) add(s);
  return sans;
}

// trustd's CA: the issuing one with its key, its accepted join tokens, and the bundle it
// hands out and accepts certificates of (the issuing CA first, then those accepted while a
// rotation runs).
void setTrustdCa(const config::MachineConfig& cfg, contracts::TrustdConfig& trustd) {
  trustd.caCertPem = cfg.ca.crt;
  trustd.caKeyPem = cfg.ca.key;
  trustd.caBundlePem = config::caBundlePem(cfg.ca);
  trustd.joinTokens = config::acceptedJoinTokens(cfg);
}

}  // namespace

Result<std::string> nodeHostname(const config::MachineConfig& cfg) {
  if (cfg.hostname && !cfg.hostname->empty()) return *cfg.hostname;
  char name[HOST_NAME_MAX + 1] = {};
  if (gethostname(name, sizeof name - 1) != 0) {
    return internalError(std::string("gethostname: ") + errnoText(errno));
  }
  return std::string(name);
}

Result<std::vector<fs::path>> prepareApidState(const config::MachineConfig& cfg, const ApidIdentityRequest& req) {
  if (cfg.ca.crt.empty())
    return invalidArgument("apid identity: expected the OS CA certificate in machine.ca.crt, found none");
  const fs::path ca = req.stateDir / kApidCaFile;
  KEEL_RETURN_IF_ERROR(config::writePrivateFile(ca, config::caBundlePem(cfg.ca), config::Overwrite::kYes));
  for (const char* stale : {kApidServerKeyFile, kApidServerCertFile, kApidImpersonatorKeyFile, kApidImpersonatorCertFile}) {
    std::error_code ec;
    fs::remove(req.stateDir / stale, ec);
    if (ec) return internalError("cannot remove " + (req.stateDir / stale).string() + ": " + ec.message());
  }
  return std::vector<fs::path>{ca};
}

Status apidIdentityConfig(const config::MachineConfig& cfg, const ApidIdentityRequest& req,
                          contracts::ApidConfig& apid) {
  const fs::path& dir = req.stateDir;
  apid.tls = {.key = dir / kApidServerKeyFile, .cert = dir / kApidServerCertFile};
  apid.acceptedCas = dir / kApidCaFile;
  contracts::IdentityConfig identity{.trustdSocket = {}, .joinEndpoints = {}, .joinToken = {},
                                     .sans = servingSans(cfg, req)};
  if (cfg.type == config::MachineType::kControlPlane) {
    apid.impersonator = contracts::KeyPairFiles{.key = dir / kApidImpersonatorKeyFile,
                                                .cert = dir / kApidImpersonatorCertFile};
    identity.trustdSocket = req.trustdSocket;
    apid.join = contracts::JoinListenerConfig{.listen = hostPort(req.nodeAddress, req.joinPort),
                                              .trustdSocket = req.trustdSocket};
  } else {
    auto endpoint = config::parseEndpoint(cfg.controlPlaneEndpoint);
    if (!endpoint.ok()) {
      return invalidArgument("apid identity: a worker joins through cluster.controlPlane.endpoint, which is unusable: " +
                             endpoint.status().message());
    }
    identity.joinEndpoints = {hostPort(endpoint->host, req.joinPort)};
    identity.joinToken = cfg.token;  // rewriteServiceTrust writes it again
  }
  apid.identity = std::move(identity);
  return Status::ok();
}

namespace {

// A worker's apid joins again with the new machine token.
Result<bool> rewriteApidJoinToken(const config::MachineConfig& cfg, const std::filesystem::path& apidConfig) {
  KEEL_ASSIGN_OR_RETURN(auto apid, contracts::readApidConfigFile(apidConfig));
  if (!apid.identity || apid.identity->joinEndpoints.empty() || apid.identity->joinToken == cfg.token) return false;
  apid.identity->joinToken = cfg.token;
  KEEL_RETURN_IF_ERROR(
      config::writePrivateFile(apidConfig, contracts::serializeApidConfig(apid), config::Overwrite::kYes));
  return true;
}

}  // namespace

Result<bool> rewriteServiceTrust(const config::MachineConfig& cfg, const std::filesystem::path& serviceConfig) {
  if (cfg.type != config::MachineType::kControlPlane) return rewriteApidJoinToken(cfg, serviceConfig);
  KEEL_ASSIGN_OR_RETURN(const std::string text, config::readPrivateFile(serviceConfig, "trustd's config"));
  auto trustd = contracts::parseTrustdConfig(text);
  if (!trustd.ok()) return trustd.status().withContext(serviceConfig.string());
  const contracts::TrustdConfig before = *trustd;
  setTrustdCa(cfg, *trustd);
  if (*trustd == before) return false;
  KEEL_RETURN_IF_ERROR(
      config::writePrivateFile(serviceConfig, contracts::serializeTrustdConfig(*trustd), config::Overwrite::kYes));
  return true;
}

Result<bool> rewriteApidCaBundle(const config::MachineConfig& cfg, const std::filesystem::path& stateDir,
                                 std::optional<std::pair<uid_t, gid_t>> owner) {
  const fs::path file = stateDir / kApidCaFile;
  const std::string wanted = config::caBundlePem(cfg.ca);
  if (auto have = config::readPrivateFile(file, "apid's CA bundle"); have.ok() && *have == wanted) return false;
  const fs::path next = stateDir / (std::string(".") + kApidCaFile + ".next");
  KEEL_RETURN_IF_ERROR(config::writePrivateFile(next, wanted, config::Overwrite::kYes));
  // apid may write in its state directory: lchown, so a link it put there changes nothing else.
  if (owner && lchown(next.c_str(), owner->first, owner->second) != 0) {
    return internalError(fmt::format("cannot give {} to apid: {}", next.string(), errnoText(errno)));
  }
  if (rename(next.c_str(), file.c_str()) != 0) {
    return internalError(fmt::format("cannot replace {}: {}", file.string(), errnoText(errno)));
  }
  return true;
}

std::string issuerFingerprint(const std::filesystem::path& certFile, const config::CaPem& ca) {
  auto pem = config::readPrivateFile(certFile, "apid's certificate");
  if (!pem.ok()) return "";
  auto chain = pki::Certificate::bundleFromPem(*pem);
  if (!chain.ok()) return "";
  std::vector<std::string> candidates = ca.accepted;
  candidates.insert(candidates.begin(), ca.crt);
  for (const auto& candidate : candidates) {
    auto cert = pki::Certificate::fromPem(candidate);
    if (cert.ok() && chain->front().isSignedBy(*cert)) return cert->fingerprintSha256();
  }
  return "";
}

Status trustdConfig(const config::MachineConfig& cfg, const ApidIdentityRequest& req,
                    const std::vector<uid_t>& allowedUids, contracts::TrustdConfig& trustd) {
  trustd.hostname = req.hostname;
  trustd.clusterName = cfg.clusterName;
  trustd.apiEndpoint = hostPort(req.nodeAddress, req.apiPort);
  setTrustdCa(cfg, trustd);
  trustd.certSans = cfg.certSans;
  trustd.allowedUids = allowedUids;
  trustd.joinExtraSans = cfg.trustd.joinExtraSans;
  if (cfg.trustd.nodeCertTtl) trustd.nodeCertTtl = *cfg.trustd.nodeCertTtl;
  if (cfg.trustd.joinIpv6PrefixBits) trustd.joinIpv6PrefixBits = *cfg.trustd.joinIpv6PrefixBits;
  if (cfg.trustd.joinRatePerMinute) {
    trustd.joinRatePerMinute = *cfg.trustd.joinRatePerMinute;
    trustd.joinBurst = std::max(10, *cfg.trustd.joinRatePerMinute);
  }
  if (cfg.trustd.clientCertMaxTtl) {
    trustd.clientCertMaxTtl = *cfg.trustd.clientCertMaxTtl;
    trustd.clientCertDefaultTtl = std::min<std::chrono::seconds>(*cfg.trustd.clientCertMaxTtl,
                                                                std::chrono::seconds(30LL * 24 * 3600));
  }
  return Status::ok();
}

}  // namespace keel::machined
