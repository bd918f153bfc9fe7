#include <algorithm>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <sstream>

#include <catch2/catch_test_macros.hpp>
#include <google/protobuf/descriptor.pb.h>
#include <grpcpp/grpcpp.h>

#include "keel/machine/v1/machine.grpc.pb.h"
#include "keel/testing/testing.h"
#include "keel/time/v1/time.grpc.pb.h"

#include "call_command.h"
#include "dynamic_schema.h"
#include "generic_call.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"
#include "reflection_client.h"
#include "test_pki.h"
#include "time_command.h"

using namespace keel::keelctl;
using keel::StatusCode;
namespace gp = google::protobuf;
namespace refl = grpc::reflection::v1alpha;
namespace tv1 = keel::time::v1;
namespace mv1 = keel::machine::v1;

namespace {

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

long lines(const std::string& text) {
  return std::count(text.begin(), text.end(), '\n');
}

// `file` and the files it imports, each after the files that import it (the order a
// pool cannot build them in).
std::vector<const gp::FileDescriptor*> withImports(const gp::FileDescriptor* file) {
  std::vector<const gp::FileDescriptor*> out;
  std::set<const gp::FileDescriptor*> seen;
  std::vector<const gp::FileDescriptor*> todo{file};
  while (!todo.empty()) {
    const auto* f = todo.front();
    todo.erase(todo.begin());
    if (!seen.insert(f).second) continue;
    out.push_back(f);
    for (int i = 0; i < f->dependency_count(); ++i) todo.push_back(f->dependency(i));
  }
  return out;
}

std::string serialized(const gp::FileDescriptor* file) {
  gp::FileDescriptorProto proto;
  file->CopyTo(&proto);
  return proto.SerializeAsString();
}

std::vector<std::string> serializedWithImports(const std::string& fileName) {
  std::vector<std::string> out;
  for (const auto* f : withImports(gp::DescriptorPool::generated_pool()->FindFileByName(fileName))) {
    out.push_back(serialized(f));
  }
  return out;
}

using Metadata = std::vector<std::pair<std::string, std::string>>;

// The client metadata of each call a fake serves, in order. Thread-safe.
class MetadataLog {
 public:
  void record(const grpc::ServerContext& context) {
    Metadata md;
    for (const auto& [k, v] : context.client_metadata()) {
      md.emplace_back(std::string(k.data(), k.size()), std::string(v.data(), v.size()));
    }
    std::lock_guard lock(mu_);
    calls_.push_back(std::move(md));
  }
  std::vector<Metadata> calls() const {
    std::lock_guard lock(mu_);
    return calls_;
  }

 private:
  mutable std::mutex mu_;
  std::vector<Metadata> calls_;
};

bool has(const Metadata& md, const std::string& key, const std::string& value) {
  return std::find(md.begin(), md.end(), std::make_pair(key, value)) != md.end();
}

bool hasKey(const Metadata& md, const std::string& key) {
  return std::any_of(md.begin(), md.end(), [&](const auto& kv) { return kv.first == key; });
}

// Reflection answered from keelctl's own generated pool, as apid answers from the
// backends' descriptor sets.
class FakeReflection final : public refl::ServerReflection::Service {
 public:
  std::vector<std::string> services;
  // False: file_containing_symbol sends the defining file only, so that the client has
  // to ask for the imports by name.
  bool sendImports = true;

