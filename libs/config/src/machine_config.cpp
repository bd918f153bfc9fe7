#include "keel/config/machine_config.h"
#include "keel/config/machine_network.h"

#include <fmt/format.h>

#include <filesystem>
#include <set>

#include <nlohmann/json.hpp>

#include "keel/config/duration.h"
#include "keel/config/json_fields.h"
#include "keel/config/endpoint.h"
#include "keel/pki/pki.h"
#include "secret_fields.h"

namespace keel::config {
namespace {


constexpr std::string_view kWorkerRefusal = "not allowed in a worker config (control-plane secret)";
constexpr std::string_view kWorkerKeyRefusal = "a worker config must never contain a CA key";

nlohmann::ordered_json caJson(const CaPem& ca) {
  nlohmann::ordered_json j = {{"crt", ca.crt}};
  if (!ca.key.empty()) j["key"] = ca.key;
  if (!ca.accepted.empty()) j["accepted"] = ca.accepted;
  return j;
}

// Reads {crt, key}; `keyAllowed` false refuses a key by name.
Result<CaPem> readCa(ObjectReader& parent, std::string_view name, bool keyAllowed) {
  KEEL_ASSIGN_OR_RETURN(auto obj, parent.requiredObject(name));
  CaPem ca;
  KEEL_ASSIGN_OR_RETURN(ca.crt, obj.requiredString("crt"));
  if (keyAllowed) {
    KEEL_ASSIGN_OR_RETURN(ca.key, obj.requiredString("key"));
  } else {
    KEEL_RETURN_IF_ERROR(obj.refuse("key", kWorkerKeyRefusal));
  }
  KEEL_ASSIGN_OR_RETURN(ca.accepted, obj.stringArray("accepted"));
  KEEL_RETURN_IF_ERROR(obj.finish());
  return ca;
}

Status checkCa(const CaPem& ca, std::string_view path, bool keyRequired, bool isWorker) {
  const std::string crtPath = fmt::format("{}.crt", path);
  const std::string keyPath = fmt::format("{}.key", path);
  if (isWorker && !ca.key.empty()) return fieldError(keyPath, kWorkerKeyRefusal);
  if (keyRequired && ca.key.empty()) return fieldError(keyPath, "missing (a control-plane config holds the CA key)");
  KEEL_RETURN_IF_ERROR(detail::checkCaPem(ca.crt, ca.key, crtPath, keyPath));
  return detail::checkAcceptedCas(ca, path);
}

Status checkSan(std::string_view path, std::string_view san) {
  if (isIpAddress(san) || isValidHostName(san)) return Status::ok();
  return fieldError(path, fmt::format("expected an IP address or a DNS name, found '{}'", san));
}

// machine.network.interfaces: names the kernel accepts, IPv4 addresses with a prefix.
Status checkInterfaces(const std::vector<NetworkInterface>& interfaces) {
  for (size_t i = 0; i < interfaces.size(); ++i) {
    const auto& itf = interfaces[i];
    const std::string at = fmt::format("machine.network.interfaces[{}]", i);
    // An interface name is at most 15 bytes (IFNAMSIZ) and never holds '/' or spaces.
    const bool nameOk = !itf.name.empty() && itf.name.size() <= 15 &&
                        itf.name.find_first_of("/ \t\n:") == std::string::npos && itf.name != "." &&
                        itf.name != "..";
    if (!nameOk) return fieldError(at + ".name", fmt::format("expected an interface name (1-15 characters, no '/', ':' or space), found '{}'", itf.name));
    if (!parseIpv4Cidr(itf.address)) {
      return fieldError(at + ".address", fmt::format("expected an IPv4 address with its prefix length (10.0.2.15/24), found '{}'", itf.address));
    }
    if (itf.gateway && !parseIpv4Cidr(*itf.gateway + "/32")) {
      return fieldError(at + ".gateway", fmt::format("expected an IPv4 address, found '{}'", *itf.gateway));
    }
    for (size_t j = 0; j < i; ++j) {
      if (interfaces[j].name == itf.name) return fieldError(at + ".name", fmt::format("interface '{}' is listed twice", itf.name));
    }
  }
  return Status::ok();
}

// Why a machine config's file is private (readPrivateDocument), whichever part is read.
constexpr std::string_view kMachineConfigSecrets = "it holds the join token and keys";

Status checkNetwork(const std::optional<std::string>& hostname, const std::vector<NetworkInterface>& interfaces) {
  KEEL_RETURN_IF_ERROR(checkInterfaces(interfaces));
  if (hostname && !isValidHostName(*hostname)) {
    return fieldError("machine.network.hostname", fmt::format("expected a valid host name, found '{}'", *hostname));
  }
  return Status::ok();
}

// machine.network, read (not validated) from the machine object.
Result<MachineNetwork> readNetwork(ObjectReader& machine) {
  MachineNetwork out;
  KEEL_ASSIGN_OR_RETURN(auto network, machine.optionalObject("network"));
  if (!network) return out;
  KEEL_ASSIGN_OR_RETURN(out.hostname, network->optionalString("hostname"));
  KEEL_ASSIGN_OR_RETURN(auto interfaces, network->objectArray("interfaces"));
  for (auto& itf : interfaces) {
    NetworkInterface n;
    KEEL_ASSIGN_OR_RETURN(n.name, itf.requiredString("name"));
    KEEL_ASSIGN_OR_RETURN(n.address, itf.requiredString("address"));
    KEEL_ASSIGN_OR_RETURN(n.gateway, itf.optionalString("gateway"));
    KEEL_RETURN_IF_ERROR(itf.finish());
    out.interfaces.push_back(std::move(n));
  }
  KEEL_RETURN_IF_ERROR(network->finish());
  return out;
}

}  // namespace

bool isValidServiceName(std::string_view name) {
  if (name.empty() || name.size() > 63) return false;
  const auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  if (!alnum(name.front())) return false;
  for (const char c : name) {
    if (!alnum(c) && c != '.' && c != '_' && c != '-') return false;
  }
  return true;
}

bool isBuiltinServiceName(std::string_view name) {
  return name == "machined" || name == "apid" || name == "trustd";
}

std::string_view machineTypeName(MachineType type) {
  return type == MachineType::kControlPlane ? "controlplane" : "worker";
}

Status validateClusterName(std::string_view name) {
  const auto bad = [&](std::string_view why) {
    return invalidArgument(fmt::format("invalid cluster name '{}': {} (expected 1-63 characters of a-z, 0-9, '-' "
                                       "and '.', starting and ending with a letter or digit)",
                                       name, why));
  };
  if (name.empty()) return bad("empty");
  if (name.size() > 63) return bad("too long");
  for (const char c : name) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.')) {
      return bad(fmt::format("unexpected character '{}'", c));
    }
  }
  const auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  if (!alnum(name.front()) || !alnum(name.back())) return bad("must start and end with a letter or digit");
  return Status::ok();
}

