#include "routes.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor.pb.h>

#include <algorithm>
#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "keel/common/v1/common.pb.h"
#include "keel/testing/testing.h"

namespace keel::apid {
namespace {

namespace pb = google::protobuf;
using Catch::Matchers::ContainsSubstring;
using keel::testing::TempDir;
using keel::testing::writeFile;

const std::string kVersion = "/keel.machine.v1.MachineService/Version";
const std::string kLogs = "/keel.machine.v1.MachineService/Logs";

nlohmann::json machinedManifest() {
  return {{"name", "machined"},
          {"socket", "/run/keel/machined.sock"},
          {"services", {"keel.machine.v1.MachineService"}},
          {"allowedUids", {0}},
          {"rules", "builtin"}};
}

// --- Routes::load ---

TEST_CASE("the builtin machined manifest routes its unary and streaming methods, both fanning out", "[routes]") {
  TempDir dir;
  writeFile(dir / "machined.json", machinedManifest().dump());
  const auto routes = Routes::load(dir.path());
  CHECK(routes->problems().empty());
  REQUIRE(routes->backends().size() == 1);

  const MethodInfo* version = routes->find(kVersion);
  REQUIRE(version != nullptr);
  CHECK(version->backend == routes->backends().front());
  CHECK(version->backend->socket == "/run/keel/machined.sock");
  CHECK(version->fanOut);
  CHECK_FALSE(version->serverStreaming);
  CHECK_FALSE(version->clientStreaming);

  const MethodInfo* logs = routes->find(kLogs);
  REQUIRE(logs != nullptr);
  CHECK(logs->serverStreaming);
  CHECK(logs->fanOut);

  CHECK(routes->find("/keel.machine.v1.MachineService/NoSuchMethod") == nullptr);
  CHECK(routes->rules().check(kVersion, {"os:reader"}).isOk());
  CHECK(routes->rules().check("/keel.machine.v1.MachineService/Read", {"os:reader"}).code() ==
        StatusCode::kPermissionDenied);
}

TEST_CASE("a missing or empty backends directory gives an empty table", "[routes]") {
  TempDir dir;
  const auto empty = Routes::load(dir.path());
  CHECK(empty->backends().empty());
  CHECK(empty->problems().empty());
  CHECK(empty->find(kVersion) == nullptr);
  const auto missing = Routes::load(dir / "absent");
  CHECK(missing->backends().empty());
  CHECK(missing->problems().empty());
}

TEST_CASE("a manifest naming a service apid does not know is skipped and reported, the others load",
          "[routes]") {
  TempDir dir;
  writeFile(dir / "machined.json", machinedManifest().dump());
  auto unknown = machinedManifest();
  unknown["name"] = "ext";
  unknown["socket"] = "/run/ext.sock";
  unknown["services"] = {"acme.ext.v1.Ext"};
  writeFile(dir / "ext.json", unknown.dump());
  const auto routes = Routes::load(dir.path());
  REQUIRE(routes->problems().size() == 1);
  CHECK(routes->problems()[0].file == dir / "ext.json");
  CHECK_THAT(routes->problems()[0].status.message(), ContainsSubstring("acme.ext.v1.Ext"));
  CHECK_THAT(routes->problems()[0].status.message(), ContainsSubstring("ext.json"));
  REQUIRE(routes->backends().size() == 1);
  CHECK(routes->backends()[0]->name == "machined");
  CHECK(routes->find(kVersion) != nullptr);
}

TEST_CASE("a second manifest serving an already served service is skipped and reported", "[routes]") {
  TempDir dir;
  writeFile(dir / "a.json", machinedManifest().dump());
  auto second = machinedManifest();
  second["name"] = "impostor";
  second["socket"] = "/tmp/impostor.sock";
  writeFile(dir / "b.json", second.dump());
  const auto routes = Routes::load(dir.path());
  REQUIRE(routes->backends().size() == 1);
  CHECK(routes->backends()[0]->name == "machined");
  REQUIRE(routes->problems().size() == 1);
  CHECK(routes->problems()[0].file == dir / "b.json");
  CHECK(routes->problems()[0].status.code() == StatusCode::kAlreadyExists);
  CHECK(routes->find(kVersion)->backend->socket == "/run/keel/machined.sock");
}

TEST_CASE("files that are not *.json are ignored, a broken *.json is reported", "[routes]") {
  TempDir dir;
  writeFile(dir / "machined.json", machinedManifest().dump());
  writeFile(dir / "README", "not json at all");
  writeFile(dir / "machined.json.bak", "{ broken");
  writeFile(dir / "broken.json", "{ broken");
  const auto routes = Routes::load(dir.path());
  REQUIRE(routes->problems().size() == 1);
  CHECK(routes->problems()[0].file == dir / "broken.json");
  CHECK(routes->problems()[0].status.code() == StatusCode::kInvalidArgument);
  CHECK(routes->backends().size() == 1);
}

TEST_CASE("a manifest whose descriptor set cannot be read is reported", "[routes]") {
  TempDir dir;
  auto ext = machinedManifest();
  ext["name"] = "ext";
  ext["services"] = {"acme.ext.v1.Ext"};
  ext["rules"] = (dir / "missing.pb").string();
  writeFile(dir / "ext.json", ext.dump());
  writeFile(dir / "garbage.pb", "\xff\xff\xff not a descriptor set");
  auto garbage = ext;
  garbage["name"] = "garbage";
  garbage["rules"] = (dir / "garbage.pb").string();
  writeFile(dir / "garbage.json", garbage.dump());
  const auto routes = Routes::load(dir.path());
  CHECK(routes->backends().empty());
  CHECK(routes->problems().size() == 2);
}

TEST_CASE("the directory fingerprint changes when a manifest changes, is added or removed", "[routes]") {
  TempDir dir;
  writeFile(dir / "machined.json", machinedManifest().dump());
  const std::string first = Routes::fingerprintDir(dir.path());
  CHECK(first == Routes::fingerprintDir(dir.path()));
  CHECK(Routes::load(dir.path())->fingerprint() == first);

  auto changed = machinedManifest();
  changed["allowedUids"] = {0, 1234};
  writeFile(dir / "machined.json", changed.dump());
  const std::string second = Routes::fingerprintDir(dir.path());
  CHECK(second != first);

  writeFile(dir / "ext.json", "{}");
  const std::string third = Routes::fingerprintDir(dir.path());
  CHECK(third != second);
  std::filesystem::remove(dir / "ext.json");
  CHECK(Routes::fingerprintDir(dir.path()) == second);
}

// --- descriptor-set backends ---

void addMethod(pb::ServiceDescriptorProto* service, const std::string& name, const std::string& output,
               bool serverStreaming, const std::vector<std::string>& roles) {
  auto* m = service->add_method();
  m->set_name(name);
  m->set_input_type(".keel.common.v1.Empty");
  m->set_output_type(output);
  m->set_server_streaming(serverStreaming);
  for (const auto& role : roles) m->mutable_options()->AddExtension(keel::common::v1::allowed_roles, role);
}

// An extension backend's rules as `protoc --include_imports --descriptor_set_out` writes
// them: common.proto, then a file with a per-node reply shape and a plain one.
std::string extDescriptorSet(bool withRulelessMethod = false) {
  pb::FileDescriptorSet set;
  keel::common::v1::Empty::descriptor()->file()->CopyTo(set.add_file());
  pb::FileDescriptorProto* file = set.add_file();
  file->set_name("acme/ext/v1/ext.proto");
  file->set_package("acme.ext.v1");
  file->set_syntax("proto3");
  file->add_dependency("keel/common/v1/common.proto");

  auto* entry = file->add_message_type();
  entry->set_name("Entry");
  auto* md = entry->add_field();
  md->set_name("metadata");
  md->set_number(1);
  md->set_label(pb::FieldDescriptorProto::LABEL_OPTIONAL);
  md->set_type(pb::FieldDescriptorProto::TYPE_MESSAGE);
  md->set_type_name(".keel.common.v1.Metadata");
  auto* value = entry->add_field();
  value->set_name("value");
  value->set_number(2);
  value->set_label(pb::FieldDescriptorProto::LABEL_OPTIONAL);
  value->set_type(pb::FieldDescriptorProto::TYPE_STRING);

  auto* reply = file->add_message_type();
  reply->set_name("Reply");
  auto* messages = reply->add_field();
  messages->set_name("messages");
  messages->set_number(1);
  messages->set_label(pb::FieldDescriptorProto::LABEL_REPEATED);
  messages->set_type(pb::FieldDescriptorProto::TYPE_MESSAGE);
  messages->set_type_name(".acme.ext.v1.Entry");

  auto* service = file->add_service();
  service->set_name("Ext");
  addMethod(service, "Get", ".acme.ext.v1.Reply", false, {"os:operator", "os:reader"});
  addMethod(service, "Watch", ".acme.ext.v1.Entry", true, {"os:admin"});
  addMethod(service, "Ping", ".keel.common.v1.Empty", false, {"os:reader"});
  if (withRulelessMethod) addMethod(service, "Wipe", ".keel.common.v1.Empty", false, {});
  return set.SerializeAsString();
}

TEST_CASE("a backend with a descriptor set gets the rules and reply shapes of its methods", "[routes]") {
  TempDir dir;
  writeFile(dir / "ext.pb", extDescriptorSet());
  auto ext = machinedManifest();
  ext["name"] = "ext";
  ext["socket"] = "/run/ext/ext.sock";
  ext["services"] = {"acme.ext.v1.Ext"};
  ext["rules"] = (dir / "ext.pb").string();
  writeFile(dir / "ext.json", ext.dump());
  writeFile(dir / "machined.json", machinedManifest().dump());

  const auto routes = Routes::load(dir.path());
  for (const auto& p : routes->problems()) UNSCOPED_INFO(p.status.toString());
  REQUIRE(routes->problems().empty());
  CHECK(routes->backends().size() == 2);

  const auto& rules = routes->rules().rules();
  REQUIRE(rules.count("/acme.ext.v1.Ext/Get") == 1);
  auto getRoles = rules.at("/acme.ext.v1.Ext/Get");
  std::sort(getRoles.begin(), getRoles.end());
  CHECK(getRoles == std::vector<std::string>{"os:operator", "os:reader"});
  CHECK(rules.at("/acme.ext.v1.Ext/Watch") == std::vector<std::string>{"os:admin"});
  CHECK(routes->rules().check("/acme.ext.v1.Ext/Get", {"os:reader"}).isOk());
  CHECK(routes->rules().check("/acme.ext.v1.Ext/Watch", {"os:reader"}).code() == StatusCode::kPermissionDenied);
  // machined's builtin rules are still there.
  CHECK(routes->rules().check(kVersion, {"os:reader"}).isOk());

  const MethodInfo* get = routes->find("/acme.ext.v1.Ext/Get");
  REQUIRE(get != nullptr);
  CHECK(get->backend->socket == "/run/ext/ext.sock");
  CHECK(get->fanOut);
  const MethodInfo* watch = routes->find("/acme.ext.v1.Ext/Watch");
  REQUIRE(watch != nullptr);
  CHECK(watch->serverStreaming);
  CHECK(watch->fanOut);
  const MethodInfo* ping = routes->find("/acme.ext.v1.Ext/Ping");
  REQUIRE(ping != nullptr);
  CHECK_FALSE(ping->fanOut);  // Empty is not a per-node reply
}

TEST_CASE("a backend with a method that has no rule is refused naming the method; the others load", "[routes]") {
  TempDir dir;
  writeFile(dir / "ext.pb", extDescriptorSet(/*withRulelessMethod=*/true));
  auto ext = machinedManifest();
  ext["name"] = "ext";
  ext["socket"] = "/run/ext/ext.sock";
  ext["services"] = {"acme.ext.v1.Ext"};
  ext["rules"] = (dir / "ext.pb").string();
  writeFile(dir / "ext.json", ext.dump());
  writeFile(dir / "machined.json", machinedManifest().dump());
  const auto routes = Routes::load(dir.path());
  REQUIRE(routes->problems().size() == 1);
  CHECK(routes->problems()[0].status.code() == StatusCode::kFailedPrecondition);
  CHECK_THAT(routes->problems()[0].status.message(), ContainsSubstring("/acme.ext.v1.Ext/Wipe"));
  CHECK(routes->find("/acme.ext.v1.Ext/Get") == nullptr);
  CHECK(routes->find(kVersion) != nullptr);
}

TEST_CASE("a manifest claiming a service another backend serves is refused naming that backend", "[routes]") {
  TempDir dir;
  writeFile(dir / "machined.json", machinedManifest().dump());
  auto impostor = machinedManifest();
  impostor["name"] = "zz-impostor";
  impostor["services"] = {"keel.machine.v1.MachineService"};
  writeFile(dir / "zz-impostor.json", impostor.dump());
  const auto routes = Routes::load(dir.path());
  REQUIRE(routes->problems().size() == 1);
  CHECK_THAT(routes->problems()[0].status.message(),
             ContainsSubstring("service keel.machine.v1.MachineService is already served by backend machined"));
  CHECK(routes->backendOf("keel.machine.v1.MachineService")->name == "machined");
  CHECK(routes->backendOf("keel.nothing.v1.None") == nullptr);
}

TEST_CASE("a manifest's optional version is read and checked", "[routes]") {
  auto m = machinedManifest();
  m["version"] = "1.2.3";
  REQUIRE(contracts::parseRouteEntry(m.dump()).ok());
  CHECK(contracts::parseRouteEntry(m.dump())->version == "1.2.3");
  m["version"] = "";
  CHECK_THAT(contracts::parseRouteEntry(m.dump()).status().message(), ContainsSubstring("version"));
  m["version"] = std::string("1\n2");
  CHECK_FALSE(contracts::parseRouteEntry(m.dump()).ok());
}

}  // namespace
}  // namespace keel::apid
