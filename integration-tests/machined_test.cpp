// machined as a real process: a node started with `machined --root DIR --config
// controlplane.json`, driven over its real Unix socket, including the refusals.
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <map>

#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>
#include <google/protobuf/descriptor.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <nlohmann/json.hpp>

#include "keel/machine/v1/machine.grpc.pb.h"
#include "keel/testing/testing.h"
#include "node_fixture.h"

namespace {

using namespace keel::integration;

uid_t ownerOf(const std::filesystem::path& path) {
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  return st.st_uid;
}

TEST_CASE("machined serves Version and Hostname to any role over its socket", "[machined]") {
  TempDir gen;
  Node node(makeConfig(gen));
  auto stub = node.stub();
  grpc::ClientContext ctx;
  Node::withRoles(ctx, "os:reader");
  Empty req;
  v1::VersionResponse version;
  REQUIRE(stub->Version(&ctx, req, &version).ok());
  REQUIRE(version.messages_size() == 1);
  CHECK(version.messages(0).metadata().node() == "127.0.1.1");
  CHECK_FALSE(version.messages(0).version().empty());
  CHECK_FALSE(version.messages(0).arch().empty());

  grpc::ClientContext ctx2;
  Node::withRoles(ctx2, "os:operator");
  v1::HostnameResponse host;
  REQUIRE(stub->Hostname(&ctx2, req, &host).ok());
  CHECK_FALSE(host.messages(0).hostname().empty());
}

TEST_CASE("every method of the machine API refuses a call without keel-roles or with the impersonator role",
          "[machined]") {
  TempDir gen;
  Node node(makeConfig(gen));
  auto channel = grpc::CreateChannel("unix:" + node.socket().string(), grpc::InsecureChannelCredentials());
  grpc::GenericStub generic(channel);
  const auto* service =
      google::protobuf::DescriptorPool::generated_pool()->FindServiceByName("keel.machine.v1.MachineService");
  REQUIRE(service != nullptr);
  REQUIRE(service->method_count() >= 28);
  for (int i = 0; i < service->method_count(); ++i) {
    const std::string method = "/" + service->full_name() + "/" + service->method(i)->name();
    for (const char* roles : {"", "os:impersonator"}) {
      INFO(method << " with roles '" << roles << "'");
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + 10s);
      if (*roles != '\0') Node::withRoles(ctx, roles);
      // One empty message, then the end of the stream: a valid request of every shape.
      grpc::CompletionQueue cq;
      grpc::ByteBuffer request(nullptr, 0);
      grpc::ByteBuffer reply;
      grpc::Status st;
      auto call = generic.PrepareUnaryCall(&ctx, method, request, &cq);
      call->StartCall();
      call->Finish(&reply, &st, reinterpret_cast<void*>(1));
      void* tag = nullptr;
      bool ok = false;
      REQUIRE(cq.Next(&tag, &ok));
      CHECK(st.error_code() == grpc::StatusCode::PERMISSION_DENIED);
      cq.Shutdown();
      while (cq.Next(&tag, &ok)) {
      }
    }
  }
  CHECK(node.process().running());
}

TEST_CASE("machined refuses calls without keel-roles, with a role too weak, or with roles twice", "[machined]") {
  TempDir gen;
  Node node(makeConfig(gen));
  auto stub = node.stub();
  Empty req;
  {
    grpc::ClientContext ctx;
    v1::VersionResponse resp;
    const auto st = stub->Version(&ctx, req, &resp);
    CHECK(st.error_code() == grpc::StatusCode::PERMISSION_DENIED);
    CHECK_THAT(st.error_message(), ContainsSubstring("no keel-roles"));
  }
  {
    grpc::ClientContext ctx;
    Node::withRoles(ctx, "os:reader");
    v1::ServiceRequest sreq;
    sreq.set_id("ticker");
    v1::ServiceActionResponse resp;
    const auto st = stub->ServiceStop(&ctx, sreq, &resp);
    CHECK(st.error_code() == grpc::StatusCode::PERMISSION_DENIED);
    CHECK_THAT(st.error_message(), ContainsSubstring("os:admin, os:operator"));
  }
  {
    grpc::ClientContext ctx;
    Node::withRoles(ctx, "os:reader");
    ctx.AddMetadata("keel-roles", "os:admin");
    v1::VersionResponse resp;
    CHECK(stub->Version(&ctx, req, &resp).error_code() == grpc::StatusCode::PERMISSION_DENIED);
  }
  {
    grpc::ClientContext ctx;
    Node::withRoles(ctx, "os:impersonator");
    v1::VersionResponse resp;
    CHECK(stub->Version(&ctx, req, &resp).error_code() == grpc::StatusCode::PERMISSION_DENIED);
  }
  CHECK(node.service("ticker").state() != "stopped");
}

TEST_CASE("machined refuses a peer whose uid is not allowed, before any handler runs", "[machined]") {
  if (geteuid() != 0) SKIP("needs root to connect as another uid");
  TempDir gen;
  Node node(makeConfig(gen));
  // The directories admit the owner (and group) only; open them up so the kernel lets
  // the foreign uid reach the socket and the credential check is what refuses it.
  for (auto p = node.root() / "run/keel"; p != node.root().parent_path().parent_path(); p = p.parent_path()) {
    chmod(p.c_str(), 0755);
  }
  chmod(node.socket().c_str(), 0666);
  const pid_t child = fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    if (setgid(65534) != 0 || setuid(65534) != 0) _exit(3);
    grpc::ClientContext ctx;
    Node::withRoles(ctx, "os:admin");
    ctx.set_deadline(std::chrono::system_clock::now() + 3s);
    Empty req;
    v1::VersionResponse resp;
    const auto st = node.stub()->Version(&ctx, req, &resp);
    _exit(st.ok() ? 0 : 1);
  }
  int status = 0;
  REQUIRE(waitpid(child, &status, 0) == child);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 1);
  CHECK(eventually([&] { return node.log().find("refused peer") != std::string::npos; }, 5s));
  CHECK_THAT(node.log(), ContainsSubstring("uid 65534 is not on the allow-list"));
}

