// apid for integration tests: a test PKI (the OS CA and certificates of every kind a
// test needs, valid or not), the real apid binary run alone with its config file, a
// recording stand-in backend, and mTLS clients.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/server_posix.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <thread>

#include "keel/common/fd_io.h"
#include "keel/pki/pki.h"
#include "node_fixture.h"

namespace keel::integration {

inline constexpr auto kCallTimeout = 10s;

struct Credential {
  std::string key;
  std::string cert;
};

// A CA of the test's own and certificates from it.
class TestPki {
 public:
  explicit TestPki(const std::string& name = "keel-os") {
    keel::SystemClock clock;
    pki::CaOptions o;
    o.subject.commonName = name;
    o.subject.organizations = {name};
    auto ca = pki::createSelfSignedCa(o, clock);
    REQUIRE(ca.ok());
    ca_ = std::make_unique<pki::CertificateAuthority>(std::move(ca).value());
  }

  std::string caPem() const { return ca_->certificate.toPem(); }

  struct Spec {
    std::string cn = "client";
    std::vector<std::string> organizations;
    std::vector<pki::ExtendedKeyUsage> usages = {pki::ExtendedKeyUsage::kClientAuth};
    std::vector<std::string> ips;
    std::vector<std::string> dns;
    std::chrono::seconds ttl = std::chrono::hours(24);
    std::chrono::seconds shift{0};  // issue as if now were now + shift
  };

  Credential issue(const Spec& spec) const {
    auto key = pki::PrivateKey::generate(pki::KeyType::kEcdsaP256);
    REQUIRE(key.ok());
    pki::CsrOptions csrOptions;
    csrOptions.subject.commonName = spec.cn;
    csrOptions.subjectAltNames.ipAddresses = spec.ips;
    csrOptions.subjectAltNames.dnsNames = spec.dns;
    auto csr = pki::CertificateRequest::create(*key, csrOptions);
    REQUIRE(csr.ok());
    pki::IssuePolicy policy;
    policy.extendedKeyUsages = spec.usages;
    policy.organizationPolicy = pki::IssuePolicy::Organizations::kSet;
    policy.organizations = spec.organizations;
    policy.allowAnySubjectAltName = true;
    policy.ttl = spec.ttl;
    keel::ManualClock clock(keel::SystemClock().now() + spec.shift);
    auto cert = pki::issueCertificate(*ca_, *csr, policy, clock);
    REQUIRE(cert.ok());
    return {key->toPem(), cert->toPem()};
  }

  Credential client(std::vector<std::string> roles, const std::string& cn = "alice") const {
    Spec s;
    s.cn = cn;
    s.organizations = std::move(roles);
    return issue(s);
  }

  Credential server(const std::string& address) const {
    Spec s;
    s.cn = address;
    s.usages = {pki::ExtendedKeyUsage::kServerAuth};
    s.ips = {address, "127.0.0.1"};
    return issue(s);
  }

 private:
  std::unique_ptr<pki::CertificateAuthority> ca_;
};

// A TCP port nothing listens on at the moment, on every address of 127.0.1.0/24.
inline int freePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_ANY);
  addr.sin_port = 0;
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  socklen_t len = sizeof addr;
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  ::close(fd);
  return ntohs(addr.sin_port);
}

#ifdef TRUSTD_PATH
// Copies of the built-in daemons machined starts from --libexec: apid, and trustd, from
// which apid gets its certificates. Copies, so that the daemons may execute them under
// their own accounts when the tests run as root.
inline void installDaemons(const TempDir& libexec) {
  chmod(libexec.path().c_str(), 0755);
  for (const auto& [name, path] : {std::pair{"apid", APID_PATH}, std::pair{"trustd", TRUSTD_PATH}}) {
    std::filesystem::copy_file(path, libexec / name);
    chmod((libexec / name).c_str(), 0755);
  }
}
#endif

#ifdef KEELCTL_PATH
// keelctl as a person runs it, never with the user's own client config ($KEELCONFIG is
// cleared); with --keelconfig when one is given. What it printed is reported when a check
// of the test fails.
inline keel::testing::ProcessResult runKeelctl(std::vector<std::string> args,
                                               const std::filesystem::path& keelconfig = {}) {
  std::vector<std::string> argv = {KEELCTL_PATH};
  if (!keelconfig.empty()) argv.insert(argv.end(), {"--keelconfig", keelconfig.string()});
  argv.insert(argv.end(), args.begin(), args.end());
  auto r = keel::testing::run(
      argv, {.workingDirectory = std::nullopt, .extraEnv = {{"KEELCONFIG", ""}}, .stdinData = "", .timeout = 180s});
  UNSCOPED_INFO("keelctl " << (args.empty() ? "" : args[0]) << " -> " << r.exitCode << "\n" << r.out << r.err);
  return r;
}

