#include "keel/contracts/apid_config.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "keel/config/endpoint.h"
#include "keel/config/file_io.h"
#include "keel/config/json_fields.h"

namespace keel::contracts {

namespace {

using config::fieldError;
using config::ObjectReader;

Result<std::filesystem::path> absolutePath(ObjectReader& r, std::string_view key) {
  auto v = r.requiredString(key);
  if (!v.ok()) return v.status();
  if (v->empty() || v->front() != '/') return fieldError(r.pathOf(key), "expected an absolute path, found '" + *v + "'");
  return std::filesystem::path(*v);
}

Result<KeyPairFiles> readPair(ObjectReader& r) {
  KeyPairFiles files;
  KEEL_ASSIGN_OR_RETURN(files.key, absolutePath(r, "key"));
  KEEL_ASSIGN_OR_RETURN(files.cert, absolutePath(r, "cert"));
  KEEL_RETURN_IF_ERROR(r.finish());
  return files;
}

Result<std::chrono::milliseconds> millis(ObjectReader& r, std::string_view key, std::chrono::milliseconds fallback) {
  KEEL_ASSIGN_OR_RETURN(const int64_t v, r.boundedInteger(key, fallback.count(), 1, 24LL * 3600 * 1000));
  return std::chrono::milliseconds(v);
}

}  // namespace

Result<int> listenPort(std::string_view listen) {
  const auto colon = listen.rfind(':');
  if (colon == std::string_view::npos) return invalidArgument("expected host:port, found '" + std::string(listen) + "'");
  int port = 0;
  for (const char c : listen.substr(colon + 1)) {
    if (c < '0' || c > '9' || port > 65535) return invalidArgument("bad port in '" + std::string(listen) + "'");
    port = port * 10 + (c - '0');
  }
  if (colon + 1 == listen.size() || port > 65535) return invalidArgument("bad port in '" + std::string(listen) + "'");
  return port;
}

Result<ApidConfig> parseApidConfig(std::string_view text) {
  KEEL_ASSIGN_OR_RETURN(const auto json, config::parseJson(text));
  KEEL_ASSIGN_OR_RETURN(auto r, ObjectReader::open(json, ""));
  ApidConfig c;
  // Fields machined writes for every service; apid does not use them.
  KEEL_ASSIGN_OR_RETURN(const auto name, r.optionalString("name"));
  c.name = name.value_or("");
  KEEL_ASSIGN_OR_RETURN(const auto socket, r.optionalString("socket"));
  c.socket = socket.value_or("");
  KEEL_ASSIGN_OR_RETURN(const auto machinedSocket, r.optionalString("machinedSocket"));
  c.machinedSocket = machinedSocket.value_or("");

  KEEL_ASSIGN_OR_RETURN(c.nodeAddress, r.requiredString("nodeAddress"));
  if (!config::parseNodeName(c.nodeAddress).ok()) {
    return fieldError("nodeAddress", "expected an address or host name, found '" + c.nodeAddress + "'");
  }
  KEEL_ASSIGN_OR_RETURN(c.hostname, r.optionalString("hostname"));
  KEEL_ASSIGN_OR_RETURN(c.stateDir, absolutePath(r, "stateDir"));
  KEEL_ASSIGN_OR_RETURN(c.listen, r.requiredString("listen"));
  const auto port = listenPort(c.listen);
  if (!port.ok()) return fieldError("listen", port.status().message());
  KEEL_ASSIGN_OR_RETURN(c.backendsDir, absolutePath(r, "backendsDir"));
  {
    KEEL_ASSIGN_OR_RETURN(auto tls, r.requiredObject("tls"));
    KeyPairFiles files;
    KEEL_ASSIGN_OR_RETURN(files.key, absolutePath(tls, "key"));
    KEEL_ASSIGN_OR_RETURN(files.cert, absolutePath(tls, "cert"));
    KEEL_ASSIGN_OR_RETURN(c.acceptedCas, absolutePath(tls, "ca"));
    KEEL_RETURN_IF_ERROR(tls.finish());
    c.tls = files;
  }
  KEEL_ASSIGN_OR_RETURN(auto imp, r.optionalObject("impersonator"));
  if (imp) {
    KEEL_ASSIGN_OR_RETURN(c.impersonator, readPair(*imp));
  }
  KEEL_ASSIGN_OR_RETURN(auto identity, r.optionalObject("identity"));
  if (identity) {
    IdentityConfig id;
    KEEL_ASSIGN_OR_RETURN(const auto trustdSocket, identity->optionalString("trustdSocket"));
    KEEL_ASSIGN_OR_RETURN(id.joinEndpoints, identity->stringArray("joinEndpoints"));
    KEEL_ASSIGN_OR_RETURN(const auto token, identity->optionalString("joinToken"));
    KEEL_ASSIGN_OR_RETURN(id.sans, identity->stringArray("sans"));
    if (trustdSocket.has_value() == !id.joinEndpoints.empty()) {
      return fieldError("identity", "expected exactly one of trustdSocket (a control plane) and joinEndpoints (a worker)");
    }
    if (trustdSocket) {
      if (trustdSocket->empty() || trustdSocket->front() != '/') return fieldError("identity.trustdSocket", "expected an absolute path");
      id.trustdSocket = *trustdSocket;
      if (token) return fieldError("identity.joinToken", "only used with joinEndpoints");
    } else {
      if (!token || token->empty()) return fieldError("identity.joinToken", "required with joinEndpoints");
      id.joinToken = *token;
      for (const auto& e : id.joinEndpoints) {
        if (!listenPort(e).ok()) return fieldError("identity.joinEndpoints", "expected host:port, found '" + e + "'");
      }
    }
    KEEL_RETURN_IF_ERROR(identity->finish());
    c.identity = std::move(id);
  }
  KEEL_ASSIGN_OR_RETURN(auto join, r.optionalObject("join"));
  if (join) {
    JoinListenerConfig j;
    KEEL_ASSIGN_OR_RETURN(j.listen, join->requiredString("listen"));
    if (auto p = listenPort(j.listen); !p.ok()) return fieldError("join.listen", p.status().message());
    KEEL_ASSIGN_OR_RETURN(j.trustdSocket, absolutePath(*join, "trustdSocket"));
    KEEL_RETURN_IF_ERROR(join->finish());
    c.join = std::move(j);
  }
  KEEL_ASSIGN_OR_RETURN(const int64_t peerPort, r.boundedInteger("peerPort", *port, 1, 65535));
  c.peerPort = static_cast<int>(peerPort);
  KEEL_ASSIGN_OR_RETURN(c.forwardTimeout, millis(r, "forwardTimeoutMs", c.forwardTimeout));
  KEEL_ASSIGN_OR_RETURN(const int64_t refresh, r.boundedInteger("certRefreshSeconds", c.certRefresh.count(), 1, 3600));
  c.certRefresh = std::chrono::seconds(refresh);
  // At most 30 s: a revoked certificate is refused everywhere within 30 s.
  KEEL_ASSIGN_OR_RETURN(const int64_t revocation,
                        r.boundedInteger("revocationRefreshMs", c.revocationRefresh.count(), 100, 30'000));
  c.revocationRefresh = std::chrono::milliseconds(revocation);
  KEEL_ASSIGN_OR_RETURN(const int64_t threads, r.boundedInteger("threads", c.threads, 1, 64));
  c.threads = static_cast<int>(threads);
  KEEL_ASSIGN_OR_RETURN(auto limits, r.optionalObject("limits"));
  if (limits) {
    auto& l = *limits;
    KEEL_ASSIGN_OR_RETURN(const int64_t msg, l.boundedInteger("maxMessageBytes", c.limits.maxMessageBytes, 1024,
                                                            256 * 1024 * 1024));
    c.limits.maxMessageBytes = static_cast<int>(msg);
    KEEL_ASSIGN_OR_RETURN(const int64_t streams,
                          l.boundedInteger("maxConcurrentStreams", c.limits.maxConcurrentStreams, 1, 10000));
    c.limits.maxConcurrentStreams = static_cast<int>(streams);
    KEEL_ASSIGN_OR_RETURN(const int64_t targets, l.boundedInteger("maxTargets", c.limits.maxTargets, 1, 4096));
    c.limits.maxTargets = static_cast<int>(targets);
    KEEL_ASSIGN_OR_RETURN(c.limits.handshakeTimeout, millis(l, "handshakeTimeoutMs", c.limits.handshakeTimeout));
    KEEL_ASSIGN_OR_RETURN(c.limits.idleTimeout, millis(l, "idleTimeoutMs", c.limits.idleTimeout));
    KEEL_ASSIGN_OR_RETURN(c.limits.minPingInterval, millis(l, "minPingIntervalMs", c.limits.minPingInterval));
    KEEL_ASSIGN_OR_RETURN(c.limits.keepaliveTime, millis(l, "keepaliveTimeMs", c.limits.keepaliveTime));
    KEEL_ASSIGN_OR_RETURN(c.limits.keepaliveTimeout, millis(l, "keepaliveTimeoutMs", c.limits.keepaliveTimeout));
    KEEL_ASSIGN_OR_RETURN(const int64_t peers, l.boundedInteger("maxPeers", c.limits.maxPeers, 1, 65536));
    c.limits.maxPeers = static_cast<int>(peers);
    KEEL_ASSIGN_OR_RETURN(c.limits.peerIdle, millis(l, "peerIdleMs", c.limits.peerIdle));
    KEEL_RETURN_IF_ERROR(l.finish());
  }
  KEEL_ASSIGN_OR_RETURN(auto audit, r.optionalObject("audit"));
  if (audit) {
    KEEL_ASSIGN_OR_RETURN(const int64_t bytes, audit->boundedInteger("maxFileBytes",
                                                              static_cast<int64_t>(c.audit.maxFileBytes), 4096,
                                                              1LL << 32));
    c.audit.maxFileBytes = static_cast<std::size_t>(bytes);
    KEEL_ASSIGN_OR_RETURN(const int64_t files,
                          audit->boundedInteger("maxFiles", static_cast<int64_t>(c.audit.maxFiles), 1, 100));
    c.audit.maxFiles = static_cast<std::size_t>(files);
    KEEL_RETURN_IF_ERROR(audit->finish());
  }
  KEEL_RETURN_IF_ERROR(r.finish());
  return c;
}

namespace {

nlohmann::json pairJson(const KeyPairFiles& files) {
  return {{"key", files.key.string()}, {"cert", files.cert.string()}};
}

nlohmann::json identityJson(const IdentityConfig& id) {
  nlohmann::json json = {{"sans", id.sans}};
  if (!id.trustdSocket.empty()) {
    json["trustdSocket"] = id.trustdSocket.string();
  } else {
    json["joinEndpoints"] = id.joinEndpoints;
    json["joinToken"] = id.joinToken;
  }
  return json;
}

nlohmann::json limitsJson(const Limits& l) {
  return {{"maxMessageBytes", l.maxMessageBytes},
          {"maxConcurrentStreams", l.maxConcurrentStreams},
          {"maxTargets", l.maxTargets},
          {"handshakeTimeoutMs", l.handshakeTimeout.count()},
          {"idleTimeoutMs", l.idleTimeout.count()},
          {"minPingIntervalMs", l.minPingInterval.count()},
          {"keepaliveTimeMs", l.keepaliveTime.count()},
          {"keepaliveTimeoutMs", l.keepaliveTimeout.count()},
          {"maxPeers", l.maxPeers},
          {"peerIdleMs", l.peerIdle.count()}};
}

}  // namespace

std::string serializeApidConfig(const ApidConfig& c) {
  nlohmann::json json = {{"nodeAddress", c.nodeAddress},
                         {"stateDir", c.stateDir.string()},
                         {"listen", c.listen},
                         {"backendsDir", c.backendsDir.string()},
                         {"tls", {{"key", c.tls.key.string()}, {"cert", c.tls.cert.string()},
                                  {"ca", c.acceptedCas.string()}}},
                         {"forwardTimeoutMs", c.forwardTimeout.count()},
                         {"certRefreshSeconds", c.certRefresh.count()},
                         {"revocationRefreshMs", c.revocationRefresh.count()},
                         {"threads", c.threads},
                         {"limits", limitsJson(c.limits)},
                         {"audit", {{"maxFileBytes", c.audit.maxFileBytes}, {"maxFiles", c.audit.maxFiles}}}};
  if (!c.name.empty()) json["name"] = c.name;
  if (!c.socket.empty()) json["socket"] = c.socket;
  if (!c.machinedSocket.empty()) json["machinedSocket"] = c.machinedSocket;
  if (c.hostname) json["hostname"] = *c.hostname;
  if (c.impersonator) json["impersonator"] = pairJson(*c.impersonator);
  if (c.identity) json["identity"] = identityJson(*c.identity);
  if (c.join) json["join"] = {{"listen", c.join->listen}, {"trustdSocket", c.join->trustdSocket.string()}};
  if (c.peerPort != 0) json["peerPort"] = c.peerPort;
  return json.dump(2) + "\n";
}

Result<ApidConfig> readApidConfigFile(const std::filesystem::path& path) {
  return config::readPrivateDocument(path, "apid config", parseApidConfig);
}

}  // namespace keel::contracts
