// Runs the real keelctl binary in temporary directories and checks what it writes from
// the outside, with the openssl command-line tool: certificates chain to the right CA
// and only to it, carry the expected subjects and usages, and files are private.
#include <sys/stat.h>

#include <algorithm>
#include <catch2/catch_test_macros.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <string>
#include <vector>

#include "image_files.h"
#include "keel/testing/testing.h"

using keel::integration::makeImageFile;
using keel::testing::ProcessResult;
using keel::testing::readFile;
using keel::testing::RunOptions;
using keel::testing::TempDir;
using keel::testing::writeFile;
using nlohmann::json;

namespace {

constexpr int64_t kDay = 86400;

bool contains(const std::string& haystack, std::string_view needle) {
  return haystack.find(needle) != std::string::npos;
}

// keelctl with HOME pointing into the test's directory and KEELCONFIG cleared, so the
// real home and a developer's config are never read or written.
ProcessResult keelctl(const TempDir& dir, std::vector<std::string> args,
                      std::map<std::string, std::string> env = {}) {
  args.insert(args.begin(), KEELCTL_PATH);
  RunOptions options;
  options.workingDirectory = dir.path();
  options.extraEnv = {{"HOME", (dir / "home").string()}, {"KEELCONFIG", ""}};
  for (auto& [k, v] : env) options.extraEnv[k] = v;
  auto r = keel::testing::run(args, options);
  UNSCOPED_INFO("keelctl stdout: " << r.out);
  UNSCOPED_INFO("keelctl stderr: " << r.err);
  return r;
}

ProcessResult openssl(std::vector<std::string> args) {
  args.insert(args.begin(), "openssl");
  auto r = keel::testing::run(args);
  UNSCOPED_INFO("openssl " << args[1] << " stdout: " << r.out << " stderr: " << r.err);
  return r;
}

// Fails the test (with keelctl's stderr) unless it succeeded.
void requireOk(const ProcessResult& r) {
  INFO("stderr: " << r.err);
  REQUIRE(r.exitCode == 0);
}

// Checks a failure: non-zero exit, "keelctl: " prefix, and the expected text on stderr.
void requireError(const ProcessResult& r, std::string_view expected) {
  INFO("stderr: " << r.err);
  REQUIRE(r.exitCode != 0);
  CHECK(r.err.rfind("keelctl: ", 0) == 0);
  CHECK(contains(r.err, expected));
}

unsigned modeOf(const std::filesystem::path& p) {
  struct stat st {};
  REQUIRE(stat(p.c_str(), &st) == 0);
  return st.st_mode & 07777;
}

json readJson(const std::filesystem::path& p) { return json::parse(readFile(p)); }

std::filesystem::path writePem(const TempDir& dir, const std::string& name, const std::string& pem) {
  const auto path = dir / name;
  writeFile(path, pem);
  return path;
}

bool verifies(const std::filesystem::path& ca, const std::filesystem::path& crt, const std::string& purpose = "") {
  std::vector<std::string> args = {"verify", "-CAfile", ca.string()};
  if (!purpose.empty()) args.insert(args.end(), {"-purpose", purpose});
  args.push_back(crt.string());
  const auto r = openssl(args);
  return r.exitCode == 0 && contains(r.out, ": OK");
}

std::string x509Text(const std::filesystem::path& crt) {
  const auto r = openssl({"x509", "-in", crt.string(), "-noout", "-text"});
  REQUIRE(r.exitCode == 0);
  return r.out;
}

// True when the certificate is still valid `seconds` from now.
bool validFor(const std::filesystem::path& crt, int64_t seconds) {
  return openssl({"x509", "-in", crt.string(), "-noout", "-checkend", std::to_string(seconds)}).exitCode == 0;
}

std::string publicKeyOfCert(const std::filesystem::path& crt) {
  return openssl({"x509", "-in", crt.string(), "-noout", "-pubkey"}).out;
}

std::string publicKeyOfKey(const std::filesystem::path& key) {
  const auto r = openssl({"pkey", "-in", key.string(), "-pubout"});
  REQUIRE(r.exitCode == 0);
  return r.out;
}

std::filesystem::path genSecrets(const TempDir& dir, const std::string& name = "secrets.json") {
  requireOk(keelctl(dir, {"gen", "secrets", "-o", name}));
  return dir / name;
}

const std::regex kTokenRe("[a-z0-9]{6}\\.[a-z0-9]{16}");

}  // namespace