#if defined(MACHINED_PATH) && defined(TRUSTD_PATH)
// A local cluster of one control plane (127.0.1.1) and `workers` workers under
// `dir`/cluster, on an API port picked now (written to `apiPort`); its admin keelconfig is
// `dir`/cluster/keelconfig. The test destroys it with `keelctl cluster destroy`.
inline std::filesystem::path createLocalCluster(const TempDir& dir, const TempDir& libexec, int workers,
                                                int* apiPort = nullptr) {
  chmod(dir.path().c_str(), 0711);
  installDaemons(libexec);
  const auto root = dir / "cluster";
  const int port = freePort();
  if (apiPort != nullptr) *apiPort = port;
  const auto made = runKeelctl({"cluster", "create", "--workers", std::to_string(workers), "--root", root.string(),
                                "--machined", MACHINED_PATH, "--libexec", libexec.path().string(), "--api-port",
                                std::to_string(port), "--join-port", std::to_string(freePort())});
  REQUIRE(made.exitCode == 0);
  return root;
}
#endif
#endif

// A stand-in backend on a Unix socket: answers every method with one empty message
// (or the status it is told to), and records the metadata of each call it received.
class RecordingBackend final : public grpc::CallbackGenericService {
 public:
  // `maxConnectionAge`: when set, the server sends GOAWAY on each connection once it is
  // that old, and keeps it open for the calls still running on it; connections are then
  // accepted here, so they can be counted (connections()).
  explicit RecordingBackend(std::filesystem::path socket, std::chrono::milliseconds maxConnectionAge = {})
      : socket_(std::move(socket)) {
    grpc::ServerBuilder builder;
    const bool counted = maxConnectionAge.count() > 0;
    if (counted) {
      builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_MS, static_cast<int>(maxConnectionAge.count()));
    } else {
      builder.AddListeningPort("unix:" + socket_.string(), grpc::InsecureServerCredentials());
    }
    builder.RegisterCallbackGenericService(this);
    server_ = builder.BuildAndStart();
    REQUIRE(server_ != nullptr);
    if (counted) acceptHere();
  }
  ~RecordingBackend() override {
    if (listener_) {
      ::shutdown(listener_.get(), SHUT_RDWR);  // wakes accept()
      acceptor_.join();
      listener_.reset();
    }
    server_->Shutdown(std::chrono::system_clock::now() + 1s);
  }

  // Connections accepted so far (with a maxConnectionAge only).
  int connections() const { return connections_.load(); }

  struct Call {
    std::string method;
    std::multimap<std::string, std::string> metadata;
    std::chrono::system_clock::time_point deadline;
  };

  std::vector<Call> calls() {
    std::lock_guard lock(mu_);
    return calls_;
  }
  void clear() {
    std::lock_guard lock(mu_);
    calls_.clear();
  }
  // Values of `key` in the last call.
  std::vector<std::string> lastValues(const std::string& key) {
    std::lock_guard lock(mu_);
    std::vector<std::string> out;
    if (calls_.empty()) return out;
    auto [a, b] = calls_.back().metadata.equal_range(key);
    for (auto it = a; it != b; ++it) out.push_back(it->second);
    return out;
  }
  const std::filesystem::path& socket() const { return socket_; }

  grpc::ServerGenericBidiReactor* CreateReactor(grpc::GenericCallbackServerContext* ctx) override {
    Call call;
    call.method = ctx->method();
    call.deadline = ctx->deadline();
    for (const auto& [k, v] : ctx->client_metadata()) call.metadata.emplace(std::string(k.data(), k.size()), std::string(v.data(), v.size()));
    {
      std::lock_guard lock(mu_);
      calls_.push_back(std::move(call));
    }
    class Reply final : public grpc::ServerGenericBidiReactor {
     public:
      Reply() {
        grpc::Slice empty("");
        resp_ = grpc::ByteBuffer(&empty, 1);
        StartRead(&req_);
      }
      void OnReadDone(bool) override {
        // Trailing metadata the tests expect back unchanged.
        // (set before the reply so it travels with the status)
        StartWriteAndFinish(&resp_, grpc::WriteOptions(), grpc::Status::OK);
      }
      void OnDone() override { delete this; }

     private:
      grpc::ByteBuffer req_;
      grpc::ByteBuffer resp_;
    };
    ctx->AddTrailingMetadata("x-backend-trailer", "kept");
    return new Reply();
  }

 private:
  std::filesystem::path socket_;
  void acceptHere() {
    listener_.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    REQUIRE(static_cast<bool>(listener_));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    REQUIRE(socket_.string().size() < sizeof(addr.sun_path));
    std::strncpy(addr.sun_path, socket_.c_str(), sizeof(addr.sun_path) - 1);
    REQUIRE(::bind(listener_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
    REQUIRE(::listen(listener_.get(), 16) == 0);
    acceptor_ = std::thread([this] {
      for (;;) {
        const int fd = ::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0) {
          if (errno == EINTR) continue;
          return;  // shut down
        }
        ++connections_;
        grpc::AddInsecureChannelFromFd(server_.get(), fd);
      }
    });
  }

  std::unique_ptr<grpc::Server> server_;
  keel::UniqueFd listener_;
  std::thread acceptor_;
  std::atomic<int> connections_{0};
  std::mutex mu_;
  std::vector<Call> calls_;
};