  grpc::Status ServerReflectionInfo(
      grpc::ServerContext* context,
      grpc::ServerReaderWriter<refl::ServerReflectionResponse, refl::ServerReflectionRequest>* stream)
      override {
    metadata.record(*context);
    refl::ServerReflectionRequest req;
    while (stream->Read(&req)) {
      refl::ServerReflectionResponse resp;
      *resp.mutable_original_request() = req;
      const gp::DescriptorPool* pool = gp::DescriptorPool::generated_pool();
      const gp::FileDescriptor* file = nullptr;
      bool withImportsToo = true;
      if (req.has_list_services()) {
        for (const auto& s : services) resp.mutable_list_services_response()->add_service()->set_name(s);
      } else if (req.has_file_containing_symbol()) {
        file = pool->FindFileContainingSymbol(req.file_containing_symbol());
        withImportsToo = sendImports;
      } else if (req.has_file_by_filename()) {
        file = pool->FindFileByName(req.file_by_filename());
        std::lock_guard lock(mu_);
        askedByName_.push_back(req.file_by_filename());
      }
      if (file != nullptr) {
        auto* files = resp.mutable_file_descriptor_response();
        for (const auto* f : withImportsToo ? withImports(file) : std::vector{file}) {
          files->add_file_descriptor_proto(serialized(f));
        }
      } else if (!req.has_list_services()) {
        resp.mutable_error_response()->set_error_code(static_cast<int>(grpc::StatusCode::NOT_FOUND));
        resp.mutable_error_response()->set_error_message("not found");
      }
      if (!stream->Write(resp)) break;
    }
    return grpc::Status::OK;
  }

  MetadataLog metadata;

  std::vector<std::string> askedByName() {
    std::lock_guard lock(mu_);
    return askedByName_;
  }

