#include "keel/config/machine_config.h"
#include "keel/config/machine_network.h"

#include <catch2/catch_test_macros.hpp>
#include <functional>
#include <nlohmann/json.hpp>

#include "keel/config/generate.h"
#include "keel/testing/testing.h"
#include "test_util.h"

using namespace keel::config;
using keel::StatusCode;
using nlohmann::json;

namespace {

const MachineConfigs& configs() {
  static const MachineConfigs c =
      generateMachineConfigs(testutil::bundle(),
                             {.clusterName = "prod", .endpoint = *parseEndpoint("10.0.0.10"), .certSans = {"cp.example"}})
          .value();
  return c;
}

std::string mutate(const MachineConfig& base, const std::function<void(json&)>& change) {
  json doc = json::parse(serializeMachineConfig(base));
  change(doc);
  return doc.dump();
}

std::string errorOf(const std::string& text) {
  auto r = parseMachineConfig(text);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == StatusCode::kInvalidArgument);
  return r.status().message();
}

bool startsWith(const std::string& s, std::string_view prefix) { return s.rfind(prefix, 0) == 0; }

}  // namespace

TEST_CASE("generated configs survive serialization unchanged") {
  for (const auto* c : {&configs().controlPlane, &configs().worker}) {
    const auto text = serializeMachineConfig(*c);
    CHECK(json::parse(text)["version"] == kMachineConfigVersion);
    auto parsed = parseMachineConfig(text);
    REQUIRE(parsed.ok());
    CHECK(*parsed == *c);
  }
}

TEST_CASE("the control plane config holds the cluster's keys and its endpoint as SAN") {
  const auto& cp = configs().controlPlane;
  CHECK(cp.type == MachineType::kControlPlane);
  CHECK(cp.controlPlaneEndpoint == "https://10.0.0.10:50000");
  CHECK(cp.certSans == std::vector<std::string>{"10.0.0.10", "cp.example"});
  CHECK_FALSE(cp.ca.key.empty());
  CHECK(cp.etcdCa.has_value());
  CHECK(cp.token == testutil::bundle().joinToken);
  CHECK(cp.bootstrapToken == testutil::bundle().bootstrapToken);
}

TEST_CASE("a worker config holds no private key and no control-plane secret") {
  const auto text = serializeMachineConfig(configs().worker);
  CHECK(text.find("PRIVATE KEY") == std::string::npos);
  CHECK(text.find(testutil::bundle().clusterSecret) == std::string::npos);
  CHECK(text.find(testutil::bundle().bootstrapToken) == std::string::npos);
  CHECK(text.find(testutil::bundle().secretboxKey) == std::string::npos);
  CHECK(text.find(testutil::bundle().joinToken) != std::string::npos);
}

TEST_CASE("a worker config with a CA key or a control-plane secret is refused by name") {
  const auto& cp = configs().controlPlane;
  const auto& w = configs().worker;
  CHECK(startsWith(errorOf(mutate(w, [&](json& d) { d["machine"]["ca"]["key"] = cp.ca.key; })),
                   "machine.ca.key: a worker config must never contain a CA key"));
  CHECK(startsWith(errorOf(mutate(w, [&](json& d) { d["cluster"]["ca"]["key"] = cp.kubernetesCa.key; })),
                   "cluster.ca.key: a worker config must never contain a CA key"));
  CHECK(startsWith(errorOf(mutate(w, [&](json& d) { d["cluster"]["secret"] = cp.clusterSecret; })),
                   "cluster.secret: not allowed in a worker config"));
  CHECK(startsWith(errorOf(mutate(w, [&](json& d) { d["cluster"]["etcd"] = json::object(); })),
                   "cluster.etcd: not allowed in a worker config"));
  MachineConfig inMemory = w;
  inMemory.ca.key = cp.ca.key;
  CHECK(startsWith(validateMachineConfig(inMemory).message(), "machine.ca.key: a worker config must never"));
}

