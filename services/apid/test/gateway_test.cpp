// The gateway and its two forwarders, without sockets: apid's generic service, the
// backends and the other nodes are in-process gRPC servers, reached through a fake
// Upstreams, and the caller's identity is injected.
#include "gateway.h"

#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>

#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>

#include "keel/common/clock.h"
#include "keel/machine/v1/machine.grpc.pb.h"
#include "keel/testing/testing.h"

#include "callers.h"
#include "local_services.h"

namespace keel::apid {
namespace {

using Catch::Matchers::ContainsSubstring;
using testing::builtinManifest;
using testing::client;
using namespace std::chrono_literals;
namespace mv1 = keel::machine::v1;

using Metadata = std::multimap<std::string, std::string>;

Metadata copyOf(const std::multimap<grpc::string_ref, grpc::string_ref>& from) {
  Metadata out;
  for (const auto& [k, v] : from) out.emplace(std::string(k.data(), k.size()), std::string(v.data(), v.size()));
  return out;
}

// A machined (or another node's apid) that answers Version, Logs and Upgrade and
// remembers what each call carried.
class FakeMachine final : public mv1::MachineService::Service {
 public:
  explicit FakeMachine(std::string name) : name_(std::move(name)) {
    grpc::ServerBuilder builder;
    builder.RegisterService(this);
    server_ = builder.BuildAndStart();
  }
  ~FakeMachine() override {
    server_->Shutdown(std::chrono::system_clock::now() + 1s);
    server_->Wait();
  }

  std::shared_ptr<grpc::Channel> channel() { return server_->InProcessChannel(grpc::ChannelArguments()); }

  grpc::Status Version(grpc::ServerContext* ctx, const common::v1::Empty*, mv1::VersionResponse* out) override {
    record(ctx);
    if (failWith_) return grpc::Status(*failWith_, name_ + " fails");
    out->add_messages()->set_version(name_);
    ctx->AddInitialMetadata("x-initial", name_);
    ctx->AddTrailingMetadata("x-trailer", name_);
    return grpc::Status::OK;
  }

  grpc::Status Logs(grpc::ServerContext* ctx, const mv1::LogsRequest* req, grpc::ServerWriter<mv1::LogLine>* w) override {
    record(ctx);
    for (int i = 0; i < req->tail_lines(); ++i) {
      mv1::LogLine line;
      line.set_line(name_ + "-" + std::to_string(i));
      w->Write(line);
    }
    if (req->follow()) {
      while (!ctx->IsCancelled()) std::this_thread::sleep_for(5ms);
      std::lock_guard lock(mu_);
      cancelled_ = true;
      cv_.notify_all();
      return grpc::Status::CANCELLED;
    }
    return grpc::Status::OK;
  }

  grpc::Status Upgrade(grpc::ServerContext* ctx, grpc::ServerReader<mv1::UpgradeRequest>* r,
                       mv1::UpgradeResponse* out) override {
    record(ctx);
    mv1::UpgradeRequest req;
    size_t bytes = 0;
    int chunks = 0;
    while (r->Read(&req)) {
      if (req.has_chunk()) {
        bytes += req.chunk().size();
        ++chunks;
      }
    }
    out->add_messages()->set_slot(std::to_string(chunks) + "/" + std::to_string(bytes));
    return grpc::Status::OK;
  }

  void failWith(grpc::StatusCode code) { failWith_ = code; }
  std::vector<Metadata> calls() {
    std::lock_guard lock(mu_);
    return calls_;
  }
  bool waitCancelled(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return cancelled_; });
  }

 private:
  void record(grpc::ServerContext* ctx) {
    std::lock_guard lock(mu_);
    calls_.push_back(copyOf(ctx->client_metadata()));
  }

  std::string name_;
  std::optional<grpc::StatusCode> failWith_;
  std::unique_ptr<grpc::Server> server_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Metadata> calls_;
  bool cancelled_ = false;
};

