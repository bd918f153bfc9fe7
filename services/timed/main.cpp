// timed: Keel's reference extension daemon. It reads the node's clocks for any client
// role and can set none of them. Everything around the service (config, logs, sandbox,
// socket, health, reflection, shutdown) is the backend SDK's (libs/backend).
#include "keel/backend/daemon.h"
#include "time_service.h"

int main(int argc, char** argv) {
  keel::backend::DaemonSpec spec;
  spec.name = "timed";
  spec.summary = "the node's wall, monotonic and boot clocks and their synchronization, read-only";
  spec.seccompPolicy = keel::backend::kDaemonPolicy;
  spec.maxMessageBytes = 64 * 1024;
  std::unique_ptr<keel::timed::TimeServiceImpl> service;
  return keel::backend::runDaemon(argc, argv, spec, [&](keel::backend::Daemon& daemon) {
    service = std::make_unique<keel::timed::TimeServiceImpl>(daemon.config().nodeAddress,
                                                             [] { return keel::timed::readClocks(); });
    return daemon.serve(*service);
  });
}
