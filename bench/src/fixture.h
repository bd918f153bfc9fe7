// What keel_bench sets up before it measures: a fresh cluster's secrets, a control-plane
// node (the real machined, which starts apid when it is installed), an admin client
// certificate, and nginx as a reference mTLS gRPC proxy in front of the same socket.
// Everything lives in one temporary directory that is removed afterwards.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <sys/types.h>

#include "keel/common/status.h"
#include "keel/config/secrets.h"

#include "load.h"
#include "process.h"

namespace keel::bench {

// A directory made with mkdtemp, removed with everything in it by the destructor.
class TempDir {
 public:
  static Result<TempDir> create(const std::string& prefix);
  TempDir(TempDir&& other) noexcept : path_(std::move(other.path_)) { other.path_.clear(); }
  TempDir& operator=(TempDir&&) = delete;
  ~TempDir();
  const std::filesystem::path& path() const { return path_; }

 private:
  explicit TempDir(std::filesystem::path p) : path_(std::move(p)) {}
  std::filesystem::path path_;
};

// PEM material for a TLS client or server.
struct TlsFiles {
  std::string ca;   // the CA to verify the peer with
  std::string crt;  // own certificate
  std::string key;  // own private key (secret)
};

// A new secrets bundle (P-256 CAs).
Result<config::SecretsBundle> makeSecrets();
// An os:admin client certificate and key from the OS CA, with the OS CA as `ca`.
Result<TlsFiles> makeAdminClient(const config::SecretsBundle& secrets);
// A P-256 serving certificate from the OS CA for `ip` (IP SAN) and "localhost".
Result<TlsFiles> makeServingCert(const config::SecretsBundle& secrets, const std::string& ip);

// mTLS channel credentials from PEM material.
std::shared_ptr<grpc::ChannelCredentials> mtlsCredentials(const TlsFiles& client);

// The control-plane node: machined with --root under `dir`.
class Node {
 public:
  struct Options {
    std::filesystem::path machined;    // the machined binary
    std::filesystem::path libexecDir;  // holds apid (and trustd) when they are built
    std::string address;               // the node's address on 127.0.0.0/8
    std::optional<uint16_t> apiPort;   // passed as --api-port when set
    std::optional<uint16_t> joinPort;  // passed as --join-port when set
  };
  // Writes the machine config and starts machined; returns once machined.sock answers
  // Version (up to 20 s), or an error carrying the tail of machined's log.
  static Result<std::unique_ptr<Node>> start(const std::filesystem::path& dir,
                                             const config::SecretsBundle& secrets, const Options& options);
  ~Node();

  std::filesystem::path root() const { return root_; }
  std::filesystem::path socket() const { return root_ / "run/keel/machined.sock"; }
  pid_t pid() const { return process_.pid(); }
  // The insecure Unix-socket target, with the keel-roles header machined requires.
  Target directTarget() const;
  // Stops machined (SIGTERM, then SIGKILL after 15 s). Idempotent.
  void stop() { process_.stop(std::chrono::seconds(15)); }
  ChildProcess& process() { return process_; }

 private:
  Node(std::filesystem::path root, ChildProcess p) : root_(std::move(root)), process_(std::move(p)) {}
  std::filesystem::path root_;
  ChildProcess process_;
};

// True when `binary --help` mentions `flag` (used to pass --api-port only to a machined
// that knows it).
bool binaryAcceptsFlag(const std::filesystem::path& binary, const std::string& flag,
                       const std::filesystem::path& scratchDir);

// nginx with a generated config: one worker, TLS 1.3 only, client certificates required,
// grpc_pass to machined's socket over a keepalive upstream, access log on.
class Nginx {
 public:
  struct Options {
    std::filesystem::path binary;
    std::string address;  // listen address
    uint16_t port = 0;
    std::filesystem::path backendSocket;
    TlsFiles serving;  // ca = the CA client certificates must chain to
    bool accessLog = true;
    int workers = 1;
  };
  // Writes nginx.conf under `dir`, checks it with `nginx -t`, starts the master in the
  // foreground and returns once the port accepts connections (up to 10 s).
  static Result<std::unique_ptr<Nginx>> start(const std::filesystem::path& dir, const Options& options);
  ~Nginx();

  // Master and workers, for CPU accounting.
  std::vector<pid_t> pids() const;
  std::filesystem::path accessLogPath() const { return dir_ / "access.log"; }
  // Stops the master (SIGTERM, which stops the workers), waits. Idempotent.
  void stop() { process_.stop(std::chrono::seconds(10)); }

 private:
  Nginx(std::filesystem::path dir, ChildProcess p) : dir_(std::move(dir)), process_(std::move(p)) {}
  std::filesystem::path dir_;
  ChildProcess process_;
};

// The nginx binary: /usr/sbin/nginx, or one on PATH.
std::optional<std::filesystem::path> findNginx();

// The nginx.conf text for `options` with every path under `dir` (exposed for tests).
std::string nginxConfig(const std::filesystem::path& dir, const Nginx::Options& options, bool runAsRoot);

}  // namespace keel::bench
