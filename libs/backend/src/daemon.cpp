#include "keel/backend/daemon.h"

#include <signal.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdlib>

#include <CLI/CLI.hpp>
#include <grpcpp/server.h>
#include <grpcpp/impl/server_builder_option.h>
#include <grpcpp/server_builder.h>
#include <spdlog/spdlog.h>

#include "keel/backend/health.h"
#include "keel/backend/logging.h"
#include "keel/common/heap.h"
#include "keel/common/stop_signals.h"
#include "keel/common/version.h"
#include "keel/sandbox/sandbox.h"
#include "keel/transport/unix_listener.h"

namespace keel::backend {

namespace {

// Set by keel_backend_reflection when it is linked into the daemon.
void (*gReflectionPlugin)() = nullptr;

// gRPC's reflection library adds its plugin to every server of a process that links it
// (a static initializer); a daemon that serves no reflection takes it out again.
class WithoutReflection final : public grpc::ServerBuilderOption {
 public:
  void UpdateArguments(grpc::ChannelArguments* /*args*/) override {}
  void UpdatePlugins(std::vector<std::unique_ptr<grpc::ServerBuilderPlugin>>* plugins) override {
    std::erase_if(*plugins, [](const auto& plugin) { return plugin->name() == "proto_server_reflection"; });
  }
};

}  // namespace

void registerReflectionPlugin(void (*initPlugin)()) { gReflectionPlugin = initPlugin; }

Status Daemon::add(grpc::Service& service, const ServiceRules& rules) {
  if (!rules.status().isOk()) return rules.status().withContext("service " + rules.serviceName());
  for (const auto& s : services_) {
    if (s.name == rules.serviceName()) return alreadyExists("service " + rules.serviceName() + " is added twice");
  }
  services_.push_back({&service, rules.serviceName()});
  return Status::ok();
}

std::unique_ptr<grpc::Server> Daemon::buildServer(grpc::Service& health) const {
  grpc::ServerBuilder builder;
  if (spec_.reflection) {
    gReflectionPlugin();
  } else {
    builder.SetOption(std::make_unique<WithoutReflection>());
  }
  for (const auto& s : services_) builder.RegisterService(s.service);
  builder.RegisterService(&health);
  builder.SetMaxReceiveMessageSize(spec_.maxMessageBytes);
  builder.SetMaxSendMessageSize(spec_.maxReplyBytes == 0 ? spec_.maxMessageBytes : spec_.maxReplyBytes);
  return builder.BuildAndStart();
}

int Daemon::run() {
  if (services_.empty()) {
    spdlog::error("no service to serve");
    return 1;
  }
  if (spec_.reflection && gReflectionPlugin == nullptr) {
    spdlog::error("{} serves gRPC reflection but was built without keel_backend_reflection "
                  "(keel_backend() links it; or set DaemonSpec::reflection to false)",
                  spec_.name);
    return 1;
  }
  HealthService health;
  auto server = buildServer(health);
  if (!server) {
    spdlog::error("the gRPC server did not start");
    return 1;
  }
  const auto allowed = config_.allowedPeerUids;
  const std::string name = spec_.name;
  auto listener = transport::UnixListener::bind(config_.socket, [allowed, name](const transport::PeerCredentials& peer) {
    return checkPeerUid(peer.uid, peer.pid, allowed, name);
  });
  if (!listener.ok()) {
    spdlog::error("cannot serve {}: {}", config_.socket.string(), listener.status().message());
    server->Shutdown();
    return 1;
  }
  for (const auto& s : services_) health.setServing(s.name, true);
  (*listener)->start(server.get());
  std::string names;
  for (const auto& s : services_) names += (names.empty() ? "" : ", ") + s.name;
  spdlog::info("serving {} on {} for {} peer uid(s), version {}", names, config_.socket.string(), allowed.size(),
               config_.version.empty() ? "unknown" : config_.version);
  if (whenServing_) whenServing_();

  const sigset_t signals = blockStopSignals();
  const int sig = waitForStopSignal(signals);
  spdlog::info("signal {} received; stopping (running calls get {} ms)", sig, spec_.shutdownGrace.count());
  health.shutdown();  // every service NOT_SERVING from now on
  (*listener)->stop();
  server->Shutdown(std::chrono::system_clock::now() + spec_.shutdownGrace);
  spdlog::info("stopped");
  return 0;
}

Result<BackendConfig> readDaemonConfig(const DaemonSpec& spec, const std::filesystem::path& path) {
  return spec.readConfig ? spec.readConfig(path) : readBackendConfigFile(path);
}

int runDaemon(int argc, char** argv, const DaemonSpec& spec, const std::function<Status(Daemon&)>& setup) {
  limitMallocArenas();  // before any thread: a thread picks its arena when it first allocates
  CLI::App app{spec.name + ": " + spec.summary +
               "\nA Keel backend: machined starts it and apid routes calls to it; it serves its Unix socket "
               "to the peers its config allows."};
  std::string configPath;
  if (const char* env = std::getenv("KEEL_SERVICE_CONFIG")) configPath = env;
  std::string level = "info";
  app.add_option("--config", configPath, "the config file machined writes (default: $KEEL_SERVICE_CONFIG)");
  app.add_option("--log-level", level, "trace, debug, info, warn, error")->capture_default_str();
  app.set_version_flag("--version", std::string(buildInfo().version));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  if (!setUpLogging(spec.name, level)) {
    setUpLogging(spec.name, "info");
    spdlog::error("unknown --log-level '{}' (expected trace, debug, info, warn or error)", level);
    return 2;
  }
  if (configPath.empty()) {
    spdlog::error("no config file: give --config or set KEEL_SERVICE_CONFIG");
    return 2;
  }
  auto config = readDaemonConfig(spec, configPath);
  if (!config.ok()) {
    spdlog::error("{}", config.status().message());
    return 2;
  }
  ::signal(SIGPIPE, SIG_IGN);
  ::umask(077);
  // Before any thread: the filter then covers every thread gRPC starts, and every thread
  // inherits the blocked signals that only the main thread waits for.
  if (const auto st = sandbox::confineDaemon(spec.seccompPolicy, spec.name); !st.isOk()) {
    spdlog::error("cannot confine {}: {}", spec.name, st.toString());
    return 1;
  }
  keel::blockStopSignals();

  Daemon daemon(spec, std::move(config).value());
  if (const auto st = setup(daemon); !st.isOk()) {
    spdlog::error("{}", st.message());
    return 2;
  }
  int code = 0;
  {
    const IdleHeapTrimmer trimmer;  // after setup, which runs before any thread
    code = daemon.run();
  }
#if defined(__SANITIZE_ADDRESS__)
  // A sanitizer build's leak check runs at exit and stops the process's threads with
  // ptrace, which the sandbox forbids (the check would die of SIGSYS): end here instead.
  spdlog::default_logger()->flush();
  std::_Exit(code);
#endif
  return code;
}

}  // namespace keel::backend