TEST_CASE("gen secrets writes a private bundle of four separate CAs that openssl accepts") {
  TempDir dir;
  const auto r = keelctl(dir, {"gen", "secrets", "-o", "secrets.json"});
  requireOk(r);
  CHECK(contains(r.out, "secrets.json"));
  const auto path = dir / "secrets.json";
  CHECK(modeOf(path) == 0600);
  const auto doc = readJson(path);
  CHECK(doc["version"] == 1);
  CHECK(std::regex_match(doc["tokens"]["join"].get<std::string>(), kTokenRe));
  CHECK(std::regex_match(doc["tokens"]["bootstrap"].get<std::string>(), kTokenRe));

  struct Ca {
    const char* field;
    const char* subject;
  };
  std::vector<std::string> fingerprints;
  for (const auto& ca : {Ca{"os", "O = keel-os, CN = keel-os"}, Ca{"k8s", "O = kubernetes, CN = kubernetes"},
                         Ca{"etcd", "O = etcd, CN = etcd"}, Ca{"k8sAggregator", "CN = front-proxy"}}) {
    INFO(ca.field);
    const auto crt = writePem(dir, std::string(ca.field) + ".crt", doc["certs"][ca.field]["crt"]);
    const auto key = writePem(dir, std::string(ca.field) + ".key", doc["certs"][ca.field]["key"]);
    const auto text = x509Text(crt);
    CHECK(contains(text, std::string("Subject: ") + ca.subject + "\n"));
    CHECK(contains(text, std::string("Issuer: ") + ca.subject + "\n"));
    CHECK(contains(text, "CA:TRUE"));
    CHECK(contains(text, "Certificate Sign"));
    CHECK(verifies(crt, crt));
    CHECK(validFor(crt, 3649 * kDay));
    CHECK_FALSE(validFor(crt, 3654 * kDay));
    CHECK(publicKeyOfKey(key) == publicKeyOfCert(crt));
    fingerprints.push_back(publicKeyOfCert(crt));
  }
  std::sort(fingerprints.begin(), fingerprints.end());
  CHECK(std::unique(fingerprints.begin(), fingerprints.end()) == fingerprints.end());
  // Each CA signs only for itself: the etcd CA does not vouch for the OS CA.
  CHECK_FALSE(verifies(dir / "etcd.crt", dir / "os.crt"));

  const auto sa = writePem(dir, "sa.key", doc["certs"]["k8sServiceAccount"]["key"]);
  const auto saText = openssl({"pkey", "-in", sa.string(), "-noout", "-text"});
  REQUIRE(saText.exitCode == 0);
  CHECK(contains(saText.out, "P-256"));
}

TEST_CASE("gen secrets refuses to overwrite a bundle without --force") {
  TempDir dir;
  const auto path = genSecrets(dir);
  const auto before = readFile(path);
  requireError(keelctl(dir, {"gen", "secrets", "-o", "secrets.json"}), "already exists");
  CHECK(contains(keelctl(dir, {"gen", "secrets", "-o", "secrets.json"}).err, "--force"));
  CHECK(readFile(path) == before);
  requireOk(keelctl(dir, {"gen", "secrets", "-o", "secrets.json", "--force"}));
  CHECK(readFile(path) != before);
  CHECK(modeOf(path) == 0600);
}

