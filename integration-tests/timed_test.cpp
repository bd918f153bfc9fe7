// timed, the reference extension, behind a real apid: routed with the rules it ships,
// re-checked by the daemon itself, health-checked and discovered through apid, confined,
// and stopped cleanly. machined is not involved here (machined_test and the cluster tests
// start it from its manifest).
#include <signal.h>

#include <fstream>

#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>
#include <google/protobuf/descriptor.pb.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>

#include "apid_fixture.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"
#include "keel/time/v1/time.grpc.pb.h"

using namespace keel::testing;
using namespace keel::integration;
using Catch::Matchers::ContainsSubstring;
namespace tv1 = keel::time::v1;
namespace health = grpc::health::v1;
namespace refl = grpc::reflection::v1alpha;

namespace {

const std::string kNow = "/keel.time.v1.TimeService/Now";

// timed run the way machined runs it: its config file, its socket, its peers.
class Timed {
 public:
  Timed(const std::filesystem::path& dir, std::vector<uid_t> peers) : dir_(dir) {
    nlohmann::json config = {{"name", "timed"},         {"version", "9.9.9"},
                             {"socket", socket().string()}, {"stateDir", dir.string()},
                             {"nodeAddress", "127.0.1.1"}, {"allowedPeerUids", peers}};
    writeFile(dir / "timed.json", config.dump());
    chmod((dir / "timed.json").c_str(), 0600);
    start();
  }
  ~Timed() { stop(); }
  void start() {
    process_ = std::make_unique<ChildProcess>(
        std::vector<std::string>{TIMED_PATH, "--config", (dir_ / "timed.json").string()}, dir_ / "timed.log");
    REQUIRE(eventually([&] { return log().find("serving keel.time.v1.TimeService") != std::string::npos ||
                                    !process_->running(); }, 10s));
    INFO(log());
    REQUIRE(process_->running());
  }
  std::optional<int> stop() {
    if (!process_ || !process_->running()) return std::nullopt;
    process_->signal(SIGTERM);
    return process_->wait(10s);
  }
  std::filesystem::path socket() const { return dir_ / "timed.sock"; }
  std::string log() const { return readFile(dir_ / "timed.log"); }
  int pid() const { return process_->pid(); }

 private:
  std::filesystem::path dir_;
  std::unique_ptr<ChildProcess> process_;
};

struct TimedNode {
  TestPki pki;
  TempDir dir;
  std::unique_ptr<ApidProcess> apid;
  std::unique_ptr<Timed> timed;
  TimedNode() {
    chmod(dir.path().c_str(), 0711);
    apid = std::make_unique<ApidProcess>(pki, ApidOptions{});
    timed = std::make_unique<Timed>(dir.path(), std::vector<uid_t>{getuid()});
    // As machined announces it: the socket, timed's uid, and the rules timed ships.
    apid->addBackend("timed", timed->socket(), {"keel.time.v1.TimeService"}, TIMED_DESCRIPTOR_SET);
    auto reader = channel(pki.client({"os:reader"}));
    REQUIRE(eventually([&] { return rawCall(*reader, kNow, "").ok(); }, 10s));
  }
  std::shared_ptr<grpc::Channel> channel(const Credential& c) const {
    return mtlsChannel(apid->endpoint(), pki.caPem(), c);
  }
};

grpc::Status now(grpc::Channel& channel, tv1::NowResponse* out, const std::vector<std::pair<std::string, std::string>>& md = {}) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + kCallTimeout);
  for (const auto& [k, v] : md) ctx.AddMetadata(k, v);
  auto stub = tv1::TimeService::NewStub(std::shared_ptr<grpc::Channel>(&channel, [](grpc::Channel*) {}));
  return stub->Now(&ctx, {}, out);
}