struct ApidOptions {
  std::string address = "127.0.1.1";
  int port = 0;  // 0: a free one
  bool impersonator = false;
  nlohmann::json limits;  // merged into the config's "limits"
  std::string hostname;
  // Where apid's stdout (the audit copy) goes instead of apid.log (a FIFO, say); its
  // stderr stays in apid.log. apid is then taken as started once its port accepts
  // connections.
  std::filesystem::path output;
};

// The real apid binary, run alone with a config written by the test.
class ApidProcess {
 public:
  ApidProcess(const TestPki& pki, ApidOptions options) : options_(std::move(options)) {
    chmod(dir_.path().c_str(), 0711);
    port_ = options_.port != 0 ? options_.port : freePort();
    std::filesystem::create_directories(backendsDir());
    writeCredential("server", pki.server(options_.address));
    writeFile(dir_ / "ca.crt", pki.caPem());
    nlohmann::json config = {
        {"nodeAddress", options_.address},
        {"stateDir", dir_.path().string()},
        {"listen", options_.address + ":" + std::to_string(port_)},
        {"backendsDir", backendsDir().string()},
        {"tls", {{"key", (dir_ / "server.key").string()}, {"cert", (dir_ / "server.crt").string()}, {"ca", (dir_ / "ca.crt").string()}}},
        {"certRefreshSeconds", 1},
        {"forwardTimeoutMs", 3000},
    };
    if (!options_.hostname.empty()) config["hostname"] = options_.hostname;
    if (options_.impersonator) {
      TestPki::Spec s;
      s.cn = "apid@" + options_.address;
      s.organizations = {"os:impersonator"};
      writeCredential("impersonator", pki.issue(s));
      config["impersonator"] = {{"key", (dir_ / "impersonator.key").string()},
                                {"cert", (dir_ / "impersonator.crt").string()}};
    }
    if (!options_.limits.is_null()) config["limits"] = options_.limits;
    writeFile(dir_ / "config.json", config.dump(2));
    chmod((dir_ / "config.json").c_str(), 0600);
    start();
  }
  ~ApidProcess() { stop(); }

  void start() {
    const bool ownOutput = !options_.output.empty();
    const auto logPath = dir_ / "apid.log";
    process_ = std::make_unique<ChildProcess>(std::vector<std::string>{APID_PATH, "--config", (dir_ / "config.json").string()},
                                              ownOutput ? options_.output : logPath, std::map<std::string, std::string>{},
                                              ownOutput ? logPath : std::filesystem::path());
    if (ownOutput) {
      REQUIRE(eventually([&] { return accepts() || !process_->running(); }, 20s));
      REQUIRE(process_->running());
      return;
    }
    REQUIRE(eventually([&] { return log().find("listening on") != std::string::npos || !process_->running(); }, 20s));
    INFO(log());
    REQUIRE(process_->running());
  }
  void stop() {
    if (!process_ || !process_->running()) return;
    if (const auto status = process_->wait(std::chrono::milliseconds(0))) {
      // It ended by itself: that is a failure of the test, which shows why.
      std::fprintf(stderr, "apid ended by itself (wait status %d):\n%s\n", *status, log().c_str());
      FAIL_CHECK("apid ended by itself");
      return;
    }
    process_->signal(SIGTERM);
    if (!process_->wait(10s)) std::fprintf(stderr, "apid did not stop on SIGTERM:\n%s\n", log().c_str());
  }