TEST_CASE("gen config derives configs whose certificates chain to the right CA only") {
  TempDir dir;
  genSecrets(dir);
  const auto r = keelctl(dir, {"gen", "config", "prod", "10.0.0.10", "--with-secrets", "secrets.json", "-o", "out"});
  requireOk(r);
  for (const char* name : {"controlplane.json", "worker.json", "keelconfig"}) {
    INFO(name);
    CHECK(modeOf(dir / "out" / name) == 0600);
    CHECK(contains(r.out, name));
  }
  const auto secrets = readJson(dir / "secrets.json");
  const auto cp = readJson(dir / "out" / "controlplane.json");
  const auto workerText = readFile(dir / "out" / "worker.json");
  const auto worker = json::parse(workerText);
  const auto client = readJson(dir / "out" / "keelconfig");

  SECTION("machine configs") {
    CHECK(cp["version"] == 1);
    CHECK(cp["machine"]["type"] == "controlplane");
    CHECK(cp["machine"]["ca"]["crt"] == secrets["certs"]["os"]["crt"]);
    CHECK(cp["machine"]["ca"]["key"] == secrets["certs"]["os"]["key"]);
    CHECK(cp["machine"]["token"] == secrets["tokens"]["join"]);
    CHECK(cp["cluster"]["etcd"]["ca"]["crt"] == secrets["certs"]["etcd"]["crt"]);
    CHECK(cp["cluster"]["controlPlane"]["endpoint"] == "https://10.0.0.10:50000");
    CHECK(cp["cluster"]["name"] == "prod");
    CHECK(std::find(cp["machine"]["certSANs"].begin(), cp["machine"]["certSANs"].end(), "10.0.0.10") !=
          cp["machine"]["certSANs"].end());

    CHECK(worker["machine"]["type"] == "worker");
    CHECK_FALSE(contains(workerText, "PRIVATE KEY"));
    CHECK_FALSE(worker["machine"]["ca"].contains("key"));
    CHECK_FALSE(worker["cluster"].contains("secret"));
    CHECK_FALSE(contains(workerText, secrets["cluster"]["secret"].get<std::string>()));
    CHECK_FALSE(contains(workerText, secrets["tokens"]["bootstrap"].get<std::string>()));
    CHECK(std::regex_match(worker["machine"]["token"].get<std::string>(), kTokenRe));
    CHECK(worker["machine"]["ca"]["crt"] == secrets["certs"]["os"]["crt"]);
    // Every node runs the reference backend, timed.
    CHECK(cp["machine"]["backends"] == json::array({"timed"}));
    CHECK(worker["machine"]["backends"] == json::array({"timed"}));
  }

  SECTION("the admin client certificate") {
    CHECK(client["context"] == "prod");
    const auto& ctx = client["contexts"]["prod"];
    CHECK(ctx["endpoints"] == json::array({"10.0.0.10:50000"}));
    CHECK(ctx["nodes"] == json::array({"10.0.0.10"}));
    CHECK(ctx["ca"] == secrets["certs"]["os"]["crt"]);
    const auto crt = writePem(dir, "client.crt", ctx["crt"]);
    const auto key = writePem(dir, "client.key", ctx["key"]);
    const auto osCa = writePem(dir, "os.crt", secrets["certs"]["os"]["crt"]);
    CHECK(verifies(osCa, crt, "sslclient"));
    CHECK_FALSE(verifies(osCa, crt, "sslserver"));
    for (const char* other : {"etcd", "k8s", "k8sAggregator"}) {
      INFO(other);
      CHECK_FALSE(verifies(writePem(dir, std::string(other) + ".crt", secrets["certs"][other]["crt"]), crt));
    }
    const auto text = x509Text(crt);
    CHECK(contains(text, "Subject: O = os:admin, CN = admin\n"));
    CHECK(contains(text, "Issuer: O = keel-os, CN = keel-os\n"));
    CHECK(contains(text, "TLS Web Client Authentication"));
    CHECK_FALSE(contains(text, "TLS Web Server Authentication"));
    CHECK(contains(text, "Digital Signature"));
    CHECK_FALSE(contains(text, "CA:TRUE"));
    CHECK_FALSE(contains(text, "Certificate Sign"));
    CHECK(validFor(crt, 364 * kDay));
    CHECK_FALSE(validFor(crt, 366 * kDay));
    CHECK(publicKeyOfKey(key) == publicKeyOfCert(crt));
  }

  SECTION("refuses to overwrite any of the files without --force") {
    const auto before = readFile(dir / "out" / "keelconfig");
    requireError(keelctl(dir, {"gen", "config", "prod", "10.0.0.10", "--with-secrets", "secrets.json", "-o", "out"}),
                 "already exists");
    CHECK(readFile(dir / "out" / "keelconfig") == before);
    requireOk(keelctl(dir, {"gen", "config", "prod", "10.0.0.10", "--with-secrets", "secrets.json", "-o", "out",
                            "--force"}));
    CHECK(readFile(dir / "out" / "keelconfig") != before);
  }
}

