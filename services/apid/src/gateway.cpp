#include "gateway.h"

#include <algorithm>
#include <random>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "keel/transport/grpc_status.h"
#include "local_services.h"

namespace keel::apid {

namespace {

std::string newRequestId() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return fmt::format("{:016x}", rng());
}

std::string toString(grpc::string_ref s) { return {s.data(), s.size()}; }

// One call received on :50000, from the moment it is accepted to the moment gRPC is done
// with it: accepted, admitted (or refused and audited), then handed to its forwarder.
// It deletes itself when no operation is in flight and gRPC said the call is done.
class Call final : public ServerCall {
 public:
  Call(Gateway& g, grpc::ServerCompletionQueue* cq) : ServerCall(cq), g_(g) {}

  void arm() {
    ctx_.AsyncNotifyWhenDone(&doneOp_);
    g_.service().RequestCall(&ctx_, &stream_, cq_, cq_, &acceptOp_);
  }

  void settle() override {
    if (pending_ == 0 && doneSeen_) {
      if (trace_) trace_->end(static_cast<StatusCode>(outcome_.error_code()));
      delete this;
    }
  }

 private:
  void onAccept(bool ok) {
    if (!ok) {
      // The server is shutting down and this call never started: gRPC delivers no done
      // notification for it and nothing else is in flight.
      delete this;
      return;
    }
    (new Call(g_, cq_))->arm();
    started();  // the done notification, armed in arm()
    admit();
    settle();
  }

  void onDone(bool /*ok*/) {
    completed();
    doneSeen_ = true;
    if (ctx_.IsCancelled()) abandon();
    settle();
  }

  void admit();
  void refuse(AuditRecord record, const Status& status);

  Gateway& g_;
  bool doneSeen_ = false;
  OpOf<Call, &Call::onAccept> acceptOp_{this};
  OpOf<Call, &Call::onDone> doneOp_{this};
};

// Nothing was forwarded: the refusal is audited and the call ends with it.
void Call::refuse(AuditRecord record, const Status& status) {
  record.allowed = false;
  record.code = status.code();
  record.reason = status.message();
  g_.deps().audit->write(record);
  finish(transport::toGrpc(status));
}

void Call::admit() {
  const auto routes = g_.deps().routes();
  AuditRecord record;
  record.method = ctx_.method();
  record.peer = ctx_.peer();

  auto identity = g_.deps().identify(ctx_);
  CallRequest request;
  request.method = record.method;
  request.peerAddress = record.peer;
  if (identity.ok()) {
    request.peer = identity->get();
  } else {
    request.identityError = identity.status();
  }
  for (const auto& [k, v] : ctx_.client_metadata()) {
    std::string key = toString(k);
    if (isTransportKey(key)) continue;
    request.metadata.emplace_back(std::move(key), toString(v));
  }
  AdmissionOptions options;
  options.mayForward = g_.options().mayForward;
  options.selfNames = g_.options().selfNames;
  options.newRequestId = newRequestId();
  options.maxTargets = g_.options().maxTargets;
  options.revocations = g_.options().revocations;
  const Admission a = admitCall(request, *routes, options);

  record.requestId = a.requestId;
  record.identity = a.identity;
  record.roles = a.roles;
  record.targets = a.targets;
  if (!a.status.isOk()) return refuse(std::move(record), a.status);

  auto& upstreams = *g_.deps().upstreams;
  if (!a.fanOut && a.upstreams.front().local && a.backend->servedByApid) {
    // apid's own services: answered here, on this call's queue.
    record.allowed = true;
    trace_ = std::make_unique<Trace>(std::move(record), g_.deps().audit, a.shape != CallShape::kUnary);
    forwarder_ = std::make_unique<LocalServicesForwarder>(*this, routes, upstreams, g_.options().healthTimeout);
    forwarder_->start();
    return;
  }
  auto channelFor = [&](const Upstream& u) { return u.local ? upstreams.backend(*a.backend) : upstreams.node(u.node); };
  if (!a.fanOut) {
    // One upstream: when it cannot be reached, the call is refused like any other, with
    // nothing forwarded.
    auto channel = channelFor(a.upstreams.front());
    if (!channel.ok()) return refuse(std::move(record), channel.status());
    record.allowed = true;
    trace_ = std::make_unique<Trace>(std::move(record), g_.deps().audit, a.shape != CallShape::kUnary);
    forwarder_ = std::make_unique<SingleForwarder>(*this, a, std::move(channel).value(), a.upstreams.front().local,
                                                   upstreams);
  } else {
    // Several nodes: one that cannot be reached is an entry with its error in the reply.
    std::vector<Result<std::shared_ptr<grpc::Channel>>> channels;
    channels.reserve(a.upstreams.size());
    for (const auto& u : a.upstreams) channels.push_back(channelFor(u));
    record.allowed = true;
    trace_ = std::make_unique<Trace>(std::move(record), g_.deps().audit, a.shape != CallShape::kUnary);
    forwarder_ = std::make_unique<FanOutForwarder>(*this, a, std::move(channels), upstreams,
                                                   g_.options().forwardTimeout);
  }
  forwarder_->start();
}

}  // namespace

