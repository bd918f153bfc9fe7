// apid from the outside: real TLS clients with right and wrong certificates, forged
// metadata, oversized messages, a stand-in backend that records what reaches it, and
// real machined nodes behind apid.
#include "apid_fixture.h"

#include "raw_h2.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <catch2/generators/catch_generators.hpp>
#include <algorithm>
#include <cctype>
#include <set>
#include <thread>

#include "keel/authz/authz.h"
#include "keel/authz/proto_rules.h"
#include "keel/apis/builtin.h"

namespace keel::integration {
namespace {

using Metadata = std::vector<std::pair<std::string, std::string>>;

std::string serialize(const google::protobuf::Message& m) { return m.SerializeAsString(); }

const std::string kVersion = "/keel.machine.v1.MachineService/Version";
const std::string kRead = "/keel.machine.v1.MachineService/Read";
const std::string kServiceStop = "/keel.machine.v1.MachineService/ServiceStop";

// apid in front of a recording stand-in for machined.
struct Gateway {
  TestPki pki;
  TempDir dir;
  std::unique_ptr<RecordingBackend> backend;
  std::unique_ptr<ApidProcess> apid;

  explicit Gateway(ApidOptions options = {}) {
    backend = std::make_unique<RecordingBackend>(dir / "machine.sock");
    apid = std::make_unique<ApidProcess>(pki, options);
    apid->addBackend("machined", backend->socket(), {"keel.machine.v1.MachineService", "keel.security.v1.SecurityService"});
    // The manifest was added after start: wait until apid routes to it.
    auto admin = channel(pki.client({"os:admin"}));
    grpc::Status last;
    const bool routed = eventually(
        [&] {
          last = rawCall(*admin, kVersion, "");
          return last.ok();
        },
        10s);
    INFO(last.error_message() << "\n" << apid->log());
    REQUIRE(routed);
    backend->clear();
  }
  std::shared_ptr<grpc::Channel> channel(const Credential& c) const {
    return mtlsChannel(apid->endpoint(), pki.caPem(), c);
  }
};

TEST_CASE("apid forwards a call to the backend with the roles and identity of the client certificate") {
  Gateway g;
  const auto bob = g.pki.client({"os:reader"}, "bob");
  auto ch = g.channel(bob);
  std::multimap<std::string, std::string> trailers;
  REQUIRE(rawCall(*ch, kVersion, "", nullptr, {{"x-custom", "passes"}}, &trailers).ok());
  REQUIRE(g.backend->calls().size() == 1);
  CHECK(g.backend->calls().back().method == kVersion);
  CHECK(g.backend->lastValues("keel-roles") == std::vector<std::string>{"os:reader"});
  CHECK(g.backend->lastValues("keel-identity") == std::vector<std::string>{"bob"});
  CHECK(g.backend->lastValues("keel-request-id").size() == 1);
  REQUIRE(g.backend->lastValues("keel-peer").size() == 1);
  CHECK_THAT(g.backend->lastValues("keel-peer").front(), ContainsSubstring("127.0.0.1"));
  // The validity of the certificate bob presented, for trustd's renewals.
  const auto bobCert = pki::Certificate::fromPem(bob.cert).value();
  CHECK(g.backend->lastValues("keel-cert-validity") ==
        std::vector<std::string>{authz::formatCertValidity({bobCert.notBefore(), bobCert.notAfter()})});
  CHECK(g.backend->lastValues("x-custom") == std::vector<std::string>{"passes"});
  // The backend's trailers come back unchanged.
  CHECK(trailers.count("x-backend-trailer") == 1);
}

TEST_CASE("client keel-* metadata never reaches a backend, whatever its form") {
  Gateway g;
  auto reader = g.channel(g.pki.client({"os:reader"}, "mallory"));
  const Metadata forged = {{"keel-roles", "os:admin"},    {"keel-roles", "os:operator"},
                           {"keel-identity", "root"},     {"keel-peer", "10.0.0.1"},
                           {"keel-request-id", "forged"}, {"keel-cert-validity", "0,253402300799"},
                           {"keel-anything", "x"}};
  REQUIRE(rawCall(*reader, kVersion, "", nullptr, forged).ok());
  CHECK(g.backend->lastValues("keel-roles") == std::vector<std::string>{"os:reader"});
  REQUIRE(g.backend->lastValues("keel-cert-validity").size() == 1);
  CHECK(g.backend->lastValues("keel-cert-validity").front() != "0,253402300799");
  CHECK(g.backend->lastValues("keel-identity") == std::vector<std::string>{"mallory"});
  CHECK(g.backend->lastValues("keel-anything").empty());
  CHECK(g.backend->lastValues("keel-request-id") != std::vector<std::string>{"forged"});
  // And the forged admin role does not open an admin-only method.
  g.backend->clear();
  const auto st = rawCall(*reader, kRead, "", nullptr, forged);
  CHECK(st.error_code() == grpc::StatusCode::PERMISSION_DENIED);
  CHECK_THAT(st.error_message(), ContainsSubstring("os:admin"));
  CHECK(g.backend->calls().empty());
}

TEST_CASE("a certificate without a known role is denied even with a forged roles header") {
  Gateway g;
  auto nobody = g.channel(g.pki.client({"acme:devs"}, "nobody"));
  const auto st = rawCall(*nobody, kVersion, "", nullptr, {{"keel-roles", "os:admin"}});
  CHECK(st.error_code() == grpc::StatusCode::PERMISSION_DENIED);
  CHECK_THAT(st.error_message(), ContainsSubstring("no role"));
  auto empty = g.channel(g.pki.client({}, "no-o"));
  CHECK(rawCall(*empty, kVersion, "", nullptr, {{"keel-roles", "os:admin"}}).error_code() ==
        grpc::StatusCode::PERMISSION_DENIED);
  CHECK(g.backend->calls().empty());
}

TEST_CASE("an impersonator carries only the roles the previous hop put, exactly once") {
  Gateway g;
  auto imp = g.channel(g.pki.client({"os:impersonator"}, "apid@127.0.1.9"));
  SECTION("without forwarded roles it is denied: impersonation grants nothing by itself") {
    CHECK(rawCall(*imp, kVersion, "").error_code() == grpc::StatusCode::PERMISSION_DENIED);
    CHECK(g.backend->calls().empty());
  }
  SECTION("with two roles values it is denied") {
    CHECK(rawCall(*imp, kVersion, "", nullptr, {{"keel-roles", "os:reader"}, {"keel-roles", "os:admin"}})
              .error_code() == grpc::StatusCode::PERMISSION_DENIED);
    CHECK(g.backend->calls().empty());
  }
  SECTION("with one value the call carries those roles, and the identity names both hops") {
    REQUIRE(rawCall(*imp, kVersion, "", nullptr, {{"keel-roles", "os:reader,os:impersonator"}, {"keel-identity", "alice"}})
                .ok());
    CHECK(g.backend->lastValues("keel-roles") == std::vector<std::string>{"os:reader"});
    CHECK(g.backend->lastValues("keel-identity") == std::vector<std::string>{"alice via apid@127.0.1.9"});
  }
  SECTION("a forwarded call that targets nodes again is refused (no loops)") {
    CHECK(rawCall(*imp, kVersion, "", nullptr, {{"keel-roles", "os:admin"}, {"nodes", "127.0.1.1,127.0.1.2"}})
              .error_code() == grpc::StatusCode::PERMISSION_DENIED);
    CHECK(g.backend->calls().empty());
  }
}

TEST_CASE("a node without an impersonator certificate refuses to forward to other nodes") {
  Gateway g;
  auto admin = g.channel(g.pki.client({"os:admin"}));
  const auto st = rawCall(*admin, kVersion, "", nullptr, {{"nodes", "127.0.1.2,127.0.1.3"}});
  CHECK(st.error_code() == grpc::StatusCode::PERMISSION_DENIED);
  CHECK_THAT(st.error_message(), ContainsSubstring("impersonator"));
  // One other node is refused the same way (a refused call has no route to look at).
  const auto one = rawCall(*admin, kVersion, "", nullptr, {{"node", "127.0.1.2"}});
  CHECK(one.error_code() == grpc::StatusCode::PERMISSION_DENIED);
  // Targeting itself stays local and works.
  CHECK(rawCall(*admin, kVersion, "", nullptr, {{"node", "127.0.1.1"}}).ok());
  // A target is a node, never an endpoint.
  CHECK(rawCall(*admin, kVersion, "", nullptr, {{"node", "127.0.1.2:22"}}).error_code() ==
        grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_CASE("unknown methods are refused by apid and never forwarded") {
  Gateway g;
  auto admin = g.channel(g.pki.client({"os:admin"}));
  CHECK(rawCall(*admin, "/keel.machine.v1.MachineService/NoSuchMethod", "").error_code() ==
        grpc::StatusCode::UNIMPLEMENTED);
  CHECK(rawCall(*admin, "/other.Service/Method", "").error_code() == grpc::StatusCode::UNIMPLEMENTED);
  CHECK(g.backend->calls().empty());
}

// Every role against every method of the routed APIs (machine, certificate authority),
// from the rule table itself. apid's own certificates are never asked for through apid.
TEST_CASE("role matrix: every role against every machine API method") {
  Gateway g;
  const auto& rules = apis::builtinRules().rules();
  std::vector<std::string> roleSets = {"os:admin", "os:operator", "os:reader", "os:impersonator", "acme:other"};
  std::map<std::string, std::shared_ptr<grpc::Channel>> channels;
  for (const auto& role : roleSets) channels[role] = g.channel(g.pki.client({role}, "matrix-" + role));
  size_t checked = 0;
  size_t local = 0;
  for (const auto& [method, allowed] : rules) {
    if (method.rfind("/keel.security.v1.LocalIssuerService/", 0) == 0) {
      ++local;
      g.backend->clear();
      const auto st = rawCall(*channels["os:admin"], method, "");
      CHECK(st.error_code() == grpc::StatusCode::UNIMPLEMENTED);
      CHECK(g.backend->calls().empty());
      continue;
    }
    for (const auto& role : roleSets) {
      g.backend->clear();
      const bool expected = std::find(allowed.begin(), allowed.end(), role) != allowed.end();
      const auto st = rawCall(*channels[role], method, "");
      INFO(method << " as " << role << ": " << st.error_message());
      if (expected) {
        CHECK(st.ok());
        REQUIRE(g.backend->calls().size() == 1);
        CHECK(g.backend->lastValues("keel-roles") == std::vector<std::string>{role});
      } else {
        CHECK(st.error_code() == grpc::StatusCode::PERMISSION_DENIED);
        CHECK(g.backend->calls().empty());
      }
      ++checked;
    }
  }
  CHECK(local == 1);
  CHECK(checked == (rules.size() - local) * roleSets.size());
  CHECK(rules.size() >= 25);
}

TEST_CASE("TLS 1.2 clients are refused; TLS 1.3 is served") {
  Gateway g;
  const auto client = g.pki.client({"os:admin"});
  writeFile(g.dir / "c.key", client.key);
  writeFile(g.dir / "c.crt", client.cert);
  writeFile(g.dir / "ca.crt", g.pki.caPem());
  auto sclient = [&](const std::string& version) {
    return keel::testing::run({"openssl", "s_client", "-connect", g.apid->endpoint(), version, "-cert",
                               (g.dir / "c.crt").string(), "-key", (g.dir / "c.key").string(), "-CAfile",
                               (g.dir / "ca.crt").string(), "-alpn", "h2"},
                              {.workingDirectory = std::nullopt, .extraEnv = {}, .stdinData = "", .timeout = 10s});
  };
  const auto v12 = sclient("-tls1_2");
  const std::string out12 = v12.out + v12.err;
  INFO(out12);
  CHECK(v12.exitCode != 0);
  CHECK_THAT(out12, ContainsSubstring("Cipher is (NONE)"));
  // apid's side names the reason (gRPC closes the connection without an alert).
  CHECK(eventually([&] { return g.apid->log().find("unsupported protocol") != std::string::npos; }, 5s));
  const auto v13 = sclient("-tls1_3");
  const std::string out13 = v13.out + v13.err;
  INFO(out13);
  CHECK_THAT(out13, ContainsSubstring("TLSv1.3"));
}

TEST_CASE("apid sends no session tickets: no Keel client resumes a session") {
  Gateway g;
  const auto client = g.pki.client({"os:admin"});
  RawH2Client h2(g.apid->host(), g.apid->port(), g.pki.caPem(), client.cert, client.key);
  INFO(h2.error());
  REQUIRE(h2.connected());
  // Tickets come right after the handshake, before any application data: once apid's
  // SETTINGS have arrived, every ticket it sent has been counted.
  REQUIRE(h2.start());
  CHECK(h2.ticketsReceived() == 0);
}

namespace {

RawH2Client::End rawRequest(const Gateway& g, const Credential& who, const std::string& method,
                            const Metadata& extra) {
  RawH2Client h2(g.apid->host(), g.apid->port(), g.pki.caPem(), who.cert, who.key);
  INFO(h2.error());
  REQUIRE(h2.connected());
  REQUIRE(h2.start());
  Metadata headers = {{":method", "POST"},
                      {":scheme", "https"},
                      {":path", method},
                      {":authority", g.apid->endpoint()},
                      {"content-type", "application/grpc"},
                      {"te", "trailers"}};
  headers.insert(headers.end(), extra.begin(), extra.end());
  return h2.request(1, headers, "");
}

}  // namespace

TEST_CASE("roles in upper- or mixed-case header names, sent as raw HTTP/2, never reach a backend") {
  Gateway g;
  const auto reader = g.pki.client({"os:reader"}, "mallory");
  // The hand-built request is well formed: without forged headers it is served.
  REQUIRE(rawRequest(g, reader, kVersion, {}) == RawH2Client::End::kEndStream);
  REQUIRE(g.backend->calls().size() == 1);
  CHECK(g.backend->lastValues("keel-roles") == std::vector<std::string>{"os:reader"});
  g.backend->clear();

  for (const std::string name : {"Keel-Roles", "KEEL-ROLES", "keel-Roles", "kEEL-rOLES"}) {
    INFO(name);
    // An admin-only method: nothing reaches the backend, and apid answers (a reset, a
    // GOAWAY or a status), rather than leaving the stream hanging.
    const auto end = rawRequest(g, reader, kRead, {{name, "os:admin"}, {"keel-roles", "os:admin"}});
    CHECK(end != RawH2Client::End::kClosed);
    CHECK(g.backend->calls().empty());
    // A method the reader may call: refused, or served with the certificate's roles only.
    rawRequest(g, reader, kVersion, {{name, "os:admin"}, {name, "os:operator"}});
    for (const auto& call : g.backend->calls()) {
      std::vector<std::string> roles;
      for (const auto& [key, value] : call.metadata) {
        std::string lower = key;
        std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
        if (!lower.starts_with("keel-")) continue;
        // Only apid's own keys, in lower case.
        CHECK(key == lower);
        CHECK((key == "keel-roles" || key == "keel-identity" || key == "keel-peer" ||
               key == "keel-request-id" || key == "keel-cert-validity"));
        if (key == "keel-roles") roles.push_back(value);
      }
      CHECK(roles == std::vector<std::string>{"os:reader"});
    }
    g.backend->clear();
  }
  // apid is still serving.
  CHECK(rawCall(*g.channel(reader), kVersion, "").ok());
}

TEST_CASE("certificates that must not authenticate are refused in the handshake") {
  Gateway g;
  TestPki other("other-cluster");
  std::vector<std::pair<std::string, Credential>> bad;
  bad.emplace_back("another cluster's CA", other.client({"os:admin"}));
  {
    TestPki::Spec s;
    s.organizations = {"os:admin"};
    s.ttl = std::chrono::hours(1);
    s.shift = -std::chrono::hours(2);
    bad.emplace_back("expired", g.pki.issue(s));
  }
  {
    TestPki::Spec s;
    s.organizations = {"os:admin"};
    s.shift = std::chrono::hours(2);
    bad.emplace_back("not yet valid", g.pki.issue(s));
  }
  {
    TestPki::Spec s;
    s.cn = "127.0.1.1";
    s.organizations = {"os:admin"};
    s.usages = {pki::ExtendedKeyUsage::kServerAuth};
    s.ips = {"127.0.1.1"};
    bad.emplace_back("a server certificate", g.pki.issue(s));
  }
  for (const auto& [what, cred] : bad) {
    INFO(what);
    auto ch = g.channel(cred);
    const auto st = rawCall(*ch, kVersion, "");
    CHECK_FALSE(st.ok());
    CHECK(st.error_code() != grpc::StatusCode::PERMISSION_DENIED);  // refused before any handler
  }
  // No client certificate at all.
  grpc::SslCredentialsOptions anon;
  anon.pem_root_certs = g.pki.caPem();
  auto noCert = grpc::CreateChannel(g.apid->endpoint(), grpc::SslCredentials(anon));
  CHECK_FALSE(rawCall(*noCert, kVersion, "").ok());
  CHECK(g.backend->calls().empty());
  CHECK(g.apid->process().running());
}

TEST_CASE("apid keeps serving and auditing when the reader of its output goes away") {
  TempDir outDir;
  const auto fifo = outDir / "apid-output";
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  // Held open only until apid runs: then nobody reads apid's stdout any more.
  int reader = ::open(fifo.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  REQUIRE(reader >= 0);
  ApidOptions options;
  options.output = fifo;
  Gateway g(options);
  ::close(reader);

  auto ch = g.channel(g.pki.client({"os:reader"}, "after-the-reader"));
  REQUIRE(rawCall(*ch, kVersion, "").ok());
  // The audit copy on stdout is pushed out four times a second: once a push has hit the
  // closed pipe (apid says so on stderr), call again.
  REQUIRE(eventually([&] { return g.apid->log().find("audit copy on stdout cannot be written") != std::string::npos; },
                     10s));
  CHECK_THAT(g.apid->log(), ContainsSubstring("Broken pipe"));
  const auto again = rawCall(*ch, kVersion, "");
  INFO(again.error_message());
  CHECK(again.ok());
  CHECK(g.apid->process().running());
  CHECK(g.apid->process().wait(std::chrono::milliseconds(0)) == std::nullopt);
  // The file has every line.
  CHECK(eventually(
      [&] {
        const std::string audit = g.apid->auditLog();
        size_t n = 0;
        for (size_t at = audit.find("after-the-reader"); at != std::string::npos;
             at = audit.find("after-the-reader", at + 1))
          ++n;
        return n == 2;
      },
      5s));
}

TEST_CASE("an oversized message is refused before it reaches the backend") {
  ApidOptions o;
  o.limits = {{"maxMessageBytes", 64 * 1024}};
  Gateway g(o);
  auto admin = g.channel(g.pki.client({"os:admin"}));
  const auto st = rawCall(*admin, kVersion, std::string(200 * 1024, 'x'));
  CHECK(st.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED);
  CHECK(g.backend->calls().empty());
  CHECK(rawCall(*admin, kVersion, "").ok());
}

TEST_CASE("every call and every refusal is audited without message bodies") {
  Gateway g;
  auto reader = g.channel(g.pki.client({"os:reader"}, "carol"));
  keel::machine::v1::ReadRequest secret;
  secret.set_path("/var/log/top-secret-marker");
  REQUIRE(rawCall(*reader, kVersion, serialize(secret)).ok());
  CHECK(rawCall(*reader, kRead, serialize(secret)).error_code() == grpc::StatusCode::PERMISSION_DENIED);
  std::vector<nlohmann::json> lines;
  REQUIRE(eventually(
      [&] {
        lines.clear();
        std::istringstream in(g.apid->auditLog());
        for (std::string line; std::getline(in, line);) {
          auto j = nlohmann::json::parse(line);
          if (j["identity"] == "carol") lines.push_back(j);
        }
        return lines.size() == 2;
      },
      5s));
  std::sort(lines.begin(), lines.end(), [](const auto& a, const auto& b) { return a["method"] > b["method"]; });
  CHECK(lines[0]["method"] == kVersion);
  CHECK(lines[0]["decision"] == "allow");
  CHECK(lines[0]["code"] == "OK");
  CHECK(lines[0]["roles"] == nlohmann::json::array({"os:reader"}));
  CHECK(lines[0].contains("durationUs"));
  CHECK(lines[0]["bytesIn"].get<int>() > 0);
  CHECK_THAT(lines[0]["peer"].get<std::string>(), ContainsSubstring("127.0.0.1"));
  CHECK(lines[1]["method"] == kRead);
  CHECK(lines[1]["decision"] == "deny");
  CHECK(lines[1]["code"] == "PERMISSION_DENIED");
  CHECK_THAT(lines[1]["reason"].get<std::string>(), ContainsSubstring("os:admin"));
  CHECK(lines[0]["requestId"] != lines[1]["requestId"]);
  CHECK(g.apid->auditLog().find("top-secret-marker") == std::string::npos);
  // The same lines reach apid's own log (machined keeps it as the service log).
  CHECK(eventually([&] { return g.apid->log().find("\"identity\":\"carol\"") != std::string::npos; }, 5s));
}

}  // namespace
}  // namespace keel::integration

namespace keel::integration {
namespace {

// A generic client stream driven one operation at a time: each operation is started
// with the next tag and waited for with step().
class StepStream {
 public:
  StepStream(const std::shared_ptr<grpc::Channel>& channel, const std::string& method) : stub_(channel) {
    ctx_.set_deadline(std::chrono::system_clock::now() + kCallTimeout);
    call = stub_.PrepareCall(&ctx_, method, &cq_);
  }
  ~StepStream() {
    cq_.Shutdown();
    void* tag = nullptr;
    bool ok = false;
    while (cq_.Next(&tag, &ok)) {
    }
  }
  // The next tag to start an operation with.
  void* tag() { return reinterpret_cast<void*>(++started_); }
  // Waits for the operation started last; returns its ok.
  bool step() {
    void* tag = nullptr;
    bool ok = false;
    REQUIRE(cq_.Next(&tag, &ok));
    CHECK(reinterpret_cast<intptr_t>(tag) == started_);
    return ok;
  }

 private:
  grpc::GenericStub stub_;
  grpc::CompletionQueue cq_;
  grpc::ClientContext ctx_;
  intptr_t started_ = 0;

 public:
  // Declared last: it lives in the call's memory, which the context frees.
  std::unique_ptr<grpc::GenericClientAsyncReaderWriter> call;
};

TEST_CASE("a backend added by dropping a manifest is routed with the rules it ships") {
  Gateway g;
  RecordingBackend toy(g.dir / "toy.sock");
  auto reader = g.channel(g.pki.client({"os:reader"}, "dave"));
  const std::string echo = "/keel.toy.v1.ToyService/Echo";
  CHECK(rawCall(*reader, echo, "").error_code() == grpc::StatusCode::UNIMPLEMENTED);
  g.apid->addBackend("toy", toy.socket(), {"keel.toy.v1.ToyService"}, TOY_DESCRIPTOR_SET);
  REQUIRE(eventually([&] { return rawCall(*reader, echo, "").ok(); }, 10s));
  CHECK(toy.lastValues("keel-roles") == std::vector<std::string>{"os:reader"});
  const auto st = rawCall(*reader, "/keel.toy.v1.ToyService/Wipe", "");
  CHECK(st.error_code() == grpc::StatusCode::PERMISSION_DENIED);
  CHECK_THAT(st.error_message(), ContainsSubstring("os:admin"));
  // The machine API is still served by its own backend.
  CHECK(rawCall(*reader, kVersion, "").ok());

  SECTION("a bidirectional stream passes through both ways") {
    StepStream chat(reader, "/keel.toy.v1.ToyService/Chat");
    chat.call->StartCall(chat.tag());
    CHECK(chat.step());
    grpc::Slice slice(std::string("hello"));
    grpc::ByteBuffer msg(&slice, 1);
    chat.call->Write(msg, chat.tag());
    CHECK(chat.step());
    chat.call->WritesDone(chat.tag());
    CHECK(chat.step());
    grpc::ByteBuffer reply;
    chat.call->Read(&reply, chat.tag());
    CHECK(chat.step());
    grpc::Status status;
    chat.call->Finish(&status, chat.tag());
    CHECK(chat.step());
    CHECK(status.ok());
    CHECK(toy.calls().back().method == "/keel.toy.v1.ToyService/Chat");
  }
}

TEST_CASE("a backend that shuts down and starts again is reached by the first call after it is back") {
  Gateway g;
  auto admin = g.channel(g.pki.client({"os:admin"}));
  REQUIRE(rawCall(*admin, kVersion, "").ok());

  const auto socket = g.backend->socket();
  g.backend.reset();  // a graceful shutdown: GOAWAY, then the connection closes
  const auto down = rawCall(*admin, kVersion, "");
  CHECK(down.error_code() == grpc::StatusCode::UNAVAILABLE);
  CHECK_THAT(down.error_message(), ContainsSubstring("backend machined"));

  g.backend = std::make_unique<RecordingBackend>(socket);
  const auto up = rawCall(*admin, kVersion, "");
  INFO(up.error_message());
  CHECK(up.ok());
  CHECK(g.backend->calls().size() == 1);
}

TEST_CASE("a backend that drains its connection with GOAWAY while a stream stays open is reached on a new one") {
  Gateway g;
  RecordingBackend toy(g.dir / "toy.sock", 300ms);
  g.apid->addBackend("toy", toy.socket(), {"keel.toy.v1.ToyService"}, TOY_DESCRIPTOR_SET);
  auto reader = g.channel(g.pki.client({"os:reader"}));
  const std::string echo = "/keel.toy.v1.ToyService/Echo";
  grpc::Status first;
  const bool served = eventually([&] { return (first = rawCall(*reader, echo, "")).ok(); }, 10s);
  INFO(first.error_message());
  REQUIRE(served);

  // A stream that stays open keeps apid's connection to the backend open after GOAWAY.
  StepStream chat(reader, "/keel.toy.v1.ToyService/Chat");
  chat.call->StartCall(chat.tag());
  REQUIRE(chat.step());
  REQUIRE(eventually([&] { return !toy.calls().empty() && toy.calls().back().method.ends_with("/Chat"); }, 5s));

  // The backend sends GOAWAY once the connection is 300 ms old (with gRPC's jitter).
  // Calls go on the old connection until apid sees it; then at most one fails, and the
  // next reaches the backend on a new connection.
  REQUIRE(toy.connections() == 1);
  int failures = 0;
  grpc::Status last;
  REQUIRE(eventually(
      [&] {
        last = rawCall(*reader, echo, "");
        if (!last.ok()) {
          CHECK(last.error_code() == grpc::StatusCode::UNAVAILABLE);
          ++failures;
        }
        return toy.connections() >= 2 && last.ok();
      },
      10s));
  CHECK(failures <= 1);

  // The open stream still finishes on the old connection.
  chat.call->WritesDone(chat.tag());
  CHECK(chat.step());
  grpc::ByteBuffer reply;
  chat.call->Read(&reply, chat.tag());
  CHECK(chat.step());
  grpc::Status status;
  chat.call->Finish(&status, chat.tag());
  CHECK(chat.step());
  CHECK(status.ok());
}

TEST_CASE("a manifest whose socket belongs to another uid is not forwarded to") {
  Gateway g;
  RecordingBackend impostor(g.dir / "impostor.sock");
  nlohmann::json m = {{"name", "impostor"},
                      {"socket", impostor.socket().string()},
                      {"services", {"keel.toy.v1.ToyService"}},
                      {"allowedUids", {getuid() + 4242}},
                      {"rules", TOY_DESCRIPTOR_SET}};
  writeFile(g.apid->backendsDir() / "impostor.json", m.dump());
  auto admin = g.channel(g.pki.client({"os:admin"}));
  grpc::Status st;
  REQUIRE(eventually(
      [&] {
        st = rawCall(*admin, "/keel.toy.v1.ToyService/Echo", "");
        return st.error_code() != grpc::StatusCode::UNIMPLEMENTED;
      },
      10s));
  CHECK(st.error_code() == grpc::StatusCode::UNAVAILABLE);
  CHECK_THAT(st.error_message(), ContainsSubstring("owned by uid"));
  CHECK(impostor.calls().empty());
}

TEST_CASE("a socket file with an allowed owner, served by a process of another uid, is not forwarded to") {
  // The file's owner can be changed by root without the serving process changing: apid
  // asks the kernel who is at the other end of the connection.
  if (geteuid() != 0) SKIP("needs root to give the socket file another owner");
  Gateway g;
  RecordingBackend impostor(g.dir / "impostor.sock");
  const uid_t fileOwner = 4242;
  REQUIRE(::chown(impostor.socket().c_str(), fileOwner, static_cast<gid_t>(-1)) == 0);
  REQUIRE(::chmod(impostor.socket().c_str(), 0777) == 0);  // apid may connect, whatever uid it runs as
  nlohmann::json m = {{"name", "impostor"},
                      {"socket", impostor.socket().string()},
                      {"services", {"keel.toy.v1.ToyService"}},
                      {"allowedUids", {fileOwner}},
                      {"rules", TOY_DESCRIPTOR_SET}};
  writeFile(g.apid->backendsDir() / "impostor.json", m.dump());
  auto admin = g.channel(g.pki.client({"os:admin"}));
  grpc::Status st;
  REQUIRE(eventually(
      [&] {
        st = rawCall(*admin, "/keel.toy.v1.ToyService/Echo", "");
        return st.error_code() != grpc::StatusCode::UNIMPLEMENTED;
      },
      10s));
  CHECK(st.error_code() == grpc::StatusCode::UNAVAILABLE);
  CHECK_THAT(st.error_message(), ContainsSubstring("runs as uid 0"));
  CHECK(impostor.calls().empty());
}

// apid in front of a real machined node.
struct NodeWithApid {
  TestPki pki;
  Node node;
  std::unique_ptr<ApidProcess> apid;
  NodeWithApid(const std::string& address, int port, bool impersonator, const TestPki* shared = nullptr)
      : node(makeConfigFor(), {}, address) {
    ApidOptions o;
    o.address = address;
    o.port = port;
    o.impersonator = impersonator;
    apid = std::make_unique<ApidProcess>(shared != nullptr ? *shared : pki, o);
    apid->addBackend("machined", node.socket());
  }
  static nlohmann::json makeConfigFor() {
    TempDir d;
    return makeConfig(d);
  }
};

v1::VersionResponse version(grpc::Channel& ch, const Metadata& md, grpc::Status* status = nullptr) {
  std::string bytes;
  const auto st = rawCall(ch, kVersion, "", &bytes, md);
  if (status != nullptr) *status = st;
  v1::VersionResponse resp;
  if (st.ok()) REQUIRE(resp.ParseFromString(bytes));
  return resp;
}

TEST_CASE("apid serves the real machine API and recovers by itself when machined comes back") {
  TestPki pki;
  NodeWithApid n("127.0.1.1", freePort(), false, &pki);
  auto admin = mtlsChannel(n.apid->endpoint(), pki.caPem(), pki.client({"os:admin"}));
  REQUIRE(eventually([&] { return rawCall(*admin, kVersion, "").ok(); }, 10s));
  grpc::Status st;
  const auto v = version(*admin, {}, &st);
  REQUIRE(st.ok());
  REQUIRE(v.messages_size() == 1);
  CHECK(v.messages(0).metadata().node() == "127.0.1.1");

  // machined dies: calls fail at once with UNAVAILABLE, not at their deadline.
  n.node.process().signal(SIGKILL);
  REQUIRE(n.node.process().wait(10s));
  const auto t0 = std::chrono::steady_clock::now();
  st = rawCall(*admin, kVersion, "");
  CHECK(st.error_code() == grpc::StatusCode::UNAVAILABLE);
  CHECK(std::chrono::steady_clock::now() - t0 < kCallTimeout);
  CHECK(n.apid->process().running());

  // restart() returns once machined answers on its socket: the very next call through
  // apid reaches it, on a new connection.
  n.node.restart();
  st = rawCall(*admin, kVersion, "");
  CHECK(st.ok());
  CHECK(st.error_message() == "");
}

TEST_CASE("fan-out to three nodes: replies stamped per node, one node down or slow does not fail the others") {
  TestPki pki;
  const int port = freePort();
  NodeWithApid a("127.0.1.1", port, true, &pki);
  NodeWithApid b("127.0.1.2", port, true, &pki);
  auto c = std::make_unique<NodeWithApid>("127.0.1.3", port, true, &pki);
  auto admin = mtlsChannel(a.apid->endpoint(), pki.caPem(), pki.client({"os:admin"}, "eve"));
  REQUIRE(eventually([&] { return rawCall(*admin, kVersion, "").ok(); }, 10s));
  const Metadata all = {{"nodes", "127.0.1.1,127.0.1.2,127.0.1.3"}};

  grpc::Status st;
  v1::VersionResponse v;
  REQUIRE(eventually(
      [&] {
        v = version(*admin, all, &st);
        if (!st.ok() || v.messages_size() != 3) return false;
        for (const auto& m : v.messages()) {
          if (!m.metadata().error().empty()) return false;
        }
        return true;
      },
      15s));
  std::set<std::string> nodes;
  for (const auto& m : v.messages()) nodes.insert(m.metadata().node());
  CHECK(nodes == std::set<std::string>{"127.0.1.1", "127.0.1.2", "127.0.1.3"});

  // The forwarded calls carried the caller's identity, through the impersonator hop.
  CHECK(eventually([&] { return b.apid->auditLog().find("\"identity\":\"eve via apid@127.0.1.1\"") != std::string::npos; },
                   5s));

  SECTION("a streaming call interleaves every node's messages") {
    v1::EventsRequest req;
    req.set_tail_events(-1);
    auto stub = v1::MachineService::NewStub(admin);
    grpc::ClientContext ctx;
    ctx.AddMetadata("nodes", "127.0.1.1,127.0.1.2");
    ctx.set_deadline(std::chrono::system_clock::now() + kCallTimeout);
    auto reader = stub->Events(&ctx, req);
    std::set<std::string> seen;
    v1::Event e;
    while (reader->Read(&e)) {
      CHECK(e.metadata().error().empty());
      seen.insert(e.metadata().node());
    }
    CHECK(reader->Finish().ok());
    CHECK(seen == std::set<std::string>{"127.0.1.1", "127.0.1.2"});
  }

  SECTION("a stopped node becomes an entry with its error") {
    c->apid->stop();
    v = version(*admin, all, &st);
    REQUIRE(st.ok());
    REQUIRE(v.messages_size() == 3);
    for (const auto& m : v.messages()) {
      INFO(m.metadata().node() << ": " << m.metadata().error());
      if (m.metadata().node() == "127.0.1.3") {
        CHECK_FALSE(m.metadata().error().empty());
        CHECK(m.metadata().code() == static_cast<int>(grpc::StatusCode::UNAVAILABLE));
      } else {
        CHECK(m.metadata().error().empty());
        CHECK_FALSE(m.version().empty());
      }
    }
  }

  SECTION("a node that accepts connections but never answers only costs its own deadline") {
    // A listener that never completes a handshake, at a node address apid never dialled.
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    inet_pton(AF_INET, "127.0.1.4", &addr.sin_addr);
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    REQUIRE(::listen(fd, 16) == 0);
    v = version(*admin, {{"nodes", "127.0.1.1,127.0.1.2,127.0.1.4"}}, &st);
    ::close(fd);
    REQUIRE(st.ok());
    REQUIRE(v.messages_size() == 3);
    int ok = 0;
    for (const auto& m : v.messages()) {
      if (m.metadata().node() == "127.0.1.4") {
        CHECK(m.metadata().code() == static_cast<int>(grpc::StatusCode::DEADLINE_EXCEEDED));
      } else {
        ok += m.metadata().error().empty() ? 1 : 0;
      }
    }
    CHECK(ok == 2);
  }
}

TEST_CASE("certificates are hot-reloaded without dropping an open stream") {
  TestPki pki;
  NodeWithApid n("127.0.1.1", freePort(), false, &pki);
  auto admin = mtlsChannel(n.apid->endpoint(), pki.caPem(), pki.client({"os:admin"}));
  REQUIRE(eventually([&] { return rawCall(*admin, kVersion, "").ok(); }, 10s));

  // An open stream: events, followed.
  auto stub = v1::MachineService::NewStub(admin);
  grpc::ClientContext streamCtx;
  v1::EventsRequest req;
  req.set_tail_events(0);
  req.set_follow(true);
  auto events = stub->Events(&streamCtx, req);
  auto restartTicker = [&] {
    grpc::ClientContext ctx;
    Node::withRoles(ctx, "os:admin");
    v1::ServiceRequest r;
    r.set_id("ticker");
    v1::ServiceActionResponse resp;
    REQUIRE(n.node.stub()->ServiceRestart(&ctx, r, &resp).ok());
  };
  auto nextEventFor = [&](const std::string& subject) {
    v1::Event e;
    while (events->Read(&e)) {
      if (e.subject() == subject) return true;
    }
    return false;
  };
  restartTicker();
  REQUIRE(nextEventFor("ticker"));

  auto servedCert = [&](const Credential& client, const std::string& caPem) -> std::string {
    auto ch = mtlsChannel(n.apid->endpoint(), caPem, client);
    auto s = v1::MachineService::NewStub(ch);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 5s);
    v1::VersionResponse resp;
    if (!s->Version(&ctx, {}, &resp).ok()) return "";
    const auto pems = ctx.auth_context()->FindPropertyValues("x509_pem_cert");
    return pems.empty() ? "" : std::string(pems.front().data(), pems.front().size());
  };

  SECTION("a new serving certificate is used by new handshakes") {
    const auto fresh = pki.server("127.0.1.1");
    n.apid->writeCredential("server", fresh);
    const auto client = pki.client({"os:reader"});
    CHECK(eventually([&] { return servedCert(client, pki.caPem()) == fresh.cert; }, 10s));
  }
  SECTION("a new accepted CA set admits the new CA's clients and refuses the old one's") {
    TestPki next("keel-os-next");
    writeFile(n.apid->dir() / "ca.crt.tmp", next.caPem());
    std::filesystem::rename(n.apid->dir() / "ca.crt.tmp", n.apid->dir() / "ca.crt");
    const auto newClient = next.client({"os:reader"});
    const auto oldClient = pki.client({"os:reader"});
    CHECK(eventually([&] { return !servedCert(newClient, pki.caPem()).empty(); }, 10s));
    CHECK(servedCert(oldClient, pki.caPem()).empty());
  }
  // The stream opened before the change still delivers.
  restartTicker();
  CHECK(nextEventFor("ticker"));
  streamCtx.TryCancel();
  (void)events->Finish();
}

}  // namespace
}  // namespace keel::integration

namespace keel::integration {
namespace {

TEST_CASE("a client that cancels a followed stream ends the backend's stream too") {
  TestPki pki;
  NodeWithApid n("127.0.1.1", freePort(), false, &pki);
  auto admin = mtlsChannel(n.apid->endpoint(), pki.caPem(), pki.client({"os:admin"}, "frank"));
  REQUIRE(eventually([&] { return rawCall(*admin, kVersion, "").ok(); }, 10s));
  auto stub = v1::MachineService::NewStub(admin);
  grpc::ClientContext ctx;
  v1::LogsRequest req;
  req.set_service("ticker");
  req.set_follow(true);
  auto lines = stub->Logs(&ctx, req);
  v1::LogLine line;
  REQUIRE(lines->Read(&line));  // the stream is flowing through apid
  CHECK(line.metadata().node() == "127.0.1.1");
  ctx.TryCancel();
  while (lines->Read(&line)) {
  }
  CHECK(lines->Finish().error_code() == grpc::StatusCode::CANCELLED);
  // apid saw the end and closed the upstream stream: its audit line for the stream's end.
  CHECK(eventually(
      [&] {
        std::istringstream in(n.apid->auditLog());
        for (std::string l; std::getline(in, l);) {
          auto j = nlohmann::json::parse(l);
          if (j["identity"] == "frank" && j["event"] == "end" && j["method"] == "/keel.machine.v1.MachineService/Logs") {
            return true;
          }
        }
        return false;
      },
      10s));
}

TEST_CASE("a client's deadline travels with the call to the backend") {
  Gateway g;
  auto admin = g.channel(g.pki.client({"os:admin"}));
  const auto before = std::chrono::system_clock::now();
  REQUIRE(rawCall(*admin, kVersion, "").ok());  // rawCall sets a deadline of kCallTimeout
  REQUIRE(g.backend->calls().size() == 1);
  const auto seen = g.backend->calls().back().deadline;
  CHECK(seen > before);
  CHECK(seen <= before + kCallTimeout + 1s);
}

}  // namespace
}  // namespace keel::integration