TEST_CASE("gen config honours --crt-ttl and refuses bad durations") {
  TempDir dir;
  genSecrets(dir);
  requireOk(keelctl(dir, {"gen", "config", "c1", "cp1", "--with-secrets", "secrets.json", "--crt-ttl", "24h"}));
  const auto crt = writePem(dir, "c.crt", readJson(dir / "keelconfig")["contexts"]["c1"]["crt"]);
  CHECK(validFor(crt, 23 * 3600));
  CHECK_FALSE(validFor(crt, 25 * 3600));
  for (const char* bad : {"0s", "-1h", "24", "1y", "1000000h"}) {
    INFO(bad);
    requireError(keelctl(dir, {"gen", "config", "c2", "cp1", "--with-secrets", "secrets.json", "-o", "o2",
                               "--crt-ttl", bad}),
                 "--crt-ttl: invalid duration");
  }
  CHECK_FALSE(std::filesystem::exists(dir / "o2"));
}

TEST_CASE("gen config accepts every endpoint form and refuses others") {
  TempDir dir;
  genSecrets(dir);
  struct Case {
    const char* endpoint;
    const char* hostPort;
    const char* node;
    const char* url;
  };
  int i = 0;
  for (const auto& c : {Case{"10.0.0.1", "10.0.0.1:50000", "10.0.0.1", "https://10.0.0.1:50000"},
                        Case{"cp.example", "cp.example:50000", "cp.example", "https://cp.example:50000"},
                        Case{"10.0.0.1:6443", "10.0.0.1:6443", "10.0.0.1", "https://10.0.0.1:6443"},
                        Case{"cp.example:6000", "cp.example:6000", "cp.example", "https://cp.example:6000"},
                        Case{"[fd00::1]:50001", "[fd00::1]:50001", "fd00::1", "https://[fd00::1]:50001"},
                        Case{"https://cp.example:443", "cp.example:443", "cp.example", "https://cp.example:443"}}) {
    INFO(c.endpoint);
    const std::string out = fmt::format("o{}", i++);
    requireOk(keelctl(dir, {"gen", "config", "c", c.endpoint, "--with-secrets", "secrets.json", "-o", out}));
    const auto client = readJson(dir / out / "keelconfig");
    CHECK(client["contexts"]["c"]["endpoints"] == json::array({c.hostPort}));
    CHECK(client["contexts"]["c"]["nodes"] == json::array({c.node}));
    CHECK(readJson(dir / out / "controlplane.json")["cluster"]["controlPlane"]["endpoint"] == c.url);
  }
  struct Bad {
    const char* endpoint;
    const char* reason;
  };
  for (const auto& b : {Bad{"http://cp:50000", "unsupported scheme 'http'"}, Bad{"https://cp:50000/api", "path"},
                        Bad{":50000", "empty host"}, Bad{"cp:70000", "out of range"}, Bad{"cp:0", "out of range"},
                        Bad{"fd00::1:50000:x", "[addr]:port"}, Bad{"bad_host", "nor a valid host name"}}) {
    INFO(b.endpoint);
    requireError(keelctl(dir, {"gen", "config", "c", b.endpoint, "--with-secrets", "secrets.json", "-o", "bad"}),
                 b.reason);
  }
  CHECK_FALSE(std::filesystem::exists(dir / "bad"));
}