TEST_CASE("loading a machine config names the offending field") {
  const auto& cp = configs().controlPlane;
  CHECK(startsWith(errorOf(mutate(cp, [](json& d) { d["machine"]["ca"]["key"] = "nope"; })), "machine.ca.key: "));
  CHECK(startsWith(errorOf(mutate(cp, [](json& d) { d["machine"]["ca"].erase("key"); })), "machine.ca.key: missing"));
  CHECK(startsWith(errorOf(mutate(cp, [](json& d) { d["machine"]["type"] = "master"; })),
                   "machine.type: expected 'controlplane' or 'worker', found 'master'"));
  CHECK(startsWith(errorOf(mutate(cp, [](json& d) { d["machine"]["token"] = "short"; })), "machine.token: "));
  CHECK(startsWith(errorOf(mutate(cp, [](json& d) { d["machine"]["certSans"] = json::array(); })),
                   "machine.certSans: unknown field"));
  CHECK(startsWith(errorOf(mutate(cp, [](json& d) { d["machine"]["certSANs"] = {"ok.example", "bad host"}; })),
                   "machine.certSANs[1]: expected an IP address or a DNS name"));
  CHECK(startsWith(errorOf(mutate(cp, [](json& d) { d["machine"]["network"] = {{"hostname", "-x"}}; })),
                   "machine.network.hostname: "));
  CHECK(startsWith(errorOf(mutate(cp, [](json& d) { d["machine"]["network"] = {{"hostnmae", "x"}}; })),
                   "machine.network.hostnmae: unknown field"));
  CHECK(startsWith(errorOf(mutate(cp, [](json& d) { d["cluster"]["controlPlane"]["endpoint"] = "http://x:1"; })),
                   "cluster.controlPlane.endpoint: "));
  CHECK(startsWith(errorOf(mutate(cp, [](json& d) { d["cluster"]["name"] = "Prod!"; })), "cluster.name: "));
  CHECK(startsWith(errorOf(mutate(cp, [](json& d) { d["cluster"]["etcd"]["ca"]["key"] = "x"; })),
                   "cluster.etcd.ca.key: "));
  CHECK(startsWith(errorOf(mutate(cp, [](json& d) { d["cluster"].erase("serviceAccount"); })),
                   "cluster.serviceAccount: missing"));
  CHECK(startsWith(errorOf(mutate(cp, [](json& d) { d["machine"]["trustd"] = {{"joinIpv6PrefixBits", 8}}; })),
                   "machine.trustd.joinIpv6PrefixBits: expected 32..128, found 8"));
  CHECK(startsWith(errorOf(mutate(cp, [](json& d) { d["extra"] = 1; })), "extra: unknown field"));
  CHECK(startsWith(errorOf(mutate(cp, [](json& d) { d.erase("version"); })), "version: missing"));
}

TEST_CASE("the IPv6 prefix trustd limits joins by is kept and reaches trustd's config") {
  auto cp = configs().controlPlane;
  cp.trustd.joinIpv6PrefixBits = 56;
  auto parsed = parseMachineConfig(serializeMachineConfig(cp));
  REQUIRE(parsed.ok());
  CHECK(parsed->trustd.joinIpv6PrefixBits == 56);
  CHECK(*parsed == cp);
}

TEST_CASE("an optional hostname is kept") {
  const auto text = mutate(configs().worker, [](json& d) { d["machine"]["network"] = {{"hostname", "worker-1"}}; });
  auto parsed = parseMachineConfig(text);
  REQUIRE(parsed.ok());
  CHECK(parsed->hostname == "worker-1");
  CHECK(parseMachineConfig(serializeMachineConfig(*parsed))->hostname == "worker-1");
}