class FakeUpstreams final : public Upstreams {
 public:
  Result<std::shared_ptr<grpc::Channel>> backend(const contracts::RouteEntry& backend) override {
    std::lock_guard lock(mu_);
    if (auto it = backends.find(backend.name); it != backends.end()) return it->second;
    return unavailable("backend " + backend.name + " is not running");
  }
  Result<std::shared_ptr<grpc::Channel>> node(const std::string& node) override {
    std::lock_guard lock(mu_);
    if (auto it = nodes.find(node); it != nodes.end()) return it->second;
    return unavailable("no route to " + node);
  }
  void retire(const std::shared_ptr<grpc::Channel>& channel) override {
    std::lock_guard lock(mu_);
    retired.push_back(channel);
  }
  size_t retiredCount() {
    std::lock_guard lock(mu_);
    return retired.size();
  }

  std::map<std::string, std::shared_ptr<grpc::Channel>> backends;  // set before calls
  std::map<std::string, std::shared_ptr<grpc::Channel>> nodes;

 private:
  std::mutex mu_;
  std::vector<std::shared_ptr<grpc::Channel>> retired;
};

// apid's gateway on node 10.0.0.1, with machined as its local backend and, when asked,
// node-b at 10.0.0.2; 10.0.0.9 cannot be reached.
struct Harness {
  // `identify`: how callers are identified; by default, as set with as().
  explicit Harness(PeerIdentifier identify = nullptr) {
    upstreams.backends["machined"] = local.channel();
    upstreams.nodes["10.0.0.2"] = nodeB.channel();
    audit = AuditLog::open(dir.path(), 1 << 20, 1, false, clock).value();
    routes = Routes::fromManifests({builtinManifest("machined", "keel.machine.v1.MachineService")});
    GatewayOptions options;
    options.selfNames = {"10.0.0.1"};
    options.mayForward = true;
    options.threads = 1;
    options.forwardTimeout = 5s;
    GatewayDeps deps;
    deps.routes = [this] { return routes; };
    deps.upstreams = &upstreams;
    deps.audit = audit.get();
    deps.identify = identify ? std::move(identify)
                             : [this](const grpc::ServerContextBase&) -> Result<std::shared_ptr<const PeerIdentity>> {
      std::lock_guard lock(mu);
      return identity;
    };
    gateway = std::make_unique<Gateway>(options, deps);
    grpc::ServerBuilder builder;
    gateway->registerWith(builder);
    server = builder.BuildAndStart();
    gateway->start();
    stub = mv1::MachineService::NewStub(server->InProcessChannel(grpc::ChannelArguments()));
  }
  ~Harness() {
    server->Shutdown(std::chrono::system_clock::now() + 1s);
    gateway->stop();
  }
  void as(PeerIdentity id) {
    std::lock_guard lock(mu);
    identity = std::make_shared<const PeerIdentity>(std::move(id));
  }
  // The audit lines once there are `n`: a call's line is written when the call is over
  // for apid, which can be just after the client has its answer.
  std::vector<std::string> auditLines(size_t n) {
    std::vector<std::string> lines;
    keel::testing::eventually(
        [&] {
          lines = auditLines();
          return lines.size() >= n;
        },
        5s);
    return lines;
  }
  std::vector<std::string> auditLines() {
    audit->flush();
    std::vector<std::string> out;
    std::istringstream in(keel::testing::readFile(dir.path() / "audit.log"));
    for (std::string line; std::getline(in, line);) out.push_back(line);
    return out;
  }

  keel::testing::TempDir dir;
  SystemClock clock;
  FakeMachine local{"local"};
  FakeMachine nodeB{"node-b"};
  FakeUpstreams upstreams;
  std::unique_ptr<AuditLog> audit;
  std::shared_ptr<const Routes> routes;
  std::mutex mu;
  std::shared_ptr<const PeerIdentity> identity;
  std::unique_ptr<Gateway> gateway;
  std::unique_ptr<grpc::Server> server;
  std::unique_ptr<mv1::MachineService::Stub> stub;
};

