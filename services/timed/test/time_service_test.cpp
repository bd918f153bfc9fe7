#include <fstream>
#include <sstream>

#include <catch2/catch_test_macros.hpp>
#include <grpcpp/create_channel.h>
#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>

#include "keel/sandbox/policy.h"
#include "time_service.h"

using namespace keel::timed;
namespace tv1 = keel::time::v1;

namespace {

ClockReadings fixedReadings() {
  ClockReadings r;
  r.wallUnixNanos = 1796528407'500000000;
  r.monotonicNanos = 42;
  r.bootNanos = 43;
  r.clocksource = "tsc";
  r.rtc = RtcReading{"2026-12-06 03:40:05", 1796528405};
  r.timens.monotonicNanos = 7;
  return r;
}

struct Served {
  TimeServiceImpl service{"10.0.0.5", fixedReadings};
  std::unique_ptr<grpc::Server> server;
  std::unique_ptr<tv1::TimeService::Stub> stub;
  Served() {
    grpc::ServerBuilder builder;
    builder.RegisterService(&service);
    server = builder.BuildAndStart();
    stub = tv1::TimeService::NewStub(server->InProcessChannel({}));
  }
  ~Served() { server->Shutdown(); }
};

}  // namespace

TEST_CASE("every method of the time service has a rule, and readers may read the time") {
  TimeServiceImpl service("n", fixedReadings);
  REQUIRE(service.rules().status().isOk());
  CHECK(service.rules().table().check("/keel.time.v1.TimeService/Now", {"os:reader"}).isOk());
  CHECK_FALSE(service.rules().table().check("/keel.time.v1.TimeService/Now", {"os:impersonator"}).isOk());
}

TEST_CASE("Now answers with the node's clocks for a forwarded reader") {
  Served s;
  grpc::ClientContext ctx;
  ctx.AddMetadata("keel-roles", "os:reader");
  tv1::NowResponse reply;
  const auto st = s.stub->Now(&ctx, {}, &reply);
  REQUIRE(st.ok());
  REQUIRE(reply.messages_size() == 1);
  const auto& t = reply.messages(0);
  CHECK(t.metadata().node() == "10.0.0.5");
  CHECK(t.wall_unix_nanos() == 1796528407'500000000);
  CHECK(t.wall_rfc3339() == "2026-12-06T03:40:07.500000000Z");
  CHECK(t.monotonic_nanos() == 42);
  CHECK(t.boot_nanos() == 43);
  CHECK(t.sync().clocksource() == "tsc");
  CHECK(t.sync().rtc_present());
  CHECK(t.sync().rtc_offset_seconds() == 2);
  CHECK(t.sync().timens_monotonic_offset_nanos() == 7);
}

TEST_CASE("Now is refused without forwarded roles, with two role values, or with only the impersonator role") {
  Served s;
  for (const auto& values : std::vector<std::vector<std::string>>{{}, {"os:reader", "os:admin"}, {"os:impersonator"}}) {
    grpc::ClientContext ctx;
    for (const auto& v : values) ctx.AddMetadata("keel-roles", v);
    tv1::NowResponse reply;
    const auto st = s.stub->Now(&ctx, {}, &reply);
    CHECK(st.error_code() == grpc::StatusCode::PERMISSION_DENIED);
    CHECK(reply.messages_size() == 0);
  }
}

TEST_CASE("timed's profile is valid and allows no network socket and no clock setting") {
  std::ifstream in(TIMED_POLICY);
  std::stringstream text;
  text << in.rdbuf();
  const auto policy = keel::sandbox::parsePolicy(text.str());
  REQUIRE(policy.ok());
  const std::string body = text.str();
  for (const char* forbidden : {"\nconnect", "settimeofday", "clock_settime", "adjtimex", "clock_adjtime", "\nfork",
                                "\nvfork", "\nkill"}) {
    INFO(forbidden);
    CHECK(body.find(forbidden) == std::string::npos);
  }
  CHECK(body.find("socket: arg0 == AF_UNIX") != std::string::npos);
}
