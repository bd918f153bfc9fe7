// One upstream for one call (forwarders.h).
#include <string>

#include "forwarders.h"
#include "keel/common/assert.h"

namespace keel::apid {

namespace {

std::string toString(grpc::string_ref s) { return {s.data(), s.size()}; }

}  // namespace

SingleForwarder::SingleForwarder(ServerCall& call, const Admission& admission, std::shared_ptr<grpc::Channel> channel,
                                 bool local, Upstreams& upstreams)
    : call_(call),
      shape_(admission.shape),
      channel_(std::move(channel)),
      local_(local),
      upstreams_(upstreams),
      stub_(channel_) {
  for (const auto& [k, v] : admission.forward) cctx_.AddMetadata(k, v);
  if (local_) {
    for (const auto& [k, v] : admission.forwardToBackend) cctx_.AddMetadata(k, v);
  }
  if (hasDeadline(call_.context().deadline())) cctx_.set_deadline(call_.context().deadline());
}

void SingleForwarder::start() {
  const auto& method = call_.context().method();
  if (shape_ == CallShape::kClientStream) {
    upstreamStarted_ = true;
    up_ = stub_.PrepareCall(&cctx_, method, call_.queue());
    call_.started();
    up_->StartCall(&upStartOp_);
    call_.started();
    up_->Read(&resp_, &upReadOp_);
    call_.started();
    call_.stream().Read(&req_, &readOp_);
    return;
  }
  call_.started();
  call_.stream().Read(&req_, &requestOp_);
}

void SingleForwarder::cancel() {
  if (upstreamStarted_) cctx_.TryCancel();
}

void SingleForwarder::copyInitial() {
  if (initialCopied_ || !upstreamHasInitial_) return;
  initialCopied_ = true;
  for (const auto& [k, v] : cctx_.GetServerInitialMetadata()) {
    const std::string key = toString(k);
    if (!isTransportKey(key)) call_.context().AddInitialMetadata(key, toString(v));
  }
}

void SingleForwarder::copyTrailers() {
  for (const auto& [k, v] : cctx_.GetServerTrailingMetadata()) {
    const std::string key = toString(k);
    if (!isTransportKey(key)) call_.context().AddTrailingMetadata(key, toString(v));
  }
}

void SingleForwarder::finish(const grpc::Status& status) {
  if (call_.finished()) return;
  copyInitial();
  call_.finish(status);
}

// The upstream call ended with upStatus_: give a connection that failed as unavailable
// up, pass the trailers back, and end the client's call the same way.
void SingleForwarder::upstreamEnded() {
  // A backend that went away, or a node that cannot be reached or whose name does not
  // resolve: the next call connects afresh, and apid keeps nothing for a dead name.
  if (upStatus_.error_code() == grpc::StatusCode::UNAVAILABLE) upstreams_.retire(channel_);
  upstreamHasInitial_ = true;
  copyTrailers();
  if (call_.clientGone()) {
    call_.recordOutcome(upStatus_);
  } else if (shape_ == CallShape::kUnary && upStatus_.ok()) {
    copyInitial();
    call_.trace().addOut(resp_.Length());
    call_.finishWith(resp_, upStatus_);
  } else {
    finish(upStatus_);
  }
}

void SingleForwarder::onRequest(bool ok) {
  call_.completed();
  if (!ok) {
    // No request came (cut off, or refused as too large): nothing was forwarded.
    call_.finishWithoutRequest();
    call_.settle();
    return;
  }
  call_.trace().addIn(req_.Length());
  const auto& method = call_.context().method();
  upstreamStarted_ = true;
  if (shape_ == CallShape::kUnary) {
    unary_ = stub_.PrepareUnaryCall(&cctx_, method, req_, call_.queue());
    unary_->StartCall();
    call_.started();
    unary_->Finish(&resp_, &upStatus_, &unaryFinishOp_);
  } else {
    KEEL_RELEASE_ASSERT(shape_ == CallShape::kServerStream, "a single request read for a client stream");
    // The initial metadata waits for the request: one batch, and no second write while
    // the first is in flight.
    cctx_.set_initial_metadata_corked(true);
    up_ = stub_.PrepareCall(&cctx_, method, call_.queue());
    up_->StartCall(nullptr);
    call_.started();
    up_->WriteLast(req_, grpc::WriteOptions(), &upWriteOp_);
    call_.started();
    up_->Read(&resp_, &upReadOp_);
  }
  call_.settle();
}

void SingleForwarder::onUnaryFinish(bool /*ok*/) {
  call_.completed();
  upstreamEnded();
  call_.settle();
}

void SingleForwarder::onUpStart(bool /*ok*/) {
  call_.completed();
  // A failed start shows in the reads and the status.
  upStartDone_ = true;
  // A client message that came first waited for the start (they share one slot).
  if (heldMessage_) {
    heldMessage_ = false;
    forwardClientMessage(heldOk_);
  }
  call_.settle();
}

void SingleForwarder::onUpWrite(bool ok) {
  call_.completed();
  if (shape_ == CallShape::kClientStream && ok && !call_.clientGone()) {
    call_.started();
    call_.stream().Read(&req_, &readOp_);
  }
  call_.settle();
}

void SingleForwarder::onUpWritesDone(bool /*ok*/) {
  call_.completed();
  call_.settle();
}

void SingleForwarder::onUpRead(bool ok) {
  call_.completed();
  if (!ok || call_.clientGone()) {
    call_.started();
    up_->Finish(&upStatus_, &upFinishOp_);
    call_.settle();
    return;
  }
  upstreamHasInitial_ = true;
  copyInitial();
  call_.trace().addOut(resp_.Length());
  call_.started();
  call_.stream().Write(resp_, &writeOp_);
  call_.settle();
}

void SingleForwarder::onWrite(bool ok) {
  call_.completed();
  if (!ok) call_.abandon();
  // After a cancel this read fails at once, and the status is collected.
  call_.started();
  up_->Read(&resp_, &upReadOp_);
  call_.settle();
}

void SingleForwarder::onUpFinish(bool /*ok*/) {
  call_.completed();
  upstreamEnded();
  call_.settle();
}

void SingleForwarder::onClientMessage(bool ok) {
  call_.completed();
  if (!upStartDone_) {
    heldMessage_ = true;
    heldOk_ = ok;
  } else {
    forwardClientMessage(ok);
  }
  call_.settle();
}

void SingleForwarder::forwardClientMessage(bool ok) {
  if (!ok) {
    // The client half-closed (or went away): so does the upstream.
    if (!call_.clientGone() && !writesDone_) {
      writesDone_ = true;
      call_.started();
      up_->WritesDone(&upWritesDoneOp_);
    }
    return;
  }
  call_.trace().addIn(req_.Length());
  call_.started();
  up_->Write(req_, &upWriteOp_);
}

}  // namespace keel::apid