std::optional<Ipv4Cidr> parseIpv4Cidr(std::string_view text) {
  const size_t slash = text.find('/');
  if (slash == std::string_view::npos) return std::nullopt;
  // One decimal number in [0, max], without sign or leading zero.
  const auto number = [](std::string_view s, int max) -> std::optional<int> {
    if (s.empty() || s.size() > 3 || (s.size() > 1 && s[0] == '0')) return std::nullopt;
    int v = 0;
    for (const char ch : s) {
      if (ch < '0' || ch > '9') return std::nullopt;
      v = v * 10 + (ch - '0');
    }
    if (v > max) return std::nullopt;
    return v;
  };
  Ipv4Cidr out;
  std::string_view rest = text.substr(0, slash);
  for (int part = 0; part < 4; ++part) {
    const size_t dot = rest.find('.');
    if ((part < 3) != (dot != std::string_view::npos)) return std::nullopt;
    const auto v = number(rest.substr(0, dot), 255);
    if (!v) return std::nullopt;
    out.address = (out.address << 8) | static_cast<uint32_t>(*v);
    rest = dot == std::string_view::npos ? std::string_view() : rest.substr(dot + 1);
  }
  const auto prefix = number(text.substr(slash + 1), 32);
  if (!prefix) return std::nullopt;
  out.prefixLength = *prefix;
  return out;
}