 private:
  std::mutex mu_;
  std::vector<std::string> askedByName_;
};

// Two nodes' clocks, the second failed, as apid's fan-out would answer.
class FakeTime final : public tv1::TimeService::Service {
 public:
  grpc::Status Now(grpc::ServerContext* context, const tv1::NowRequest* /*request*/,
                   tv1::NowResponse* response) override {
    metadata.record(*context);
    auto* a = response->add_messages();
    a->mutable_metadata()->set_node("node-a");
    a->set_wall_rfc3339("2026-12-06T03:20:23Z");
    a->set_monotonic_nanos(61'500'000'000);
    a->set_boot_nanos(61'500'000'000);
    a->mutable_sync()->set_clocksource("tsc");
    auto* b = response->add_messages();
    b->mutable_metadata()->set_node("node-b");
    b->mutable_metadata()->set_error("clock unreadable");
    b->mutable_metadata()->set_code(static_cast<int>(grpc::StatusCode::INTERNAL));
    return grpc::Status::OK;
  }
  MetadataLog metadata;
};

class FakeMachine final : public mv1::MachineService::Service {
 public:
  grpc::Status Logs(grpc::ServerContext* /*context*/, const mv1::LogsRequest* request,
                    grpc::ServerWriter<mv1::LogLine>* writer) override {
    for (int i = 0; i < request->tail_lines(); ++i) {
      mv1::LogLine line;
      line.set_line(request->service() + " line " + std::to_string(i));
      writer->Write(line);
    }
    return grpc::Status::OK;
  }
  grpc::Status Version(grpc::ServerContext* /*context*/, const keel::common::v1::Empty* /*request*/,
                       mv1::VersionResponse* /*response*/) override {
    ++versionCalls;
    return grpc::Status::OK;
  }
  std::atomic<int> versionCalls = 0;
};

// A server on a Unix socket in a temp dir, reached the way keelctl reaches a local node
// (MachineClient on --socket): the same code path as through apid, without TLS.
struct Node {
  keel::testing::TempDir dir;
  FakeReflection reflection;
  FakeTime time;
  FakeMachine machine;
  std::unique_ptr<grpc::Server> server;
  std::unique_ptr<MachineClient> client;
  std::ostringstream out, err;
  std::istringstream in;

  Node() {
    reflection.services = {"keel.time.v1.TimeService", "keel.machine.v1.MachineService",
                           "grpc.reflection.v1alpha.ServerReflection"};
    grpc::ServerBuilder builder;
    builder.AddListeningPort("unix:" + (dir / "node.sock").string(), grpc::InsecureServerCredentials());
    builder.RegisterService(&reflection);
    builder.RegisterService(&time);
    builder.RegisterService(&machine);
    server = builder.BuildAndStart();
    REQUIRE(server);
    MachineTarget target;
    target.socket = dir / "node.sock";
    client = std::make_unique<MachineClient>(target);
  }
  ~Node() { server->Shutdown(); }

  MachineCommandEnv env() { return MachineCommandEnv{*client, OutputFormat::kTable, out, err, in}; }

  keel::Status call(const std::string& method, const std::string& request = "{}", bool compact = false) {
    out.str("");
    err.str("");
    auto e = env();
    CallArgs args;
    args.method = method;
    args.request = request;
    args.compact = compact;
    return cmdCall(e, args);
  }
};

}  // namespace

TEST_CASE("method names are read with a slash, a leading slash or dots") {
  using V = std::vector<MethodName>;
  CHECK(*parseMethodName("keel.time.v1.TimeService/Now") == V{{"keel.time.v1.TimeService", "Now"}});
  CHECK(*parseMethodName("/keel.time.v1.TimeService/Now") == V{{"keel.time.v1.TimeService", "Now"}});
  // Dotted: a capitalised parent is a service, so the method reading comes first.
  CHECK(*parseMethodName("keel.time.v1.TimeService.Now") ==
        V{{"keel.time.v1.TimeService", "Now"}, {"keel.time.v1.TimeService.Now", ""}});
  CHECK(*parseMethodName("keel.time.v1.TimeService") ==
        V{{"keel.time.v1.TimeService", ""}, {"keel.time.v1", "TimeService"}});
  CHECK(*parseMethodName("Greeter") == V{{"Greeter", ""}});
  CHECK(*parseMethodName("Greeter/Hello") == V{{"Greeter", "Hello"}});
  for (const char* bad : {"", "/", "a.b/", "/a.b", "a..b/C", "a.b/C/D", "a.b/C.D", "9a.B/C", "a.b C", "a.b/",
                          "a.b/C-D", "/a.b.C", ".a.b"}) {
    INFO(bad);
    const auto parsed = parseMethodName(bad);
    REQUIRE(!parsed.ok());
    CHECK(parsed.status().code() == StatusCode::kInvalidArgument);
    CHECK(contains(parsed.status().message(), "package.Service/Method"));
  }
}

TEST_CASE("a schema builds from file descriptors sent in any order") {
  auto files = serializedWithImports("keel/time/v1/time.proto");
  REQUIRE(files.size() == 3);  // time.proto, common.proto, descriptor.proto
  std::sort(files.begin(), files.end());
  do {
    DynamicSchema schema;
    REQUIRE(schema.addFiles(files).isOk());
    const auto* method = schema.pool().FindMethodByName("keel.time.v1.TimeService.Now");
    REQUIRE(method != nullptr);
    // A pool of its own, though keelctl has the same files built in.
    CHECK(method !=
          tv1::NowRequest::descriptor()->file()->FindServiceByName("TimeService")->FindMethodByName("Now"));
    CHECK(method->output_type()->field(0)->message_type()->field(0)->message_type()->full_name() ==
          "keel.common.v1.Metadata");
    // Files it has already are skipped.
    CHECK(schema.addFiles(files).isOk());
  } while (std::next_permutation(files.begin(), files.end()));
}

TEST_CASE("a schema asks for an import nobody sent, then falls back to the files keelctl has") {
  const auto time = serialized(tv1::NowRequest::descriptor()->file());
  {
    std::vector<std::string> asked;
    DynamicSchema schema;
    REQUIRE(schema
                .addFiles({time},
                          [&](const std::string& name) -> keel::Result<std::vector<std::string>> {
                            asked.push_back(name);
                            return serializedWithImports(name);
                          })
                .isOk());
    CHECK(asked == std::vector<std::string>{"keel/common/v1/common.proto"});
    CHECK(schema.findService("keel.time.v1.TimeService") != nullptr);
  }
  {
    DynamicSchema schema;  // no fetcher: keelctl's own copies of the imports
    REQUIRE(schema.addFiles({time}).isOk());
    CHECK(schema.findService("keel.time.v1.TimeService") != nullptr);
  }
  {
    gp::FileDescriptorProto orphan;
    orphan.set_name("ext/v1/ext.proto");
    orphan.add_dependency("ext/v1/gone.proto");
    DynamicSchema schema;
    const auto st = schema.addFiles({orphan.SerializeAsString()},
                                    [](const std::string&) -> keel::Result<std::vector<std::string>> {
                                      return keel::notFound("no such file");
                                    });
    CHECK(st.code() == StatusCode::kNotFound);
    CHECK(contains(st.message(), "ext/v1/ext.proto imports ext/v1/gone.proto"));
    CHECK(contains(st.message(), "no such file"));
  }
  {
    DynamicSchema schema;
    const auto st = schema.addFiles({"\xff\xff not a descriptor"});
    CHECK(st.code() == StatusCode::kInvalidArgument);
  }
  {
    gp::FileDescriptorProto broken;
    broken.set_name("ext/v1/broken.proto");
    broken.set_package("ext.v1");
    auto* m = broken.add_message_type();
    m->set_name("M");
    auto* f = m->add_field();
    f->set_name("x");
    f->set_number(1);
    f->set_type_name(".ext.v1.Missing");
    DynamicSchema schema;
    const auto st = schema.addFiles({broken.SerializeAsString()});
    CHECK(st.code() == StatusCode::kInvalidArgument);
    CHECK(contains(st.message(), "ext/v1/broken.proto does not build"));
    CHECK(contains(st.message(), "Missing"));
  }
}

TEST_CASE("JSON requests are parsed into the method's type, and errors name the field") {
  DynamicSchema schema;
  REQUIRE(schema.addFiles(serializedWithImports("keel/machine/v1/machine.proto")).isOk());
  const auto* logs = schema.pool().FindMessageTypeByName("keel.machine.v1.LogsRequest");
  REQUIRE(logs != nullptr);

  auto msg = schema.newMessage(*logs);
  REQUIRE(messageFromJson(R"({"service": "apid", "tailLines": 5, "follow": true})", *msg).isOk());
  mv1::LogsRequest typed;
  REQUIRE(typed.ParseFromString(msg->SerializeAsString()));
  CHECK(typed.service() == "apid");
  CHECK(typed.tail_lines() == 5);
  CHECK(typed.follow());

  auto st = messageFromJson(R"({"servcie": "apid"})", *schema.newMessage(*logs));
  CHECK(st.code() == StatusCode::kInvalidArgument);
  CHECK(contains(st.message(), "keel.machine.v1.LogsRequest"));
  CHECK(contains(st.message(), "servcie"));
  CHECK(contains(st.message(), "service, tail_lines, follow"));

  st = messageFromJson(R"({"tail_lines": "five"})", *schema.newMessage(*logs));
  CHECK(st.code() == StatusCode::kInvalidArgument);
  CHECK(contains(st.message(), "tail_lines"));

  st = messageFromJson(R"({"service": )", *schema.newMessage(*logs));
  CHECK(st.code() == StatusCode::kInvalidArgument);

  const auto* empty = schema.pool().FindMessageTypeByName("keel.common.v1.Empty");
  st = messageFromJson(R"({"x": 1})", *schema.newMessage(*empty));
  CHECK(contains(st.message(), "keel.common.v1.Empty has no fields"));
}

TEST_CASE("replies are printed as JSON with the .proto's field names") {
  DynamicSchema schema;
  REQUIRE(schema.addFiles(serializedWithImports("keel/machine/v1/machine.proto")).isOk());
  auto msg = schema.newMessage(*schema.pool().FindMessageTypeByName("keel.machine.v1.LogsRequest"));
  REQUIRE(messageFromJson(R"({"service": "apid"})", *msg).isOk());
  CHECK(*messageToJson(*msg, false) == R"({"service":"apid","tail_lines":0,"follow":false})");
  CHECK(*messageToJson(*msg, true) ==
        "{\n \"service\": \"apid\",\n \"tail_lines\": 0,\n \"follow\": false\n}");
  const auto* logs = schema.pool().FindMethodByName("keel.machine.v1.MachineService.Logs");
  CHECK(describeMethod(*logs) ==
        "rpc Logs(keel.machine.v1.LogsRequest) returns (stream keel.machine.v1.LogLine)");
  const auto* upgrade = schema.pool().FindMethodByName("keel.machine.v1.MachineService.Upgrade");
  CHECK(!checkCallable(*upgrade).isOk());
  CHECK(checkCallable(*logs).isOk());
}

TEST_CASE("call lists the services and a service's methods from reflection") {
  Node node;
  REQUIRE(node.call("").isOk());
  CHECK(
      node.out.str() ==
      "grpc.reflection.v1alpha.ServerReflection\nkeel.machine.v1.MachineService\nkeel.time.v1.TimeService\n");

  REQUIRE(node.call("keel.time.v1.TimeService").isOk());
  CHECK(node.out.str() ==
        "keel.time.v1.TimeService\n"
        "  rpc Now(keel.time.v1.NowRequest) returns (keel.time.v1.NowResponse)\n");
}

TEST_CASE("call runs a fan-out method and reports the failed node") {
  Node node;
  for (const char* name :
       {"keel.time.v1.TimeService/Now", "/keel.time.v1.TimeService/Now", "keel.time.v1.TimeService.Now"}) {
    INFO(name);
    const auto st = node.call(name, "{}", true);
    CHECK(st.code() == StatusCode::kUnavailable);
    CHECK(st.message() == "1 of 2 nodes failed");
    CHECK(node.err.str() == "node-b: clock unreadable\n");
    CHECK(contains(node.out.str(), R"({"messages":[{"metadata":{"node":"node-a","error":"","code":0},)"));
    CHECK(contains(node.out.str(), R"("wall_rfc3339":"2026-12-06T03:20:23Z")"));
    CHECK(lines(node.out.str()) == 1);
  }
}

TEST_CASE("call follows a server stream, one reply per line") {
  Node node;
  REQUIRE(node.call("keel.machine.v1.MachineService/Logs", R"({"service": "apid", "tail_lines": 3})", true)
              .isOk());
  CHECK(node.out.str() ==
        "{\"line\":\"YXBpZCBsaW5lIDA=\"}\n"
        "{\"line\":\"YXBpZCBsaW5lIDE=\"}\n"
        "{\"line\":\"YXBpZCBsaW5lIDI=\"}\n");
}

TEST_CASE("call reads the request from stdin or a file") {
  Node node;
  node.in.str(R"({"service": "trustd", "tail_lines": 1})");
  REQUIRE(node.call("keel.machine.v1.MachineService/Logs", "-", true).isOk());
  CHECK(contains(node.out.str(), "dHJ1c3RkIGxpbmUgMA=="));  // "trustd line 0"
  { std::ofstream(node.dir / "req.json") << R"({"service": "machined", "tail_lines": 2})"; }
  REQUIRE(
      node.call("keel.machine.v1.MachineService/Logs", "@" + (node.dir / "req.json").string(), true).isOk());
  CHECK(lines(node.out.str()) == 2);
  const auto st = node.call("keel.machine.v1.MachineService/Logs", "@" + (node.dir / "nope.json").string());
  CHECK(st.code() == StatusCode::kNotFound);
  CHECK(contains(st.message(), "nope.json"));
}

TEST_CASE("call asks for imports the server left out") {
  Node node;
  node.reflection.sendImports = false;
  REQUIRE(node.call("keel.machine.v1.MachineService.Logs", R"({"service": "apid", "tail_lines": 1})").isOk());
  CHECK(contains(node.out.str(), "\"line\": \"YXBpZCBsaW5lIDA=\""));
  const auto asked = node.reflection.askedByName();
  CHECK(std::find(asked.begin(), asked.end(), "keel/common/v1/common.proto") != asked.end());
}

TEST_CASE("call explains unknown services and methods, bad requests and streaming requests") {
  Node node;
  auto st = node.call("keel.nope.v1.NopeService/Now");
  CHECK(st.code() == StatusCode::kNotFound);
  CHECK(st.message() == "service keel.nope.v1.NopeService is not served by " +
                            (node.dir / "node.sock").string() + " (keelctl call --list shows what is)");

  st = node.call("keel.nope.v1.NopeService.Now");
  CHECK(contains(st.message(), "service keel.nope.v1.NopeService is not served by"));

  // Listed, but reflection cannot describe it (as gRPC's built-in health service).
  node.reflection.services.push_back("keel.nope.v1.Listed");
  st = node.call("keel.nope.v1.Listed/Check");
  CHECK(st.code() == StatusCode::kFailedPrecondition);
  CHECK(contains(st.message(), "lists service keel.nope.v1.Listed, but its reflection does not describe it"));

  st = node.call("keel.time.v1.TimeService/Later");
  CHECK(st.code() == StatusCode::kNotFound);
  CHECK(contains(st.message(), "service keel.time.v1.TimeService has no method Later; its methods are Now"));

  st = node.call("keel.time.v1.NowRequest");
  CHECK(st.code() == StatusCode::kInvalidArgument);
  CHECK(contains(st.message(), "keel.time.v1.NowRequest is a type"));

  st = node.call("keel.machine.v1.MachineService/Version", R"({"verbose": true})");
  CHECK(st.code() == StatusCode::kInvalidArgument);
  CHECK(contains(st.message(), "verbose"));
  CHECK(node.machine.versionCalls == 0);

  st = node.call("keel.machine.v1.MachineService/Upgrade");
  CHECK(st.code() == StatusCode::kInvalidArgument);
  CHECK(contains(st.message(), "client streaming"));
  st = node.call("grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo");
  CHECK(contains(st.message(), "bidirectional streaming"));

  // The node gone: the connection failure is reported.
  node.server->Shutdown();
  st = node.call("keel.time.v1.TimeService/Now");
  CHECK(st.code() == StatusCode::kUnavailable);
}

TEST_CASE("call says so when the node does not serve reflection") {
  keel::testing::TempDir dir;
  FakeTime time;
  grpc::ServerBuilder builder;
  builder.AddListeningPort("unix:" + (dir / "node.sock").string(), grpc::InsecureServerCredentials());
  builder.RegisterService(&time);
  auto server = builder.BuildAndStart();
  REQUIRE(server);
  MachineTarget target;
  target.socket = dir / "node.sock";
  MachineClient client(target);
  std::ostringstream out, err;
  std::istringstream in;
  MachineCommandEnv env{client, OutputFormat::kTable, out, err, in};
  CallArgs args;
  args.method = "keel.time.v1.TimeService/Now";
  const auto st = cmdCall(env, args);
  CHECK(st.code() == StatusCode::kUnimplemented);
  CHECK(contains(st.message(), "does not serve gRPC reflection (grpc.reflection.v1alpha.ServerReflection)"));

  // keelctl time needs no reflection: it is built with the time API.
  REQUIRE(!cmdTime(env).isOk());  // node-b failed
  CHECK(contains(out.str(), "node-a   2026-12-06T03:20:23Z   1m1.500s    1m1.500s   tsc           -"));
  CHECK(err.str() == "node-b: clock unreadable\n");
  server->Shutdown();
}

TEST_CASE("invokeMethod calls a unary method over any channel") {
  FakeMachine machine;
  grpc::ServerBuilder builder;
  builder.RegisterService(&machine);
  auto server = builder.BuildAndStart();
  REQUIRE(server);
  DynamicSchema schema;
  REQUIRE(schema.addFiles(serializedWithImports("keel/machine/v1/machine.proto")).isOk());
  const auto* version = schema.pool().FindMethodByName("keel.machine.v1.MachineService.Version");
  REQUIRE(version != nullptr);
  auto request = schema.newMessage(*version->input_type());
  grpc::ClientContext context;
  int replies = 0;
  const auto st = invokeMethod(server->InProcessChannel({}), context, *version, *request, schema,
                               [&](const gp::Message& reply) {
                                 CHECK(reply.GetDescriptor() == version->output_type());
                                 ++replies;
                               });
  CHECK(st.ok());
  CHECK(replies == 1);
  CHECK(machine.versionCalls == 1);
  server->Shutdown();
}

TEST_CASE("through apid the schema comes from the first node and the call goes to every node") {
  keel::ManualClock clock(std::chrono::system_clock::now());
  const auto ca = testpki::makeCa("keel-os-prod", clock);
  const auto serving = testpki::makeLeaf(ca, "127.0.0.1", keel::pki::ExtendedKeyUsage::kServerAuth,
                                         std::chrono::hours(1), clock);
  const auto admin =
      testpki::makeLeaf(ca, "admin", keel::pki::ExtendedKeyUsage::kClientAuth, std::chrono::hours(1), clock);
  grpc::SslServerCredentialsOptions tls(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  tls.pem_root_certs = ca.certificate.toPem();
  tls.pem_key_cert_pairs.push_back({serving.key.toPem(), serving.cert.toPem()});
  const auto start = [&](grpc::Service& reflectionService, grpc::Service& timeService, int& port) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::SslServerCredentials(tls), &port);
    builder.RegisterService(&reflectionService);
    builder.RegisterService(&timeService);
    auto server = builder.BuildAndStart();
    REQUIRE(server);
    return server;
  };
  FakeReflection reflection;
  FakeTime time;
  int port = 0;
  auto server = start(reflection, time, port);
  // An endpoint that no longer answers comes first: the reflection stream moves on.
  int deadPort = 0;
  {
    FakeReflection goneReflection;
    FakeTime goneTime;
    start(goneReflection, goneTime, deadPort)->Shutdown();
  }

