// The node's machine configuration on disk and its changes: validation, atomic writes
// that keep the previous version, and the `try` mode that rolls a change back unless
// it is confirmed in time. Plain C++: the gRPC adapter converts requests to calls here.
#pragma once

#include <chrono>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "keel/common/clock.h"
#include "keel/common/status.h"
#include "keel/config/machine_config.h"
#include "src/paths.h"

namespace keel::machined {

enum class ApplyMode { kAuto, kNoReboot, kReboot, kTry };
std::string_view applyModeName(ApplyMode mode);

struct ApplyOutcome {
  ApplyMode mode = ApplyMode::kAuto;  // the mode actually used (never kAuto)
  bool rebootRequired = false;        // the caller must now reboot the node
  std::vector<std::string> changedFields;
  std::vector<std::string> warnings;
  std::string summary;
};

// Top-level fields whose change takes effect without a reboot.
bool fieldAppliesLive(std::string_view field);
// Names of the fields that differ between two configs ("machine.certSANs", …).
std::vector<std::string> changedFields(const config::MachineConfig& a, const config::MachineConfig& b);

class ConfigStore {
 public:
  // Called after a live change (apply, rollback), outside the store's lock.
  using LiveApplier = std::function<void(const config::MachineConfig&)>;
  // Called on every config event: (state, message). Outside the store's lock.
  using EventSink = std::function<void(const std::string& state, const std::string& message)>;

  ConfigStore(NodePaths paths, const Clock& clock);

  // Loads the stored config; when none is stored yet, validates `initial` and stores it.
  // A stored config wins over `initial` (it may have been changed through the API).
  Status load(const std::optional<std::filesystem::path>& initial);

  void setLiveApplier(LiveApplier applier) { liveApplier_ = std::move(applier); }
  void setEventSink(EventSink sink) { eventSink_ = std::move(sink); }

  config::MachineConfig current() const;

  // Validates `json` as a whole config; nothing is written when it is invalid or the
  // mode cannot apply it (INVALID_ARGUMENT / FAILED_PRECONDITION naming the fields).
  // kTry arms a rollback after `tryTimeout`: call expireTry() when it passes. With
  // `basedOn`, the change was computed from that config: ABORTED when the current one is
  // another by now (a change made meanwhile is never overwritten unseen).
  Result<ApplyOutcome> apply(std::string_view json, ApplyMode mode, std::chrono::seconds tryTimeout,
                             const config::MachineConfig* basedOn = nullptr);

  // Makes a tried config permanent. FAILED_PRECONDITION when nothing is being tried.
  Result<std::string> confirm();

  // When a try is pending and its deadline has passed, restores the previous config.
  // Returns true when it rolled back. Thread-safe; meant for a periodic timer.
  bool expireTry();

  // Deadline of the pending try, if any.
  std::optional<TimePoint> tryDeadline() const;

 private:
  Status writeCurrent(const config::MachineConfig& next);

  NodePaths paths_;
  const Clock& clock_;
  mutable std::mutex mu_;
  config::MachineConfig current_;
  struct PendingTry {
    config::MachineConfig previous;
    TimePoint deadline;
  };
  std::optional<PendingTry> pending_;
  LiveApplier liveApplier_;
  EventSink eventSink_;
};

}  // namespace keel::machined
