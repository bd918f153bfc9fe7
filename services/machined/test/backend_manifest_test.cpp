#include "src/backends/backend_manifest.h"

#include <unistd.h>

#include <functional>

#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>
#include <google/protobuf/descriptor.pb.h>
#include <nlohmann/json.hpp>
#include <sys/stat.h>

#include "keel/common/v1/common.pb.h"
#include "keel/testing/testing.h"

#include "src/backends/backend_resources.h"

namespace keel::machined {
namespace {

namespace fs = std::filesystem;
using Catch::Matchers::ContainsSubstring;
using Catch::Matchers::StartsWith;
using keel::testing::TempDir;
using keel::testing::writeFile;
using nlohmann::json;

// A backend's descriptor set: keel.probe.v1.ProbeService (Get, Put) and
// keel.probe.v1.OtherService (Ping). `putRule` false leaves Put without allowed_roles.
std::string descriptorSet(bool putRule = true) {
  google::protobuf::FileDescriptorProto file;
  file.set_name("keel/probe/v1/probe.proto");
  file.set_package("keel.probe.v1");
  file.set_syntax("proto3");
  file.add_dependency("keel/common/v1/common.proto");
  file.add_message_type()->set_name("Req");
  auto addMethod = [](google::protobuf::ServiceDescriptorProto* service, const std::string& name,
                      const char* role) {
    auto* m = service->add_method();
    m->set_name(name);
    m->set_input_type(".keel.probe.v1.Req");
    m->set_output_type(".keel.probe.v1.Req");
    if (role != nullptr) m->mutable_options()->AddExtension(keel::common::v1::allowed_roles, role);
  };
  auto* probe = file.add_service();
  probe->set_name("ProbeService");
  addMethod(probe, "Get", "os:reader");
  addMethod(probe, "Put", putRule ? "os:admin" : nullptr);
  auto* other = file.add_service();
  other->set_name("OtherService");
  addMethod(other, "Ping", "os:reader");
  google::protobuf::FileDescriptorSet set;
  *set.add_file() = file;
  return set.SerializeAsString();
}

constexpr const char* kProfile = "execve\nread\nwrite\nexit_group\n";

json validManifest() {
  return {{"name", "probe"},
          {"version", "0.1.0"},
          {"binary", "probe"},
          {"args", json::array({"--verbose"})},
          {"socket", "probe.sock"},
          {"services", json::array({"keel.probe.v1.ProbeService"})},
          {"descriptorSet", "probe.pb"},
          {"allowedPeerUids", json::array({1000})},
          {"sandbox", "probe.policy"},
          {"nodeTypes", json::array({"controlplane", "worker"})}};
}

// A backends directory with a valid manifest for "probe", its descriptor set and profile,
// and a libexec directory with its executable.
struct Fixture {
  TempDir dir;
  fs::path backends = dir / "backends";
  fs::path libexec = dir / "libexec";
  fs::path file = backends / "probe.json";

