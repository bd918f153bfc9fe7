// apid: the network edge of a node. Wiring only: the flags, the sandbox, the signal
// handling; everything else is in src/.
#include <signal.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <cstdlib>
#include <iostream>

#include <CLI/CLI.hpp>
#include <absl/synchronization/mutex.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "apid.h"
#include "keel/contracts/apid_config.h"
#include "identity.h"
#include "keel/common/clock.h"
#include "keel/common/heap.h"
#include "keel/common/stop_signals.h"
#include "keel/common/version.h"
#include "keel/sandbox/sandbox.h"
#include "keel/transport/tls.h"

namespace keel::apid {
extern const std::string_view kSeccompPolicy;
}

namespace {

constexpr auto kDrain = std::chrono::seconds(2);

keel::Status confine() { return keel::sandbox::confineDaemon(keel::apid::kSeccompPolicy, "apid"); }

std::unique_ptr<keel::apid::IdentityManager> makeIdentity(const keel::contracts::ApidConfig& config, const keel::Clock& clock) {
  const auto& id = *config.identity;
  keel::apid::IdentityOptions options;
  options.nodeAddress = config.nodeAddress;
  options.sans = id.sans;
  options.files.servingKey = config.tls.key;
  options.files.servingCert = config.tls.cert;
  options.caBundle = config.acceptedCas;
  options.issuerCheck = std::chrono::duration_cast<std::chrono::milliseconds>(config.certRefresh);
  if (config.impersonator) {
    options.files.impersonatorKey = config.impersonator->key;
    options.files.impersonatorCert = config.impersonator->cert;
  }
  auto issuer = id.joinEndpoints.empty()
                    ? keel::apid::localTrustdIssuer(id.trustdSocket)
                    : keel::apid::joinIssuer(id.joinEndpoints, id.joinToken, config.acceptedCas);
  return std::make_unique<keel::apid::IdentityManager>(std::move(options), std::move(issuer), clock);
}

}  // namespace

int main(int argc, char** argv) {
  keel::limitMallocArenas();
  CLI::App app{"apid: the node's mTLS API gateway (authentication, authorization, audit, routing)"};
  std::string configPath;
  std::string level = "info";
  app.add_option("--config", configPath, "apid's config file (machined writes it into apid's state directory)")
      ->required();
  app.add_option("--log-level", level, "trace, debug, info, warn, error")->capture_default_str();
  app.set_version_flag("--version", std::string(keel::buildInfo().version));
  CLI11_PARSE(app, argc, argv);
  // gRPC's locks are Abseil mutexes; Debian's Abseil checks every acquisition for lock
  // cycles unless told otherwise, which costs more than the proxying itself.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  // stdout carries the audit lines (AuditLog); the log goes to stderr.
  spdlog::set_default_logger(std::make_shared<spdlog::logger>("apid", std::make_shared<spdlog::sinks::stderr_color_sink_mt>()));
  spdlog::set_level(spdlog::level::from_str(level));
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %^%l%$ %v", spdlog::pattern_time_type::utc);

  auto config = keel::contracts::readApidConfigFile(configPath);
  if (!config.ok()) {
    spdlog::error("apid: {}", config.status().message());
    return 2;
  }
  // Before anything creates a TLS context.
  if (const auto st = keel::transport::applyTlsPolicy(); !st.isOk()) {
    spdlog::error("apid: {}", st.message());
    return 1;
  }
  // A reader of apid's output that goes away (the audit copy, the log) must not take
  // apid down: the write fails instead, and the audit file still has every line.
  ::signal(SIGPIPE, SIG_IGN);
  // Before any thread: the filter then covers every thread gRPC starts.
  if (const auto st = confine(); !st.isOk()) {
    spdlog::error("apid: cannot confine apid: {}", st.toString());
    return 1;
  }
  const sigset_t signals = keel::blockStopSignals();
  const keel::IdleHeapTrimmer trimmer;

  keel::SystemClock clock;
  std::unique_ptr<keel::apid::IdentityManager> identity;
  if (config->identity) identity = makeIdentity(*config, clock);

  // One thread waits for the stop signal whatever apid is doing: getting its first
  // certificate can take a while (a control plane not up yet), and must stop on request.
  std::mutex mu;
  std::condition_variable cv;
  int sig = 0;
  std::thread([&] {
    const int s = keel::waitForStopSignal(signals);
    {
      std::lock_guard lock(mu);
      sig = s;
    }
    cv.notify_all();
    if (identity) identity->stop();
  }).detach();

  if (identity) {
    if (const auto st = identity->obtain(); !st.isOk()) {
      spdlog::info("apid: stopped before it had a certificate");
      return 0;
    }
    identity->startRenewing();
  }
  auto apid = keel::apid::Apid::start(*config, clock);
  if (!apid.ok()) {
    spdlog::error("apid: {}", apid.status().message());
    return 1;
  }
  {
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return sig != 0; });
  }
  spdlog::info("apid: signal {} received; stopping", sig);
  (*apid)->shutdown(kDrain);
  if (identity) identity->stop();
  return 0;
}