health::HealthCheckResponse::ServingStatus checkHealth(grpc::Channel& channel, const std::string& service,
                                                       grpc::Status* st) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + kCallTimeout);
  health::HealthCheckRequest req;
  req.set_service(service);
  health::HealthCheckResponse resp;
  *st = health::Health::NewStub(std::shared_ptr<grpc::Channel>(&channel, [](grpc::Channel*) {}))->Check(&ctx, req, &resp);
  return resp.status();
}

std::vector<refl::ServerReflectionResponse> reflect(grpc::Channel& channel,
                                                    const std::vector<refl::ServerReflectionRequest>& requests,
                                                    grpc::Status* st) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + kCallTimeout);
  auto stub = refl::ServerReflection::NewStub(std::shared_ptr<grpc::Channel>(&channel, [](grpc::Channel*) {}));
  auto stream = stub->ServerReflectionInfo(&ctx);
  std::vector<refl::ServerReflectionResponse> out;
  for (const auto& r : requests) {
    if (!stream->Write(r)) break;
    refl::ServerReflectionResponse resp;
    if (!stream->Read(&resp)) break;
    out.push_back(resp);
  }
  stream->WritesDone();
  *st = stream->Finish();
  return out;
}

std::string statusLine(int pid, const std::string& key) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key + ":", 0) == 0) return line.substr(key.size() + 1);
  }
  return "";
}

}  // namespace

TEST_CASE("timed answers every client role through apid with the node's clocks") {
  TimedNode n;
  for (const auto* role : {"os:reader", "os:operator", "os:admin"}) {
    INFO(role);
    auto ch = n.channel(n.pki.client({role}));
    tv1::NowResponse reply;
    const auto before = std::chrono::system_clock::now();
    const auto st = now(*ch, &reply);
    REQUIRE(st.ok());
    REQUIRE(reply.messages_size() == 1);
    const auto& t = reply.messages(0);
    CHECK(t.metadata().node() == "127.0.1.1");
    CHECK(t.metadata().error().empty());
    const auto wall = std::chrono::nanoseconds(t.wall_unix_nanos());
    CHECK(wall >= before.time_since_epoch() - std::chrono::seconds(1));
    CHECK(wall <= std::chrono::system_clock::now().time_since_epoch() + std::chrono::seconds(1));
    CHECK(t.wall_rfc3339().size() == 30);
    CHECK(t.monotonic_nanos() > 0);
    CHECK(t.boot_nanos() >= t.monotonic_nanos());
  }
}

TEST_CASE("timed's rules are enforced by apid and again by timed itself") {
  TimedNode n;
  SECTION("a certificate without a role is refused by apid, forged roles header or not") {
    auto nobody = n.channel(n.pki.client({}));
    tv1::NowResponse reply;
    const auto st = now(*nobody, &reply, {{"keel-roles", "os:admin"}});
    CHECK(st.error_code() == grpc::StatusCode::PERMISSION_DENIED);
    CHECK(reply.messages_size() == 0);
  }
  SECTION("a local process on the allow-list that calls timed.sock directly carries no roles and is refused") {
    auto direct = grpc::CreateChannel("unix:" + n.timed->socket().string(), grpc::InsecureChannelCredentials());
    tv1::NowResponse reply;
    auto st = now(*direct, &reply);
    CHECK(st.error_code() == grpc::StatusCode::PERMISSION_DENIED);
    CHECK_THAT(st.error_message(), ContainsSubstring("keel-roles"));
    st = now(*direct, &reply, {{"keel-roles", "os:impersonator"}});
    CHECK(st.error_code() == grpc::StatusCode::PERMISSION_DENIED);
    CHECK(reply.messages_size() == 0);
    CHECK_THAT(n.timed->log(), ContainsSubstring("refused /keel.time.v1.TimeService/Now"));
  }
}