  Fixture() {
    fs::create_directories(backends);
    fs::create_directories(libexec);
    writeFile(backends / "probe.pb", descriptorSet());
    writeFile(backends / "probe.policy", kProfile);
    writeFile(libexec / "probe", "#!/bin/sh\n");
    chmod((libexec / "probe").c_str(), 0755);
    write(validManifest());
  }
  void write(const json& manifest) const { writeFile(file, manifest.dump(2)); }
  Result<BackendManifest> parse(const json& manifest) const {
    return parseBackendManifest(manifest.dump(), file, "probe", libexec);
  }
  // The message of a refused manifest, without the file name it starts with.
  std::string refusal(const json& manifest) const {
    auto r = parse(manifest);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == StatusCode::kInvalidArgument);
    const std::string prefix = file.string() + ": ";
    REQUIRE_THAT(r.status().message(), StartsWith(prefix));
    return r.status().message().substr(prefix.size());
  }
  std::string refusal(const std::function<void(json&)>& change) const {
    json m = validManifest();
    change(m);
    return refusal(m);
  }
  BackendManifest manifest(const std::function<void(json&)>& change = {}) const {
    json m = validManifest();
    if (change) change(m);
    auto r = parse(m);
    REQUIRE(r.ok());
    return *r;
  }
};

TEST_CASE("a backend manifest is read with its paths resolved and its defaults filled in", "[backend]") {
  Fixture f;
  auto m = readBackendManifest(f.backends, "probe", f.libexec);
  REQUIRE(m.ok());
  CHECK(m->name == "probe");
  CHECK(m->version == "0.1.0");
  CHECK(m->binary == f.libexec / "probe");
  CHECK(m->args == std::vector<std::string>{"--verbose"});
  CHECK(m->socket == "probe.sock");
  CHECK(m->services == std::vector<std::string>{"keel.probe.v1.ProbeService"});
  CHECK(m->descriptorSet == f.backends / "probe.pb");
  CHECK(m->allowedPeerUids == std::vector<uid_t>{1000});
  CHECK(m->sandbox == f.backends / "probe.policy");
  CHECK(runsOn(*m, config::MachineType::kControlPlane));
  CHECK(runsOn(*m, config::MachineType::kWorker));

  // Optional fields left out; absolute paths taken as they are.
  const auto minimal = f.manifest([](json& j) {
    j.erase("args");
    j.erase("socket");
    j.erase("allowedPeerUids");
    j["binary"] = "/usr/lib/keel/probe";
    j["descriptorSet"] = "/usr/share/keel/../keel/probe.pb";
    j["sandbox"] = "sub/probe.policy";
    j["nodeTypes"] = {"worker"};
  });
  CHECK(minimal.args.empty());
  CHECK(minimal.socket == "probe.sock");
  CHECK(minimal.allowedPeerUids.empty());
  CHECK(minimal.binary == "/usr/lib/keel/probe");
  CHECK(minimal.descriptorSet == "/usr/share/keel/probe.pb");
  CHECK(minimal.sandbox == f.backends / "sub/probe.policy");
  CHECK_FALSE(runsOn(minimal, config::MachineType::kControlPlane));
  CHECK(runsOn(minimal, config::MachineType::kWorker));
}

TEST_CASE("a backend manifest refuses every bad field by name", "[backend]") {
  Fixture f;
  CHECK(f.refusal([](json& j) { j["name"] = "Probe"; }) ==
        "name: expected 1-63 characters of a-z, 0-9, '.', '_', '-' starting with a letter or digit, found "
        "'Probe'");
  CHECK(f.refusal([](json& j) { j["name"] = std::string(64, 'p'); }) ==
        "name: expected 1-63 characters of a-z, 0-9, '.', '_', '-' starting with a letter or digit, found '" +
            std::string(64, 'p') + "'");
  CHECK(f.refusal([](json& j) { j["name"] = "apid"; }) == "name: 'apid' is a built-in service");
  CHECK(f.refusal([](json& j) { j["name"] = "machined"; }) == "name: 'machined' is a built-in service");
  CHECK(f.refusal([](json& j) { j["name"] = "other"; }) ==
        "name: expected 'probe' (the file's base name), found 'other'");
  CHECK(f.refusal([](json& j) { j.erase("name"); }) == "name: missing (required string)");

  CHECK(f.refusal([](json& j) { j["version"] = ""; }) ==
        "version: expected 1-64 printable ASCII characters, found 0 bytes");
  CHECK(f.refusal([](json& j) { j["version"] = std::string(65, '1'); }) ==
        "version: expected 1-64 printable ASCII characters, found 65 bytes");
  CHECK(f.refusal([](json& j) { j["version"] = "1.0\n"; }) ==
        "version: expected 1-64 printable ASCII characters, found 4 bytes with unprintable ones");
  CHECK(f.refusal([](json& j) { j["version"] = 1; }) == "version: expected a string, found a number");

  CHECK(f.refusal([](json& j) { j["binary"] = "bin/probe"; }) ==
        "binary: expected a file name (looked up in --libexec) or an absolute path, found 'bin/probe'");
  CHECK(f.refusal([](json& j) { j["binary"] = ".."; }) ==
        "binary: expected a file name (looked up in --libexec) or an absolute path, found '..'");
  CHECK(f.refusal([](json& j) { j["binary"] = ""; }) ==
        "binary: expected a file name (looked up in --libexec) or an absolute path, found ''");
  {
    auto r = parseBackendManifest(validManifest().dump(), f.file, "probe", "");
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().message() ==
          f.file.string() + ": binary: 'probe' is a plain name but machined has no --libexec");
  }
  CHECK(f.refusal([](json& j) { j["args"] = {"-v", 2}; }) == "args[1]: expected a string, found a number");

