// trustd: the OS certificate authority of a control-plane node. Wiring only: the backend
// SDK (libs/backend) runs the daemon around it (flags, logs, sandbox, trustd.sock behind
// the peer allow-list, health, signals); the issuing logic is in src/authority.h.
#include <sys/socket.h>

#include <chrono>
#include <cstdlib>
#include <memory>
#include <optional>

#include <spdlog/spdlog.h>

#include "keel/backend/daemon.h"
#include "keel/common/clock.h"

#include "authority.h"
#include "security_service.h"
#include "trustd_config.h"

namespace keel::trustd {
extern const std::string_view kSeccompPolicy;
}

namespace {

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

keel::backend::DaemonSpec trustdSpec() {
  keel::backend::DaemonSpec spec;
  spec.name = "trustd";
  spec.summary = "the OS certificate authority of a control-plane node (serves trustd.sock only)";
  spec.seccompPolicy = keel::trustd::kSeccompPolicy;
  // CSRs and certificates are a few KiB; nothing legitimate comes near this. Replies are
  // not capped: the revocation list grows with what is revoked.
  spec.maxMessageBytes = 64 * 1024;
  spec.maxReplyBytes = -1;
  spec.shutdownGrace = std::chrono::seconds(2);
  // trustd serves its two APIs and health, nothing that describes them.
  spec.reflection = false;
  return spec;
}

// What trustd serves, built once the daemon is confined.
struct Trustd {
  keel::trustd::TrustdConfig config;
  keel::SystemClock clock;
  std::unique_ptr<keel::trustd::Authority> authority;
  std::unique_ptr<keel::trustd::SecurityServiceImpl> security;
  std::unique_ptr<keel::trustd::LocalIssuerServiceImpl> local;
  std::unique_ptr<keel::backend::ServiceRules> localRules;

  keel::Status setUp(keel::backend::Daemon& daemon) {
#ifdef KEEL_TEST_HOOKS
    forbiddenCallForTests();
#endif
    auto created = keel::trustd::Authority::create(config, clock);
    if (!created.ok()) return created.status().withContext("trustd");
    authority = std::move(created).value();
    security = std::make_unique<keel::trustd::SecurityServiceImpl>(authority.get());
    // apid's own certificates: not routed by apid, and refused to any call it forwarded.
    local = std::make_unique<keel::trustd::LocalIssuerServiceImpl>(authority.get());
    localRules = std::make_unique<keel::backend::ServiceRules>(
        keel::security::v1::LocalIssuerService::service_full_name());
    KEEL_RETURN_IF_ERROR(daemon.serve(*security));
    KEEL_RETURN_IF_ERROR(daemon.add(*local, *localRules));
    daemon.whenServing([this] {
      spdlog::info("trustd: serving on {} for {} uid(s); node certificates live {} s", config.socket.string(),
                   config.allowedUids.size(), config.nodeCertTtl.count());
    });
    return keel::Status::ok();
  }
};

}  // namespace

int main(int argc, char** argv) {
  Trustd trustd;
  auto spec = trustdSpec();
  spec.readConfig = [&trustd](const std::filesystem::path& path) -> keel::Result<keel::backend::BackendConfig> {
    auto config = keel::contracts::readTrustdConfigFile(path);
    if (!config.ok()) return config.status().withContext("trustd");
    trustd.config = std::move(config).value();
    return keel::trustd::backendConfigOf(trustd.config, path);
  };
  return keel::backend::runDaemon(argc, argv, spec, [&trustd](keel::backend::Daemon& d) { return trustd.setUp(d); });
}
