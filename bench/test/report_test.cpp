#include "src/report.h"

#include <catch2/catch_test_macros.hpp>

#include "src/fixture.h"

using namespace keel::bench;
using namespace std::chrono_literals;

TEST_CASE("parses durations in us, ms, s and m, including fractions") {
  CHECK(parseDuration("5s").value() == 5s);
  CHECK(parseDuration("200ms").value() == 200ms);
  CHECK(parseDuration("0.2s").value() == 200ms);
  CHECK(parseDuration("1m").value() == 60s);
  CHECK(parseDuration("1500us").value() == 1500us);
}

TEST_CASE("refuses durations without a unit, with junk, zero or over an hour") {
  for (const char* bad : {"5", "s", "", "5 s", "5h", "-1s", "0s", "61m", "1.2.3s"}) {
    INFO(bad);
    CHECK_FALSE(parseDuration(bad).ok());
  }
}

TEST_CASE("parses a concurrency list and refuses empty or out-of-range entries") {
  CHECK(parseConcurrencyList("1,32").value() == std::vector<int>{1, 32});
  CHECK(parseConcurrencyList("4").value() == std::vector<int>{4});
  for (const char* bad : {"", "1,", ",1", "0", "1,x", "10001"}) {
    INFO(bad);
    CHECK_FALSE(parseConcurrencyList(bad).ok());
  }
}

TEST_CASE("the apid/nginx ratio says better or worse by the metric's direction") {
  TableRow rps{"rps", Better::kHigher, {1000.0, 1200.0, 1000.0}, {}, {}};
  CHECK(ratioText(rps) == "1.20x better");
  TableRow latency{"p50", Better::kLower, {10.0, 200.0, 100.0}, {}, {}};
  CHECK(ratioText(latency) == "2.00x worse");
  TableRow missing{"p50", Better::kLower, {10.0, std::nullopt, 100.0}, {}, {}};
  CHECK(ratioText(missing) == "-");
}

TEST_CASE("the table prints every column and row") {
  const std::string t =
      formatTable({{"c=1 requests/s", Better::kHigher, {5000.0, std::nullopt, 2500.0}, {}, {}}});
  CHECK(t.find("direct") != std::string::npos);
  CHECK(t.find("apid/nginx") != std::string::npos);
  CHECK(t.find("5000") != std::string::npos);
  CHECK(t.find("2500") != std::string::npos);
}

TEST_CASE("a row takes each path's median over the rounds, and pairs apid with nginx round by round") {
  // Round 2 of apid failed: its median comes from the others, and that round has no ratio.
  const TableRow r = summarize("c=1 p50 latency (us)", Better::kLower,
                               {{{100.0, 120.0, 110.0}, {400.0, std::nullopt, 600.0}, {500.0, 450.0, 480.0}}});
  REQUIRE(r.values[0].has_value());
  CHECK(*r.values[0] == 110.0);
  REQUIRE(r.values[1].has_value());
  CHECK(*r.values[1] == 500.0);  // the mean of the two present: 400 and 600
  CHECK(*r.values[2] == 480.0);
  REQUIRE(r.roundRatios.size() == 2);
  CHECK(r.roundRatios[0] == 400.0 / 500.0);
  CHECK(r.roundRatios[1] == 600.0 / 480.0);
  CHECK(spreadText(r) == "rounds 0.80-1.25");
  const std::string t = formatTable({r});
  CHECK(t.find("spread") != std::string::npos);
  CHECK(t.find("rounds 0.80-1.25") != std::string::npos);
}

TEST_CASE("one round prints no spread") {
  const TableRow r = summarize("handshakes/s (c=4)", Better::kHigher, {{{std::nullopt}, {200.0}, {210.0}}});
  CHECK_FALSE(r.values[0].has_value());
  CHECK(spreadText(r).empty());
  CHECK(formatTable({r}).find("spread") == std::string::npos);
  CHECK(medianOf({}) == std::nullopt);
}

TEST_CASE("the JSON form gives each path's median and rounds, nulls where nothing was measured") {
  const TableRow r =
      summarize("c=1   requests/s", Better::kHigher, {{{100.0, 120.0}, {50.0, std::nullopt}, {}}});
  const std::string j = formatJson({r}, {{"rounds", "2"}});
  CHECK(j.find("\"tool\": \"keel_bench\"") != std::string::npos);
  CHECK(j.find("\"label\": \"c=1 requests/s\"") != std::string::npos);
  CHECK(j.find("\"better\": \"higher\"") != std::string::npos);
  CHECK(j.find("\"rounds\": \"2\"") != std::string::npos);
  const auto compact = [](std::string s) {
    std::erase_if(s, [](char c) { return c == ' ' || c == '\n'; });
    return s;
  };
  const std::string c = compact(j);
  CHECK(c.find("\"direct\":{\"median\":110.0,\"rounds\":[100.0,120.0]}") != std::string::npos);
  CHECK(c.find("\"apid\":{\"median\":50.0,\"rounds\":[50.0,null]}") != std::string::npos);
  CHECK(c.find("\"nginx\":{\"median\":null,\"rounds\":[]}") != std::string::npos);
}

TEST_CASE("the nginx config requires client certificates, TLS 1.3 and proxies to the socket") {
  Nginx::Options o;
  o.address = "127.0.0.1";
  o.port = 4443;
  o.backendSocket = "/tmp/x/machined.sock";
  const std::string asRoot = nginxConfig("/tmp/n", o, true);
  CHECK(asRoot.find("user root;") != std::string::npos);
  CHECK(asRoot.find("listen 127.0.0.1:4443 ssl http2;") != std::string::npos);
  CHECK(asRoot.find("ssl_protocols TLSv1.3;") != std::string::npos);
  CHECK(asRoot.find("ssl_verify_client on;") != std::string::npos);
  CHECK(asRoot.find("server unix:/tmp/x/machined.sock;") != std::string::npos);
  CHECK(asRoot.find("keepalive_requests 1000000;") != std::string::npos);
  CHECK(asRoot.find("access_log /tmp/n/access.log;") != std::string::npos);
  CHECK(nginxConfig("/tmp/n", o, false).find("user ") == std::string::npos);
}