TEST_CASE("gen config applies config patches to both configs or one, and refuses a patch that breaks them") {
  TempDir dir;
  const auto secrets = genSecrets(dir);
  writeFile(dir / "both.json", R"({"machine": {"files": {"allowedRoots": ["/var/log", "/srv"]}}})");
  writeFile(dir / "cp.json",
            R"({"machine": {"extensions": [{"name": "ntpd", "command": "/usr/sbin/ntpd"}]}})");
  requireOk(keelctl(dir, {"gen", "config", "lab", "10.0.0.1", "--with-secrets", secrets.string(), "-o", "out",
                          "--config-patch", "both.json", "--config-patch-control-plane", "cp.json"}));
  const auto cp = json::parse(readFile(dir / "out/controlplane.json"));
  const auto worker = json::parse(readFile(dir / "out/worker.json"));
  CHECK(cp["machine"]["files"]["allowedRoots"] == json::array({"/var/log", "/srv"}));
  CHECK(worker["machine"]["files"]["allowedRoots"] == json::array({"/var/log", "/srv"}));
  CHECK(cp["machine"]["extensions"][0]["name"] == "ntpd");
  CHECK_FALSE(worker["machine"].contains("extensions"));

  // A patch that would put a CA key into the worker config is refused, and nothing is written.
  writeFile(dir / "leak.json", R"({"machine": {"ca": {"key": "x"}}})");
  requireError(keelctl(dir, {"gen", "config", "lab", "10.0.0.1", "--with-secrets", secrets.string(), "-o", "out2",
                             "--config-patch-worker", "leak.json"}),
               "machine.ca.key");
  CHECK_FALSE(std::filesystem::exists(dir / "out2/controlplane.json"));
  writeFile(dir / "relative.json", R"({"machine": {"files": {"allowedRoots": ["var/log"]}}})");
  requireError(keelctl(dir, {"gen", "config", "lab", "10.0.0.1", "-o", "out3", "--config-patch", "relative.json"}),
               "machine.files.allowedRoots[0]");
  writeFile(dir / "notobject.json", "[1, 2]");
  requireError(keelctl(dir, {"gen", "config", "lab", "10.0.0.1", "-o", "out4", "--config-patch", "notobject.json"}),
               "must be a JSON object");
}

TEST_CASE("a missing, corrupt or exposed secrets file is refused with a clear error") {
  TempDir dir;
  const auto good = readFile(genSecrets(dir));
  const auto useBundle = [&](const std::string& file) {
    return std::vector<ProcessResult>{
        keelctl(dir, {"gen", "config", "c", "cp1", "--with-secrets", file, "-o", "out-" + file}),
        keelctl(dir, {"config", "new", "new-" + file, "--roles", "os:reader", "--from", file})};
  };
  SECTION("missing") {
    for (const auto& r : useBundle("missing.json")) {
      requireError(r, "missing.json: no such file (create one with 'keelctl gen secrets -o <file>')");
    }
  }
  SECTION("garbage") {
    writeFile(dir / "garbage.json", "this is not JSON");
    chmod((dir / "garbage.json").c_str(), 0600);
    for (const auto& r : useBundle("garbage.json")) {
      requireError(r, "garbage.json: invalid JSON: parse error at line 1, column 2");
    }
  }
  SECTION("truncated") {
    writeFile(dir / "truncated.json", good.substr(0, good.size() / 2));
    chmod((dir / "truncated.json").c_str(), 0600);
    for (const auto& r : useBundle("truncated.json")) requireError(r, "truncated.json: invalid JSON: parse error at line");
  }
  SECTION("readable by others") {
    writeFile(dir / "open.json", good);
    chmod((dir / "open.json").c_str(), 0644);
    for (const auto& r : useBundle("open.json")) {
      requireError(r, "open.json has mode 0644; it holds CA keys and must be accessible by its owner only: chmod 600 "
                      "open.json");
    }
  }
  SECTION("a field that does not validate") {
    auto doc = json::parse(good);
    doc["certs"]["etcd"]["key"] = doc["certs"]["os"]["key"];
    writeFile(dir / "mixed.json", doc.dump());
    chmod((dir / "mixed.json").c_str(), 0600);
    for (const auto& r : useBundle("mixed.json")) requireError(r, "mixed.json: certs.etcd.key: does not match certs.etcd.crt");
  }
  CHECK_FALSE(std::filesystem::exists(dir / "out-missing.json"));
}