std::string value(const Metadata& md, const std::string& key) {
  const auto it = md.find(key);
  return it == md.end() ? "<none>" : it->second;
}

TEST_CASE("a unary call reaches this node's backend with the admitted metadata, and its reply comes back whole",
          "[gateway]") {
  Harness h;
  h.as(client("alice", {"os:reader"}));
  grpc::ClientContext ctx;
  ctx.AddMetadata("keel-roles", "os:admin");
  ctx.AddMetadata("x-trace", "t1");
  mv1::VersionResponse reply;
  const auto st = h.stub->Version(&ctx, common::v1::Empty(), &reply);
  INFO(st.error_message());
  REQUIRE(st.ok());
  REQUIRE(reply.messages_size() == 1);
  CHECK(reply.messages(0).version() == "local");
  CHECK_FALSE(reply.messages(0).has_metadata());  // not stamped: no target was named
  CHECK(value(copyOf(ctx.GetServerInitialMetadata()), "x-initial") == "local");
  CHECK(value(copyOf(ctx.GetServerTrailingMetadata()), "x-trailer") == "local");

  const auto calls = h.local.calls();
  REQUIRE(calls.size() == 1);
  CHECK(value(calls[0], "keel-roles") == "os:reader");
  CHECK(calls[0].count("keel-roles") == 1);
  CHECK(value(calls[0], "keel-identity") == "alice");
  CHECK(value(calls[0], "x-trace") == "t1");
  CHECK(calls[0].count("keel-peer") == 1);
  CHECK(calls[0].count("keel-cert-validity") == 1);
  CHECK(calls[0].count("keel-request-id") == 1);
  const auto lines = h.auditLines(1);
  REQUIRE(lines.size() == 1);
  CHECK_THAT(lines[0], ContainsSubstring("\"decision\":\"allow\""));
}

TEST_CASE("a refused call gets the admission step's reason, is audited, and reaches nothing", "[gateway]") {
  Harness h;
  h.as(client("alice", {"os:reader"}));
  grpc::ClientContext ctx;
  mv1::PowerResponse reply;
  const auto st = h.stub->Reset(&ctx, common::v1::Empty(), &reply);
  CHECK(st.error_code() == grpc::StatusCode::PERMISSION_DENIED);
  CHECK_THAT(st.error_message(), ContainsSubstring("os:admin"));
  CHECK(h.local.calls().empty());
  const auto lines = h.auditLines(1);
  REQUIRE(lines.size() == 1);
  CHECK_THAT(lines[0], ContainsSubstring("\"decision\":\"deny\""));
}

TEST_CASE("an unreadable client certificate's reason reaches the client", "[gateway]") {
  Harness h([](const grpc::ServerContextBase&) -> Result<std::shared_ptr<const PeerIdentity>> {
    return unauthenticated("the client certificate cannot be read: trailing data");
  });
  grpc::ClientContext ctx;
  mv1::VersionResponse reply;
  const auto st = h.stub->Version(&ctx, common::v1::Empty(), &reply);
  CHECK(st.error_code() == grpc::StatusCode::UNAUTHENTICATED);
  CHECK_THAT(st.error_message(), ContainsSubstring("trailing data"));
  const auto lines = h.auditLines(1);
  REQUIRE(lines.size() == 1);
  CHECK_THAT(lines[0], ContainsSubstring("trailing data"));
}

