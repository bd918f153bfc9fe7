#include "admission.h"

#include <algorithm>
#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>
#include <chrono>
#include <string>
#include <vector>

#include "keel/authz/proto_rules.h"
#include "keel/common/clock.h"
#include "keel/pki/pki.h"

#include "callers.h"

namespace keel::apid {
namespace {

using Catch::Matchers::ContainsSubstring;
using testing::builtinManifest;
using testing::client;
using namespace std::chrono_literals;

const std::string kVersion = "/keel.machine.v1.MachineService/Version";
const std::string kServiceStart = "/keel.machine.v1.MachineService/ServiceStart";
const std::string kRead = "/keel.machine.v1.MachineService/Read";  // os:admin only

PeerIdentity otherApid() { return client("node-b", {"os:impersonator"}); }
const std::string kGenerate =
    "/keel.security.v1.SecurityService/GenerateClientConfiguration";  // not per-node

// machined and trustd as the default node declares them.
const Routes& builtinRoutes() {
  static const auto routes = Routes::fromManifests({builtinManifest("machined", "keel.machine.v1.MachineService"),
                                                    builtinManifest("trustd", "keel.security.v1.SecurityService")});
  return *routes;
}

Admission decide(const PeerIdentity* peer, std::string_view method, MetadataList metadata,
                    AdmissionOptions options = {}) {
  if (options.newRequestId.empty()) options.newRequestId = "fresh-id";
  CallRequest request;
  request.method = method;
  request.peerAddress = "ipv4:127.0.0.1:4711";
  request.peer = peer;
  request.metadata = std::move(metadata);
  return admitCall(request, builtinRoutes(), options);
}

// The client's own keys among what every upstream gets.
MetadataList clientKeys(const Admission& d) {
  MetadataList out;
  for (const auto& kv : d.forward) {
    if (!kv.first.starts_with("keel-")) out.push_back(kv);
  }
  return out;
}

bool anyRemote(const Admission& d) {
  return std::any_of(d.upstreams.begin(), d.upstreams.end(), [](const Upstream& u) { return !u.local; });
}

// --- 1. reserved keys ---

TEST_CASE("reserved keel-* keys are dropped whatever their letter case and the rest is passed on in order",
          "[admission]") {
  auto peer = client("alice", {"os:reader"});
  peer.validity = {TimePoint(std::chrono::seconds(1893456000)), TimePoint(std::chrono::seconds(1893459900))};
  const auto d = decide(&peer, kVersion,
                        {{"x-trace", "1"},
                         {"Keel-Roles", "os:admin"},
                         {"KEEL-ROLES", "os:admin"},
                         {"keel-identity", "mallory"},
                         {"Keel-Request-Id", "chosen-by-client"},
                         {"keel-peer", "ipv4:10.9.9.9:1"},
                         {"keel-whatever", "x"},
                         {"keel-cert-validity", "0,9999999999"},
                         {"authorization", "bearer"}});
  CHECK(d.status.isOk());
  CHECK(d.forward == MetadataList{{"x-trace", "1"},
                                  {"authorization", "bearer"},
                                  {"keel-roles", "os:reader"},
                                  {"keel-identity", "alice"},
                                  {"keel-request-id", "fresh-id"}});
  CHECK(d.forwardToBackend ==
        MetadataList{{"keel-peer", "ipv4:127.0.0.1:4711"}, {"keel-cert-validity", "1893456000,1893459900"}});
  CHECK(d.roles == std::vector<std::string>{"os:reader"});
  CHECK(d.identity == "alice");
  CHECK(d.requestId == "fresh-id");
  CHECK_FALSE(d.forwarded);
}

TEST_CASE("reserved keys are not passed on even when the call is refused", "[admission]") {
  const MetadataList md{{"keel-roles", "os:admin"}, {"KeEl-IdEnTiTy", "x"}, {"ok", "1"}};
  const auto d = decide(nullptr, kVersion, md);
  CHECK_FALSE(d.status.isOk());
  CHECK(d.forward.empty());
  const auto peer = client("nobody", {});
  const auto noRole = decide(&peer, kVersion, md);
  CHECK_FALSE(noRole.status.isOk());
  CHECK(noRole.forward.empty());
  CHECK(noRole.upstreams.empty());
}

// --- 2. authentication ---

TEST_CASE("a call without a verified client certificate is unauthenticated", "[admission]") {
  const auto d = decide(nullptr, kVersion, {});
  CHECK(d.status.code() == StatusCode::kUnauthenticated);
  CHECK(d.roles.empty());
}

TEST_CASE("a certificate without the clientAuth usage is unauthenticated even with os:admin", "[admission]") {
  const auto peer = client("server-only", {"os:admin"}, /*clientAuth=*/false);
  const auto d = decide(&peer, kVersion, {});
  CHECK(d.status.code() == StatusCode::kUnauthenticated);
  CHECK_THAT(d.status.message(), ContainsSubstring("clientAuth"));
}

TEST_CASE("a CA certificate is unauthenticated even with clientAuth and os:admin", "[admission]") {
  auto peer = client("intermediate", {"os:admin"});
  peer.isCa = true;
  const auto d = decide(&peer, kVersion, {});
  CHECK(d.status.code() == StatusCode::kUnauthenticated);
}

// --- 3. roles ---

TEST_CASE("a client's roles come from its certificate only: a forged keel-roles is ignored", "[admission]") {
  SECTION("a reader claiming os:admin is still a reader") {
    const auto peer = client("alice", {"os:reader"});
    const auto d = decide(&peer, kRead, {{"keel-roles", "os:admin"}});
    CHECK(d.status.code() == StatusCode::kPermissionDenied);
    CHECK(d.roles == std::vector<std::string>{"os:reader"});
    CHECK_FALSE(d.forwarded);
  }
  SECTION("a client with no role claiming os:admin holds no role") {
    const auto peer = client("eve", {});
    const auto d = decide(&peer, kVersion, {{"keel-roles", "os:admin"}, {"keel-identity", "root"}});
    CHECK(d.status.code() == StatusCode::kPermissionDenied);
    CHECK(d.roles.empty());
    CHECK(d.identity == "eve");
  }
}

TEST_CASE("a client without a known role is denied with a message saying it holds no role", "[admission]") {
  const auto peer = client("eve", {});
  const auto d = decide(&peer, kVersion, {});
  CHECK(d.status.code() == StatusCode::kPermissionDenied);
  CHECK_THAT(d.status.message(), ContainsSubstring("no role"));
  CHECK_THAT(d.status.message(), ContainsSubstring("eve"));
}

TEST_CASE("a forwarding apid's call carries the roles of its single keel-roles value, minus impersonation",
          "[admission]") {
  const auto peer = otherApid();
  const auto d = decide(&peer, kServiceStart,
                        {{"keel-roles", "os:operator,os:impersonator"}, {"keel-identity", "alice"}, {"x", "y"}});
  CHECK(d.status.isOk());
  CHECK(d.forwarded);
  CHECK(d.roles == std::vector<std::string>{"os:operator"});
  CHECK(d.identity == "alice via node-b");
  CHECK(clientKeys(d) == MetadataList{{"x", "y"}});
}

TEST_CASE("impersonation alone passed on by the previous hop is no role", "[admission]") {
  const auto peer = otherApid();
  const auto d = decide(&peer, kVersion, {{"keel-roles", "os:impersonator"}, {"keel-identity", "alice"}});
  CHECK(d.status.code() == StatusCode::kPermissionDenied);
  CHECK(d.roles.empty());
  CHECK_THAT(d.status.message(), ContainsSubstring("no role"));
}

TEST_CASE("a forwarded call without keel-roles has no role, whatever the forwarder's certificate holds",
          "[admission]") {
  const auto peer = client("node-b", {"os:admin", "os:impersonator"});
  const auto d = decide(&peer, kVersion, {{"keel-identity", "alice"}});
  CHECK(d.forwarded);
  CHECK(d.status.code() == StatusCode::kPermissionDenied);
  CHECK(d.roles.empty());
}

TEST_CASE("a forwarded call with two keel-roles values is denied, whatever their letter case", "[admission]") {
  const auto peer = otherApid();
  SECTION("same case") {
    const auto d = decide(&peer, kVersion, {{"keel-roles", "os:reader"}, {"keel-roles", "os:admin"}});
    CHECK(d.status.code() == StatusCode::kPermissionDenied);
    CHECK_THAT(d.status.message(), ContainsSubstring("exactly once"));
  }
  SECTION("different case") {
    const auto d = decide(&peer, kVersion, {{"keel-roles", "os:reader"}, {"Keel-Roles", "os:admin"}});
    CHECK(d.status.code() == StatusCode::kPermissionDenied);
    CHECK(d.roles.empty());
  }
}

TEST_CASE(
    "a forwarded call tells the backend nothing of a certificate's validity, whatever the previous hop sent",
    "[admission]") {
  // trustd issues client certificates only to a caller whose certificate this apid read
  // itself: the forwarding apid's is not the caller's, and the previous hop's word is not
  // taken for it.
  auto peer = otherApid();
  peer.validity = {TimePoint(std::chrono::seconds(1893456000)), TimePoint(std::chrono::seconds(1893542400))};
  const auto d = decide(
      &peer, kGenerate,
      {{"keel-roles", "os:admin"}, {"keel-identity", "alice"}, {"keel-cert-validity", "0,253402300799"}});
  REQUIRE(d.status.isOk());
  CHECK(d.forwarded);
  CHECK(d.identity == "alice via node-b");
  CHECK(d.forwardToBackend == MetadataList{{"keel-peer", "ipv4:127.0.0.1:4711"}});
  for (const auto& kv : d.forward) CHECK(kv.first != "keel-cert-validity");
}

TEST_CASE(
    "a caller that presented its own certificate passes that certificate's validity to this node's "
    "backend only",
    "[admission]") {
  auto admin = client("root", {"os:admin"});
  admin.validity = {TimePoint(std::chrono::seconds(1893456000)), TimePoint(std::chrono::seconds(1924992000))};
  AdmissionOptions options;
  options.mayForward = true;
  options.selfNames = {"10.0.0.1"};
  const auto local = decide(&admin, kGenerate, {{"keel-cert-validity", "0,253402300799"}}, options);
  REQUIRE(local.status.isOk());
  CHECK(local.forwardToBackend ==
        MetadataList{{"keel-peer", "ipv4:127.0.0.1:4711"}, {"keel-cert-validity", "1893456000,1924992000"}});
  // To another node the call goes with the impersonator certificate: that node's apid
  // drops every keel-* key, and forwardToBackend is for this node's backend alone.
  const auto remote = decide(&admin, kGenerate, {{"node", "10.0.0.2"}}, options);
  REQUIRE(remote.status.isOk());
  REQUIRE(remote.upstreams.size() == 1);
  CHECK_FALSE(remote.upstreams.front().local);
  for (const auto& kv : remote.forward) CHECK(kv.first != "keel-cert-validity");
}

TEST_CASE("a forwarded call names who asked through which apid", "[admission]") {
  const auto peer = otherApid();
  CHECK(decide(&peer, kVersion, {{"keel-roles", "os:reader"}, {"keel-identity", "bob"}}).identity == "bob via node-b");
  CHECK(decide(&peer, kVersion, {{"keel-roles", "os:reader"}}).identity == "unknown via node-b");
  CHECK(decide(&peer, kVersion, {{"keel-roles", "os:reader"}, {"keel-identity", "a"}, {"keel-identity", "b"}})
            .identity == "unknown via node-b");
}

TEST_CASE("a forwarding apid's request id is kept only when it is valid", "[admission]") {
  const auto peer = otherApid();
  const MetadataList roles{{"keel-roles", "os:reader"}};
  auto with = [&](MetadataList extra) {
    MetadataList md = roles;
    md.insert(md.end(), extra.begin(), extra.end());
    return decide(&peer, kVersion, md).requestId;
  };
  CHECK(with({{"keel-request-id", "req-42-abc"}}) == "req-42-abc");
  CHECK(with({{"keel-request-id", "bad id"}}) == "fresh-id");
  CHECK(with({{"keel-request-id", std::string(65, 'a')}}) == "fresh-id");
  CHECK(with({{"keel-request-id", "a"}, {"keel-request-id", "b"}}) == "fresh-id");
  CHECK(with({}) == "fresh-id");
}

TEST_CASE("a client that is not an apid cannot choose its request id", "[admission]") {
  const auto peer = client("alice", {"os:admin"});
  CHECK(decide(&peer, kVersion, {{"keel-request-id", "mine"}}).requestId == "fresh-id");
}

TEST_CASE("request ids are 1-64 characters of letters, digits and dashes", "[admission]") {
  CHECK(isValidRequestId("a"));
  CHECK(isValidRequestId("Abc-123-xyz"));
  CHECK(isValidRequestId(std::string(64, 'z')));
  CHECK_FALSE(isValidRequestId(""));
  CHECK_FALSE(isValidRequestId(std::string(65, 'z')));
  CHECK_FALSE(isValidRequestId("a_b"));
  CHECK_FALSE(isValidRequestId("a b"));
  CHECK_FALSE(isValidRequestId("a\nb"));
  CHECK_FALSE(isValidRequestId("\xc3\xa9"));
}

// --- 4. targets ---

TEST_CASE("targets come from nodes (a comma list) and node, trimmed and without duplicates", "[admission]") {
  const auto peer = client("alice", {"os:reader"});
  AdmissionOptions options;
  options.mayForward = true;
  const auto d = decide(&peer, kVersion,
                        {{"nodes", " 10.0.0.2 ,10.0.0.3,10.0.0.2"}, {"node", "node-c"}, {"Nodes", "10.0.0.3"},
                         {"other", "kept"}},
                        options);
  CHECK(d.status.isOk());
  CHECK(d.targets == std::vector<std::string>{"10.0.0.2", "10.0.0.3", "node-c"});
  CHECK(anyRemote(d));
  CHECK(clientKeys(d) == MetadataList{{"other", "kept"}});
}

TEST_CASE("a target with a port or a scheme is an invalid argument", "[admission]") {
  const auto peer = client("alice", {"os:admin"});
  AdmissionOptions options;
  options.mayForward = true;
  for (const std::string bad : {"10.0.0.2:50000", "https://node-c", "node-c/path", "[::1]:50000", "bad host"}) {
    INFO(bad);
    const auto d = decide(&peer, kVersion, {{"nodes", "10.0.0.2," + bad}}, options);
    CHECK(d.status.code() == StatusCode::kInvalidArgument);
  }
  CHECK(decide(&peer, kVersion, {{"node", "node-c:1"}}, options).status.code() == StatusCode::kInvalidArgument);
}

TEST_CASE("a call may target at most maxTargets distinct nodes", "[admission]") {
  const auto peer = client("alice", {"os:reader"});
  AdmissionOptions options;
  options.mayForward = true;
  CHECK(options.maxTargets == 256);
  options.maxTargets = 64;
  auto list = [](int n) {
    std::string s;
    for (int i = 0; i < n; ++i) s += (i ? "," : "") + std::string("10.0.1.") + std::to_string(i + 1);
    return s;
  };
  CHECK(decide(&peer, kVersion, {{"nodes", list(64)}}, options).status.isOk());
  const auto tooMany = decide(&peer, kVersion, {{"nodes", list(65)}}, options);
  CHECK(tooMany.status.code() == StatusCode::kInvalidArgument);
  CHECK_THAT(tooMany.status.message(), ContainsSubstring("64"));
  // Duplicates do not count.
  CHECK(decide(&peer, kVersion, {{"nodes", list(64) + ",10.0.1.1"}}, options).status.isOk());
}

// --- 6. forwarding ---

TEST_CASE("a forwarded call may not target nodes again", "[admission]") {
  const auto peer = otherApid();
  AdmissionOptions options;
  options.mayForward = true;
  const auto d = decide(&peer, kVersion, {{"keel-roles", "os:admin"}, {"nodes", "10.0.0.3"}}, options);
  CHECK(d.status.code() == StatusCode::kPermissionDenied);
  CHECK_THAT(d.status.message(), ContainsSubstring("never forwarded again"));
}

TEST_CASE("targeting another node needs the impersonator certificate, this node's own names do not",
          "[admission]") {
  const auto peer = client("alice", {"os:reader"});
  AdmissionOptions options;
  options.selfNames = {"10.0.0.1", "node-a"};
  SECTION("remote target without mayForward is denied") {
    const auto d = decide(&peer, kVersion, {{"nodes", "10.0.0.1,10.0.0.2"}}, options);
    CHECK(d.status.code() == StatusCode::kPermissionDenied);
    CHECK_THAT(d.status.message(), ContainsSubstring("no impersonator certificate"));
  }
  SECTION("only own names are allowed without mayForward") {
    const auto d = decide(&peer, kVersion, {{"nodes", "10.0.0.1"}, {"node", "node-a"}}, options);
    CHECK(d.status.isOk());
    CHECK_FALSE(anyRemote(d));
    CHECK(d.targets == std::vector<std::string>{"10.0.0.1", "node-a"});
  }
  SECTION("remote target with mayForward is allowed") {
    options.mayForward = true;
    const auto d = decide(&peer, kVersion, {{"nodes", "10.0.0.2"}}, options);
    CHECK(d.status.isOk());
    CHECK(anyRemote(d));
  }
}

// --- 5. the rule table ---

TEST_CASE("an unknown method is unimplemented, even for a client with no role", "[admission]") {
  const auto none = client("eve", {});
  const auto admin = client("root", {"os:admin"});
  const std::string unknown = "/keel.machine.v1.MachineService/NoSuchMethod";
  CHECK(decide(&none, unknown, {}).status.code() == StatusCode::kUnimplemented);
  CHECK(decide(&admin, unknown, {}).status.code() == StatusCode::kUnimplemented);
  CHECK(decide(&admin, "/nope.Service/X", {}).status.code() == StatusCode::kUnimplemented);
}

TEST_CASE("a denial by the rule table names the roles the method needs", "[admission]") {
  const auto peer = client("olga", {"os:operator", "os:reader"});
  const auto d = decide(&peer, kRead, {});
  CHECK(d.status.code() == StatusCode::kPermissionDenied);
  CHECK_THAT(d.status.message(), ContainsSubstring("os:admin"));
  const auto admin = client("root", {"os:admin"});
  CHECK(decide(&admin, kRead, {}).status.isOk());
}

TEST_CASE("the rule is checked before a call is forwarded anywhere", "[admission]") {
  const auto peer = client("alice", {"os:reader"});
  AdmissionOptions options;
  options.mayForward = true;
  const auto d = decide(&peer, kRead, {{"nodes", "10.0.0.2"}}, options);
  CHECK(d.status.code() == StatusCode::kPermissionDenied);
  CHECK_THAT(d.status.message(), ContainsSubstring("os:admin"));
}

// --- 7. the route ---

const std::string kLogs = "/keel.machine.v1.MachineService/Logs";        // server stream, per-node
const std::string kUpgrade = "/keel.machine.v1.MachineService/Upgrade";  // client stream, os:admin

TEST_CASE("an admitted call names its backend, its shape, its upstreams and what they are sent", "[admission]") {
  const auto admin = client("root", {"os:admin"});
  AdmissionOptions options;
  options.mayForward = true;
  options.selfNames = {"10.0.0.1", "node-a"};
  struct Row {
    std::string what;
    std::string method;
    MetadataList metadata;
    std::string backend;
    CallShape shape;
    bool fanOut;
    std::vector<std::pair<std::string, bool>> upstreams;  // node, local
  };
  const std::vector<Row> rows = {
      {"no target: this node's backend, replies as they come", kVersion, {}, "machined", CallShape::kUnary, false, {{"", true}}},
      {"one target, per-node reply: gathered and stamped", kVersion, {{"node", "10.0.0.2"}}, "machined",
       CallShape::kUnary, true, {{"10.0.0.2", false}}},
      {"own name as target: local, still stamped", kVersion, {{"node", "node-a"}}, "machined", CallShape::kUnary, true,
       {{"node-a", true}}},
      {"several targets, in the order given", kVersion, {{"nodes", "10.0.0.3,10.0.0.1,10.0.0.2"}}, "machined",
       CallShape::kUnary, true, {{"10.0.0.3", false}, {"10.0.0.1", true}, {"10.0.0.2", false}}},
      {"server stream to several nodes", kLogs, {{"nodes", "10.0.0.1,10.0.0.2"}}, "machined", CallShape::kServerStream,
       true, {{"10.0.0.1", true}, {"10.0.0.2", false}}},
      {"client stream to one other node: one upstream", kUpgrade, {{"node", "10.0.0.2"}}, "machined",
       CallShape::kClientStream, false, {{"10.0.0.2", false}}},
      {"a reply without the per-node shape to one other node: one upstream", kGenerate, {{"node", "10.0.0.2"}},
       "trustd", CallShape::kUnary, false, {{"10.0.0.2", false}}},
  };
  for (const auto& row : rows) {
    INFO(row.what);
    const auto d = decide(&admin, row.method, row.metadata, options);
    REQUIRE(d.status.isOk());
    REQUIRE(d.backend != nullptr);
    CHECK(d.backend->name == row.backend);
    CHECK(d.shape == row.shape);
    CHECK(d.fanOut == row.fanOut);
    std::vector<std::pair<std::string, bool>> got;
    for (const auto& u : d.upstreams) got.emplace_back(u.node, u.local);
    CHECK(got == row.upstreams);
    CHECK(clientKeys(d).empty());
    CHECK(d.forward == MetadataList{{"keel-roles", "os:admin"}, {"keel-identity", "root"}, {"keel-request-id", "fresh-id"}});
  }
}

TEST_CASE("every refusal of the admission step, with its code and reason, and nothing to forward", "[admission]") {
  const auto admin = client("root", {"os:admin"});
  const auto reader = client("alice", {"os:reader"});
  const auto noUsage = client("server", {"os:admin"}, false);
  const auto apid = otherApid();
  AdmissionOptions forwarding;
  forwarding.mayForward = true;
  forwarding.selfNames = {"10.0.0.1"};
  AdmissionOptions local;
  local.selfNames = {"10.0.0.1"};
  struct Row {
    std::string what;
    const PeerIdentity* peer;
    Status identityError;
    std::string method;
    MetadataList metadata;
    AdmissionOptions options;
    StatusCode code;
    std::string reason;
  };
  const std::vector<Row> rows = {
      {"no certificate", nullptr, Status::ok(), kVersion, {}, forwarding, StatusCode::kUnauthenticated,
       "no verified client certificate"},
      {"an unreadable certificate keeps its reason", nullptr,
       unauthenticated("the client certificate cannot be read: bad DER"), kVersion, {}, forwarding,
       StatusCode::kUnauthenticated, "cannot be read: bad DER"},
      {"no clientAuth usage", &noUsage, Status::ok(), kVersion, {}, forwarding, StatusCode::kUnauthenticated,
       "not a client certificate"},
      {"two keel-roles from a forwarding apid", &apid, Status::ok(), kVersion,
       {{"keel-roles", "os:admin"}, {"keel-roles", "os:admin"}}, forwarding, StatusCode::kPermissionDenied,
       "exactly once, found 2"},
      {"a target with a port", &admin, Status::ok(), kVersion, {{"node", "10.0.0.2:50000"}}, forwarding,
       StatusCode::kInvalidArgument, "target node '10.0.0.2:50000'"},
      {"too many targets", &admin, Status::ok(), kVersion, {{"nodes", "10.0.0.2,10.0.0.3"}},
       [&] {
         auto o = forwarding;
         o.maxTargets = 1;
         return o;
       }(),
       StatusCode::kInvalidArgument, "at most 1 nodes"},
      {"no role", &apid, Status::ok(), kVersion, {}, forwarding, StatusCode::kPermissionDenied, "holds no role"},
      {"unknown method", &admin, Status::ok(), "/keel.machine.v1.MachineService/Nope", {}, forwarding,
       StatusCode::kUnimplemented, "Nope"},
      {"role too weak", &reader, Status::ok(), kUpgrade, {}, forwarding, StatusCode::kPermissionDenied, "os:admin"},
      {"a forwarded call targeting nodes again", &apid, Status::ok(), kVersion,
       {{"keel-roles", "os:admin"}, {"node", "10.0.0.3"}}, forwarding, StatusCode::kPermissionDenied,
       "never forwarded again"},
      {"another node without an impersonator certificate", &admin, Status::ok(), kVersion, {{"node", "10.0.0.2"}},
       local, StatusCode::kPermissionDenied, "no impersonator certificate"},
      {"several nodes for a reply without the per-node shape", &admin, Status::ok(), kGenerate,
       {{"nodes", "10.0.0.2,10.0.0.3"}}, forwarding, StatusCode::kInvalidArgument, "cannot be sent to several nodes"},
      {"several nodes for a client stream", &admin, Status::ok(), kUpgrade, {{"nodes", "10.0.0.1,10.0.0.2"}},
       forwarding, StatusCode::kInvalidArgument, "target one node"},
  };
  for (const auto& row : rows) {
    INFO(row.what);
    auto options = row.options;
    options.newRequestId = "fresh-id";
    CallRequest request;
    request.method = row.method;
    request.peerAddress = "ipv4:127.0.0.1:4711";
    request.peer = row.peer;
    request.identityError = row.identityError;
    request.metadata = row.metadata;
    const auto d = admitCall(request, builtinRoutes(), options);
    CHECK(d.status.code() == row.code);
    CHECK_THAT(d.status.message(), ContainsSubstring(row.reason));
    CHECK(d.backend == nullptr);
    CHECK(d.upstreams.empty());
    CHECK(d.forward.empty());
  }
}

// --- identities from certificates ---

pki::CertificateAuthority makeCa(const Clock& clock) {
  pki::CaOptions options;
  options.subject.commonName = "keel-os";
  return pki::createSelfSignedCa(options, clock).value();
}

struct Issuer {
  ManualClock clock{TimePoint{std::chrono::sys_days{std::chrono::year{2030} / 1 / 1}}};
  pki::CertificateAuthority ca = makeCa(clock);

