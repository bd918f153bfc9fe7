// trustd: the OS certificate authority of a control-plane node. Wiring only: flags,
// sandbox, the Unix socket and signals; the issuing logic is in src/authority.h.
#include <signal.h>

#include <chrono>
#include <cstdlib>

#include <CLI/CLI.hpp>
#include <grpcpp/server_builder.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "keel/backend/daemon.h"
#include "keel/backend/health.h"
#include "keel/common/clock.h"
#include "keel/common/heap.h"
#include "keel/common/stop_signals.h"
#include "keel/common/version.h"
#include "keel/sandbox/sandbox.h"
#include "keel/transport/unix_listener.h"

#include "authority.h"
#include "security_service.h"
#include "trustd_config.h"

namespace keel::trustd {
extern const std::string_view kSeccompPolicy;
}

namespace {

// CSRs and certificates are a few KiB; nothing legitimate comes near this.
constexpr int kMaxMessageBytes = 64 * 1024;

keel::Status confine() { return keel::sandbox::confineDaemon(keel::trustd::kSeccompPolicy, "trustd"); }

#ifdef KEEL_TEST_HOOKS
// Test builds only: make a call trustd's profile forbids, so a test can watch the filter
// kill it. Production builds do not contain this.
void forbiddenCallForTests() {
  const char* what = std::getenv("KEEL_TEST_FORBIDDEN_SYSCALL");
  if (what == nullptr) return;
  spdlog::warn("trustd: test hook: attempting forbidden call {}", what);
  spdlog::default_logger()->flush();
  if (std::string_view(what) == "socket-inet") {
    [[maybe_unused]] int fd = socket(AF_INET, SOCK_STREAM, 0);
  }
  spdlog::error("trustd: test hook: the forbidden call {} returned", what);
}
#endif

}  // namespace

int main(int argc, char** argv) {
  keel::limitMallocArenas();
  CLI::App app{"trustd: the OS certificate authority of a control-plane node (serves trustd.sock only)"};
  std::string configPath;
  std::string level = "info";
  app.add_option("--config", configPath,
                 "trustd's config file (machined writes it into trustd's state directory)")
      ->required();
  app.add_option("--log-level", level, "trace, debug, info, warn, error")->capture_default_str();
  app.set_version_flag("--version", std::string(keel::buildInfo().version));
  CLI11_PARSE(app, argc, argv);
  spdlog::set_level(spdlog::level::from_str(level));
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %^%l%$ %v", spdlog::pattern_time_type::utc);

  auto config = keel::trustd::readTrustdConfigFile(configPath);
  if (!config.ok()) {
    spdlog::error("trustd: {}", config.status().message());
    return 2;
  }
  ::signal(SIGPIPE, SIG_IGN);
  ::umask(077);
  // Before any thread: the filter then covers every thread gRPC starts.
  if (const auto st = confine(); !st.isOk()) {
    spdlog::error("trustd: cannot confine trustd: {}", st.toString());
    return 1;
  }
#ifdef KEEL_TEST_HOOKS
  forbiddenCallForTests();
#endif
  const sigset_t signals = keel::blockStopSignals();
  const keel::IdleHeapTrimmer trimmer;

  keel::SystemClock clock;
  auto authority = keel::trustd::Authority::create(*config, clock);
  if (!authority.ok()) {
    spdlog::error("trustd: {}", authority.status().message());
    return 2;
  }
  keel::trustd::SecurityServiceImpl security(authority->get());
  keel::trustd::LocalIssuerServiceImpl local(authority->get());
  // grpc.health.v1, as every backend serves it: apid asks it for SecurityService.
  keel::backend::HealthService health;
  grpc::ServerBuilder builder;
  builder.RegisterService(&security);
  builder.RegisterService(&local);
  builder.RegisterService(&health);
  builder.SetMaxReceiveMessageSize(kMaxMessageBytes);
  auto server = builder.BuildAndStart();
  if (!server) {
    spdlog::error("trustd: the gRPC server did not start");
    return 1;
  }
  const auto allowed = config->allowedUids;
  auto listener = keel::transport::UnixListener::bind(
      config->socket, [allowed](const keel::transport::PeerCredentials& peer) {
        return keel::backend::checkPeerUid(peer.uid, peer.pid, allowed, "trustd");
      });
  if (!listener.ok()) {
    spdlog::error("trustd: {}", listener.status().message());
    return 1;
  }
  health.setServing(keel::security::v1::SecurityService::service_full_name(), true);
  (*listener)->start(server.get());
  spdlog::info("trustd: serving on {} for {} uid(s); node certificates live {} s", config->socket.string(),
               allowed.size(), config->nodeCertTtl.count());
  const int sig = keel::waitForStopSignal(signals);
  spdlog::info("trustd: signal {} received; stopping", sig);
  health.shutdown();
  (*listener)->stop();
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  return 0;
}