TEST_CASE("a backend that cannot be reached refuses the call; one that fails as unavailable is retired",
          "[gateway]") {
  Harness h;
  h.as(client("root", {"os:admin"}));
  SECTION("no channel") {
    h.upstreams.backends.clear();
    grpc::ClientContext ctx;
    mv1::VersionResponse reply;
    const auto st = h.stub->Version(&ctx, common::v1::Empty(), &reply);
    CHECK(st.error_code() == grpc::StatusCode::UNAVAILABLE);
    CHECK_THAT(st.error_message(), ContainsSubstring("backend machined is not running"));
    CHECK(h.upstreams.retiredCount() == 0);
  }
  SECTION("the call fails as unavailable") {
    h.local.failWith(grpc::StatusCode::UNAVAILABLE);
    grpc::ClientContext ctx;
    mv1::VersionResponse reply;
    const auto st = h.stub->Version(&ctx, common::v1::Empty(), &reply);
    CHECK(st.error_code() == grpc::StatusCode::UNAVAILABLE);
    CHECK(st.error_message() == "local fails");
    CHECK(h.upstreams.retiredCount() == 1);
  }
  SECTION("a call to another node that fails as unavailable retires that node's channel") {
    h.nodeB.failWith(grpc::StatusCode::UNAVAILABLE);
    grpc::ClientContext ctx;
    ctx.AddMetadata("node", "10.0.0.2");
    mv1::VersionResponse reply;
    const auto st = h.stub->Version(&ctx, common::v1::Empty(), &reply);
    CHECK(st.ok());  // Version fans out: the node's failure is an entry of the reply
    REQUIRE(reply.messages_size() == 1);
    CHECK(reply.messages(0).metadata().error().find("node-b fails") != std::string::npos);
    CHECK(h.upstreams.retiredCount() == 1);
  }
  SECTION("another failure keeps the channel") {
    h.local.failWith(grpc::StatusCode::INTERNAL);
    grpc::ClientContext ctx;
    mv1::VersionResponse reply;
    CHECK(h.stub->Version(&ctx, common::v1::Empty(), &reply).error_code() == grpc::StatusCode::INTERNAL);
    CHECK(h.upstreams.retiredCount() == 0);
  }
}

TEST_CASE("a server stream is forwarded message by message, with its status", "[gateway]") {
  Harness h;
  h.as(client("alice", {"os:reader"}));
  grpc::ClientContext ctx;
  mv1::LogsRequest req;
  req.set_service("apid");
  req.set_tail_lines(3);
  auto reader = h.stub->Logs(&ctx, req);
  std::vector<std::string> lines;
  for (mv1::LogLine line; reader->Read(&line);) lines.push_back(line.line());
  CHECK(reader->Finish().ok());
  CHECK(lines == std::vector<std::string>{"local-0", "local-1", "local-2"});
  const auto audit = h.auditLines(2);
  REQUIRE(audit.size() == 2);
  CHECK_THAT(audit[0], ContainsSubstring("\"event\":\"open\""));
  CHECK_THAT(audit[1], ContainsSubstring("\"event\":\"end\""));
}

TEST_CASE("a client stream is forwarded to one other node, every message in order", "[gateway]") {
  Harness h;
  h.as(client("root", {"os:admin"}));
  grpc::ClientContext ctx;
  ctx.AddMetadata("node", "10.0.0.2");
  mv1::UpgradeResponse reply;
  auto writer = h.stub->Upgrade(&ctx, &reply);
  mv1::UpgradeRequest header;
  header.mutable_header();
  REQUIRE(writer->Write(header));
  for (int i = 0; i < 5; ++i) {
    mv1::UpgradeRequest chunk;
    chunk.set_chunk(std::string(1000 + i, 'x'));
    REQUIRE(writer->Write(chunk));
  }
  REQUIRE(writer->WritesDone());
  const auto st = writer->Finish();
  INFO(st.error_message());
  REQUIRE(st.ok());
  REQUIRE(reply.messages_size() == 1);
  CHECK(reply.messages(0).slot() == "5/5010");
  CHECK(h.local.calls().empty());
  const auto calls = h.nodeB.calls();
  REQUIRE(calls.size() == 1);
  CHECK(value(calls[0], "keel-roles") == "os:admin");
  CHECK(calls[0].count("keel-peer") == 0);  // only this node's backends learn the client's address
  CHECK(calls[0].count("keel-cert-validity") == 0);  // and its certificate's validity
}

