// keelctl's commands against a node's machine API: version, services, logs, system
// facts, files, configuration and power. Each prints a table by default, or JSON/YAML.
#pragma once

#include <chrono>
#include <filesystem>
#include <istream>
#include <mutex>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "keel/common/status.h"
#include "machine_client.h"

namespace keel::keelctl {

// Lets Ctrl-C end a following stream cleanly: the signal thread calls cancel(), which
// cancels the call in flight, and the command then returns OK. Thread-safe.
class StreamCancel {
 public:
  static StreamCancel& instance();
  void set(grpc::ClientContext* ctx);
  void clear();
  // Cancels the stream in flight; false when there is none (the caller then exits).
  bool cancel();
  bool cancelled() const;

 private:
  mutable std::mutex mu_;
  grpc::ClientContext* ctx_ = nullptr;
  bool cancelled_ = false;
};

struct MachineCommandEnv {
  MachineClient& client;
  OutputFormat format = OutputFormat::kTable;
  std::ostream& out;
  std::ostream& err;
  std::istream& in;   // confirmations
  bool assumeYes = false;
};

// Tallies the per-node entries of a reply (or the messages of a stream): an entry whose
// metadata carries an error is that node's failure, printed as "<node>: <error>" on
// `err`, and the other nodes' results are still shown. Not thread-safe.
class NodeResults {
 public:
  explicit NodeResults(std::ostream& err) : err_(err) {}
  // True when the entry carries data; false after reporting its node's failure.
  [[nodiscard]] bool accept(const keel::common::v1::Metadata& m);
  // OK when no node failed. Otherwise "N of M nodes failed", with the nodes' code when
  // every node failed with the same one, else UNAVAILABLE.
  Status finish() const;

 private:
  std::ostream& err_;
  std::vector<std::string> nodes_;
  std::vector<std::string> failed_;
  std::optional<StatusCode> firstCode_;
  bool sameCode_ = true;
};

// The printing halves of version and services, for a reply already received.
Status printVersions(MachineCommandEnv& env, const keel::machine::v1::VersionResponse& resp);
Status printServices(MachineCommandEnv& env, const keel::machine::v1::ServiceListResponse& resp);

Status cmdVersion(MachineCommandEnv& env);
Status cmdServices(MachineCommandEnv& env);
// action: start, stop, restart or status.
Status cmdService(MachineCommandEnv& env, const std::string& id, const std::string& action);
Status cmdLogs(MachineCommandEnv& env, const std::string& service, int tail, bool follow);
Status cmdDmesg(MachineCommandEnv& env, int tail, bool follow);
Status cmdEvents(MachineCommandEnv& env, int tail, bool follow);
Status cmdMemory(MachineCommandEnv& env);
Status cmdProcesses(MachineCommandEnv& env);
Status cmdMounts(MachineCommandEnv& env);
Status cmdUsage(MachineCommandEnv& env, const std::string& path, int depth);
// types: any of "f", "d", "l" (regular, directory, symlink).
Status cmdList(MachineCommandEnv& env, const std::string& path, int depth, const std::vector<std::string>& types);
Status cmdRead(MachineCommandEnv& env, const std::string& path);
Status cmdGetConfig(MachineCommandEnv& env);
// mode: auto, no-reboot, reboot or try.
Status cmdApplyConfig(MachineCommandEnv& env, const std::string& file, const std::string& mode,
                      std::chrono::seconds tryTimeout);
Status cmdConfirmConfig(MachineCommandEnv& env);
// action: reboot, shutdown or reset. Asks for confirmation unless env.assumeYes.
Status cmdPower(MachineCommandEnv& env, const std::string& action);

struct UpgradeArgs {
  std::filesystem::path image;
  std::filesystem::path signature;  // empty: <image>.sig
  bool noReboot = false;
};

// Streams a signed root image to one node's Upgrade, showing progress on env.err.
Status cmdUpgrade(MachineCommandEnv& env, const UpgradeArgs& args);
Status cmdRollback(MachineCommandEnv& env);

}  // namespace keel::keelctl
