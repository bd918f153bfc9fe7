// The gRPC side of apid: a generic service that receives every call on :50000, has the
// admission step decide it (admission.h), audits the decision, and hands an admitted call
// to a forwarder (forwarders.h), which sends its bytes to the backend that serves the
// method or to the target nodes' apid; apid's own health and reflection are answered on
// the same queues (local_services.h). Messages are never deserialized; a fan-out only
// stamps each reply with the node it came from.
//
// Calls run on completion queues, one thread each. A call's own operations and those of
// the upstream calls it makes all complete on the queue it arrived on, so one thread
// handles a whole call: no locks and no thread hops on the forwarding path.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/server_builder.h>

#include "admission.h"
#include "audit.h"
#include "forwarders.h"
#include "routes.h"

namespace keel::apid {

struct GatewayOptions {
  std::vector<std::string> selfNames;  // the node's address first, then its other names
  bool mayForward = false;             // this node holds an impersonator certificate
  std::chrono::milliseconds forwardTimeout{30'000};
  int threads = 2;                     // completion queues, one thread each
  std::size_t maxTargets = kDefaultMaxTargets;
  std::chrono::milliseconds healthTimeout{5000};  // a backend's own health check (local_services.h)
  const RevocationList* revocations = nullptr;    // certificates refused in admission; null: none
};

// Who presents a call: the identity of its verified client certificate; null when it has
// none. Errors: UNAUTHENTICATED with the reason a certificate cannot be read.
using PeerIdentifier = std::function<Result<std::shared_ptr<const PeerIdentity>>(const grpc::ServerContextBase&)>;

// The identity of the TLS session's leaf certificate, read through `cache`.
PeerIdentifier certificateIdentifier(IdentityCache& cache);

struct GatewayDeps {
  std::function<std::shared_ptr<const Routes>()> routes;  // the current routing table
  Upstreams* upstreams = nullptr;
  AuditLog* audit = nullptr;
  PeerIdentifier identify;
};

// How long the side drain waits at most when no call is running.
inline constexpr std::chrono::milliseconds kSideDrainPeriod{50};

class Gateway {
 public:
  Gateway(GatewayOptions options, GatewayDeps deps) : options_(std::move(options)), deps_(std::move(deps)) {}
  ~Gateway();

  // Before the server is built: registers the generic service and its queues.
  void registerWith(grpc::ServerBuilder& builder);
  // Before start(): `drain` also runs on the first queue's thread, between its events,
  // about every kSideDrainPeriod, without blocking (the join listener's announcements,
  // join_service.h).
  void alsoDrain(std::function<void()> drain) { sideDrain_ = std::move(drain); }
  // The first queue, whose thread runs the side drain.
  grpc::ServerCompletionQueue* firstQueue() { return queues_.front().get(); }
  // After the server started: serves calls.
  void start();
  // After the server's Shutdown(): drains the queues and joins the threads.
  void stop();

  // For the calls of gateway.cpp.
  const GatewayOptions& options() const { return options_; }
  const GatewayDeps& deps() const { return deps_; }
  grpc::AsyncGenericService& service() { return service_; }

 private:
  GatewayOptions options_;
  GatewayDeps deps_;
  grpc::AsyncGenericService service_;
  std::vector<std::unique_ptr<grpc::ServerCompletionQueue>> queues_;
  std::vector<std::thread> threads_;
  std::function<void()> sideDrain_;
  bool stopped_ = false;
};

}  // namespace keel::apid