TEST_CASE("a fan-out gathers every node's reply in target order, stamped, with an unreachable node as an entry",
          "[gateway]") {
  Harness h;
  h.as(client("alice", {"os:reader"}));
  grpc::ClientContext ctx;
  ctx.AddMetadata("nodes", "10.0.0.2,10.0.0.1,10.0.0.9");
  mv1::VersionResponse reply;
  const auto st = h.stub->Version(&ctx, common::v1::Empty(), &reply);
  INFO(st.error_message());
  REQUIRE(st.ok());
  REQUIRE(reply.messages_size() == 3);
  CHECK(reply.messages(0).metadata().node() == "10.0.0.2");
  CHECK(reply.messages(0).version() == "node-b");
  CHECK(reply.messages(1).metadata().node() == "10.0.0.1");
  CHECK(reply.messages(1).version() == "local");
  CHECK(reply.messages(2).metadata().node() == "10.0.0.9");
  CHECK_THAT(reply.messages(2).metadata().error(), ContainsSubstring("no route to 10.0.0.9"));
  CHECK(h.local.calls().at(0).count("keel-peer") == 1);
  CHECK(h.nodeB.calls().at(0).count("keel-peer") == 0);
}

TEST_CASE("a fan-out stream interleaves the nodes' messages, each stamped, and a failing node as a message",
          "[gateway]") {
  Harness h;
  h.as(client("alice", {"os:reader"}));
  grpc::ClientContext ctx;
  ctx.AddMetadata("nodes", "10.0.0.1,10.0.0.2,10.0.0.9");
  mv1::LogsRequest req;
  req.set_tail_lines(2);
  auto reader = h.stub->Logs(&ctx, req);
  std::map<std::string, std::vector<std::string>> byNode;
  for (mv1::LogLine line; reader->Read(&line);) {
    byNode[line.metadata().node()].push_back(line.metadata().error().empty() ? line.line() : line.metadata().error());
  }
  CHECK(reader->Finish().ok());
  CHECK(byNode["10.0.0.1"] == std::vector<std::string>{"local-0", "local-1"});
  CHECK(byNode["10.0.0.2"] == std::vector<std::string>{"node-b-0", "node-b-1"});
  REQUIRE(byNode["10.0.0.9"].size() == 1);
  CHECK_THAT(byNode["10.0.0.9"][0], ContainsSubstring("no route"));
}

TEST_CASE("a client that cancels a stream cancels the upstream call", "[gateway]") {
  Harness h;
  h.as(client("alice", {"os:reader"}));
  for (const bool fanOut : {false, true}) {
    INFO(fanOut);
    FakeMachine& upstream = fanOut ? h.nodeB : h.local;
    grpc::ClientContext ctx;
    if (fanOut) ctx.AddMetadata("nodes", "10.0.0.2");
    mv1::LogsRequest req;
    req.set_tail_lines(1);
    req.set_follow(true);
    auto reader = h.stub->Logs(&ctx, req);
    mv1::LogLine line;
    REQUIRE(reader->Read(&line));
    ctx.TryCancel();
    CHECK(upstream.waitCancelled(5s));
    while (reader->Read(&line)) {
    }
    CHECK(reader->Finish().error_code() == grpc::StatusCode::CANCELLED);
  }
}

// A backend's own health service: SERVING for the machine API, NOT_FOUND otherwise.
class BackendHealth final : public grpc::health::v1::Health::Service {
 public:
  grpc::Status Check(grpc::ServerContext*, const grpc::health::v1::HealthCheckRequest* r,
                     grpc::health::v1::HealthCheckResponse* out) override {
    if (r->service() != "keel.machine.v1.MachineService") return {grpc::StatusCode::NOT_FOUND, "unknown service"};
    out->set_status(grpc::health::v1::HealthCheckResponse::SERVING);
    return grpc::Status::OK;
  }
};