TEST_CASE("a peer whose uid is not on timed's allow-list never reaches a handler") {
  TempDir dir;
  chmod(dir.path().c_str(), 0711);
  Timed timed(dir.path(), {getuid() + 4242});
  auto direct = grpc::CreateChannel("unix:" + timed.socket().string(), grpc::InsecureChannelCredentials());
  tv1::NowResponse reply;
  const auto st = now(*direct, &reply, {{"keel-roles", "os:admin"}});
  CHECK(st.error_code() == grpc::StatusCode::UNAVAILABLE);
  REQUIRE(eventually([&] { return timed.log().find("allow-list") != std::string::npos; }, 5s));
  CHECK(timed.log().find("refused /keel.time.v1.TimeService/Now") == std::string::npos);
}

TEST_CASE("health through apid answers per service and follows timed going away") {
  TimedNode n;
  auto reader = n.channel(n.pki.client({"os:reader"}));
  grpc::Status st;
  CHECK(checkHealth(*reader, "", &st) == health::HealthCheckResponse::SERVING);
  CHECK(st.ok());
  CHECK(checkHealth(*reader, "keel.time.v1.TimeService", &st) == health::HealthCheckResponse::SERVING);
  CHECK(st.ok());
  checkHealth(*reader, "acme.nothing.v1.Nothing", &st);
  CHECK(st.error_code() == grpc::StatusCode::NOT_FOUND);
  auto nobody = n.channel(n.pki.client({}));
  checkHealth(*nobody, "keel.time.v1.TimeService", &st);
  CHECK(st.error_code() == grpc::StatusCode::PERMISSION_DENIED);

  REQUIRE(n.timed->stop() == std::optional<int>(0));
  CHECK(checkHealth(*reader, "keel.time.v1.TimeService", &st) == health::HealthCheckResponse::NOT_SERVING);
  CHECK(st.ok());
  n.timed->start();
  CHECK(eventually([&] { return checkHealth(*reader, "keel.time.v1.TimeService", &st) ==
                                health::HealthCheckResponse::SERVING; }, 10s));
}

TEST_CASE("reflection through apid lists timed's service and gives its descriptors to readers") {
  TimedNode n;
  auto reader = n.channel(n.pki.client({"os:reader"}));
  refl::ServerReflectionRequest list;
  list.set_list_services("");
  refl::ServerReflectionRequest file;
  file.set_file_containing_symbol("keel.time.v1.TimeService");
  grpc::Status st;
  const auto answers = reflect(*reader, {list, file}, &st);
  REQUIRE(st.ok());
  REQUIRE(answers.size() == 2);
  std::vector<std::string> services;
  for (const auto& s : answers[0].list_services_response().service()) services.push_back(s.name());
  CHECK(std::find(services.begin(), services.end(), "keel.time.v1.TimeService") != services.end());
  CHECK(std::find(services.begin(), services.end(), "grpc.health.v1.Health") != services.end());
  REQUIRE(answers[1].file_descriptor_response().file_descriptor_proto_size() >= 2);
  google::protobuf::FileDescriptorProto proto;
  REQUIRE(proto.ParseFromString(answers[1].file_descriptor_response().file_descriptor_proto(0)));
  CHECK(proto.name() == "keel/time/v1/time.proto");
  REQUIRE(proto.service_size() == 1);
  CHECK(proto.service(0).method(0).name() == "Now");

  auto nobody = n.channel(n.pki.client({}));
  reflect(*nobody, {list}, &st);
  CHECK(st.error_code() == grpc::StatusCode::PERMISSION_DENIED);
}

TEST_CASE("timed runs confined and stops cleanly on SIGTERM") {
  TempDir dir;
  chmod(dir.path().c_str(), 0711);
  Timed timed(dir.path(), {getuid()});
  CHECK(statusLine(timed.pid(), "Seccomp").find('2') != std::string::npos);
  CHECK(statusLine(timed.pid(), "NoNewPrivs").find('1') != std::string::npos);
  CHECK(statusLine(timed.pid(), "CapEff").find("0000000000000000") != std::string::npos);
  CHECK(timed.stop() == std::optional<int>(0));
  CHECK_THAT(timed.log(), ContainsSubstring("\"msg\":\"stopped\""));
  CHECK_FALSE(std::filesystem::exists(timed.socket()));
}