std::string serializeMachineConfig(const MachineConfig& c) {
  nlohmann::ordered_json machine = {{"type", machineTypeName(c.type)}, {"token", c.token}, {"ca", caJson(c.ca)}};
  machine["certSANs"] = c.certSans;
  if (c.hostname || !c.interfaces.empty()) {
    nlohmann::ordered_json network = nlohmann::ordered_json::object();
    if (c.hostname) network["hostname"] = *c.hostname;
    if (!c.interfaces.empty()) {
      nlohmann::ordered_json list = nlohmann::ordered_json::array();
      for (const auto& i : c.interfaces) {
        nlohmann::ordered_json j = {{"name", i.name}, {"address", i.address}};
        if (i.gateway) j["gateway"] = *i.gateway;
        list.push_back(std::move(j));
      }
      network["interfaces"] = std::move(list);
    }
    machine["network"] = std::move(network);
  }
  if (!c.allowedFileRoots.empty()) machine["files"] = {{"allowedRoots", c.allowedFileRoots}};
  if (c.imageSigningKey) machine["upgrade"] = {{"publicKey", *c.imageSigningKey}};
  if (!c.extensions.empty()) {
    nlohmann::ordered_json exts = nlohmann::ordered_json::array();
    for (const auto& e : c.extensions) {
      nlohmann::ordered_json j = {{"name", e.name}, {"command", e.command}};
      if (!e.args.empty()) j["args"] = e.args;
      if (!e.dependsOn.empty()) j["dependsOn"] = e.dependsOn;
      exts.push_back(std::move(j));
    }
    machine["extensions"] = std::move(exts);
  }
  if (!c.backends.empty()) machine["backends"] = c.backends;
  const auto& t = c.trustd;
  if (t != TrustdSettings{}) {
    nlohmann::ordered_json trustd = nlohmann::ordered_json::object();
    if (t.nodeCertTtl) trustd["nodeCertTtl"] = formatDuration(*t.nodeCertTtl);
    if (t.clientCertMaxTtl) trustd["clientCertMaxTtl"] = formatDuration(*t.clientCertMaxTtl);
    if (!t.joinExtraSans.empty()) trustd["joinExtraSans"] = t.joinExtraSans;
    if (t.joinRatePerMinute) trustd["joinRatePerMinute"] = *t.joinRatePerMinute;
    if (t.joinIpv6PrefixBits) trustd["joinIpv6PrefixBits"] = *t.joinIpv6PrefixBits;
    if (!t.acceptedTokens.empty()) trustd["acceptedTokens"] = t.acceptedTokens;
    machine["trustd"] = std::move(trustd);
  }

  nlohmann::ordered_json cluster = {{"name", c.clusterName}, {"id", c.clusterId}};
  if (!c.clusterSecret.empty()) cluster["secret"] = c.clusterSecret;
  cluster["controlPlane"] = {{"endpoint", c.controlPlaneEndpoint}};
  if (!c.bootstrapToken.empty()) cluster["token"] = c.bootstrapToken;
  if (!c.secretboxKey.empty()) cluster["secretboxEncryptionSecret"] = c.secretboxKey;
  cluster["ca"] = caJson(c.kubernetesCa);
  if (c.aggregatorCa) cluster["aggregatorCA"] = caJson(*c.aggregatorCa);
  if (!c.serviceAccountKey.empty()) cluster["serviceAccount"] = {{"key", c.serviceAccountKey}};
  if (c.etcdCa) cluster["etcd"] = {{"ca", caJson(*c.etcdCa)}};

  const nlohmann::ordered_json doc = {{"version", kMachineConfigVersion}, {"machine", machine}, {"cluster", cluster}};
  return doc.dump(2) + "\n";
}