TEST_CASE("apid answers health itself on the gateway's queue, asking a backend's own health service when needed",
          "[gateway][local]") {
  namespace health = grpc::health::v1;
  Harness h;
  BackendHealth backendHealth;
  grpc::ServerBuilder builder;
  builder.RegisterService(&backendHealth);
  auto backend = builder.BuildAndStart();
  // machined answers health; trustd is down.
  h.upstreams.backends["machined"] = backend->InProcessChannel(grpc::ChannelArguments());
  h.routes = Routes::fromManifests({localServicesManifest(), builtinManifest("machined", "keel.machine.v1.MachineService"),
                                    builtinManifest("trustd", "keel.security.v1.SecurityService")});
  REQUIRE(h.routes->problems().empty());
  h.as(client("alice", {"os:reader"}));
  auto stub = health::Health::NewStub(h.server->InProcessChannel(grpc::ChannelArguments()));
  auto check = [&](const std::string& service, grpc::Status* st) {
    grpc::ClientContext ctx;
    health::HealthCheckRequest request;
    request.set_service(service);
    health::HealthCheckResponse response;
    *st = stub->Check(&ctx, request, &response);
    return response.status();
  };
  grpc::Status st;
  CHECK(check("", &st) == health::HealthCheckResponse::SERVING);
  CHECK(st.ok());
  CHECK(check("grpc.reflection.v1alpha.ServerReflection", &st) == health::HealthCheckResponse::SERVING);
  CHECK(check("keel.machine.v1.MachineService", &st) == health::HealthCheckResponse::SERVING);
  CHECK(st.ok());
  CHECK(check("keel.security.v1.SecurityService", &st) == health::HealthCheckResponse::NOT_SERVING);
  CHECK(st.ok());
  check("acme.nothing.v1.Nothing", &st);
  CHECK(st.error_code() == grpc::StatusCode::NOT_FOUND);
  CHECK_THAT(st.error_message(), ContainsSubstring("acme.nothing.v1.Nothing"));
  // Each check was audited like any call; a caller without a role is refused first.
  CHECK(h.auditLines(5).size() == 5);
  h.as(client("mallory", {}));
  check("", &st);
  CHECK(st.error_code() == grpc::StatusCode::PERMISSION_DENIED);
  backend->Shutdown(std::chrono::system_clock::now() + 1s);
}

TEST_CASE("apid's reflection stream answers every request in order on the gateway's queue", "[gateway][local]") {
  namespace refl = grpc::reflection::v1alpha;
  Harness h;
  h.routes = Routes::fromManifests({localServicesManifest(), builtinManifest("machined", "keel.machine.v1.MachineService")});
  h.as(client("alice", {"os:reader"}));
  auto stub = refl::ServerReflection::NewStub(h.server->InProcessChannel(grpc::ChannelArguments()));
  grpc::ClientContext ctx;
  auto stream = stub->ServerReflectionInfo(&ctx);
  refl::ServerReflectionRequest list;
  list.set_list_services("*");
  refl::ServerReflectionRequest symbol;
  symbol.set_file_containing_symbol("keel.machine.v1.MachineService");
  refl::ServerReflectionResponse response;
  REQUIRE(stream->Write(list));
  REQUIRE(stream->Read(&response));
  std::vector<std::string> names;
  for (const auto& s : response.list_services_response().service()) names.push_back(s.name());
  CHECK(names == std::vector<std::string>{"grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection",
                                          "keel.machine.v1.MachineService"});
  REQUIRE(stream->Write(symbol));
  REQUIRE(stream->Read(&response));
  REQUIRE(response.has_file_descriptor_response());
  CHECK(response.file_descriptor_response().file_descriptor_proto_size() >= 1);
  stream->WritesDone();
  CHECK_FALSE(stream->Read(&response));
  CHECK(stream->Finish().ok());
  // One stream: an "open" and an "end" line.
  const auto lines = h.auditLines(2);
  REQUIRE(lines.size() == 2);
  CHECK_THAT(lines[1], ContainsSubstring("ServerReflectionInfo"));
}

}  // namespace
}  // namespace keel::apid