  // Routes the machine API to `socket` (machined's, or a stand-in's).
  void addBackend(const std::string& name, const std::filesystem::path& socket,
                  const std::vector<std::string>& services = {"keel.machine.v1.MachineService"},
                  const std::string& rules = "builtin") {
    nlohmann::json m = {{"name", name},
                        {"socket", socket.string()},
                        {"services", services},
                        {"allowedUids", {getuid()}},
                        {"rules", rules}};
    writeFile(backendsDir() / (name + ".json"), m.dump());
  }

  void writeCredential(const std::string& name, const Credential& c) {
    writeFile(dir_ / (name + ".key.tmp"), c.key);
    chmod((dir_ / (name + ".key.tmp")).c_str(), 0600);
    std::filesystem::rename(dir_ / (name + ".key.tmp"), dir_ / (name + ".key"));
    writeFile(dir_ / (name + ".crt.tmp"), c.cert);
    std::filesystem::rename(dir_ / (name + ".crt.tmp"), dir_ / (name + ".crt"));
  }

  // Whether apid's port takes a TCP connection.
  bool accepts() const {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port_));
    ::inet_pton(AF_INET, options_.address.c_str(), &addr.sin_addr);
    const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    ::close(fd);
    return ok;
  }

  std::filesystem::path dir() const { return dir_.path(); }
  std::filesystem::path backendsDir() const { return dir_ / "backends.d"; }
  std::string endpoint() const { return options_.address + ":" + std::to_string(port_); }
  int port() const { return port_; }
  const std::string& host() const { return options_.address; }
  std::string log() const {
    // With its own output, stdout is not read back (a FIFO would block, or lose what the
    // test means to read): apid.log has stderr only.
    if (!options_.output.empty()) return readFile(dir_ / "apid.log");
    return process_ ? process_->log() : std::string();
  }
  std::string auditLog() const { return readFile(dir_ / "audit.log"); }
  ChildProcess& process() { return *process_; }

 private:
  ApidOptions options_;
  TempDir dir_;
  int port_ = 0;
  std::unique_ptr<ChildProcess> process_;
};

inline std::shared_ptr<grpc::Channel> mtlsChannel(const std::string& endpoint, const std::string& caPem,
                                                  const Credential& client, int maxMessage = 64 * 1024 * 1024) {
  grpc::SslCredentialsOptions tls;
  tls.pem_root_certs = caPem;
  tls.pem_private_key = client.key;
  tls.pem_cert_chain = client.cert;
  grpc::ChannelArguments args;
  args.SetMaxSendMessageSize(maxMessage);
  args.SetMaxReceiveMessageSize(maxMessage);
  // Every channel its own connection: a test about one certificate must not reuse
  // another test's handshake.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  args.SetString("keel-test-channel", std::to_string(reinterpret_cast<uintptr_t>(&tls)) + std::to_string(rand()));
  return grpc::CreateCustomChannel(endpoint, grpc::SslCredentials(tls), args);
}

// A unary call by name with raw bytes; returns the status and fills `reply`.
inline grpc::Status rawCall(grpc::Channel& channel, const std::string& method, const std::string& request,
                            std::string* reply = nullptr,
                            const std::vector<std::pair<std::string, std::string>>& metadata = {},
                            std::multimap<std::string, std::string>* trailers = nullptr) {
  grpc::GenericStub stub(std::shared_ptr<grpc::Channel>(&channel, [](grpc::Channel*) {}));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + kCallTimeout);
  for (const auto& [k, v] : metadata) ctx.AddMetadata(k, v);
  grpc::Slice slice(request);
  grpc::ByteBuffer req(&slice, 1);
  grpc::ByteBuffer resp;
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  grpc::Status result;
  stub.UnaryCall(&ctx, method, grpc::StubOptions(), &req, &resp, [&](grpc::Status s) {
    std::lock_guard lock(mu);
    result = std::move(s);
    done = true;
    cv.notify_all();
  });
  std::unique_lock lock(mu);
  cv.wait(lock, [&] { return done; });
  if (reply != nullptr && result.ok()) {
    std::vector<grpc::Slice> slices;
    (void)resp.Dump(&slices);
    reply->clear();
    for (const auto& s : slices) reply->append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  if (trailers != nullptr) {
    for (const auto& [k, v] : ctx.GetServerTrailingMetadata()) trailers->emplace(std::string(k.data(), k.size()), std::string(v.data(), v.size()));
  }
  return result;
}

}  // namespace keel::integration