TEST_CASE("config new issues exactly the requested roles and refuses unknown ones by name") {
  TempDir dir;
  genSecrets(dir);
  requireOk(keelctl(dir, {"config", "new", "ops.keelconfig", "--roles", "os:operator,os:reader", "--crt-ttl", "2h",
                          "--from", "secrets.json", "--identity", "alice", "--endpoints", "10.0.0.10"}));
  CHECK(modeOf(dir / "ops.keelconfig") == 0600);
  const auto client = readJson(dir / "ops.keelconfig");
  const auto& ctx = client["contexts"][client["context"].get<std::string>()];
  CHECK(ctx["endpoints"] == json::array({"10.0.0.10:50000"}));
  const auto crt = writePem(dir, "ops.crt", ctx["crt"]);
  const auto text = x509Text(crt);
  CHECK(contains(text, "Subject: O = os:operator, O = os:reader, CN = alice\n"));
  CHECK(contains(text, "TLS Web Client Authentication"));
  CHECK(verifies(writePem(dir, "os.crt", readJson(dir / "secrets.json")["certs"]["os"]["crt"]), crt, "sslclient"));
  CHECK(validFor(crt, 3600));
  CHECK_FALSE(validFor(crt, 3 * 3600));

  requireError(keelctl(dir, {"config", "new", "root.keelconfig", "--roles", "os:reader,os:root", "--from",
                             "secrets.json"}),
               "unknown role 'os:root': expected one of os:admin, os:operator, os:reader, os:impersonator");
  CHECK_FALSE(std::filesystem::exists(dir / "root.keelconfig"));
  requireError(keelctl(dir, {"config", "new", "ops.keelconfig", "--roles", "os:reader", "--from", "secrets.json"}),
               "already exists");
}

TEST_CASE("config info shows the context, roles, expiry and CA fingerprint") {
  TempDir dir;
  genSecrets(dir);
  requireOk(keelctl(dir, {"gen", "config", "prod", "10.0.0.10", "--with-secrets", "secrets.json"}));
  const auto r = keelctl(dir, {"config", "info", "--keelconfig", "keelconfig"});
  requireOk(r);
  CHECK(contains(r.out, "Current context:     prod\n"));
  CHECK(contains(r.out, "Endpoints:           10.0.0.10:50000\n"));
  CHECK(contains(r.out, "Nodes:               10.0.0.10\n"));
  CHECK(contains(r.out, "Roles:               os:admin\n"));
  CHECK(contains(r.out, "Certificate subject: CN=admin, O=os:admin\n"));
  CHECK(std::regex_search(r.out, std::regex("Certificate expires: \\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ \\(in 36[45]d")));
  CHECK_FALSE(contains(r.out, "EXPIRED"));

  // The fingerprint is the one openssl computes for the OS CA.
  const auto ca = writePem(dir, "os.crt", readJson(dir / "secrets.json")["certs"]["os"]["crt"]);
  auto fp = openssl({"x509", "-in", ca.string(), "-noout", "-fingerprint", "-sha256"}).out;
  fp = fp.substr(fp.find('=') + 1);
  fp.erase(std::remove_if(fp.begin(), fp.end(), [](char c) { return c == ':' || c == '\n'; }), fp.end());
  std::transform(fp.begin(), fp.end(), fp.begin(), [](unsigned char c) { return std::tolower(c); });
  CHECK(contains(r.out, "CA fingerprint:      sha256:" + fp + "\n"));
}

TEST_CASE("config merge adds contexts and renames clashing ones") {
  TempDir dir;
  genSecrets(dir);
  requireOk(keelctl(dir, {"gen", "config", "prod", "10.0.0.10", "--with-secrets", "secrets.json", "-o", "a"}));
  requireOk(keelctl(dir, {"gen", "config", "prod", "10.0.0.20", "--with-secrets", "secrets.json", "-o", "b"}));
  requireOk(keelctl(dir, {"gen", "config", "lab", "10.0.0.30", "--with-secrets", "secrets.json", "-o", "c"}));
  const auto merge1 = keelctl(dir, {"--keelconfig", "a/keelconfig", "config", "merge", "b/keelconfig"});
  requireOk(merge1);
  CHECK(contains(merge1.out, "context 'prod' already exists: added as 'prod-1'"));
  requireOk(keelctl(dir, {"config", "merge", "c/keelconfig", "--keelconfig", "a/keelconfig"}));
  const auto merge3 = keelctl(dir, {"config", "merge", "b/keelconfig", "--keelconfig", "a/keelconfig"});
  CHECK(contains(merge3.out, "added as 'prod-2'"));

  const auto list = keelctl(dir, {"config", "contexts", "--keelconfig", "a/keelconfig"});
  requireOk(list);
  CHECK(std::regex_search(list.out, std::regex("CURRENT +NAME +ENDPOINTS +NODES\n")));
  CHECK(std::regex_search(list.out, std::regex("\n +lab +10\\.0\\.0\\.30:50000 +10\\.0\\.0\\.30\n")));
  CHECK(std::regex_search(list.out, std::regex("\n +prod +10\\.0\\.0\\.10:50000")));
  CHECK(std::regex_search(list.out, std::regex("\n +prod-1 +10\\.0\\.0\\.20:50000")));
  CHECK(std::regex_search(list.out, std::regex("\n\\* +prod-2 +10\\.0\\.0\\.20:50000")));
  CHECK(modeOf(dir / "a" / "keelconfig") == 0600);
}