Status validateMachineConfig(const MachineConfig& c) {
  const bool cp = c.type == MachineType::kControlPlane;
  const bool worker = !cp;
  KEEL_RETURN_IF_ERROR(detail::checkToken("machine.token", c.token));
  KEEL_RETURN_IF_ERROR(checkNetwork(c.hostname, c.interfaces));
  KEEL_RETURN_IF_ERROR(checkCa(c.ca, "machine.ca", cp, worker));
  for (size_t i = 0; i < c.certSans.size(); ++i) {
    KEEL_RETURN_IF_ERROR(checkSan(fmt::format("machine.certSANs[{}]", i), c.certSans[i]));
  }
  for (size_t i = 0; i < c.trustd.acceptedTokens.size(); ++i) {
    KEEL_RETURN_IF_ERROR(detail::checkToken(fmt::format("machine.trustd.acceptedTokens[{}]", i), c.trustd.acceptedTokens[i]));
  }
  if (c.imageSigningKey) {
    if (const Status key = pki::checkDigestSigningKey(*c.imageSigningKey); !key.isOk()) {
      return fieldError("machine.upgrade.publicKey", key.message());
    }
  }
  for (size_t i = 0; i < c.allowedFileRoots.size(); ++i) {
    const std::filesystem::path root(c.allowedFileRoots[i]);
    bool dotdot = false;
    for (const auto& part : root) dotdot |= part == "..";
    if (!root.is_absolute() || dotdot) {
      return fieldError(fmt::format("machine.files.allowedRoots[{}]", i),
                        fmt::format("expected an absolute path without '..', found '{}'", c.allowedFileRoots[i]));
    }
  }
  std::set<std::string> names;
  for (size_t i = 0; i < c.extensions.size(); ++i) {
    const auto& e = c.extensions[i];
    const std::string path = fmt::format("machine.extensions[{}]", i);
    if (!isValidServiceName(e.name)) {
      return fieldError(path + ".name",
                        fmt::format("expected 1-63 characters of a-z, 0-9, '.', '_', '-' starting with a letter or "
                                    "digit, found '{}'", e.name));
    }
    if (isBuiltinServiceName(e.name)) {
      return fieldError(path + ".name", fmt::format("'{}' is a built-in service", e.name));
    }
    if (!names.insert(e.name).second) return fieldError(path + ".name", fmt::format("'{}' is declared twice", e.name));
    if (!std::filesystem::path(e.command).is_absolute()) {
      return fieldError(path + ".command", fmt::format("expected an absolute path, found '{}'", e.command));
    }
  }
  std::set<std::string> backends;
  for (size_t i = 0; i < c.backends.size(); ++i) {
    const auto& b = c.backends[i];
    const std::string path = fmt::format("machine.backends[{}]", i);
    if (!isValidServiceName(b)) {
      return fieldError(path, fmt::format("expected 1-63 characters of a-z, 0-9, '.', '_', '-' starting with a letter "
                                          "or digit, found '{}'", b));
    }
    if (isBuiltinServiceName(b)) return fieldError(path, fmt::format("'{}' is a built-in service", b));
    if (!backends.insert(b).second) return fieldError(path, fmt::format("'{}' is listed twice", b));
    if (names.count(b) != 0) return fieldError(path, fmt::format("'{}' is also the name of an extension", b));
  }
  for (size_t i = 0; i < c.extensions.size(); ++i) {
    for (const auto& dep : c.extensions[i].dependsOn) {
      if (names.count(dep) == 0 || dep == c.extensions[i].name) {
        return fieldError(fmt::format("machine.extensions[{}].dependsOn", i),
                          fmt::format("'{}' is not another declared extension", dep));
      }
    }
  }

  if (auto s = validateClusterName(c.clusterName); !s.isOk()) return fieldError("cluster.name", s.message());
  KEEL_RETURN_IF_ERROR(detail::checkSecret("cluster.id", c.clusterId));
  if (auto ep = parseHttpsUrl(c.controlPlaneEndpoint); !ep.ok()) {
    return fieldError("cluster.controlPlane.endpoint", ep.status().message());
  }
  KEEL_RETURN_IF_ERROR(checkCa(c.kubernetesCa, "cluster.ca", cp, worker));

  if (worker) {
    if (!c.clusterSecret.empty()) return fieldError("cluster.secret", kWorkerRefusal);
    if (!c.bootstrapToken.empty()) return fieldError("cluster.token", kWorkerRefusal);
    if (!c.secretboxKey.empty()) return fieldError("cluster.secretboxEncryptionSecret", kWorkerRefusal);
    if (c.aggregatorCa) return fieldError("cluster.aggregatorCA", kWorkerRefusal);
    if (!c.serviceAccountKey.empty()) return fieldError("cluster.serviceAccount", kWorkerRefusal);
    if (c.etcdCa) return fieldError("cluster.etcd", kWorkerRefusal);
    return Status::ok();
  }
  KEEL_RETURN_IF_ERROR(detail::checkSecret("cluster.secret", c.clusterSecret));
  KEEL_RETURN_IF_ERROR(detail::checkToken("cluster.token", c.bootstrapToken));
  if (c.bootstrapToken == c.token) return fieldError("cluster.token", "equals machine.token; the two tokens must differ");
  KEEL_RETURN_IF_ERROR(detail::checkSecret("cluster.secretboxEncryptionSecret", c.secretboxKey));
  if (!c.aggregatorCa) return fieldError("cluster.aggregatorCA", "missing (required on a control plane)");
  KEEL_RETURN_IF_ERROR(checkCa(*c.aggregatorCa, "cluster.aggregatorCA", true, false));
  if (!c.etcdCa) return fieldError("cluster.etcd", "missing (required on a control plane)");
  KEEL_RETURN_IF_ERROR(checkCa(*c.etcdCa, "cluster.etcd.ca", true, false));
  auto sa = pki::PrivateKey::fromPem(c.serviceAccountKey);
  if (!sa.ok()) return fieldError("cluster.serviceAccount.key", sa.status().message());
  if (sa->type() != pki::KeyType::kEcdsaP256) {
    return fieldError("cluster.serviceAccount.key",
                      fmt::format("expected an ecdsa-p256 key, found {}", pki::keyTypeName(sa->type())));
  }
  return Status::ok();
}

