// keelctl's commands against a node's machine API: version, services, logs, system
// facts, files, configuration and power. Each prints a table by default, or JSON/YAML.
#pragma once

#include <chrono>
#include <istream>
#include <ostream>
#include <string>

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

}  // namespace keel::keelctl