  CHECK(f.refusal([](json& j) { j["socket"] = "../machined.sock"; }) ==
        "socket: expected a file name of at most 64 characters, not starting with '.' and without '/', found "
        "'../machined.sock'");
  CHECK_THAT(f.refusal([](json& j) { j["socket"] = ".probe.sock"; }),
             StartsWith("socket: expected a file name"));
  CHECK_THAT(f.refusal([](json& j) { j["socket"] = ""; }), StartsWith("socket: expected a file name"));
  CHECK_THAT(f.refusal([](json& j) { j["socket"] = std::string(65, 's'); }),
             StartsWith("socket: expected a file name"));

  CHECK(f.refusal([](json& j) { j["services"] = json::array(); }) ==
        "services: expected at least one gRPC service name, found none");
  CHECK(f.refusal([](json& j) { j.erase("services"); }) ==
        "services: expected at least one gRPC service name, found none");
  CHECK(f.refusal([](json& j) { j["services"] = {"ProbeService"}; }) ==
        "services[0]: expected a fully-qualified gRPC service name like keel.time.v1.TimeService, found "
        "'ProbeService'");
  for (const char* bad :
       {"keel..Probe", "keel.probe.", ".keel.Probe", "keel/probe.Service", "keel.1probe.S"}) {
    INFO(bad);
    CHECK_THAT(f.refusal([&](json& j) {
      j["services"] = {"keel.probe.v1.ProbeService", bad};
    }),
               StartsWith("services[1]: expected a fully-qualified gRPC service name"));
  }
  CHECK(f.refusal([](json& j) {
    j["services"] = {"keel.probe.v1.ProbeService", "keel.probe.v1.OtherService",
                     "keel.probe.v1.ProbeService"};
  }) == "services[2]: 'keel.probe.v1.ProbeService' is listed twice");

  CHECK(f.refusal([](json& j) { j.erase("descriptorSet"); }) == "descriptorSet: missing (required string)");
  CHECK(f.refusal([](json& j) { j["descriptorSet"] = ""; }) ==
        "descriptorSet: expected a path, found an empty string");

  CHECK(f.refusal([](json& j) { j["allowedPeerUids"] = 1000; }) ==
        "allowedPeerUids: expected an array of uids");
  CHECK(f.refusal([](json& j) {
    j["allowedPeerUids"] = {0, -1};
  }) == "allowedPeerUids[1]: expected a uid (an integer 0..4294967294), found -1");
  CHECK(f.refusal([](json& j) { j["allowedPeerUids"] = {4294967295u}; }) ==
        "allowedPeerUids[0]: expected a uid (an integer 0..4294967294), found 4294967295");
  CHECK(f.refusal([](json& j) { j["allowedPeerUids"] = {"1000"}; }) ==
        "allowedPeerUids[0]: expected a uid (an integer 0..4294967294), found \"1000\"");

  CHECK(f.refusal([](json& j) { j.erase("sandbox"); }) == "sandbox: missing (required string)");
  CHECK(f.refusal([](json& j) { j["sandbox"] = ""; }) ==
        "sandbox: expected the path of a seccomp profile, found an empty string");

  CHECK(f.refusal([](json& j) { j["nodeTypes"] = json::array(); }) ==
        "nodeTypes: expected one or both of 'controlplane' and 'worker', found none");
  CHECK(f.refusal([](json& j) { j.erase("nodeTypes"); }) ==
        "nodeTypes: expected one or both of 'controlplane' and 'worker', found none");
  CHECK(f.refusal([](json& j) {
    j["nodeTypes"] = {"worker", "master"};
  }) == "nodeTypes[1]: expected 'controlplane' or 'worker', found 'master'");
  CHECK(f.refusal([](json& j) {
    j["nodeTypes"] = {"worker", "worker"};
  }) == "nodeTypes[1]: 'worker' is listed twice");

  CHECK(f.refusal([](json& j) { j["capabilities"] = {"CAP_SYS_TIME"}; }) ==
        "capabilities: unknown field (check its spelling against the schema)");
  CHECK(f.refusal(json::array()) == "document: expected an object, found an array");
}