Result<MachineConfig> parseMachineConfig(std::string_view text) {
  KEEL_ASSIGN_OR_RETURN(const auto json, parseJson(text));
  KEEL_ASSIGN_OR_RETURN(auto root, ObjectReader::open(json, ""));
  KEEL_RETURN_IF_ERROR(checkVersion(root, kMachineConfigVersion));
  MachineConfig c;

  KEEL_ASSIGN_OR_RETURN(auto machine, root.requiredObject("machine"));
  KEEL_ASSIGN_OR_RETURN(const std::string type, machine.requiredString("type"));
  if (type == "controlplane") {
    c.type = MachineType::kControlPlane;
  } else if (type == "worker") {
    c.type = MachineType::kWorker;
  } else {
    return fieldError(machine.pathOf("type"), fmt::format("expected 'controlplane' or 'worker', found '{}'", type));
  }
  const bool cp = c.type == MachineType::kControlPlane;
  KEEL_ASSIGN_OR_RETURN(c.token, machine.requiredString("token"));
  KEEL_ASSIGN_OR_RETURN(c.ca, readCa(machine, "ca", cp));
  KEEL_ASSIGN_OR_RETURN(c.certSans, machine.stringArray("certSANs"));
  KEEL_ASSIGN_OR_RETURN(auto network, readNetwork(machine));
  c.hostname = std::move(network.hostname);
  c.interfaces = std::move(network.interfaces);
  KEEL_ASSIGN_OR_RETURN(auto files, machine.optionalObject("files"));
  if (files) {
    KEEL_ASSIGN_OR_RETURN(c.allowedFileRoots, files->stringArray("allowedRoots"));
    KEEL_RETURN_IF_ERROR(files->finish());
  }
  KEEL_ASSIGN_OR_RETURN(auto upgrade, machine.optionalObject("upgrade"));
  if (upgrade) {
    KEEL_ASSIGN_OR_RETURN(c.imageSigningKey, upgrade->optionalString("publicKey"));
    KEEL_RETURN_IF_ERROR(upgrade->finish());
  }
  KEEL_ASSIGN_OR_RETURN(auto extensions, machine.objectArray("extensions"));
  for (auto& ext : extensions) {
    ExtensionService e;
    KEEL_ASSIGN_OR_RETURN(e.name, ext.requiredString("name"));
    KEEL_ASSIGN_OR_RETURN(e.command, ext.requiredString("command"));
    KEEL_ASSIGN_OR_RETURN(e.args, ext.stringArray("args"));
    KEEL_ASSIGN_OR_RETURN(e.dependsOn, ext.stringArray("dependsOn"));
    KEEL_RETURN_IF_ERROR(ext.finish());
    c.extensions.push_back(std::move(e));
  }
  KEEL_ASSIGN_OR_RETURN(c.backends, machine.stringArray("backends"));
  KEEL_ASSIGN_OR_RETURN(auto trustd, machine.optionalObject("trustd"));
  if (trustd) {
    if (!cp) return fieldError("machine.trustd", "only a control plane runs trustd");
    constexpr auto kMaxTtl = std::chrono::hours(24 * 365 * 10);
    for (const auto& [key, field] : {std::pair{"nodeCertTtl", &c.trustd.nodeCertTtl},
                                     std::pair{"clientCertMaxTtl", &c.trustd.clientCertMaxTtl}}) {
      KEEL_ASSIGN_OR_RETURN(const auto durationText, trustd->optionalString(key));
      if (!durationText) continue;
      auto d = parseDuration(*durationText, kMaxTtl);
      if (!d.ok()) return fieldError(trustd->pathOf(key), d.status().message());
      if (*d < std::chrono::seconds(10)) return fieldError(trustd->pathOf(key), "expected at least 10s, found " + *durationText);
      *field = *d;
    }
    KEEL_ASSIGN_OR_RETURN(c.trustd.joinExtraSans, trustd->stringArray("joinExtraSans"));
    KEEL_ASSIGN_OR_RETURN(c.trustd.acceptedTokens, trustd->stringArray("acceptedTokens"));
    KEEL_ASSIGN_OR_RETURN(const auto rate, trustd->optionalInteger("joinRatePerMinute"));
    if (rate) {
      if (*rate < 1 || *rate > 10000) {
        return fieldError(trustd->pathOf("joinRatePerMinute"), fmt::format("expected 1..10000, found {}", *rate));
      }
      c.trustd.joinRatePerMinute = static_cast<int>(*rate);
    }
    KEEL_ASSIGN_OR_RETURN(const auto prefix, trustd->optionalInteger("joinIpv6PrefixBits"));
    if (prefix) {
      if (*prefix < 32 || *prefix > 128) {
        return fieldError(trustd->pathOf("joinIpv6PrefixBits"), fmt::format("expected 32..128, found {}", *prefix));
      }
      c.trustd.joinIpv6PrefixBits = static_cast<int>(*prefix);
    }
    KEEL_RETURN_IF_ERROR(trustd->finish());
  }
  KEEL_RETURN_IF_ERROR(machine.finish());

  KEEL_ASSIGN_OR_RETURN(auto cluster, root.requiredObject("cluster"));
  KEEL_ASSIGN_OR_RETURN(c.clusterName, cluster.requiredString("name"));
  KEEL_ASSIGN_OR_RETURN(c.clusterId, cluster.requiredString("id"));
  KEEL_ASSIGN_OR_RETURN(auto controlPlane, cluster.requiredObject("controlPlane"));
  KEEL_ASSIGN_OR_RETURN(c.controlPlaneEndpoint, controlPlane.requiredString("endpoint"));
  KEEL_RETURN_IF_ERROR(controlPlane.finish());
  KEEL_ASSIGN_OR_RETURN(c.kubernetesCa, readCa(cluster, "ca", cp));
  if (cp) {
    KEEL_ASSIGN_OR_RETURN(c.clusterSecret, cluster.requiredString("secret"));
    KEEL_ASSIGN_OR_RETURN(c.bootstrapToken, cluster.requiredString("token"));
    KEEL_ASSIGN_OR_RETURN(c.secretboxKey, cluster.requiredString("secretboxEncryptionSecret"));
    KEEL_ASSIGN_OR_RETURN(c.aggregatorCa, readCa(cluster, "aggregatorCA", true));
    KEEL_ASSIGN_OR_RETURN(auto sa, cluster.requiredObject("serviceAccount"));
    KEEL_ASSIGN_OR_RETURN(c.serviceAccountKey, sa.requiredString("key"));
    KEEL_RETURN_IF_ERROR(sa.finish());
    KEEL_ASSIGN_OR_RETURN(auto etcd, cluster.requiredObject("etcd"));
    KEEL_ASSIGN_OR_RETURN(c.etcdCa, readCa(etcd, "ca", true));
    KEEL_RETURN_IF_ERROR(etcd.finish());
  } else {
    for (const std::string_view key :
         {"secret", "token", "secretboxEncryptionSecret", "aggregatorCA", "serviceAccount", "etcd"}) {
      KEEL_RETURN_IF_ERROR(cluster.refuse(key, kWorkerRefusal));
    }
  }
  KEEL_RETURN_IF_ERROR(cluster.finish());
  KEEL_RETURN_IF_ERROR(root.finish());
  KEEL_RETURN_IF_ERROR(validateMachineConfig(c));
  return c;
}

