#include "src/state/config_store.h"

#include <algorithm>
#include <filesystem>

#include <spdlog/spdlog.h>

#include "keel/config/file_io.h"

namespace keel::machined {

namespace fs = std::filesystem;
using config::MachineConfig;

std::string_view applyModeName(ApplyMode mode) {
  switch (mode) {
    case ApplyMode::kAuto: return "auto";
    case ApplyMode::kNoReboot: return "no-reboot";
    case ApplyMode::kReboot: return "reboot";
    case ApplyMode::kTry: return "try";
  }
  return "auto";
}

namespace {

// Fields a running node can take on without restarting its services.
// machine.upgrade is read by each Upgrade call. The join tokens and the OS CA: machined
// rewrites them into trustd's and apid's files and restarts trustd (node.cpp, applyTrust).
// The Kubernetes, etcd and aggregator CAs are only held for what runs on top.
constexpr std::string_view kLiveFields[] = {"machine.certSANs", "machine.network.hostname",
                                            "machine.files",    "machine.upgrade",
                                            "machine.token",    "machine.trustd.acceptedTokens",
                                            "machine.ca",       "cluster.ca",
                                            "cluster.etcd.ca",  "cluster.aggregatorCA"};

}  // namespace

bool fieldAppliesLive(std::string_view field) {
  return std::find(std::begin(kLiveFields), std::end(kLiveFields), field) != std::end(kLiveFields);
}

std::vector<std::string> changedFields(const MachineConfig& a, const MachineConfig& b) {
  std::vector<std::string> out;
  auto diff = [&](bool differs, const char* name) {
    if (differs) out.emplace_back(name);
  };
  diff(a.type != b.type, "machine.type");
  diff(a.token != b.token, "machine.token");
  diff(a.ca != b.ca, "machine.ca");
  diff(a.certSans != b.certSans, "machine.certSANs");
  diff(a.hostname != b.hostname, "machine.network.hostname");
  diff(a.allowedFileRoots != b.allowedFileRoots, "machine.files");
  diff(a.extensions != b.extensions, "machine.extensions");
  diff(a.backends != b.backends, "machine.backends");
  diff(a.imageSigningKey != b.imageSigningKey, "machine.upgrade");
  diff(a.clusterName != b.clusterName, "cluster.name");
  diff(a.clusterId != b.clusterId, "cluster.id");
  diff(a.clusterSecret != b.clusterSecret, "cluster.secret");
  diff(a.controlPlaneEndpoint != b.controlPlaneEndpoint, "cluster.controlPlane.endpoint");
  diff(a.bootstrapToken != b.bootstrapToken, "cluster.token");
  diff(a.trustd.acceptedTokens != b.trustd.acceptedTokens, "machine.trustd.acceptedTokens");
  diff(a.secretboxKey != b.secretboxKey, "cluster.secretboxEncryptionSecret");
  diff(a.kubernetesCa != b.kubernetesCa, "cluster.ca");
  diff(a.etcdCa != b.etcdCa, "cluster.etcd.ca");
  diff(a.aggregatorCa != b.aggregatorCa, "cluster.aggregatorCA");
  diff(a.serviceAccountKey != b.serviceAccountKey, "cluster.serviceAccount");
  // Anything the comparison above does not name still counts as a change that needs a
  // reboot, also when it comes with changes that apply live.
  MachineConfig rest = b;
  rest.certSans = a.certSans;
  rest.hostname = a.hostname;
  rest.allowedFileRoots = a.allowedFileRoots;
  rest.imageSigningKey = a.imageSigningKey;
  rest.token = a.token;
  rest.trustd.acceptedTokens = a.trustd.acceptedTokens;
  rest.ca = a.ca;
  rest.kubernetesCa = a.kubernetesCa;
  rest.etcdCa = a.etcdCa;
  rest.aggregatorCa = a.aggregatorCa;
  const bool allLive = std::all_of(out.begin(), out.end(), [](const std::string& f) { return fieldAppliesLive(f); });
  if (allLive && !(rest == a)) out.emplace_back("(other)");
  return out;
}

ConfigStore::ConfigStore(NodePaths paths, const Clock& clock) : paths_(std::move(paths)), clock_(clock) {}

Status ConfigStore::load(const std::optional<fs::path>& initial) {
  std::error_code ec;
  fs::create_directories(paths_.etcDir(), ec);
  if (ec) return internalError("cannot create " + paths_.etcDir().string() + ": " + ec.message());
  fs::permissions(paths_.etcDir(), fs::perms::owner_all, fs::perm_options::replace, ec);

  MachineConfig loaded;
  if (fs::exists(paths_.configFile())) {
    KEEL_ASSIGN_OR_RETURN(loaded, config::readMachineConfigFile(paths_.configFile()));
    if (initial) {
      spdlog::info("machined: using the stored machine config {}; --config {} applies only to a new node",
                   paths_.configFile().string(), initial->string());
    }
  } else {
    if (!initial) {
      return failedPrecondition("no machine config stored at " + paths_.configFile().string() +
                                " and none given: start the node with --config FILE");
    }
    KEEL_ASSIGN_OR_RETURN(loaded, config::readMachineConfigFile(*initial));
    KEEL_RETURN_IF_ERROR(config::writeMachineConfigFile(paths_.configFile(), loaded, config::Overwrite::kNo));
  }
  std::lock_guard lock(mu_);
  current_ = std::move(loaded);
  return Status::ok();
}

MachineConfig ConfigStore::current() const {
  std::lock_guard lock(mu_);
  return current_;
}

Status ConfigStore::writeCurrent(const MachineConfig& next) {
  // Keep the version being replaced, then swap in the new one atomically.
  KEEL_RETURN_IF_ERROR(config::writeMachineConfigFile(paths_.previousConfigFile(), current_, config::Overwrite::kYes));
  return config::writeMachineConfigFile(paths_.configFile(), next, config::Overwrite::kYes);
}

Result<ApplyOutcome> ConfigStore::apply(std::string_view json, ApplyMode mode, std::chrono::seconds tryTimeout,
                                        const MachineConfig* basedOn) {
  KEEL_ASSIGN_OR_RETURN(MachineConfig next, config::parseMachineConfig(json));
  ApplyOutcome outcome;
  {
    std::lock_guard lock(mu_);
    if (basedOn != nullptr && !(*basedOn == current_)) {
      return Status(StatusCode::kAborted, "the machine config changed while this change was made; try again");
    }
    if (pending_ && mode != ApplyMode::kTry) {
      return failedPrecondition("a configuration applied in try mode is pending until " +
                                formatTime(pending_->deadline) + "; confirm it or let it roll back first");
    }
    outcome.changedFields = changedFields(current_, next);
    std::vector<std::string> needReboot;
    for (const auto& f : outcome.changedFields) {
      if (!fieldAppliesLive(f)) needReboot.push_back(f);
    }
    std::string rebootList;
    for (const auto& f : needReboot) rebootList += (rebootList.empty() ? "" : ", ") + f;

    if (mode == ApplyMode::kAuto) mode = needReboot.empty() ? ApplyMode::kNoReboot : ApplyMode::kReboot;
    if ((mode == ApplyMode::kNoReboot || mode == ApplyMode::kTry) && !needReboot.empty()) {
      return failedPrecondition("mode " + std::string(applyModeName(mode)) + " cannot apply changes to " +
                                rebootList + ": they take effect only after a reboot (use mode reboot)");
    }
    if (mode == ApplyMode::kTry && (tryTimeout.count() <= 0 || tryTimeout > std::chrono::hours(24))) {
      return invalidArgument("try timeout must be between 1s and 24h, got " + std::to_string(tryTimeout.count()) +
                             "s");
    }
    outcome.mode = mode;
    outcome.rebootRequired = mode == ApplyMode::kReboot;
    if (outcome.changedFields.empty()) outcome.warnings.emplace_back("the configuration did not change");

    const MachineConfig previous = current_;
    KEEL_RETURN_IF_ERROR(writeCurrent(next));
    current_ = next;
    if (mode == ApplyMode::kTry) {
      if (!pending_) pending_ = PendingTry{previous, {}};
      pending_->deadline = clock_.now() + tryTimeout;
      outcome.summary = "applied in try mode; rolls back at " + formatTime(pending_->deadline) +
                        " unless confirmed";
    } else if (mode == ApplyMode::kReboot) {
      outcome.summary = "stored; takes effect after the reboot that follows";
    } else {
      outcome.summary = "applied without reboot";
    }
  }
  if (eventSink_) eventSink_("applied", std::string(applyModeName(outcome.mode)) + ": " + outcome.summary);
  if (!outcome.rebootRequired && liveApplier_) liveApplier_(next);
  return outcome;
}

Result<std::string> ConfigStore::confirm() {
  {
    std::lock_guard lock(mu_);
    if (!pending_) return failedPrecondition("no configuration applied in try mode is waiting for confirmation");
    pending_.reset();
  }
  if (eventSink_) eventSink_("confirmed", "the configuration applied in try mode is now permanent");
  return std::string("confirmed");
}

bool ConfigStore::expireTry() {
  MachineConfig restored;
  {
    std::lock_guard lock(mu_);
    if (!pending_ || clock_.now() < pending_->deadline) return false;
    restored = pending_->previous;
    const Status st = writeCurrent(restored);
    if (!st.isOk()) {
      // Keep the pending state so the next tick tries again.
      spdlog::error("machined: rolling back the tried configuration failed: {}", st.toString());
      return false;
    }
    current_ = restored;
    pending_.reset();
  }
  spdlog::warn("machined: the configuration applied in try mode was not confirmed in time; rolled back");
  if (eventSink_) eventSink_("rolled-back", "the configuration applied in try mode was not confirmed in time");
  if (liveApplier_) liveApplier_(restored);
  return true;
}

std::optional<TimePoint> ConfigStore::tryDeadline() const {
  std::lock_guard lock(mu_);
  if (!pending_) return std::nullopt;
  return pending_->deadline;
}

}  // namespace keel::machined