TEST_CASE("a backend manifest that is not JSON, missing or too large is refused", "[backend]") {
  Fixture f;
  writeFile(f.file, "{\"name\": \"probe\",");
  auto broken = readBackendManifest(f.backends, "probe", f.libexec);
  REQUIRE_FALSE(broken.ok());
  CHECK(broken.status().code() == StatusCode::kInvalidArgument);
  CHECK_THAT(broken.status().message(), StartsWith(f.file.string() + ": invalid JSON: "));

  writeFile(f.file, R"({"name": "probe", "name": "probe"})");
  CHECK(readBackendManifest(f.backends, "probe", f.libexec).status().message() ==
        f.file.string() + ": invalid JSON: key \"name\" appears twice");

  auto missing = readBackendManifest(f.backends, "absent", f.libexec);
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.status().code() == StatusCode::kNotFound);
  CHECK(missing.status().message() == "backend manifest " + (f.backends / "absent.json").string() +
                                          ": cannot be read: " + errnoText(ENOENT));

  writeFile(f.file, std::string(kMaxBackendManifestBytes + 1, ' '));
  auto large = readBackendManifest(f.backends, "probe", f.libexec);
  REQUIRE_FALSE(large.ok());
  CHECK(large.status().code() == StatusCode::kFailedPrecondition);
  CHECK(large.status().message() == "backend manifest " + f.file.string() + ": expected at most " +
                                        std::to_string(kMaxBackendManifestBytes) + " bytes, found " +
                                        std::to_string(kMaxBackendManifestBytes + 1));

  fs::remove(f.file);
  fs::create_directories(f.file);
  CHECK(readBackendManifest(f.backends, "probe", f.libexec).status().message() ==
        "backend manifest " + f.file.string() + ": expected a regular file");
}

TEST_CASE("a backend's binary, descriptor set and profile are checked", "[backend]") {
  Fixture f;
  auto ok = loadBackendResources(f.manifest());
  REQUIRE(ok.ok());
  CHECK(ok->profileText == std::string(kProfile) + std::string(kChildSetupRules));
  // The profile's four calls, then the two of machined's child setup (and one of the
  // sanitizer runtime in a sanitizer build).
  REQUIRE(ok->policy.rules.size() >= 6);
  CHECK(ok->policy.rules[4].name == "prctl");
  CHECK(ok->policy.rules[4].conditions.size() == 1);
  CHECK(ok->policy.rules[5].name == "getppid");
  CHECK(ok->rules.at("/keel.probe.v1.ProbeService/Get") == std::vector<std::string>{"os:reader"});
  CHECK(ok->rules.at("/keel.probe.v1.ProbeService/Put") == std::vector<std::string>{"os:admin"});
  CHECK(ok->rules.count("/keel.probe.v1.OtherService/Ping") == 0);

  const auto refusal = [&](const BackendManifest& m, StatusCode code) {
    auto r = loadBackendResources(m);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == code);
    return r.status().message();
  };

  SECTION("binary") {
    const auto absent = f.manifest([](json& j) { j["binary"] = "absent"; });
    CHECK(refusal(absent, StatusCode::kNotFound) ==
          "binary " + (f.libexec / "absent").string() + ": " + errnoText(ENOENT));
    chmod((f.libexec / "probe").c_str(), 0644);
    // Not executable by anyone (root included).
    CHECK(refusal(f.manifest(), StatusCode::kFailedPrecondition) ==
          "binary " + (f.libexec / "probe").string() + ": expected an executable file");
    const auto dir = f.manifest([&](json& j) { j["binary"] = f.libexec.string(); });
    CHECK(refusal(dir, StatusCode::kFailedPrecondition) ==
          "binary " + f.libexec.string() + ": expected an executable file");
  }
  SECTION("descriptor set") {
    const fs::path pb = f.backends / "probe.pb";
    const auto absent = f.manifest([](json& j) { j["descriptorSet"] = "absent.pb"; });
    CHECK(refusal(absent, StatusCode::kNotFound) ==
          "descriptor set " + (f.backends / "absent.pb").string() + ": cannot be read: " + errnoText(ENOENT));
    writeFile(pb, "not a descriptor set");
    CHECK(refusal(f.manifest(), StatusCode::kInvalidArgument) ==
          "descriptor set " + pb.string() + ": not a serialized FileDescriptorSet");
    writeFile(pb, descriptorSet());
    const auto unknown = f.manifest([](json& j) {
      j["services"] = {"keel.probe.v1.ProbeService", "keel.x.v1.Nope"};
    });
    CHECK(refusal(unknown, StatusCode::kInvalidArgument) ==
          "descriptor set " + pb.string() + ": expected service keel.x.v1.Nope, found no such service");
    writeFile(pb, descriptorSet(false));
    CHECK(refusal(f.manifest(), StatusCode::kInvalidArgument) ==
          "descriptor set " + pb.string() +
              ": method /keel.probe.v1.ProbeService/Put has no keel.common.v1.allowed_roles rule (a method "
              "without "
              "a rule could never be called)");
    // Only the services the manifest lists are checked.
    CHECK(loadBackendResources(f.manifest([](json& j) {
            j["services"] = {"keel.probe.v1.OtherService"};
          })).ok());
  }
  SECTION("seccomp profile") {
    const fs::path policy = f.backends / "probe.policy";
    const auto absent = f.manifest([](json& j) { j["sandbox"] = "/nonexistent/probe.policy"; });
    CHECK(refusal(absent, StatusCode::kNotFound) ==
          "seccomp profile /nonexistent/probe.policy: cannot be read: " + errnoText(ENOENT));
    writeFile(policy, "execve\nno_such_call\n");
    CHECK(refusal(f.manifest(), StatusCode::kInvalidArgument) ==
          "seccomp profile " + policy.string() +
              ": seccomp policy line 2: unknown syscall 'no_such_call' (expected a syscall of this "
              "architecture)");
    // The hard deny list holds for a backend's own profile too.
    writeFile(policy, "execve\nptrace\n");
    CHECK(refusal(f.manifest(), StatusCode::kInvalidArgument) ==
          "seccomp profile " + policy.string() +
              ": seccomp policy line 2: 'ptrace' is on the hard deny list; no profile can allow it");
    writeFile(policy, "read\nwrite\n");
    CHECK(refusal(f.manifest(), StatusCode::kInvalidArgument) ==
          "seccomp profile " + policy.string() +
              ": expected execve to be allowed (machined loads the profile before "
              "it executes " +
              (f.libexec / "probe").string() + "), found no execve rule");
    writeFile(policy, "execve\n" + std::string(kMaxSeccompProfileBytes, '#'));
    CHECK_THAT(refusal(f.manifest(), StatusCode::kFailedPrecondition),
               StartsWith("seccomp profile " + policy.string() + ": expected at most "));
  }
}

