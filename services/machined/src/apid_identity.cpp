#include "apid_identity.h"

#include <limits.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "keel/config/endpoint.h"
#include "keel/config/file_io.h"
#include "keel/config/join_tokens.h"

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

}  // namespace

Result<std::string> nodeHostname(const config::MachineConfig& cfg) {
  if (cfg.hostname && !cfg.hostname->empty()) return *cfg.hostname;
  char name[HOST_NAME_MAX + 1] = {};
  if (gethostname(name, sizeof name - 1) != 0) {
    return internalError(std::string("gethostname: ") + std::strerror(errno));
  }
  return std::string(name);
}

Result<std::vector<fs::path>> prepareApidState(const config::MachineConfig& cfg, const ApidIdentityRequest& req) {
  if (cfg.ca.crt.empty())
    return invalidArgument("apid identity: expected the OS CA certificate in machine.ca.crt, found none");
  const fs::path ca = req.stateDir / kApidCaFile;
  KEEL_RETURN_IF_ERROR(config::writePrivateFile(ca, cfg.ca.crt, config::Overwrite::kYes));
  for (const char* stale : {kApidServerKeyFile, kApidServerCertFile, kApidImpersonatorKeyFile, kApidImpersonatorCertFile}) {
    std::error_code ec;
    fs::remove(req.stateDir / stale, ec);
    if (ec) return internalError("cannot remove " + (req.stateDir / stale).string() + ": " + ec.message());
  }
  return std::vector<fs::path>{ca};
}

Result<nlohmann::json> apidIdentityConfig(const config::MachineConfig& cfg, const ApidIdentityRequest& req) {
  const fs::path& dir = req.stateDir;
  nlohmann::json out = {{"tls",
                         {{"key", (dir / kApidServerKeyFile).string()},
                          {"cert", (dir / kApidServerCertFile).string()},
                          {"ca", (dir / kApidCaFile).string()}}}};
  nlohmann::json identity = {{"sans", servingSans(cfg, req)}};
  if (cfg.type == config::MachineType::kControlPlane) {
    out["impersonator"] = {{"key", (dir / kApidImpersonatorKeyFile).string()},
                           {"cert", (dir / kApidImpersonatorCertFile).string()}};
    identity["trustdSocket"] = req.trustdSocket.string();
    out["join"] = {{"listen", hostPort(req.nodeAddress, req.joinPort)}, {"trustdSocket", req.trustdSocket.string()}};
  } else {
    auto endpoint = config::parseEndpoint(cfg.controlPlaneEndpoint);
    if (!endpoint.ok()) {
      return invalidArgument("apid identity: a worker joins through cluster.controlPlane.endpoint, which is unusable: " +
                             endpoint.status().message());
    }
    identity["joinEndpoints"] = nlohmann::json::array({hostPort(endpoint->host, req.joinPort)});
    identity["joinToken"] = cfg.token;  // rewriteJoinTokens writes it again
  }
  out["identity"] = std::move(identity);
  return out;
}

Result<bool> rewriteJoinTokens(const config::MachineConfig& cfg, const std::filesystem::path& serviceConfig) {
  KEEL_ASSIGN_OR_RETURN(const std::string text, config::readPrivateFile(serviceConfig, "a service's config"));
  auto json = nlohmann::json::parse(text, nullptr, false);
  if (json.is_discarded() || !json.is_object()) {
    return internalError(serviceConfig.string() + " is not the JSON object machined wrote");
  }
  nlohmann::json wanted;
  nlohmann::json* field = nullptr;
  if (cfg.type == config::MachineType::kControlPlane) {
    wanted = config::acceptedJoinTokens(cfg);
    field = &json[kTrustdJoinTokensKey];
  } else {
    wanted = cfg.token;
    field = &json["identity"]["joinToken"];
  }
  if (*field == wanted) return false;
  *field = std::move(wanted);
  KEEL_RETURN_IF_ERROR(config::writePrivateFile(serviceConfig, json.dump(2) + "\n", config::Overwrite::kYes));
  return true;
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
          {"ca", {{"crt", cfg.ca.crt}, {"key", cfg.ca.key}}},
          {kTrustdJoinTokensKey, tokens},
          {"certSans", cfg.certSans},
          {"allowedUids", allowedUids},
          {"join", join},
          {"client", client}};
}

}  // namespace keel::machined