Result<MachineConfig> patchMachineConfig(const MachineConfig& config, std::string_view patch) {
  KEEL_ASSIGN_OR_RETURN(const auto patchJson, parseJson(patch));
  if (!patchJson.is_object()) return invalidArgument("a config patch must be a JSON object");
  auto doc = nlohmann::json::parse(serializeMachineConfig(config));
  doc.merge_patch(patchJson);
  return parseMachineConfig(doc.dump());
}

MachineConfig redactMachineConfig(const MachineConfig& config) {
  MachineConfig r = config;
  const auto redact = [](std::string& s) {
    if (!s.empty()) s = kRedacted;
  };
  redact(r.token);
  for (auto& t : r.trustd.acceptedTokens) redact(t);
  redact(r.ca.key);
  redact(r.clusterSecret);
  redact(r.bootstrapToken);
  redact(r.secretboxKey);
  redact(r.kubernetesCa.key);
  if (r.etcdCa) redact(r.etcdCa->key);
  if (r.aggregatorCa) redact(r.aggregatorCa->key);
  redact(r.serviceAccountKey);
  return r;
}

Status writeMachineConfigFile(const std::filesystem::path& path, const MachineConfig& config, Overwrite overwrite) {
  return writePrivateFile(path, serializeMachineConfig(config), overwrite);
}

Result<MachineConfig> readMachineConfigFile(const std::filesystem::path& path) {
  return readPrivateDocument(path, kMachineConfigSecrets, parseMachineConfig);
}

Result<MachineNetwork> parseMachineNetwork(std::string_view text) {
  KEEL_ASSIGN_OR_RETURN(const auto json, parseJson(text));
  KEEL_ASSIGN_OR_RETURN(auto root, ObjectReader::open(json, ""));
  KEEL_RETURN_IF_ERROR(checkVersion(root, kMachineConfigVersion));
  KEEL_ASSIGN_OR_RETURN(auto machine, root.requiredObject("machine"));
  KEEL_ASSIGN_OR_RETURN(auto network, readNetwork(machine));
  KEEL_RETURN_IF_ERROR(checkNetwork(network.hostname, network.interfaces));
  return network;
}

Result<MachineNetwork> readMachineNetworkFile(const std::filesystem::path& path) {
  return readPrivateDocument(path, kMachineConfigSecrets, parseMachineNetwork);
}

}  // namespace keel::config
