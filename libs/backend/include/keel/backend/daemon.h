// Everything a backend daemon needs around its own logic, so an extension is mostly its
// services:
//   - flags (`--config`, default $KEEL_SERVICE_CONFIG; `--log-level`; `--version`; `--help`);
//   - structured logs (logging.h) and its config file (config.h);
//   - its reviewed seccomp profile on every thread, no capabilities, no_new_privs, before
//     any thread starts (the same confinement Keel's own daemons apply to themselves);
//   - a gRPC server on the config's Unix socket that accepts only peers on the config's
//     allow-list (SO_PEERCRED, checked before gRPC reads a byte);
//   - the forwarded roles re-checked on every call (authorize.h);
//   - grpc.health.v1 (each service SERVING while it is served) and gRPC server reflection;
//   - a lean heap: few malloc arenas, free pages handed back once the daemon is idle;
//   - SIGTERM/SIGINT: health turns NOT_SERVING, the socket closes, running calls get a
//     grace period, then the daemon exits 0.
//
//   int main(int argc, char** argv) {
//     return keel::backend::runDaemon(argc, argv, {.name = "timed", ...},
//                                     [](keel::backend::Daemon& d) { return d.serve(service); });
//   }
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <grpcpp/impl/codegen/service_type.h>
#include <grpcpp/server.h>

#include "keel/backend/authorize.h"
#include "keel/backend/config.h"
#include "keel/common/status.h"

namespace keel::backend {

// A backend's reviewed seccomp profile, embedded in its binary by keel_backend()
// (cmake/KeelBackend.cmake) from the file its manifest also names.
extern const std::string_view kDaemonPolicy;

struct DaemonSpec {
  std::string name;                // the daemon's name in logs and --help ("timed")
  std::string summary;             // one line for --help
  std::string_view seccompPolicy;  // its reviewed profile, embedded with keel_embed_policy
  int maxMessageBytes = 4 * 1024 * 1024;          // largest request (and reply, unless below)
  // Largest reply: 0 is maxMessageBytes, -1 no limit (for a reply that grows with state the
  // daemon keeps, while requests stay small).
  int maxReplyBytes = 0;
  std::chrono::milliseconds shutdownGrace{5000};  // running calls get this long after SIGTERM
  // Serve gRPC server reflection. Needs keel_backend_reflection linked whole into the
  // daemon (keel_backend() does it); a daemon that serves none links nothing of it.
  bool reflection = true;
  // Reads the config file. Empty: readBackendConfigFile, the format machined writes for a
  // backend. A daemon whose file has a format of its own reads it here, keeps its own
  // settings, and returns what the SDK serves with (socket, allowed peers, …).
  std::function<Result<BackendConfig>(const std::filesystem::path&)> readConfig;
};

// The config `spec` reads from `path` (its readConfig, else readBackendConfigFile).
Result<BackendConfig> readDaemonConfig(const DaemonSpec& spec, const std::filesystem::path& path);

class Daemon {
 public:
  const BackendConfig& config() const { return config_; }
  const DaemonSpec& spec() const { return spec_; }

  // Adds a service to serve. Refused (the daemon then does not start) when a method of
  // the service has no rule.
  template <typename Api>
  Status serve(AuthorizedService<Api>& service) {
    return add(service, service.rules());
  }
  Status add(grpc::Service& service, const ServiceRules& rules);

  // Runs `serving` on the main thread once the socket accepts calls (and health says
  // SERVING): for what a daemon reports or starts only then.
  void whenServing(std::function<void()> serving) { whenServing_ = std::move(serving); }

 private:
  friend int runDaemon(int, char**, const DaemonSpec&, const std::function<Status(Daemon&)>&);
  Daemon(DaemonSpec spec, BackendConfig config) : spec_(std::move(spec)), config_(std::move(config)) {}
  int run();
  std::unique_ptr<grpc::Server> buildServer(grpc::Service& health) const;

  struct Served {
    grpc::Service* service;
    std::string name;
  };
  DaemonSpec spec_;
  BackendConfig config_;
  std::vector<Served> services_;
  std::function<void()> whenServing_;
};

// The whole life of a backend daemon: flags, logs, config, sandbox, then `setup` adds
// the services (it runs confined, before any thread), then it serves until SIGTERM.
// Returns the process's exit code: 0 after a clean stop, 1 when serving failed, 2 for bad
// flags or config.
int runDaemon(int argc, char** argv, const DaemonSpec& spec, const std::function<Status(Daemon&)>& setup);

// Called once by keel_backend_reflection's static initializer with gRPC's reflection
// plugin: the SDK itself does not link gRPC's reflection library, so a daemon without
// reflection (trustd) does not load it.
void registerReflectionPlugin(void (*initPlugin)());

// The peer policy of a backend's socket: only the given uids.
Status checkPeerUid(uid_t uid, pid_t pid, const std::vector<uid_t>& allowed, std::string_view daemon);

}  // namespace keel::backend
