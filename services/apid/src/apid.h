// apid assembled: the mTLS listener with its limits and hot-reloaded certificates, the
// gateway, the audit log, and a routing table that follows the backends directory.
#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>

#include <grpcpp/server.h>

#include "keel/contracts/apid_config.h"
#include "audit.h"
#include "admission.h"
#include "channels.h"
#include "gateway.h"
#include "revocation_fetch.h"
#include "join_service.h"
#include "local_services.h"
#include "keel/common/clock.h"
#include "routes.h"

namespace keel::apid {

class Apid {
 public:
  // Starts listening. Errors: FAILED_PRECONDITION naming a missing or unreadable
  // certificate file, UNAVAILABLE when the address cannot be bound.
  static Result<std::unique_ptr<Apid>> start(const contracts::ApidConfig& config, const Clock& clock);
  ~Apid();

  // The port actually bound (the configured one, or the one picked for port 0).
  int port() const { return port_; }
  // The join listener's port; 0 when apid has none.
  int joinPort() const { return joinPort_; }
  // Stops accepting calls; open calls get `grace` to finish. Idempotent.
  void shutdown(std::chrono::milliseconds grace);

  std::shared_ptr<const Routes> routes() const;

 private:
  explicit Apid(const contracts::ApidConfig& config, const Clock& clock) : config_(config), clock_(clock) {}
  void watchBackends();
  void startRevocationKeeper();
  Status startApiServer();
  Status startJoinServer();

  contracts::ApidConfig config_;
  const Clock& clock_;
  std::unique_ptr<AuditLog> audit_;
  IdentityCache identities_;
  RevocationList revocations_;
  std::unique_ptr<RevocationKeeper> revocationKeeper_;
  std::unique_ptr<BackendChannels> backends_;
  std::unique_ptr<PeerChannels> peers_;
  std::unique_ptr<ChannelRouter> upstreams_;
  std::unique_ptr<Gateway> gateway_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  std::unique_ptr<JoinListener> join_;
  std::unique_ptr<grpc::Server> joinServer_;
  int joinPort_ = 0;

  mutable std::mutex mu_;
  std::shared_ptr<const Routes> routes_;
  std::condition_variable stopCv_;
  bool stopping_ = false;
  std::thread watcher_;
};

}  // namespace keel::apid