TEST_CASE("built-in services start in order when installed, and only those allowed may call machined",
          "[machined]") {
  TempDir libexec;
  // The services may run as another uid (tests as root): let them reach their binaries.
  chmod(libexec.path().c_str(), 0755);
  // Stand-ins for trustd and apid: on first start each asks machined for its version with
  // keelctl exec'd in its own process (so the peer pid is the service's), then sleeps.
  for (const std::string name : {"trustd", "apid"}) {
    const auto script = libexec / name;
    writeFile(script, "#!/bin/sh\n"
                      "state=$(dirname \"$KEEL_SERVICE_CONFIG\")\n"
                      "sock=$(sed -n 's/.*\"machinedSocket\": \"\\(.*\\)\".*/\\1/p' \"$KEEL_SERVICE_CONFIG\")\n"
                      "if [ -e \"$state/called\" ]; then exec sleep 3600; fi\n"
                      "touch \"$state/called\"\n"
                      "exec " KEELCTL_PATH " --socket \"$sock\" version > \"$state/version.out\" 2>&1\n");
    chmod(script.c_str(), 0755);
  }
  TempDir gen;
  Node node(makeConfig(gen), {"--libexec", libexec.path().string(), "--no-allow-invoking-user"});
  REQUIRE(eventually([&] { return fileContains(node.root() / "var/lib/keel/apid/version.out", "VERSION"); }, 30s));
  REQUIRE(eventually([&] { return fileContains(node.root() / "var/lib/keel/trustd/version.out", "keelctl:"); }, 30s));
  // apid's pid is let in; trustd's is refused before any handler runs.
  CHECK_THAT(readFile(node.root() / "var/lib/keel/apid/version.out"), ContainsSubstring("127.0.1.1"));
  CHECK_THAT(readFile(node.root() / "var/lib/keel/trustd/version.out"), ContainsSubstring("UNAVAILABLE"));
  // Each service got its own config file, readable by its owner only.
  struct stat st {};
  REQUIRE(stat((node.root() / "var/lib/keel/apid/config.json").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  // apid's config tells it to get its certificates from this control plane's trustd;
  // machined mints nothing and hands apid only the OS CA it accepts clients from.
  const std::filesystem::path apidState = node.root() / "var/lib/keel/apid";
  const auto apidConfig = nlohmann::json::parse(readFile(apidState / "config.json"));
  CHECK(apidConfig["listen"] == "127.0.1.1:50000");
  CHECK(apidConfig["backendsDir"] == (node.root() / "run/keel/backends.d").string());
  CHECK(apidConfig["tls"]["cert"] == (apidState / "server.crt").string());
  CHECK(apidConfig["tls"]["ca"] == (apidState / "ca.crt").string());
  CHECK(apidConfig["impersonator"]["key"] == (apidState / "impersonator.key").string());
  CHECK(apidConfig["identity"]["trustdSocket"] == (node.root() / "run/keel-trustd/trustd.sock").string());
  CHECK(apidConfig["join"]["listen"] == "127.0.1.1:50001");
  REQUIRE(stat((apidState / "ca.crt").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  CHECK_FALSE(std::filesystem::exists(apidState / "server.key"));
  // trustd's config holds the CA key: its own file, 0600, with apid's uid allowed.
  const auto trustdConfig = nlohmann::json::parse(readFile(node.root() / "var/lib/keel/trustd/config.json"));
  CHECK(trustdConfig["ca"]["key"].get<std::string>().find("PRIVATE KEY") != std::string::npos);
  CHECK(trustdConfig["socket"] == (node.root() / "run/keel-trustd/trustd.sock").string());
  REQUIRE(stat((node.root() / "var/lib/keel/trustd/config.json").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  // machined announced its own backend to apid.
  const std::filesystem::path manifestPath = node.root() / "run/keel/backends.d/machined.json";
  REQUIRE(stat(manifestPath.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0640);
  const auto manifest = nlohmann::json::parse(readFile(manifestPath));
  CHECK(manifest["name"] == "machined");
  CHECK(manifest["socket"] == std::filesystem::absolute(node.root() / "run/keel/machined.sock").lexically_normal().string());
  CHECK(manifest["services"] == nlohmann::json::array({"keel.machine.v1.MachineService"}));
  CHECK(manifest["allowedUids"] == nlohmann::json::array({geteuid()}));
  CHECK(manifest["rules"] == "builtin");
  // trustd was started before apid, which depends on it on a control plane.
  const auto log = node.log();
  const auto trustdUp = log.find("service trustd running");
  const auto apidStarting = log.find("service apid starting");
  REQUIRE(trustdUp != std::string::npos);
  REQUIRE(apidStarting != std::string::npos);
  CHECK(trustdUp < apidStarting);
  // The test itself is not on the allow-list in this mode.
  grpc::ClientContext ctx;
  Node::withRoles(ctx, "os:admin");
  ctx.set_deadline(std::chrono::system_clock::now() + 3s);
  Empty req;
  v1::VersionResponse resp;
  CHECK(node.stub()->Version(&ctx, req, &resp).error_code() == grpc::StatusCode::UNAVAILABLE);
}

std::string procStatus(int pid) { return readFile("/proc/" + std::to_string(pid) + "/status"); }

std::string statusField(const std::string& status, const std::string& key) {
  const auto pos = status.find(key + ":");
  if (pos == std::string::npos) return "";
  const auto end = status.find('\n', pos);
  std::string v = status.substr(pos + key.size() + 1, end - pos - key.size() - 1);
  v.erase(0, v.find_first_not_of(" \t"));
  return v;
}

TEST_CASE("every service machined starts is confined: own uid, no capabilities, no_new_privs, seccomp",
          "[machined][sandbox]") {
  TempDir gen;
  auto config = makeConfig(gen);
  config["machine"]["extensions"].push_back(
      {{"name", "tracer"}, {"command", "/usr/bin/strace"}, {"args", {"-o", "/dev/null", "/bin/true"}}});
  Node node(config);
  REQUIRE(node.waitForState("sleeper", "running"));
  const auto status = procStatus(node.service("sleeper").pid());
  CHECK(statusField(status, "NoNewPrivs") == "1");
  CHECK(statusField(status, "Seccomp") == "2");
  CHECK(statusField(status, "CapEff") == "0000000000000000");
  CHECK(statusField(status, "CapPrm") == "0000000000000000");
  if (geteuid() == 0) {
    // An account of its own: keel-sleeper when the host has one, else one machined gives.
    const std::string uid = statusField(status, "Uid");
    CHECK(uid.rfind("0\t", 0) != 0);
    CHECK(uid.rfind("65534", 0) != 0);
    CHECK(uid.rfind(std::to_string(ownerOf(node.root() / "var/lib/keel/sleeper")) + "\t", 0) == 0);
    CHECK(statusField(status, "CapBnd") == "0000000000000000");
  }
  // strace needs ptrace, which no service may use: the kernel kills it with SIGSYS, and
  // machined says so.
  REQUIRE(eventually([&] {
    const auto tracer = node.service("tracer");
    for (const auto& e : tracer.events()) {
      if (e.message().find("SIGSYS") != std::string::npos) return true;
    }
    return false;
  }, 20s));
  REQUIRE(eventually([&] { return node.log().find("was killed by its sandbox") != std::string::npos; }, 10s));
  const auto log = node.log();
  CHECK((log.find("ptrace") != std::string::npos || log.find("a system call its sandbox forbids") != std::string::npos));
}

TEST_CASE("machined's API threads run under its seccomp profile with only the capabilities they need",
          "[machined][sandbox]") {
  TempDir gen;
  Node node(makeConfig(gen));
  const auto status = procStatus(node.process().pid());
  CHECK(statusField(status, "NoNewPrivs") == "1");
  CHECK(statusField(status, "Seccomp") == "2");
  if (geteuid() == 0) {
    // CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER, CAP_KILL, CAP_SYSLOG.
    CHECK(statusField(status, "CapEff") == "000000040000002f");
    CHECK(statusField(status, "CapBnd") == "000000040000002f");
  } else {
    CHECK(statusField(status, "CapEff") == "0000000000000000");
  }
}

TEST_CASE("every thread of machined runs under its seccomp filter", "[machined][sandbox]") {
  TempDir gen;
  Node node(makeConfig(gen));
  REQUIRE(node.waitForState("sleeper", "running"));
  const std::filesystem::path tasks = "/proc/" + std::to_string(node.process().pid()) + "/task";
  int threads = 0;
  for (const auto& task : std::filesystem::directory_iterator(tasks)) {
    const auto status = readFile(task.path() / "status");
    INFO(task.path().string() << " (" << statusField(status, "Name") << ")");
    CHECK(statusField(status, "Seccomp") == "2");
    ++threads;
  }
  // The supervisor, the API and the signal thread at least.
  CHECK(threads > 2);
}

TEST_CASE("a service's parent is machined, which reaps it", "[machined]") {
  TempDir gen;
  Node node(makeConfig(gen));
  REQUIRE(node.waitForState("sleeper", "running"));
  const auto status = procStatus(node.service("sleeper").pid());
  CHECK(statusField(status, "PPid") == std::to_string(node.process().pid()));
}

TEST_CASE("a forbidden system call kills machined: no network socket, no ptrace, no mount", "[machined][sandbox]") {
  for (const std::string call : {"socket-inet", "socket-inet6", "ptrace", "mount"}) {
    INFO(call);
    TempDir gen;
    auto config = makeConfig(gen);
    // No services: machined dies here without stopping them.
    config["machine"].erase("extensions");
    TempDir dir;
    writeFile(dir / "config.json", config.dump());
    chmod((dir / "config.json").c_str(), 0600);
    ChildProcess machined({MACHINED_PATH, "--root", (dir / "root").string(), "--config", (dir / "config.json").string(),
                           "--address", "127.0.1.1", "--service-stop-grace-ms", "1000"},
                          dir / "machined.log", {{"KEEL_TEST_FORBIDDEN_SYSCALL", call}});
    const auto status = machined.wait(30s);
    REQUIRE(status.has_value());
    CHECK(WIFSIGNALED(*status));
    CHECK(WTERMSIG(*status) == SIGSYS);
    CHECK_THAT(machined.log(), ContainsSubstring("attempting forbidden call " + call));
    CHECK(machined.log().find("was not stopped") == std::string::npos);
  }
}

TEST_CASE("services do not outlive a machined that was killed", "[machined]") {
  TempDir gen;
  Node node(makeConfig(gen));
  REQUIRE(node.waitForState("sleeper", "running"));
  const int ticker = node.service("ticker").pid();
  const int sleeper = node.service("sleeper").pid();
  node.process().signal(SIGKILL);
  REQUIRE(node.process().wait(10s).has_value());
  CHECK(eventually([&] { return kill(ticker, 0) != 0 && kill(sleeper, 0) != 0; }, 10s));
}

TEST_CASE("machined supervises the declared services and restarts a killed one", "[machined]") {
  TempDir gen;
  Node node(makeConfig(gen));
  REQUIRE(node.waitForState("ticker", "running"));
  REQUIRE(node.waitForState("sleeper", "running"));
  const int oldPid = node.service("ticker").pid();
  REQUIRE(oldPid > 0);
  REQUIRE(kill(oldPid, SIGKILL) == 0);
  REQUIRE(eventually([&] {
    const auto s = node.service("ticker");
    return s.state() == "running" && s.pid() != oldPid && s.pid() > 0;
  }, 20s));
  const auto s = node.service("ticker");
  CHECK(s.restarts() >= 1);
  bool sawKill = false;
  for (const auto& e : s.events()) sawKill |= e.message().find("SIGKILL") != std::string::npos;
  CHECK(sawKill);
}

TEST_CASE("operators stop, start and restart a service; unknown services are NOT_FOUND", "[machined]") {
  TempDir gen;
  Node node(makeConfig(gen));
  REQUIRE(node.waitForState("sleeper", "running"));
  auto stub = node.stub();
  auto act = [&](const char* what, const std::string& id) {
    grpc::ClientContext ctx;
    Node::withRoles(ctx, "os:operator");
    v1::ServiceRequest req;
    req.set_id(id);
    v1::ServiceActionResponse resp;
    const std::string w = what;
    if (w == "stop") return stub->ServiceStop(&ctx, req, &resp);
    if (w == "start") return stub->ServiceStart(&ctx, req, &resp);
    return stub->ServiceRestart(&ctx, req, &resp);
  };
  REQUIRE(act("stop", "sleeper").ok());
  REQUIRE(node.waitForState("sleeper", "stopped"));
  REQUIRE(act("start", "sleeper").ok());
  REQUIRE(node.waitForState("sleeper", "running"));
  const int pid = node.service("sleeper").pid();
  REQUIRE(act("restart", "sleeper").ok());
  REQUIRE(eventually([&] { return node.service("sleeper").pid() != pid && node.service("sleeper").state() == "running"; }, 20s));
  CHECK(act("stop", "nope").error_code() == grpc::StatusCode::NOT_FOUND);
  // The ticker has a running dependent: stopping it is refused, not done behind its back.
  CHECK(act("stop", "ticker").error_code() == grpc::StatusCode::FAILED_PRECONDITION);
}

TEST_CASE("logs are tailed and followed; machined's own log is one of them", "[machined]") {
  TempDir gen;
  Node node(makeConfig(gen));
  auto stub = node.stub();
  {
    grpc::ClientContext ctx;
    Node::withRoles(ctx, "os:reader");
    v1::LogsRequest req;
    req.set_service("machined");
    auto reader = stub->Logs(&ctx, req);
    v1::LogLine line;
    std::string all;
    while (reader->Read(&line)) all += line.line() + "\n";
    REQUIRE(reader->Finish().ok());
    CHECK_THAT(all, ContainsSubstring("is up"));
  }
  {
    grpc::ClientContext ctx;
    Node::withRoles(ctx, "os:reader");
    v1::LogsRequest req;
    req.set_service("ticker");
    req.set_tail_lines(2);
    req.set_follow(true);
    auto reader = stub->Logs(&ctx, req);
    v1::LogLine line;
    int ticks = 0;
    while (ticks < 5 && reader->Read(&line)) ticks += line.line() == "tick" ? 1 : 0;
    CHECK(ticks == 5);
    ctx.TryCancel();
    while (reader->Read(&line)) {
    }
    CHECK(reader->Finish().error_code() == grpc::StatusCode::CANCELLED);
  }
  {
    grpc::ClientContext ctx;
    Node::withRoles(ctx, "os:reader");
    v1::LogsRequest req;
    req.set_service("nope");
    auto reader = stub->Logs(&ctx, req);
    v1::LogLine line;
    while (reader->Read(&line)) {
    }
    CHECK(reader->Finish().error_code() == grpc::StatusCode::NOT_FOUND);
  }
}

TEST_CASE("dmesg tails the kernel log, and events show the services starting", "[machined]") {
  TempDir gen;
  Node node(makeConfig(gen));
  REQUIRE(node.waitForState("sleeper", "running"));
  auto stub = node.stub();
  {
    grpc::ClientContext ctx;
    Node::withRoles(ctx, "os:reader");
    v1::DmesgRequest req;
    req.set_tail_lines(1);
    auto reader = stub->Dmesg(&ctx, req);
    v1::LogLine line;
    std::vector<std::string> lines;
    while (reader->Read(&line)) lines.push_back(line.line());
    REQUIRE(reader->Finish().ok());
    CHECK(lines == std::vector<std::string>{"[    2.000000] second record"});
  }
  {
    grpc::ClientContext ctx;
    Node::withRoles(ctx, "os:reader");
    v1::EventsRequest req;
    req.set_tail_events(-1);
    auto reader = stub->Events(&ctx, req);
    v1::Event e;
    bool tickerRunning = false;
    bool configLoaded = false;
    while (reader->Read(&e)) {
      tickerRunning |= e.kind() == "service" && e.subject() == "ticker" && e.state() == "running";
      configLoaded |= e.kind() == "config" && e.state() == "loaded";
    }
    REQUIRE(reader->Finish().ok());
    CHECK(tickerRunning);
    CHECK(configLoaded);
  }
}

// /bin/sh running a backend's script, which execs /bin/sleep, and the dynamic loader
// before both; `mayNap` false leaves out the call sleep makes to wait.
std::string napperProfile(bool mayNap) {
  std::string p = "execve\naccess\narch_prctl\nbrk\nclose\ndup2\nexit\nexit_group\nfcntl\nfstat\nfutex\ngetcwd\n"
                  "getegid\ngeteuid\ngetgid\ngetpid\ngetppid\ngetrandom\ngetuid\nioctl\nlseek\nmmap\nmprotect\n"
                  "munmap\nnewfstatat\nopenat\npread64\nprlimit64\nread\nrestart_syscall\nrseq\nrt_sigaction\n"
                  "rt_sigprocmask\nrt_sigreturn\nset_robust_list\nset_tid_address\nuname\nwrite\n";
  if (mayNap) p += "clock_nanosleep\nnanosleep\n";
  return p;
}

nlohmann::json backendManifest(const std::string& name, const std::string& service, const std::string& descriptors) {
  return {{"name", name},
          {"version", "1.2.3"},
          {"binary", "napper"},
          {"args", {"--flag"}},
          {"services", {service}},
          {"descriptorSet", descriptors},
          {"sandbox", "napper.policy"},
          {"nodeTypes", {"controlplane", "worker"}}};
}

std::vector<v1::Event> backendEvents(Node& node) {
  grpc::ClientContext ctx;
  Node::withRoles(ctx, "os:reader");
  v1::EventsRequest req;
  req.set_tail_events(-1);
  auto reader = node.stub()->Events(&ctx, req);
  std::vector<v1::Event> out;
  v1::Event e;
  while (reader->Read(&e)) {
    if (e.kind() == "backend") out.push_back(e);
  }
  REQUIRE(reader->Finish().ok());
  return out;
}

// The uid an account of the packaging runs as when machined runs as root, else nobody.
uid_t accountUid(const char* user) {
  if (geteuid() != 0) return geteuid();
  const passwd* pw = getpwnam(user);
  return pw != nullptr ? pw->pw_uid : 65534;
}

TEST_CASE("machined runs the backends its config lists as their manifests say, and refuses bad ones alone",
          "[machined][backend]") {
  TempDir dir;
  // Services may run as another uid (tests as root): let them reach their files.
  chmod(dir.path().c_str(), 0755);
  // The backend records its arguments, then sleeps.
  writeFile(dir / "napper", "#!/bin/sh\nprintf '%s\\n' \"$@\" > \"${KEEL_SERVICE_CONFIG%/*}/argv\"\n"
                            "exec /bin/sleep 1000\n");
  chmod((dir / "napper").c_str(), 0755);
  std::filesystem::copy_file(TOY_DESCRIPTOR_SET, dir / "toy.pb");
  writeFile(dir / "napper.policy", napperProfile(true));
  writeFile(dir / "narrow.policy", napperProfile(false));
  auto echo = backendManifest("echo", "keel.toy.v1.ToyService", "toy.pb");
  echo["socket"] = "echo-api.sock";
  echo["allowedPeerUids"] = {4242};
  writeFile(dir / "echo.json", echo.dump(2));
  // Claims the service echo serves.
  writeFile(dir / "dup.json", backendManifest("dup", "keel.toy.v1.ToyService", "toy.pb").dump(2));
  // Lists a service with a method that has no rule.
  writeFile(dir / "norule.json",
            backendManifest("norule", "keel.toyrules.v1.HalfRuledService", RULES_DESCRIPTOR_SET).dump(2));
  auto workerOnly = backendManifest("workeronly", "keel.toyrules.v1.RuledService", RULES_DESCRIPTOR_SET);
  workerOnly["nodeTypes"] = {"worker"};
  writeFile(dir / "workeronly.json", workerOnly.dump(2));
  // Runs under a profile without the call sleep waits with.
  auto narrow = backendManifest("narrow", "keel.toyrules.v1.RuledService", RULES_DESCRIPTOR_SET);
  narrow["sandbox"] = "narrow.policy";
  writeFile(dir / "narrow.json", narrow.dump(2));

  TempDir gen;
  auto config = makeConfig(gen);
  config["machine"]["backends"] = {"echo", "dup", "norule", "workeronly", "narrow", "absent"};
  Node node(config, {"--libexec", dir.path().string(), "--backends-dir", dir.path().string()});
  REQUIRE(node.waitForState("echo", "running"));
  const auto info = node.service("echo");
  CHECK(info.version() == "1.2.3");
  CHECK(node.service("sleeper").version().empty());

  // Its argv, and its own config file: its version, its socket, and who may connect.
  const auto state = node.root() / "var/lib/keel/echo";
  REQUIRE(eventually([&] { return fileContains(state / "argv", "--flag"); }, 10s));
  CHECK(readFile(state / "argv") == "--config\n" + (state / "config.json").string() + "\n--flag\n");
  const auto own = nlohmann::json::parse(readFile(state / "config.json"));
  CHECK(own["name"] == "echo");
  CHECK(own["version"] == "1.2.3");
  CHECK(own["socket"] == (node.root() / "run/keel-echo/echo-api.sock").string());
  CHECK(own["allowedPeerUids"] == nlohmann::json::array({accountUid("keel-apid"), 4242}));

  // apid routes the backend's service to its socket, under the rules of its descriptor set.
  const auto routes = node.root() / "run/keel/backends.d";
  const auto route = nlohmann::json::parse(readFile(routes / "echo.json"));
  CHECK(route["name"] == "echo");
  CHECK(route["socket"] ==
        std::filesystem::absolute(node.root() / "run/keel-echo/echo-api.sock").lexically_normal().string());
  CHECK(route["services"] == nlohmann::json::array({"keel.toy.v1.ToyService"}));
  CHECK(route["rules"] == (dir / "toy.pb").string());
  // It runs under an account of its own, and apid accepts its socket from that uid only.
  const uid_t echoUid = ownerOf(state);
  CHECK(route["allowedUids"] == nlohmann::json::array({echoUid}));
  if (geteuid() == 0) {
    REQUIRE(node.waitForState("sleeper", "running"));
    const uid_t sleeperUid = ownerOf(node.root() / "var/lib/keel/sleeper");
    CHECK(echoUid != 65534);
    CHECK(echoUid != sleeperUid);
    CHECK(echoUid != accountUid("keel-apid"));
    // Another service's account, tried as an attacker would: it can neither replace the
    // backend's socket, nor read its state, nor signal it.
    const auto socket = node.root() / "run/keel-echo/echo-api.sock";
    const pid_t echoPid = static_cast<pid_t>(node.service("echo").pid());
    const pid_t child = fork();
    REQUIRE(child >= 0);
    if (child == 0) {
      if (setresgid(sleeperUid, sleeperUid, sleeperUid) != 0 || setresuid(sleeperUid, sleeperUid, sleeperUid) != 0) {
        _exit(10);
      }
      int failures = 0;
      // Its socket's place: nothing can be put there or taken away.
      if (open(socket.c_str(), O_WRONLY | O_CREAT, 0600) >= 0 || errno != EACCES) failures |= 1;
      if (unlink((state / "config.json").c_str()) == 0 || errno != EACCES) failures |= 16;
      if (open((state / "config.json").c_str(), O_RDONLY) >= 0 || errno != EACCES) failures |= 2;
      if (open((state / "planted").c_str(), O_WRONLY | O_CREAT, 0600) >= 0 || errno != EACCES) failures |= 4;
      if (kill(echoPid, SIGTERM) == 0 || errno != EPERM) failures |= 8;
      _exit(failures);
    }
    int status = 0;
    REQUIRE(waitpid(child, &status, 0) == child);
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
    CHECK_FALSE(std::filesystem::exists(socket));
    CHECK(std::filesystem::exists(state / "config.json"));
    CHECK(node.service("echo").pid() == echoPid);
  }
  // apid's manifest parser refuses keys it does not know: the version stays out.
  CHECK_FALSE(route.contains("version"));
  for (const char* refused : {"dup", "norule", "workeronly", "absent"}) {
    INFO(refused);
    CHECK_FALSE(std::filesystem::exists(routes / (std::string(refused) + ".json")));
  }

  // Each refusal is an event and an error line naming the manifest and the reason; the
  // backend of another node type is skipped.
  std::map<std::string, v1::Event> events;
  for (const auto& e : backendEvents(node)) events[e.subject()] = e;
  REQUIRE(events.count("dup") == 1);
  CHECK(events["dup"].state() == "refused");
  CHECK(events["dup"].message() ==
        (dir / "dup.json").string() + ": service keel.toy.v1.ToyService is already served by backend echo");
  REQUIRE(events.count("norule") == 1);
  CHECK(events["norule"].state() == "refused");
  CHECK_THAT(events["norule"].message(),
             ContainsSubstring("method /keel.toyrules.v1.HalfRuledService/Leak has no keel.common.v1.allowed_roles "
                               "rule"));
  CHECK_THAT(events["norule"].message(), ContainsSubstring((dir / "norule.json").string()));
  REQUIRE(events.count("absent") == 1);
  CHECK(events["absent"].state() == "refused");
  CHECK(events["absent"].message() == (dir / "absent.json").string() + ": no such manifest");
  REQUIRE(events.count("workeronly") == 1);
  CHECK(events["workeronly"].state() == "skipped");
  CHECK_THAT(events["workeronly"].message(), ContainsSubstring("nodeTypes does not list controlplane"));
  CHECK(events.count("echo") == 0);
  const auto log = node.log();
  CHECK_THAT(log, ContainsSubstring("backend dup refused: " + (dir / "dup.json").string()));
  CHECK_THAT(log, ContainsSubstring("backend norule refused: " + (dir / "norule.json").string()));
  CHECK_THAT(log, ContainsSubstring("backend workeronly skipped"));

  // narrow runs under its own profile, which kills sleep's wait: the extension profile
  // would have let it sleep.
  REQUIRE(eventually([&] {
    const auto narrowInfo = node.service("narrow");
    for (const auto& e : narrowInfo.events()) {
      if (e.message().find("SIGSYS") != std::string::npos) return true;
    }
    return false;
  }, 20s));
  CHECK(std::filesystem::exists(routes / "narrow.json"));
  // None of it touched echo.
  CHECK(node.service("echo").state() == "running");
  CHECK(node.service("echo").pid() == info.pid());

  // A route machined did not write in this run (a backend no longer configured) is gone
  // after the next start.
  node.process().signal(SIGTERM);
  REQUIRE(node.process().wait(20s).has_value());
  writeFile(routes / "gone.json", R"({"name": "gone"})");
  node.restart();
  REQUIRE(node.waitForState("echo", "running"));
  CHECK_FALSE(std::filesystem::exists(routes / "gone.json"));
  CHECK(std::filesystem::exists(routes / "echo.json"));
  CHECK(std::filesystem::exists(routes / "machined.json"));
}

TEST_CASE("system facts come from /proc", "[machined]") {
  TempDir gen;
  Node node(makeConfig(gen));
  auto stub = node.stub();
  Empty req;
  auto ctx = [] {
    auto c = std::make_unique<grpc::ClientContext>();
    Node::withRoles(*c, "os:reader");
    return c;
  };
  v1::MemoryResponse mem;
  REQUIRE(stub->Memory(ctx().get(), req, &mem).ok());
  CHECK(mem.messages(0).meminfo().total_kb() > 0);
  v1::LoadAvgResponse load;
  REQUIRE(stub->LoadAvg(ctx().get(), req, &load).ok());
  v1::CPUInfoResponse cpu;
  REQUIRE(stub->CPUInfo(ctx().get(), req, &cpu).ok());
  CHECK(cpu.messages(0).cpus_size() > 0);
  v1::ProcessesResponse procs;
  REQUIRE(stub->Processes(ctx().get(), req, &procs).ok());
  bool sawMachined = false;
  for (const auto& p : procs.messages(0).processes()) sawMachined |= p.pid() == node.process().pid();
  CHECK(sawMachined);
  v1::MountsResponse mounts;
  REQUIRE(stub->Mounts(ctx().get(), req, &mounts).ok());
  CHECK(mounts.messages(0).mounts_size() > 0);
  v1::NetworkDeviceStatsResponse net;
  REQUIRE(stub->NetworkDeviceStats(ctx().get(), req, &net).ok());
  bool sawLo = false;
  for (const auto& d : net.messages(0).devices()) sawLo |= d.name() == "lo";
  CHECK(sawLo);
  v1::SystemStatResponse stat;
  REQUIRE(stub->SystemStat(ctx().get(), req, &stat).ok());
  CHECK(stat.messages(0).boot_time() > 0);
  v1::UptimeResponse up;
  REQUIRE(stub->Uptime(ctx().get(), req, &up).ok());
  CHECK(up.messages(0).uptime_seconds() > 0);

  auto opCtx = std::make_unique<grpc::ClientContext>();
  Node::withRoles(*opCtx, "os:operator");
  writeFile(node.root() / "srv/data/blob", std::string(10000, 'x'));
  v1::DiskUsageRequest du;
  du.set_path("/srv/data");
  v1::DiskUsageResponse usage;
  REQUIRE(stub->DiskUsage(opCtx.get(), du, &usage).ok());
  REQUIRE(usage.messages(0).entries_size() >= 1);
  CHECK(usage.messages(0).entries(0).path() == "/srv/data");
  CHECK(usage.messages(0).entries(0).size_bytes() >= 10000);

  auto escape = std::make_unique<grpc::ClientContext>();
  Node::withRoles(*escape, "os:operator");
  du.set_path("/etc");
  CHECK(stub->DiskUsage(escape.get(), du, &usage).error_code() == grpc::StatusCode::PERMISSION_DENIED);
}

std::pair<grpc::Status, std::string> readFileRpc(v1::MachineService::Stub& stub, const std::string& path,
                                                 const std::string& roles = "os:admin") {
  grpc::ClientContext ctx;
  Node::withRoles(ctx, roles);
  v1::ReadRequest req;
  req.set_path(path);
  auto reader = stub.Read(&ctx, req);
  v1::DataChunk chunk;
  std::string data;
  while (reader->Read(&chunk)) data += chunk.bytes();
  return {reader->Finish(), data};
}

TEST_CASE("files are listed and read inside the allowed roots only", "[machined]") {
  TempDir gen;
  Node node(makeConfig(gen));
  auto stub = node.stub();
  std::string big(300000, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 7);
  writeFile(node.root() / "srv/data/big.bin", big);
  writeFile(node.root() / "etc/secret.txt", "do not read");
  std::filesystem::create_symlink(node.root() / "etc/secret.txt", node.root() / "srv/data/link");
  std::filesystem::create_symlink(node.root() / "etc", node.root() / "srv/data/etcdir");

  auto [ok, data] = readFileRpc(*stub, "/srv/data/big.bin");
  REQUIRE(ok.ok());
  CHECK(data == big);

  for (const char* path : {"/srv/data/../../etc/secret.txt", "/etc/keel/config.json", "/srv/data/link",
                                  "/srv/data/etcdir/secret.txt", "srv/data/big.bin", "/srv/data-evil/x"}) {
    INFO(path);
    auto [st, leaked] = readFileRpc(*stub, path);
    CHECK_FALSE(st.ok());
    CHECK(leaked.empty());
    CHECK((st.error_code() == grpc::StatusCode::PERMISSION_DENIED ||
           st.error_code() == grpc::StatusCode::INVALID_ARGUMENT));
    CHECK(st.error_message().find(node.root().string()) == std::string::npos);
  }
  CHECK(readFileRpc(*stub, "/srv/data/big.bin", "os:operator").first.error_code() ==
        grpc::StatusCode::PERMISSION_DENIED);

  grpc::ClientContext ctx;
  Node::withRoles(ctx, "os:operator");
  v1::ListRequest list;
  list.set_root("/srv/data");
  list.set_recursion_depth(-1);
  auto reader = stub->List(&ctx, list);
  v1::FileInfo info;
  std::map<std::string, v1::FileInfo> seen;
  while (reader->Read(&info)) seen[info.name()] = info;
  REQUIRE(reader->Finish().ok());
  CHECK(seen.count("/srv/data/big.bin") == 1);
  REQUIRE(seen.count("/srv/data/link") == 1);
  CHECK_FALSE(seen["/srv/data/link"].link().empty());
  CHECK(seen.count("/srv/data/etcdir/secret.txt") == 0);

  grpc::ClientContext ctx2;
  Node::withRoles(ctx2, "os:admin");
  list.set_root("/etc");
  auto outside = stub->List(&ctx2, list);
  while (outside->Read(&info)) {
  }
  CHECK(outside->Finish().error_code() == grpc::StatusCode::PERMISSION_DENIED);
}

v1::ApplyConfigurationResponse applyConfig(v1::MachineService::Stub& stub, const nlohmann::json& config,
                                           v1::ApplyConfigurationRequest::Mode mode, grpc::Status& status,
                                           int tryTimeout = 0) {
  grpc::ClientContext ctx;
  Node::withRoles(ctx, "os:admin");
  v1::ApplyConfigurationRequest req;
  req.set_data(config.dump());
  req.set_mode(mode);
  req.set_try_timeout_seconds(tryTimeout);
  v1::ApplyConfigurationResponse resp;
  status = stub.ApplyConfiguration(&ctx, req, &resp);
  return resp;
}

nlohmann::json getConfig(v1::MachineService::Stub& stub) {
  grpc::ClientContext ctx;
  Node::withRoles(ctx, "os:reader");
  Empty req;
  v1::GetConfigurationResponse resp;
  REQUIRE(stub.GetConfiguration(&ctx, req, &resp).ok());
  return nlohmann::json::parse(resp.messages(0).data());
}

TEST_CASE("the configuration is served with secrets redacted and an invalid one is refused by field",
          "[machined]") {
  TempDir gen;
  const auto config = makeConfig(gen);
  Node node(config);
  auto stub = node.stub();
  const auto served = getConfig(*stub).dump();
  CHECK(served.find("PRIVATE KEY") == std::string::npos);
  CHECK(served.find(config["machine"]["token"].get<std::string>()) == std::string::npos);

  auto bad = config;
  bad["machine"]["type"] = "toaster";
  grpc::Status st;
  applyConfig(*stub, bad, v1::ApplyConfigurationRequest::AUTO, st);
  CHECK(st.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK_THAT(st.error_message(), ContainsSubstring("machine.type"));
  auto typo = config;
  typo["machine"]["hostnme"] = "x";
  applyConfig(*stub, typo, v1::ApplyConfigurationRequest::AUTO, st);
  CHECK(st.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK(nlohmann::json::parse(readFile(node.root() / "etc/keel/config.json")) == config);

  grpc::ClientContext ctx;
  Node::withRoles(ctx, "os:operator");
  v1::ApplyConfigurationRequest req;
  req.set_data(config.dump());
  v1::ApplyConfigurationResponse resp;
  CHECK(stub->ApplyConfiguration(&ctx, req, &resp).error_code() == grpc::StatusCode::PERMISSION_DENIED);
}

TEST_CASE("a configuration applied in try mode rolls back by itself unless confirmed", "[machined]") {
  TempDir gen;
  const auto config = makeConfig(gen);
  Node node(config);
  auto stub = node.stub();
  auto next = config;
  next["machine"]["network"]["hostname"] = "trial-host";
  grpc::Status st;
  auto resp = applyConfig(*stub, next, v1::ApplyConfigurationRequest::TRY, st, 1);
  REQUIRE(st.ok());
  CHECK(resp.messages(0).mode() == "try");
  CHECK(getConfig(*stub)["machine"]["network"]["hostname"] == "trial-host");
  REQUIRE(eventually(
      [&] {
        const auto machine = getConfig(*stub)["machine"];
        return !machine.contains("network") || machine["network"].value("hostname", "") != "trial-host";
      },
      15s));
  CHECK(nlohmann::json::parse(readFile(node.root() / "etc/keel/config.json")) == config);

  // Confirmed in time, it stays.
  applyConfig(*stub, next, v1::ApplyConfigurationRequest::TRY, st, 2);
  REQUIRE(st.ok());
  grpc::ClientContext ctx;
  Node::withRoles(ctx, "os:admin");
  Empty req;
  v1::ConfirmConfigurationResponse confirmed;
  REQUIRE(stub->ConfirmConfiguration(&ctx, req, &confirmed).ok());
  grpc::ClientContext ctx2;
  Node::withRoles(ctx2, "os:admin");
  v1::EventsRequest ereq;
  ereq.set_tail_events(-1);
  auto events = stub->Events(&ctx2, ereq);
  v1::Event e;
  bool rolledBack = false;
  bool confirmedEvent = false;
  while (events->Read(&e)) {
    rolledBack |= e.state() == "rolled-back";
    confirmedEvent |= e.state() == "confirmed";
  }
  CHECK(rolledBack);
  CHECK(confirmedEvent);
  CHECK(nlohmann::json::parse(readFile(node.root() / "etc/keel/config.json"))["machine"]["network"]["hostname"] ==
        "trial-host");
}

TEST_CASE("reboot restarts every service under the same machined pid; shutdown stops the node", "[machined]") {
  TempDir gen;
  auto node = std::make_unique<Node>(makeConfig(gen));
  REQUIRE(node->waitForState("sleeper", "running"));
  const int sleeperPid = node->service("sleeper").pid();
  auto stub = node->stub();
  {
    grpc::ClientContext ctx;
    Node::withRoles(ctx, "os:reader");
    Empty req;
    v1::PowerResponse resp;
    CHECK(stub->Reboot(&ctx, req, &resp).error_code() == grpc::StatusCode::PERMISSION_DENIED);
  }
  {
    grpc::ClientContext ctx;
    Node::withRoles(ctx, "os:operator");
    Empty req;
    v1::PowerResponse resp;
    REQUIRE(stub->Reboot(&ctx, req, &resp).ok());
    CHECK(resp.messages(0).action() == "reboot");
  }
  CHECK(eventually([&] { return kill(sleeperPid, 0) != 0; }, 20s));
  REQUIRE(eventually([&] {
    return node->waitForApi() && node->service("sleeper").state() == "running";
  }, 30s));
  CHECK(node->service("sleeper").pid() != sleeperPid);
  CHECK(node->process().running());
  {
    grpc::ClientContext ctx;
    Node::withRoles(ctx, "os:operator");
    Empty req;
    v1::PowerResponse resp;
    REQUIRE(node->stub()->Shutdown(&ctx, req, &resp).ok());
  }
  const auto status = node->process().wait(20s);
  REQUIRE(status.has_value());
  CHECK(WIFEXITED(*status));
  CHECK(WEXITSTATUS(*status) == 0);
}

TEST_CASE("reset wipes the node's state but keeps its config, and only admins may ask", "[machined]") {
  TempDir gen;
  Node node(makeConfig(gen));
  REQUIRE(node.waitForState("sleeper", "running"));
  writeFile(node.root() / "var/lib/keel/ticker/scratch", "state");
  auto stub = node.stub();
  {
    grpc::ClientContext ctx;
    Node::withRoles(ctx, "os:operator");
    Empty req;
    v1::PowerResponse resp;
    CHECK(stub->Reset(&ctx, req, &resp).error_code() == grpc::StatusCode::PERMISSION_DENIED);
    CHECK(std::filesystem::exists(node.root() / "var/lib/keel/ticker/scratch"));
  }
  {
    grpc::ClientContext ctx;
    Node::withRoles(ctx, "os:admin");
    Empty req;
    v1::PowerResponse resp;
    REQUIRE(stub->Reset(&ctx, req, &resp).ok());
  }
  REQUIRE(eventually([&] { return !std::filesystem::exists(node.root() / "var/lib/keel/ticker/scratch"); }, 20s));
  REQUIRE(node.waitForApi());
  CHECK(std::filesystem::exists(node.root() / "etc/keel/config.json"));
  CHECK(node.waitForState("sleeper", "running"));
}

}  // namespace
