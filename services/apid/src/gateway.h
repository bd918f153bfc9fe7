// The gRPC side of apid: a generic service that receives every call on :50000,
// authenticates and authorizes it (call_policy.h), audits it, and forwards its bytes to
// the backend that serves the method, or to the target nodes' apid. Messages are never
// deserialized; a fan-out only stamps each reply with the node it came from.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/generic/async_generic_service.h>

#include "audit.h"
#include "call_policy.h"
#include "channels.h"
#include "keel/common/clock.h"
#include "routes.h"

namespace keel::apid {

struct GatewayOptions {
  std::vector<std::string> selfNames;  // the node's address first, then its other names
  std::chrono::milliseconds forwardTimeout{30'000};
};

struct GatewayDeps {
  std::function<std::shared_ptr<const Routes>()> routes;  // the current routing table
  BackendChannels* backends = nullptr;
  PeerChannels* peers = nullptr;  // null: this node does not forward
  AuditLog* audit = nullptr;
  IdentityCache* identities = nullptr;
  const Clock* clock = nullptr;
};

class Gateway final : public grpc::CallbackGenericService {
 public:
  Gateway(GatewayOptions options, GatewayDeps deps) : options_(std::move(options)), deps_(std::move(deps)) {}

  grpc::ServerGenericBidiReactor* CreateReactor(grpc::GenericCallbackServerContext* ctx) override;

 private:
  GatewayOptions options_;
  GatewayDeps deps_;
};

}  // namespace keel::apid
