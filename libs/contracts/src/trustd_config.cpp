#include "keel/contracts/trustd_config.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "keel/config/endpoint.h"
#include "keel/config/file_io.h"
#include "keel/config/json_fields.h"

namespace keel::contracts {

namespace {

using config::fieldError;
using config::ObjectReader;

Result<std::vector<uid_t>> uids(ObjectReader& r, std::string_view key) {
  std::vector<uid_t> out;
  const auto* value = r.field(key);
  if (value == nullptr || value->is_null()) return out;
  if (!value->is_array()) return fieldError(r.pathOf(key), "expected an array of uids");
  for (const auto& v : *value) {
    if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > 0xFFFFFFFELL) {
      return fieldError(r.pathOf(key), "expected uids (integers from 0), found " + v.dump());
    }
    out.push_back(static_cast<uid_t>(v.get<int64_t>()));
  }
  return out;
}

constexpr int64_t kDay = 24 * 3600;

}  // namespace

Result<TrustdConfig> parseTrustdConfig(std::string_view text) {
  KEEL_ASSIGN_OR_RETURN(const auto json, config::parseJson(text));
  KEEL_ASSIGN_OR_RETURN(auto r, ObjectReader::open(json, ""));
  TrustdConfig c;
  // Fields machined writes for every service that trustd does not use.
  KEEL_ASSIGN_OR_RETURN(const auto name, r.optionalString("name"));
  c.name = name.value_or("");
  KEEL_ASSIGN_OR_RETURN(const auto stateDir, r.optionalString("stateDir"));
  c.stateDir = stateDir.value_or("");
  KEEL_ASSIGN_OR_RETURN(const auto machinedSocket, r.optionalString("machinedSocket"));
  c.machinedSocket = machinedSocket.value_or("");
  std::string socketPath;
  KEEL_ASSIGN_OR_RETURN(socketPath, r.requiredString("socket"));
  if (!socketPath.starts_with('/'))
    return fieldError("socket", "expected an absolute path, found '" + socketPath + "'");
  c.socket = socketPath;
  KEEL_ASSIGN_OR_RETURN(c.nodeAddress, r.requiredString("nodeAddress"));
  if (!config::parseNodeName(c.nodeAddress).ok()) {
    return fieldError("nodeAddress", "expected an address or host name, found '" + c.nodeAddress + "'");
  }
  KEEL_ASSIGN_OR_RETURN(const auto hostname, r.optionalString("hostname"));
  c.hostname = hostname.value_or("");
  KEEL_ASSIGN_OR_RETURN(c.clusterName, r.requiredString("clusterName"));
  KEEL_ASSIGN_OR_RETURN(c.apiEndpoint, r.requiredString("apiEndpoint"));
  if (auto e = config::parseEndpoint(c.apiEndpoint); !e.ok())
    return fieldError("apiEndpoint", e.status().message());

  KEEL_ASSIGN_OR_RETURN(auto ca, r.requiredObject("ca"));
  KEEL_ASSIGN_OR_RETURN(c.caCertPem, ca.requiredString("crt"));
  KEEL_ASSIGN_OR_RETURN(c.caKeyPem, ca.requiredString("key"));
  KEEL_ASSIGN_OR_RETURN(const auto bundle, ca.optionalString("bundle"));
  c.caBundlePem = bundle.value_or(c.caCertPem);
  KEEL_RETURN_IF_ERROR(ca.finish());

  KEEL_ASSIGN_OR_RETURN(c.joinTokens, r.stringArray("joinTokens"));
  KEEL_ASSIGN_OR_RETURN(c.certSans, r.stringArray("certSans"));
  KEEL_ASSIGN_OR_RETURN(c.allowedUids, uids(r, "allowedUids"));
  if (c.allowedUids.empty()) return fieldError("allowedUids", "expected at least one uid (apid's)");

  KEEL_ASSIGN_OR_RETURN(auto join, r.optionalObject("join"));
  if (join) {
    KEEL_ASSIGN_OR_RETURN(const int64_t ttl,
                          join->boundedInteger("ttlSeconds", c.nodeCertTtl.count(), 10, 365 * kDay));
    c.nodeCertTtl = std::chrono::seconds(ttl);
    KEEL_ASSIGN_OR_RETURN(c.joinExtraSans, join->stringArray("extraSans"));
    KEEL_ASSIGN_OR_RETURN(const int64_t burst, join->boundedInteger("burst", c.joinBurst, 1, 10000));
    KEEL_ASSIGN_OR_RETURN(const int64_t rate,
                          join->boundedInteger("ratePerMinute", c.joinRatePerMinute, 1, 600000));
    c.joinBurst = static_cast<int>(burst);
    c.joinRatePerMinute = static_cast<int>(rate);
    KEEL_ASSIGN_OR_RETURN(const int64_t prefix, join->boundedInteger("ipv6PrefixBits", c.joinIpv6PrefixBits, 32, 128));
    c.joinIpv6PrefixBits = static_cast<int>(prefix);
    KEEL_RETURN_IF_ERROR(join->finish());
  }
  KEEL_ASSIGN_OR_RETURN(const auto revocationFile, r.optionalString("revocationFile"));
  if (revocationFile) {
    if (revocationFile->empty() || (*revocationFile)[0] != '/') {
      return fieldError("revocationFile", "expected an absolute path");
    }
    c.revocationFile = *revocationFile;
  }
  KEEL_ASSIGN_OR_RETURN(auto client, r.optionalObject("client"));
  if (client) {
    KEEL_ASSIGN_OR_RETURN(
        const int64_t max,
        client->boundedInteger("maxTtlSeconds", c.clientCertMaxTtl.count(), 10, 10 * 365 * kDay));
    KEEL_ASSIGN_OR_RETURN(
        const int64_t def,
        client->boundedInteger("defaultTtlSeconds", std::min<int64_t>(c.clientCertDefaultTtl.count(), max),
                               10, max));
    c.clientCertMaxTtl = std::chrono::seconds(max);
    c.clientCertDefaultTtl = std::chrono::seconds(def);
    KEEL_RETURN_IF_ERROR(client->finish());
  }
  KEEL_RETURN_IF_ERROR(r.finish());
  return c;
}