TEST_CASE("the client config is found through --keelconfig, then KEELCONFIG, then ~/.keel/config") {
  TempDir dir;
  genSecrets(dir);
  requireOk(keelctl(dir, {"gen", "config", "envctx", "10.0.0.1", "--with-secrets", "secrets.json", "-o", "env"}));
  requireOk(keelctl(dir, {"gen", "config", "flagctx", "10.0.0.2", "--with-secrets", "secrets.json", "-o", "flag"}));
  requireOk(keelctl(dir, {"gen", "config", "homectx", "10.0.0.3", "--with-secrets", "secrets.json", "-o", "h"}));

  const std::map<std::string, std::string> env = {{"KEELCONFIG", (dir / "env" / "keelconfig").string()}};
  CHECK(contains(keelctl(dir, {"config", "info"}, env).out, "Current context:     envctx"));
  CHECK(contains(keelctl(dir, {"config", "info", "--keelconfig", "flag/keelconfig"}, env).out,
                 "Current context:     flagctx"));

  // Without either, ~/.keel/config (HOME is the test's directory).
  requireError(keelctl(dir, {"config", "info"}), (dir / "home" / ".keel" / "config").string() + ": no such file");
  requireOk(keelctl(dir, {"config", "merge", "h/keelconfig"}));
  CHECK(modeOf(dir / "home" / ".keel" / "config") == 0600);
  CHECK(modeOf(dir / "home" / ".keel") == 0700);
  CHECK(contains(keelctl(dir, {"config", "info"}).out, "Current context:     homectx"));
}

TEST_CASE("config use-context, endpoint and node edit the current context") {
  TempDir dir;
  genSecrets(dir);
  requireOk(keelctl(dir, {"gen", "config", "prod", "10.0.0.10", "--with-secrets", "secrets.json"}));
  requireOk(keelctl(dir, {"gen", "config", "lab", "10.0.0.30", "--with-secrets", "secrets.json", "-o", "lab"}));
  const std::map<std::string, std::string> env = {{"KEELCONFIG", (dir / "keelconfig").string()}};
  requireOk(keelctl(dir, {"config", "merge", "lab/keelconfig"}, env));
  requireOk(keelctl(dir, {"config", "use-context", "prod"}, env));
  requireError(keelctl(dir, {"config", "use-context", "staging"}, env),
               "context 'staging' not found: expected one of: lab, prod");
  requireOk(keelctl(dir, {"config", "endpoint", "10.0.0.11", "[fd00::1]:6000", "https://cp.example"}, env));
  requireOk(keelctl(dir, {"config", "node", "10.0.0.21", "node-2"}, env));
  requireError(keelctl(dir, {"config", "endpoint", "ftp://x"}, env), "unsupported scheme 'ftp'");
  requireError(keelctl(dir, {"config", "node", "10.0.0.21:50000"}, env), "without port");
  const auto doc = readJson(dir / "keelconfig");
  CHECK(doc["context"] == "prod");
  CHECK(doc["contexts"]["prod"]["endpoints"] ==
        json::array({"10.0.0.11:50000", "[fd00::1]:6000", "cp.example:50000"}));
  CHECK(doc["contexts"]["prod"]["nodes"] == json::array({"10.0.0.21", "node-2"}));
  CHECK(doc["contexts"]["lab"]["endpoints"] == json::array({"10.0.0.30:50000"}));
  CHECK(modeOf(dir / "keelconfig") == 0600);
}

TEST_CASE("a client config readable by others is refused") {
  TempDir dir;
  genSecrets(dir);
  requireOk(keelctl(dir, {"gen", "config", "prod", "10.0.0.10", "--with-secrets", "secrets.json"}));
  chmod((dir / "keelconfig").c_str(), 0640);
  requireError(keelctl(dir, {"config", "info", "--keelconfig", "keelconfig"}),
               "keelconfig has mode 0640; it holds a client key and must be accessible by its owner only");
}