  MachineTarget target;
  target.endpoint = "127.0.0.1:" + std::to_string(deadPort);
  target.fallbackEndpoints = {"127.0.0.1:" + std::to_string(port)};
  target.tls = {.ca = ca.certificate.toPem(), .crt = admin.cert.toPem(), .key = admin.key.toPem()};
  target.nodes = {"a", "b"};
  target.clock = &clock;
  MachineClient client(target);
  std::ostringstream out, err;
  std::istringstream in;
  MachineCommandEnv env{client, OutputFormat::kTable, out, err, in};
  CallArgs args;
  args.method = "keel.time.v1.TimeService/Now";
  const auto st = cmdCall(env, args);
  CHECK(st.message() == "1 of 2 nodes failed");
  CHECK(contains(err.str(), "keelctl: cannot reach apid at " + target.endpoint));
  CHECK(contains(err.str(), "node-b: clock unreadable\n"));
  CHECK(contains(out.str(), "\"wall_rfc3339\": \"2026-12-06T03:20:23Z\""));

  const auto reflected = reflection.metadata.calls();
  REQUIRE(reflected.size() == 1);
  CHECK(has(reflected[0], "node", "a"));
  CHECK(!hasKey(reflected[0], "nodes"));
  CHECK(!hasKey(reflected[0], "keel-roles"));
  const auto called = time.metadata.calls();
  REQUIRE(called.size() == 1);
  CHECK(has(called[0], "nodes", "a,b"));
  CHECK(!hasKey(called[0], "keel-roles"));
  server->Shutdown();
}

// Not a fuzzer (the fuzz build has no protobuf), but the same question with a fixed seed:
// whatever a server sends, and whatever a user types, the answer is a Status.
TEST_CASE("garbled descriptors and names are refused without crashing") {
  std::mt19937 random(20261206);
  const auto files = serializedWithImports("keel/machine/v1/machine.proto");
  for (int round = 0; round < 20000; ++round) {
    auto garbled = files;
    auto& victim = garbled[random() % garbled.size()];
    const int edits = 1 + static_cast<int>(random() % 4);
    for (int i = 0; i < edits && !victim.empty(); ++i) {
      const size_t at = random() % victim.size();
      switch (random() % 3) {
        case 0: victim[at] = static_cast<char>(random()); break;
        case 1: victim.erase(at, 1 + random() % 8); break;
        default: victim.resize(at); break;
      }
    }
    std::shuffle(garbled.begin(), garbled.end(), random);
    DynamicSchema schema;
    const auto st = schema.addFiles(
        garbled,
        [&](const std::string&) -> keel::Result<std::vector<std::string>> { return keel::notFound("gone"); });
    // Whatever built must be usable.
    const auto* logs = schema.pool().FindMessageTypeByName("keel.machine.v1.LogsRequest");
    if (st.isOk() && logs != nullptr) (void)messageFromJson(R"({"service": "x"})", *schema.newMessage(*logs));
  }
  const std::string alphabet = "ab.C/_9 -";
  for (int round = 0; round < 3000; ++round) {
    std::string name;
    for (size_t i = random() % 12; i > 0; --i) name += alphabet[random() % alphabet.size()];
    const auto parsed = parseMethodName(name);
    if (parsed.ok()) CHECK(!parsed->empty());
  }
}
