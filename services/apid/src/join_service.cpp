#include "join_service.h"

#include <fmt/format.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/generic/generic_stub.h>

#include "forwarders.h"
#include "keel/authz/authz.h"
#include "keel/transport/peer_address.h"

namespace keel::apid {

namespace {

constexpr auto kTrustdTimeout = std::chrono::seconds(10);
bool isJoinListenerMethod(std::string_view method) {
  return method == kJoinMethod || method == kRenewMethod || method == kRevocationListMethod;
}

// One call on the join listener: accepted (announced on the listener's queue), then read,
// forwarded to trustd and answered on the gateway's queue. It deletes itself when no
// operation is in flight and gRPC said the call is done; it writes one audit line.
class JoinCall final : public ServerCall {
 public:
  JoinCall(JoinListener& listener, grpc::ServerCompletionQueue* cq) : ServerCall(cq), listener_(listener) {}

  void arm() {
    ctx_.AsyncNotifyWhenDone(&doneOp_);
    listener_.service().RequestCall(&ctx_, &stream_, cq_, listener_.announcements(), &acceptOp_);
  }

  void settle() override {
    if (pending_ != 0 || !doneSeen_) return;
    if (accepted_) {
      AuditRecord r;
      r.peer = ctx_.peer();
      r.identity = ctx_.method() == kRenewMethod ? "<renewing node>" : "<joining node>";
      r.method = ctx_.method();
      r.allowed = outcome_.ok();
      r.code = static_cast<StatusCode>(outcome_.error_code());
      if (!outcome_.ok()) r.reason = outcome_.error_message();
      r.duration = std::chrono::duration_cast<std::chrono::microseconds>(listener_.clock().now() - started_);
      if (!r.allowed) {
        listener_.refusals().refused(r);
      } else if (ctx_.method() == kRevocationListMethod) {
        listener_.listFetches().refused(r);
      } else {
        listener_.audit()->write(r);
      }
    }
    delete this;
  }

 private:
  void onAccept(bool ok) {
    if (!ok) {
      // The listener is shutting down and this call never started.
      delete this;
      return;
    }
    (new JoinCall(listener_, cq_))->arm();
    accepted_ = true;
    started_ = listener_.clock().now();
    started();  // the done notification, armed in arm()
    if (!isJoinListenerMethod(ctx_.method())) {
      finish(grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                          fmt::format("the join listener serves {}, {} and {} only; every other call goes to port 50000",
                                      kJoinMethod, kRenewMethod, kRevocationListMethod)));
    } else {
      started();
      stream_.Read(&req_, &readOp_);
    }
    settle();
  }

  void onRequest(bool ok) {
    completed();
    if (!ok) {
      finishWithoutRequest();
      settle();
      return;
    }
    // Nothing the caller sent besides the request travels on: no metadata but its address.
    channel_ = listener_.trustd();
    stub_ = std::make_unique<grpc::GenericStub>(channel_);
    upstream_.AddMetadata(std::string(authz::kPeerKey), ctx_.peer());
    auto deadline = std::chrono::system_clock::now() + kTrustdTimeout;
    if (hasDeadline(ctx_.deadline())) deadline = std::min(deadline, ctx_.deadline());
    upstream_.set_deadline(deadline);
    upstreamStarted_ = true;
    unary_ = stub_->PrepareUnaryCall(&upstream_, ctx_.method(), req_, cq_);
    unary_->StartCall();
    started();
    unary_->Finish(&resp_, &upStatus_, &upstreamOp_);
    settle();
  }

  void onUpstream(bool /*ok*/) {
    completed();
    if (upStatus_.error_code() == grpc::StatusCode::UNAVAILABLE) {
      listener_.retire();
      upStatus_ = grpc::Status(grpc::StatusCode::UNAVAILABLE, "this node's certificate authority (trustd) is not reachable");
    }
    if (clientGone()) {
      recordOutcome(upStatus_);
    } else if (upStatus_.ok()) {
      finishWith(resp_, upStatus_);
    } else {
      finish(upStatus_);
    }
    settle();
  }

  void onDone(bool /*ok*/) {
    completed();
    doneSeen_ = true;
    if (ctx_.IsCancelled() && upstreamStarted_) upstream_.TryCancel();
    settle();
  }