TEST_CASE("a backend may not take a built-in service, another backend's service or a taken socket",
          "[backend]") {
  Fixture f;
  BackendClaims claims({"ntpd"});
  const auto first = f.manifest();
  REQUIRE(claims.check(first).isOk());
  claims.add(first);

  const auto refusal = [&](const BackendManifest& m) {
    const Status st = claims.check(m);
    CHECK(st.code() == StatusCode::kAlreadyExists);
    return st.message();
  };
  for (const auto& builtin : BackendClaims::builtinServices()) {
    INFO(builtin);
    const auto m = f.manifest([&](json& j) {
      j["services"] = {builtin};
      j["socket"] = "other.sock";
    });
    CHECK(refusal(m) == "service " + builtin + " is already served by a built-in service");
  }
  const auto sameService = f.manifest([](json& j) {
    j["services"] = {"keel.probe.v1.OtherService", "keel.probe.v1.ProbeService"};
    j["socket"] = "other.sock";
  });
  CHECK(refusal(sameService) == "service keel.probe.v1.ProbeService is already served by backend probe");
  const auto sameSocket = f.manifest([](json& j) { j["services"] = {"keel.probe.v1.OtherService"}; });
  CHECK(refusal(sameSocket) == "socket probe.sock is already used by backend probe");
  for (const auto& [socket, holder] :
       std::vector<std::pair<std::string, std::string>>{{"machined.sock", "built-in machined"},
                                                        {"apid.sock", "built-in apid"},
                                                        {"trustd.sock", "built-in trustd"},
                                                        {"backends.d", "apid's routing manifests"},
                                                        {"ntpd.sock", "extension ntpd"}}) {
    const auto m = f.manifest([&](json& j) {
      j["services"] = {"keel.probe.v1.OtherService"};
      j["socket"] = socket;
    });
    CHECK(refusal(m) == "socket " + socket + " is already used by " + holder);
  }
  // A refused check claims nothing: the other service is still free.
  const auto other = f.manifest([](json& j) {
    j["services"] = {"keel.probe.v1.OtherService"};
    j["socket"] = "other.sock";
  });
  CHECK(claims.check(other).isOk());
}

}  // namespace
}  // namespace keel::machined