TEST_CASE("network interfaces are kept and checked field by field") {
  const auto text = mutate(configs().worker, [](json& d) {
    d["machine"]["network"] = {{"interfaces", json::array({{{"name", "eth0"}, {"address", "10.0.2.15/24"},
                                                            {"gateway", "10.0.2.2"}}})}};
  });
  auto parsed = parseMachineConfig(text);
  REQUIRE(parsed.ok());
  REQUIRE(parsed->interfaces.size() == 1);
  CHECK(parsed->interfaces[0].name == "eth0");
  CHECK(parsed->interfaces[0].gateway == "10.0.2.2");
  CHECK(parseMachineConfig(serializeMachineConfig(*parsed))->interfaces == parsed->interfaces);

  const auto withInterface = [](json itf) {
    return mutate(configs().worker, [&](json& d) { d["machine"]["network"] = {{"interfaces", json::array({itf})}}; });
  };
  CHECK(startsWith(errorOf(withInterface({{"name", "eth0"}, {"address", "10.0.2.15"}})),
                   "machine.network.interfaces[0].address: expected an IPv4 address with its prefix length"));
  CHECK(startsWith(errorOf(withInterface({{"name", "eth0"}, {"address", "10.0.2.256/24"}})),
                   "machine.network.interfaces[0].address: "));
  CHECK(startsWith(errorOf(withInterface({{"name", "eth0"}, {"address", "10.0.2.1/33"}})),
                   "machine.network.interfaces[0].address: "));
  CHECK(startsWith(errorOf(withInterface({{"name", "eth0"}, {"address", "10.0.2.1/24"}, {"gateway", "x"}})),
                   "machine.network.interfaces[0].gateway: "));
  CHECK(startsWith(errorOf(withInterface({{"name", "../x"}, {"address", "10.0.2.1/24"}})),
                   "machine.network.interfaces[0].name: "));
  CHECK(startsWith(errorOf(withInterface({{"name", "eth0"}, {"address", "10.0.2.1/24"}, {"mtu", 1500}})),
                   "machine.network.interfaces[0].mtu: unknown field"));
}

// What PID 1 reads before it starts machined: the same checks of machine.network, and
// nothing else read or checked (machined refuses the rest, naming it, when it starts).
TEST_CASE("the network section alone is read with the whole config's checks for it") {
  const auto network = [](json value) {
    return mutate(configs().controlPlane, [&](json& d) { d["machine"]["network"] = value; });
  };
  const auto good = network({{"hostname", "cp-1"},
                             {"interfaces", json::array({{{"name", "eth0"}, {"address", "10.0.2.15/24"},
                                                          {"gateway", "10.0.2.2"}}})}});
  const auto parsed = parseMachineNetwork(good);
  REQUIRE(parsed.ok());
  CHECK(parsed->hostname == "cp-1");
  CHECK(parsed->interfaces == parseMachineConfig(good)->interfaces);
  CHECK(parseMachineNetwork(serializeMachineConfig(configs().worker))->interfaces.empty());

  for (const json& bad : {json{{"hostname", "-bad-"}},
                          json{{"interfaces", json::array({{{"name", "eth0"}, {"address", "10.0.2.15"}}})}},
                          json{{"interfaces", json::array({{{"name", "eth0"}, {"address", "10.0.2.15/24"},
                                                            {"mtu", 1500}}})}},
                          json{{"routes", json::array()}}}) {
    const auto text = network(bad);
    const auto whole = parseMachineConfig(text);
    const auto alone = parseMachineNetwork(text);
    REQUIRE_FALSE(whole.ok());
    REQUIRE_FALSE(alone.ok());
    CHECK(alone.status().code() == StatusCode::kInvalidArgument);
    CHECK(alone.status().message() == whole.status().message());
  }
  // Another version, or no machine object: refused as the whole config is.
  CHECK_FALSE(parseMachineNetwork(R"({"version": 99, "machine": {}})").ok());
  CHECK_FALSE(parseMachineNetwork(R"({"version": 1})").ok());
  // A broken key elsewhere is machined's to refuse, not this reader's.
  const auto brokenKey = mutate(configs().controlPlane, [](json& d) { d["machine"]["ca"]["key"] = "not a key"; });
  CHECK_FALSE(parseMachineConfig(brokenKey).ok());
  CHECK(parseMachineNetwork(brokenKey).ok());
}

