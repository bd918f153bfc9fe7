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

// trustd's CA: the issuing one with its key, and the bundle it hands out and accepts
// certificates of (the issuing CA first, then those accepted while a rotation runs).
nlohmann::json trustdCa(const config::MachineConfig& cfg) {
  return {{"crt", cfg.ca.crt}, {"key", cfg.ca.key}, {"bundle", config::caBundlePem(cfg.ca)}};
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
  KEEL_ASSIGN_OR_RETURN(const std::string text, config::readPrivateFile(serviceConfig, "a service's config"));
  auto json = nlohmann::json::parse(text, nullptr, false);
  if (json.is_discarded() || !json.is_object()) {
    return internalError(serviceConfig.string() + " is not the JSON object machined wrote");
  }
  const nlohmann::json before = json;
  json[kTrustdJoinTokensKey] = config::acceptedJoinTokens(cfg);
  json["ca"] = trustdCa(cfg);
  if (json == before) return false;
  KEEL_RETURN_IF_ERROR(config::writePrivateFile(serviceConfig, json.dump(2) + "\n", config::Overwrite::kYes));
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

nlohmann::json trustdConfig(const config::MachineConfig& cfg, const ApidIdentityRequest& req,
                            const std::vector<uid_t>& allowedUids) {
  const std::vector<std::string> tokens = config::acceptedJoinTokens(cfg);
  nlohmann::json join = {{"extraSans", cfg.trustd.joinExtraSans}};
  if (cfg.trustd.nodeCertTtl) join["ttlSeconds"] = cfg.trustd.nodeCertTtl->count();
  if (cfg.trustd.joinIpv6PrefixBits) join["ipv6PrefixBits"] = *cfg.trustd.joinIpv6PrefixBits;
  if (cfg.trustd.joinRatePerMinute) {
    join["ratePerMinute"] = *cfg.trustd.joinRatePerMinute;
    join["burst"] = std::max(10, *cfg.trustd.joinRatePerMinute);
  }
  nlohmann::json client = nlohmann::json::object();
  if (cfg.trustd.clientCertMaxTtl) {
    client["maxTtlSeconds"] = cfg.trustd.clientCertMaxTtl->count();
    client["defaultTtlSeconds"] = std::min<int64_t>(cfg.trustd.clientCertMaxTtl->count(), 30LL * 24 * 3600);
  }
  return {{"hostname", req.hostname},
          {"clusterName", cfg.clusterName},
          {"apiEndpoint", hostPort(req.nodeAddress, req.apiPort)},
          {"ca", trustdCa(cfg)},
          {kTrustdJoinTokensKey, tokens},
          {"certSans", cfg.certSans},
          {"allowedUids", allowedUids},
          {"join", join},
          {"client", client}};
}

}  // namespace keel::machined
