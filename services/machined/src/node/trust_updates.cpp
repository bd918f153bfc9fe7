// The node unit for live trust changes: new join tokens or a CA rotation step reach trustd and apid.
#include "src/node/node.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "keel/config/join_tokens.h"
#include "keel/supervisor/supervisor.h"
#include "src/state/event_journal.h"
#include "src/trust/apid_identity.h"

#include "src/node/node_detail.h"

namespace keel::machined {

namespace fs = std::filesystem;

void Node::applyTrust(const config::MachineConfig& cfg) {
  const bool controlPlane = cfg.type == config::MachineType::kControlPlane;
  // trustd first: the CA it issues with is in place before apid asks for certificates under it.
  const std::string service = controlPlane ? "trustd" : "apid";
  const fs::path file = paths_.stateDir(service) / "config.json";
  if (fs::exists(file)) {
    const auto changed = rewriteServiceTrust(cfg, file);
    if (!changed.ok()) {
      spdlog::error("machined: the new join tokens or CAs did not reach {}: {}", service, changed.status().message());
      journal_->record("config", "trust", "failed", changed.status().message());
    } else if (*changed && controlPlane) {
      const Status restarted = supervisor_ ? supervisor_->restart("trustd") : Status::ok();
      const std::string message = fmt::format("trustd restarted with {} accepted join tokens and {} OS CAs",
                                              config::acceptedJoinTokens(cfg).size(), 1 + cfg.ca.accepted.size());
      spdlog::info("machined: {}", restarted.isOk() ? message : "restarting trustd failed: " + restarted.message());
      journal_->record("config", "trust", restarted.isOk() ? "applied" : "failed",
                       restarted.isOk() ? message : restarted.message());
    } else if (*changed) {
      // apid presents the token only to join again; it renews with its certificate.
      journal_->record("config", "join-tokens", "applied", "apid joins with the new machine.token from its next start");
    }
  }
  const fs::path apidDir = paths_.stateDir("apid");
  if (!fs::exists(apidDir / kApidCaFile)) return;  // apid not set up on this node
  std::optional<std::pair<uid_t, gid_t>> owner;
  if (geteuid() == 0) {
    const auto account = serviceAccount("apid", true);
    if (account.ok()) owner = *account;
  }
  const auto bundle = rewriteApidCaBundle(cfg, apidDir, owner);
  if (!bundle.ok()) {
    spdlog::error("machined: apid's CA bundle was not updated: {}", bundle.status().message());
    journal_->record("config", "certificate-authorities", "failed", bundle.status().message());
  } else if (*bundle) {
    const std::string message = fmt::format("apid accepts {} OS CAs; it re-issues its certificates when the issuing "
                                            "one changed", 1 + cfg.ca.accepted.size());
    spdlog::info("machined: {}", message);
    journal_->record("config", "certificate-authorities", "applied", message);
  }
}

}  // namespace keel::machined