  std::string issue(const std::string& cn, const std::vector<std::string>& organizations,
                    std::vector<pki::ExtendedKeyUsage> usages = {pki::ExtendedKeyUsage::kClientAuth}) {
    auto key = pki::PrivateKey::generate(pki::KeyType::kEcdsaP256).value();
    pki::CsrOptions csrOptions;
    csrOptions.subject.commonName = cn;
    auto csr = pki::CertificateRequest::create(key, csrOptions).value();
    pki::IssuePolicy policy;
    policy.extendedKeyUsages = std::move(usages);
    policy.organizationPolicy = pki::IssuePolicy::Organizations::kSet;
    policy.organizations = organizations;
    return pki::issueCertificate(ca, csr, policy, clock).value().toPem();
  }
};

TEST_CASE("the identity of a client certificate is its CN, its known roles and its clientAuth usage",
          "[admission]") {
  Issuer issuer;
  const auto id = identityFromPem(issuer.issue("alice", {"os:reader", "system:masters", "os:operator"}));
  REQUIRE(id.ok());
  CHECK(id->commonName == "alice");
  CHECK(id->roles == std::vector<std::string>{"os:operator", "os:reader"});
  CHECK(id->clientAuth);
  CHECK_FALSE(id->isCa);
  CHECK_FALSE(id->impersonator());
  // The validity as issued: from the issuer's clock, for the policy's default 24 hours.
  CHECK(id->validity.notBefore == issuer.clock.now());
  CHECK(id->validity.notAfter == issuer.clock.now() + std::chrono::hours(24));
}

TEST_CASE("a CA certificate reads as a CA", "[admission]") {
  Issuer issuer;
  const auto id = identityFromPem(issuer.ca.certificate.toPem());
  REQUIRE(id.ok());
  CHECK(id->isCa);
}

TEST_CASE("a certificate without clientAuth or without known roles reads as such", "[admission]") {
  Issuer issuer;
  const auto server = identityFromPem(issuer.issue("node-a", {"os:admin"}, {pki::ExtendedKeyUsage::kServerAuth}));
  REQUIRE(server.ok());
  CHECK_FALSE(server->clientAuth);
  const auto nobody = identityFromPem(issuer.issue("nobody", {"kubernetes", "OS:ADMIN"}));
  REQUIRE(nobody.ok());
  CHECK(nobody->roles.empty());
  const auto apid = identityFromPem(issuer.issue("node-b", {"os:impersonator"}));
  REQUIRE(apid.ok());
  CHECK(apid->impersonator());
}

TEST_CASE("a PEM that is not a certificate is unauthenticated", "[admission]") {
  CHECK(identityFromPem("").status().code() == StatusCode::kUnauthenticated);
  CHECK(identityFromPem("garbage").status().code() == StatusCode::kUnauthenticated);
  CHECK(identityFromPem("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n").status().code() ==
        StatusCode::kUnauthenticated);
}

TEST_CASE("the identity cache returns the same identity for the same certificate", "[admission]") {
  Issuer issuer;
  const std::string pem = issuer.issue("alice", {"os:admin"});
  IdentityCache cache;
  const auto first = cache.lookup(pem);
  const auto second = cache.lookup(pem);
  REQUIRE(first.ok());
  REQUIRE(second.ok());
  CHECK(first->get() == second->get());
  CHECK((*first)->commonName == "alice");
  CHECK(cache.lookup("garbage").status().code() == StatusCode::kUnauthenticated);
}

TEST_CASE("the identity cache forgets its oldest entry beyond its capacity", "[admission]") {
  Issuer issuer;
  const std::string a = issuer.issue("a", {"os:admin"});
  const std::string b = issuer.issue("b", {"os:admin"});
  const std::string c = issuer.issue("c", {"os:admin"});
  IdentityCache cache(2);
  const auto a1 = cache.lookup(a).value();
  const auto b1 = cache.lookup(b).value();
  CHECK(cache.lookup(a).value() == a1);  // still cached
  const auto c1 = cache.lookup(c).value();
  CHECK(cache.lookup(b).value() == b1);  // b and c are the two kept
  CHECK(cache.lookup(c).value() == c1);
  const auto a2 = cache.lookup(a).value();  // a was evicted: parsed again
  CHECK(a2 != a1);
  CHECK(a2->commonName == "a");
}

}  // namespace
}  // namespace keel::apid