  JoinListener& listener_;
  bool accepted_ = false;
  bool doneSeen_ = false;
  bool upstreamStarted_ = false;
  TimePoint started_{};
  grpc::ByteBuffer req_;
  grpc::ByteBuffer resp_;
  grpc::Status upStatus_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<grpc::GenericStub> stub_;
  grpc::ClientContext upstream_;
  std::unique_ptr<grpc::GenericClientAsyncResponseReader> unary_;
  OpOf<JoinCall, &JoinCall::onAccept> acceptOp_{this};
  OpOf<JoinCall, &JoinCall::onRequest> readOp_{this};
  OpOf<JoinCall, &JoinCall::onUpstream> upstreamOp_{this};
  OpOf<JoinCall, &JoinCall::onDone> doneOp_{this};
};

}  // namespace

void RefusalSummary::refused(const AuditRecord& record) {
  const TimePoint now = clock_.now();
  flush(now, false);
  const auto address = transport::peerAddress(record.peer);
  std::string source = address.ok() ? transport::addressBlock(*address, kIpv6PrefixBits) : record.peer;
  if (!windows_.contains(source) && windows_.size() >= kMaxSources) source = "other sources";
  auto [it, first] = windows_.try_emplace(source, Window{now, 0, record});
  if (first) {
    audit_->write(record);
    return;
  }
  ++it->second.more;
  it->second.last = record;
}

void RefusalSummary::flush() { flush(clock_.now(), false); }

void RefusalSummary::flush(TimePoint now, bool all) {
  for (auto it = windows_.begin(); it != windows_.end();) {
    const Window& w = it->second;
    if (!all && now - w.start < kWindow) {
      ++it;
      continue;
    }
    if (w.more > 0) {
      AuditRecord summary = w.last;
      summary.event = "summary";
      summary.peer = it->first;
      summary.count = w.more;
      summary.duration = std::chrono::duration_cast<std::chrono::microseconds>(now - w.start);
      summary.reason = what_ + " after the first in this window" + (w.last.reason.empty() ? "" : "; the last: " + w.last.reason);
      audit_->write(summary);
    }
    it = windows_.erase(it);
  }
}

JoinListener::JoinListener(std::filesystem::path trustdSocket, AuditLog* audit, const Clock& clock)
    : trustdSocket_(std::move(trustdSocket)),
      audit_(audit),
      clock_(clock),
      refusals_(audit, clock),
      listFetches_(audit, clock, "revocation-list fetches") {}

JoinListener::~JoinListener() { stop(); }

void JoinListener::registerWith(grpc::ServerBuilder& builder) {
  builder.RegisterAsyncGenericService(&service_);
  // gRPC wants a server to have a queue marked frequently polled; no thread blocks on it,
  // the gateway's thread looks at it between its own events.
  announcements_ = builder.AddCompletionQueue();
}

void JoinListener::start(grpc::ServerCompletionQueue* callQueue) {
  // Joins are rare: two calls may be accepted at once.
  for (int i = 0; i < 2; ++i) (new JoinCall(*this, callQueue))->arm();
}

void JoinListener::drain() {
  void* tag = nullptr;
  bool ok = false;
  while (announcements_->AsyncNext(&tag, &ok, gpr_inf_past(GPR_CLOCK_MONOTONIC)) ==
         grpc::CompletionQueue::GOT_EVENT) {
    static_cast<Op*>(tag)->complete(ok);
  }
  refusals_.flush();
  listFetches_.flush();
}

void JoinListener::stop() {
  if (stopped_ || !announcements_) return;
  stopped_ = true;
  announcements_->Shutdown();
  void* tag = nullptr;
  bool ok = false;
  while (announcements_->Next(&tag, &ok)) static_cast<Op*>(tag)->complete(ok);
  refusals_.flushAll();
  listFetches_.flushAll();
}

std::shared_ptr<grpc::Channel> JoinListener::trustd() {
  if (!trustd_) trustd_ = grpc::CreateChannel("unix:" + trustdSocket_.string(), grpc::InsecureChannelCredentials());
  return trustd_;
}

void JoinListener::retire() { trustd_.reset(); }

}  // namespace keel::apid