PeerIdentifier certificateIdentifier(IdentityCache& cache) {
  return [&cache](const grpc::ServerContextBase& ctx) -> Result<std::shared_ptr<const PeerIdentity>> {
    const auto auth = ctx.auth_context();
    if (!auth) return std::shared_ptr<const PeerIdentity>();
    const auto pems = auth->FindPropertyValues("x509_pem_cert");
    if (pems.empty()) return std::shared_ptr<const PeerIdentity>();
    return cache.lookup(std::string_view(pems.front().data(), pems.front().size()));
  };
}

void Gateway::registerWith(grpc::ServerBuilder& builder) {
  builder.RegisterAsyncGenericService(&service_);
  const int n = std::max(1, options_.threads);
  for (int i = 0; i < n; ++i) queues_.push_back(builder.AddCompletionQueue());
}

namespace {

void drainQueue(grpc::ServerCompletionQueue* cq) {
  void* tag = nullptr;
  bool ok = false;
  while (cq->Next(&tag, &ok)) static_cast<Op*>(tag)->complete(ok);
}

// As drainQueue, and `side` between events, once per period whether calls run or not
// (each look costs a poll of its own: under load, more often showed in the profile).
void drainQueueAndSide(grpc::ServerCompletionQueue* cq, const std::function<void()>& side) {
  void* tag = nullptr;
  bool ok = false;
  auto lastSide = std::chrono::steady_clock::now();
  for (;;) {
    const auto got = cq->AsyncNext(&tag, &ok, std::chrono::system_clock::now() + kSideDrainPeriod);
    if (got == grpc::CompletionQueue::SHUTDOWN) return;
    if (got == grpc::CompletionQueue::GOT_EVENT) static_cast<Op*>(tag)->complete(ok);
    const auto now = std::chrono::steady_clock::now();
    if (got == grpc::CompletionQueue::TIMEOUT || now - lastSide >= kSideDrainPeriod) {
      side();
      lastSide = now;
    }
  }
}

}  // namespace

void Gateway::start() {
  for (auto& q : queues_) {
    auto* cq = q.get();
    // Several calls may be accepted at once on each queue.
    for (int i = 0; i < 4; ++i) (new Call(*this, cq))->arm();
    if (cq == queues_.front().get() && sideDrain_) {
      threads_.emplace_back([cq, side = sideDrain_] { drainQueueAndSide(cq, side); });
    } else {
      threads_.emplace_back([cq] { drainQueue(cq); });
    }
  }
}

void Gateway::stop() {
  if (stopped_) return;
  stopped_ = true;
  for (auto& q : queues_) q->Shutdown();
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
}

Gateway::~Gateway() { stop(); }

}  // namespace keel::apid