TEST_CASE("IPv4 prefixes parse exactly") {
  const auto p = parseIpv4Cidr("10.0.2.15/24");
  REQUIRE(p);
  CHECK(p->address == 0x0A00020Fu);
  CHECK(p->prefixLength == 24);
  CHECK(parseIpv4Cidr("0.0.0.0/0"));
  for (const char* bad : {"", "10.0.2.15", "10.0.2/24", "10.0.2.15.1/24", "010.0.2.15/24", "10.0.2.15/", "10.0.2.15/024",
                          "a.b.c.d/1", "10.0.2.15/24x", "-1.0.0.0/8"}) {
    CHECK_FALSE(parseIpv4Cidr(bad));
  }
}

TEST_CASE("redaction hides every secret and keeps the rest") {
  const auto& cp = configs().controlPlane;
  const auto redacted = redactMachineConfig(cp);
  const auto text = serializeMachineConfig(redacted);
  CHECK(text.find("PRIVATE KEY") == std::string::npos);
  for (const auto* secret : {&cp.token, &cp.clusterSecret, &cp.bootstrapToken, &cp.secretboxKey}) {
    CHECK(text.find(*secret) == std::string::npos);
  }
  CHECK(redacted.token == kRedacted);
  CHECK(redacted.ca.key == kRedacted);
  CHECK(redacted.etcdCa->key == kRedacted);
  CHECK(redacted.aggregatorCa->key == kRedacted);
  CHECK(redacted.serviceAccountKey == kRedacted);
  CHECK(redacted.kubernetesCa.key == kRedacted);
  CHECK(redacted.ca.crt == cp.ca.crt);
  CHECK(redacted.clusterName == cp.clusterName);
  CHECK(redacted.clusterId == cp.clusterId);
  // A worker has no keys: nothing to redact must stay empty, not become "******".
  CHECK(redactMachineConfig(configs().worker).ca.key.empty());
}

TEST_CASE("machine config files are private") {
  keel::testing::TempDir dir;
  const auto path = dir / "worker.json";
  REQUIRE(writeMachineConfigFile(path, configs().worker, Overwrite::kNo).isOk());
  auto read = readMachineConfigFile(path);
  REQUIRE(read.ok());
  CHECK(*read == configs().worker);
}

TEST_CASE("cluster names are checked") {
  CHECK(validateClusterName("prod").isOk());
  CHECK(validateClusterName("a.b-c9").isOk());
  CHECK_FALSE(validateClusterName("").isOk());
  CHECK_FALSE(validateClusterName("-prod").isOk());
  CHECK_FALSE(validateClusterName("Prod").isOk());
  CHECK_FALSE(validateClusterName(std::string(64, 'a')).isOk());
}

TEST_CASE("machine.upgrade.publicKey takes a P-256 public key and names any other") {
  auto p256 = keel::pki::PrivateKey::generate(keel::pki::KeyType::kEcdsaP256);
  auto ed = keel::pki::PrivateKey::generate(keel::pki::KeyType::kEd25519);
  REQUIRE(p256.ok());
  REQUIRE(ed.ok());
  const auto text = mutate(configs().worker, [&](json& d) { d["machine"]["upgrade"] = {{"publicKey", p256->publicKeyPem()}}; });
  auto parsed = parseMachineConfig(text);
  REQUIRE(parsed.ok());
  CHECK(parsed->imageSigningKey == p256->publicKeyPem());
  CHECK(*parseMachineConfig(serializeMachineConfig(*parsed)) == *parsed);

  CHECK(startsWith(errorOf(mutate(configs().worker,
                                  [&](json& d) { d["machine"]["upgrade"] = {{"publicKey", ed->publicKeyPem()}}; })),
                   "machine.upgrade.publicKey: the image signing key must be ECDSA P-256"));
  // A private key where the public one belongs is refused, not quietly used.
  CHECK(startsWith(errorOf(mutate(configs().worker,
                                  [&](json& d) { d["machine"]["upgrade"] = {{"publicKey", p256->toPem()}}; })),
                   "machine.upgrade.publicKey: "));
  CHECK(startsWith(errorOf(mutate(configs().worker, [](json& d) { d["machine"]["upgrade"] = {{"key", "x"}}; })),
                   "machine.upgrade.key: unknown field"));
}