TEST_CASE("every command has useful help, and usage errors are prefixed") {
  TempDir dir;
  const std::vector<std::vector<std::string>> commands = {
      {},
      {"gen"},
      {"gen", "secrets"},
      {"gen", "config"},
      {"config"},
      {"config", "contexts"},
      {"config", "use-context"},
      {"config", "endpoint"},
      {"config", "node"},
      {"config", "merge"},
      {"config", "info"},
      {"config", "new"},
  };
  for (auto args : commands) {
    args.push_back("--help");
    INFO(fmt::format("keelctl {}", fmt::join(args, " ")));
    const auto r = keelctl(dir, args);
    CHECK(r.exitCode == 0);
    CHECK(contains(r.out, "Usage:"));
    CHECK(r.out.size() > 150);
  }
  CHECK(contains(keelctl(dir, {"gen", "config", "--help"}).out, "Examples:"));
  CHECK(contains(keelctl(dir, {"config", "new", "--help"}).out, "os:impersonator"));
  requireError(keelctl(dir, {"frobnicate"}), "unknown command or argument: frobnicate");
  requireError(keelctl(dir, {"config", "contexs"}), "contexs");
  requireError(keelctl(dir, {"gen", "config", "only-name"}), "endpoint");
  CHECK(keelctl(dir, {}).exitCode != 0);
}

TEST_CASE("gen image-key and sign-image make signatures openssl verifies, and gen config names the key") {
  TempDir dir;
  requireOk(keelctl(dir, {"gen", "image-key", "-o", "keys"}));
  CHECK(modeOf(dir / "keys/image-signing.key") == 0600);
  requireError(keelctl(dir, {"gen", "image-key", "-o", "keys"}), "pass --force");
  const auto image = makeImageFile(dir.path(), "1.2.3");
  requireOk(keelctl(dir, {"sign-image", "--key", "keys/image-signing.key", image.string()}));
  // The signature covers the manifest, the same bytes `openssl dgst -sha256 -sign` makes of
  // it: anyone can check them with openssl.
  const auto manifest = keel::testing::run({KEEL_IMAGE_PACK_PATH, "show", image.string()});
  REQUIRE(manifest.exitCode == 0);
  CHECK(contains(manifest.out, "\"version\": \"1.2.3\""));
  writeFile(dir / "manifest.json", manifest.out);
  requireOk(openssl({"dgst", "-sha256", "-verify", (dir / "keys/image-signing.pub").string(), "-signature",
                     image.string() + ".sig", (dir / "manifest.json").string()}));
  // Another version of the same parts has another manifest, which this signature does not cover.
  const auto other = makeImageFile(dir.path(), "1.2.4");
  writeFile(dir / "other.json", keel::testing::run({KEEL_IMAGE_PACK_PATH, "show", other.string()}).out);
  CHECK(openssl({"dgst", "-sha256", "-verify", (dir / "keys/image-signing.pub").string(), "-signature",
                 image.string() + ".sig", (dir / "other.json").string()})
            .exitCode != 0);
  requireError(keelctl(dir, {"sign-image", "--key", "keys/image-signing.key", image.string()}), "already exists");
  // A public key is not a signing key, and a file that is not an image is not signed.
  requireError(keelctl(dir, {"sign-image", "--key", "keys/image-signing.pub", other.string()}), "PRIVATE KEY");
  writeFile(dir / "root.squashfs", std::string(5 << 20, 'r'));
  requireError(keelctl(dir, {"sign-image", "--key", "keys/image-signing.key", "root.squashfs"}),
               "not a Keel image file");

  requireOk(keelctl(dir, {"gen", "config", "c", "10.0.0.1", "--image-key", "keys/image-signing.pub", "-o", "out"}));
  const auto pub = readFile(dir / "keys/image-signing.pub");
  CHECK(readJson(dir / "out/controlplane.json")["machine"]["upgrade"]["publicKey"] == pub);
  CHECK(readJson(dir / "out/worker.json")["machine"]["upgrade"]["publicKey"] == pub);
  requireError(keelctl(dir, {"gen", "config", "c", "10.0.0.1", "--image-key", "keys/image-signing.key", "-o", "bad"}),
               "--image-key");
}