Result<TrustdConfig> readTrustdConfigFile(const std::filesystem::path& path) {
  KEEL_ASSIGN_OR_RETURN(auto c, config::readPrivateDocument(path, "it holds the OS CA key", parseTrustdConfig));
  if (c.revocationFile.empty()) c.revocationFile = path.parent_path() / "revocations.json";
  return c;
}

std::string serializeTrustdConfig(const TrustdConfig& c) {
  nlohmann::json json = {
      {"socket", c.socket.string()},
      {"nodeAddress", c.nodeAddress},
      {"clusterName", c.clusterName},
      {"apiEndpoint", c.apiEndpoint},
      {"ca", {{"crt", c.caCertPem}, {"key", c.caKeyPem}, {"bundle", c.caBundlePem}}},
      {"joinTokens", c.joinTokens},
      {"certSans", c.certSans},
      {"allowedUids", c.allowedUids},
      {"join",
       {{"ttlSeconds", c.nodeCertTtl.count()},
        {"extraSans", c.joinExtraSans},
        {"burst", c.joinBurst},
        {"ratePerMinute", c.joinRatePerMinute},
        {"ipv6PrefixBits", c.joinIpv6PrefixBits}}},
      {"client",
       {{"maxTtlSeconds", c.clientCertMaxTtl.count()}, {"defaultTtlSeconds", c.clientCertDefaultTtl.count()}}}};
  if (!c.name.empty()) json["name"] = c.name;
  if (!c.stateDir.empty()) json["stateDir"] = c.stateDir;
  if (!c.machinedSocket.empty()) json["machinedSocket"] = c.machinedSocket;
  if (!c.hostname.empty()) json["hostname"] = c.hostname;
  if (!c.revocationFile.empty()) json["revocationFile"] = c.revocationFile.string();
  return json.dump(2) + "\n";
}

}  // namespace keel::contracts
