// apid: the network edge of a node. Wiring only: the flags, the sandbox, the signal
// handling; everything else is in src/.
#include <signal.h>

#include <chrono>
#include <cstdlib>
#include <iostream>

#include <CLI/CLI.hpp>
#include <absl/synchronization/mutex.h>
#include <spdlog/spdlog.h>

#include "apid.h"
#include "apid_config.h"
#include "keel/common/clock.h"
#include "keel/common/version.h"
#include "keel/sandbox/sandbox.h"
#include "keel/transport/tls.h"

namespace keel::apid {
extern const std::string_view kSeccompPolicy;
}

namespace {

constexpr auto kDrain = std::chrono::seconds(2);

keel::Status confine() {
  auto policy = keel::sandbox::parsePolicy(keel::apid::kSeccompPolicy);
  if (!policy.ok()) return policy.status().withContext("apid's seccomp.policy");
  keel::sandbox::SandboxOptions options;
  options.policy = std::move(policy).value();
  options.allThreads = true;
  return keel::sandbox::apply(options);
}

}  // namespace

int main(int argc, char** argv) {
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
  spdlog::set_level(spdlog::level::from_str(level));
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %^%l%$ %v", spdlog::pattern_time_type::utc);

  auto config = keel::apid::readApidConfigFile(configPath);
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
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  keel::SystemClock clock;
  auto apid = keel::apid::Apid::start(*config, clock);
  if (!apid.ok()) {
    spdlog::error("apid: {}", apid.status().message());
    return 1;
  }
  int sig = 0;
  sigwait(&signals, &sig);
  spdlog::info("apid: signal {} received; stopping", sig);
  (*apid)->shutdown(kDrain);
  return 0;
}