TEST_CASE("generated configs run the timed backend on both node types") {
  CHECK(configs().controlPlane.backends == std::vector<std::string>{"timed"});
  CHECK(configs().worker.backends == std::vector<std::string>{"timed"});
  CHECK(json::parse(serializeMachineConfig(configs().worker))["machine"]["backends"] == json::array({"timed"}));
}

TEST_CASE("machine.backends is kept, and an empty list is left out") {
  const auto text = mutate(configs().worker, [](json& d) { d["machine"]["backends"] = {"timed", "lldpd"}; });
  auto parsed = parseMachineConfig(text);
  REQUIRE(parsed.ok());
  CHECK(parsed->backends == std::vector<std::string>{"timed", "lldpd"});
  CHECK(*parseMachineConfig(serializeMachineConfig(*parsed)) == *parsed);
  auto none = *parsed;
  none.backends.clear();
  CHECK_FALSE(json::parse(serializeMachineConfig(none))["machine"].contains("backends"));
  CHECK(parseMachineConfig(serializeMachineConfig(none))->backends.empty());
}

TEST_CASE("machine.backends refuses bad, built-in, repeated and extension names by index") {
  const auto& w = configs().worker;
  const auto withBackends = [&](const json& list) {
    return errorOf(mutate(w, [&](json& d) {
      d["machine"]["extensions"] = json::array({{{"name", "ntpd"}, {"command", "/usr/sbin/ntpd"}}});
      d["machine"]["backends"] = list;
    }));
  };
  CHECK(withBackends({"timed", "Timed"}) ==
        "machine.backends[1]: expected 1-63 characters of a-z, 0-9, '.', '_', '-' starting with a letter or digit, "
        "found 'Timed'");
  CHECK(startsWith(withBackends({""}), "machine.backends[0]: expected 1-63 characters"));
  CHECK(startsWith(withBackends({"-x"}), "machine.backends[0]: expected 1-63 characters"));
  CHECK(startsWith(withBackends({std::string(64, 'a')}), "machine.backends[0]: expected 1-63 characters"));
  CHECK(startsWith(withBackends({"a/b"}), "machine.backends[0]: expected 1-63 characters"));
  CHECK(withBackends({"apid"}) == "machine.backends[0]: 'apid' is a built-in service");
  CHECK(withBackends({"machined"}) == "machine.backends[0]: 'machined' is a built-in service");
  CHECK(withBackends({"trustd"}) == "machine.backends[0]: 'trustd' is a built-in service");
  CHECK(withBackends({"timed", "timed"}) == "machine.backends[1]: 'timed' is listed twice");
  CHECK(withBackends({"ntpd"}) == "machine.backends[0]: 'ntpd' is also the name of an extension");
  CHECK(startsWith(withBackends({1}), "machine.backends[0]: expected a string"));
  CHECK(startsWith(withBackends("timed"), "machine.backends: expected an array of strings"));
  CHECK(startsWith(errorOf(mutate(w, [](json& d) { d["machine"]["backend"] = {"timed"}; })),
                   "machine.backend: unknown field"));
  // The same checks apply to a config built in memory.
  auto c = w;
  c.backends = {"apid"};
  CHECK(validateMachineConfig(c).message() == "machine.backends[0]: 'apid' is a built-in service");
}
