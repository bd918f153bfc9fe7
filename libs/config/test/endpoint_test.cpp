#include "keel/config/endpoint.h"

#include <catch2/catch_test_macros.hpp>

using namespace keel::config;

TEST_CASE("parses every accepted endpoint form") {
  struct Case {
    const char* text;
    const char* host;
    uint16_t port;
  };
  for (const auto& c : {Case{"10.0.0.1", "10.0.0.1", 50000}, Case{"10.0.0.1:6000", "10.0.0.1", 6000},
                        Case{"cp1", "cp1", 50000}, Case{"CP1.Example.com:1", "cp1.example.com", 1},
                        Case{"[fd00::1]:50001", "fd00::1", 50001}, Case{"[fd00::1]", "fd00::1", 50000},
                        Case{"fd00::1", "fd00::1", 50000}, Case{"https://cp1:443", "cp1", 443},
                        Case{"https://cp1", "cp1", 50000}, Case{"https://[::1]:65535/", "::1", 65535}}) {
    INFO(c.text);
    auto ep = parseEndpoint(c.text);
    REQUIRE(ep.ok());
    CHECK(ep->host == c.host);
    CHECK(ep->port == c.port);
  }
}

TEST_CASE("formats endpoints with brackets around IPv6") {
  CHECK(parseEndpoint("fd00::1")->hostPort() == "[fd00::1]:50000");
  CHECK(parseEndpoint("10.0.0.1")->url() == "https://10.0.0.1:50000");
}

TEST_CASE("refuses malformed endpoints with the reason") {
  const auto err = [](const char* text) { return parseEndpoint(text).status().message(); };
  CHECK(err("http://cp1:50000").find("unsupported scheme 'http'") != std::string::npos);
  CHECK(err("grpc://cp1").find("unsupported scheme") != std::string::npos);
  CHECK(err("https://cp1:50000/v1").find("path") != std::string::npos);
  CHECK(err("").find("empty") != std::string::npos);
  CHECK(err(":50000").find("empty host") != std::string::npos);
  CHECK(err("https://").find("empty host") != std::string::npos);
  CHECK(err("cp1:0").find("out of range") != std::string::npos);
  CHECK(err("cp1:65536").find("out of range") != std::string::npos);
  CHECK(err("cp1:").find("empty port") != std::string::npos);
  CHECK(err("cp1:http").find("not a number") != std::string::npos);
  CHECK(err("fd00::1:50000:x").find("[addr]:port") != std::string::npos);
  CHECK(err("[fd00::1]x").find("expected ':port'") != std::string::npos);
  CHECK(err("[cp1]:5").find("not an IPv6 address") != std::string::npos);
  CHECK(err("999.1.1.1").find("looks like an IPv4 address") != std::string::npos);
  CHECK(err("bad_host").find("neither an IP address nor a valid host name") != std::string::npos);
  CHECK(err("user@cp1").find("unexpected '@cp1'") != std::string::npos);
  CHECK(err("cp1 :5").find("whitespace") != std::string::npos);
}

TEST_CASE("https URLs need the scheme and a port") {
  CHECK(parseHttpsUrl("https://cp1:50000").ok());
  CHECK_FALSE(parseHttpsUrl("cp1:50000").ok());
  CHECK_FALSE(parseHttpsUrl("https://cp1").ok());
}

TEST_CASE("a node is an address or a host name, never a port") {
  CHECK(*parseNodeName("10.0.0.1") == "10.0.0.1");
  CHECK(*parseNodeName("FD00:0::1") == "fd00::1");
  CHECK(*parseNodeName("Node-1") == "node-1");
  CHECK(parseNodeName("10.0.0.1:50000").status().message().find("without port") != std::string::npos);
  CHECK_FALSE(parseNodeName("https://n1").ok());
  CHECK_FALSE(parseNodeName("").ok());
  CHECK_FALSE(parseNodeName("-n").ok());
}
