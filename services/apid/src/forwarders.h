// apid's proxy, once a call is admitted (admission.h): it only forwards bytes. A call has
// a downstream half (ServerCall: the client's call as received on :50000) and one of two
// forwarders: SingleForwarder (one upstream: unary, server stream, client or bidi stream)
// and FanOutForwarder (several nodes, replies stamped with each node's name). Channels come
// from an Upstreams, so both are tested without sockets.
//
// All operations of a call, downstream and upstream, complete on the queue it arrived on,
// drained by one thread: the state machines below need no locks.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/channel.h>
#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/support/byte_buffer.h>

#include "admission.h"
#include "audit.h"
#include "keel/common/status.h"

namespace keel::apid {

// Where calls go. Thread-safe.
class Upstreams {
 public:
  virtual ~Upstreams() = default;
  // The channel to this node's `backend`. Errors: UNAVAILABLE (not running, or its socket
  // is not owned by a uid the manifest allows).
  virtual Result<std::shared_ptr<grpc::Channel>> backend(const contracts::RouteEntry& backend) = 0;
  // The channel to `node`'s apid.
  virtual Result<std::shared_ptr<grpc::Channel>> node(const std::string& node) = 0;
  // A call to a backend over `channel` ended UNAVAILABLE: the next call connects again.
  virtual void retire(const std::shared_ptr<grpc::Channel>& channel) = 0;
};

// Metadata gRPC manages itself, which is never copied from one call to another.
bool isTransportKey(std::string_view key);
// False for gRPC's "no deadline" (infinite future).
bool hasDeadline(std::chrono::system_clock::time_point t);

// A completion-queue tag that calls a member function of its owner.
struct Op {
  virtual ~Op() = default;
  virtual void complete(bool ok) = 0;
};
template <class T, void (T::*F)(bool)>
struct OpOf final : Op {
  explicit OpOf(T* owner) : self(owner) {}
  void complete(bool ok) override { (self->*F)(ok); }
  T* self;
};

// The audit lines of an admitted call: one line for a unary call, an "open" and an "end"
// line for a stream, with the bytes each way and the duration.
class Trace {
 public:
  Trace(AuditRecord record, AuditLog* log, bool streaming);
  void addIn(uint64_t bytes) { bytesIn_ += bytes; }
  void addOut(uint64_t bytes) { bytesOut_ += bytes; }
  void end(StatusCode code);

 private:
  AuditRecord record_;
  AuditLog* log_;
  std::chrono::steady_clock::time_point started_;
  bool streaming_;
  uint64_t bytesIn_ = 0;
  uint64_t bytesOut_ = 0;
};

class Forwarder;

// The client's call as received. Counts the operations in flight on it and on its
// upstream calls; the owner ends the call (settle()) when none is left and gRPC said the
// call is done.
class ServerCall {
 public:
  explicit ServerCall(grpc::ServerCompletionQueue* cq) : cq_(cq), stream_(&ctx_) {}
  virtual ~ServerCall();

  grpc::GenericServerContext& context() { return ctx_; }
  grpc::GenericServerAsyncReaderWriter& stream() { return stream_; }
  grpc::ServerCompletionQueue* queue() { return cq_; }
  Trace& trace() { return *trace_; }

  // Every operation started on this call or its upstreams is counted; each completion
  // handler calls completed() first and settle() last (settle() may delete the call).
  void started() { ++pending_; }
  void completed() { --pending_; }
  virtual void settle() = 0;

  // The client cancelled, or a write to it failed: every upstream is cancelled. Idempotent.
  void abandon();
  bool clientGone() const { return clientGone_; }
  bool finished() const { return finished_; }
  // Ends the call with `status`, or with `reply` and `status`. At most once.
  void finish(const grpc::Status& status);
  // Ends a call whose request message never came (cut off, or refused as too large):
  // nothing was forwarded.
  void finishWithoutRequest() {
    finish(grpc::Status(grpc::StatusCode::CANCELLED, "the call ended before its request message"));
  }
  void finishWith(const grpc::ByteBuffer& reply, const grpc::Status& status);
  // The outcome the audit line records when the client went away first.
  void recordOutcome(const grpc::Status& status) { outcome_ = status; }

 protected:
  grpc::ServerCompletionQueue* cq_;
  grpc::GenericServerContext ctx_;
  grpc::GenericServerAsyncReaderWriter stream_;
  std::unique_ptr<Trace> trace_;
  std::unique_ptr<Forwarder> forwarder_;
  int pending_ = 0;
  grpc::Status outcome_;

 private:
  void onFinished(bool ok);

  bool finished_ = false;
  bool clientGone_ = false;
  grpc::ByteBuffer reply_;
  OpOf<ServerCall, &ServerCall::onFinished> finishOp_{this};
};

class Forwarder {
 public:
  virtual ~Forwarder() = default;
  // Starts reading the client's call and calling upstream.
  virtual void start() = 0;
  // The client is gone: cancel what runs upstream.
  virtual void cancel() = 0;
};

// One upstream: this node's backend, or one other node's apid. A single request is read
// before the upstream call exists, so a request apid refuses (too large, cut off) never
// reaches the backend. Client and bidi streams run both directions at once, each
// flow-controlled: the next message is read from one side once the previous one was
// written to the other. Metadata from the upstream (initial and trailing) is passed back.
class SingleForwarder final : public Forwarder {
 public:
  // `local`: `channel` leads to this node's backend (it gets `admission.forwardToBackend`).
  // A call that ends UNAVAILABLE retires its channel, local or not.
  SingleForwarder(ServerCall& call, const Admission& admission, std::shared_ptr<grpc::Channel> channel, bool local,
                  Upstreams& upstreams);
  void start() override;
  void cancel() override;

 private:
  void finish(const grpc::Status& status);
  void copyInitial();
  void copyTrailers();
  void upstreamEnded();
  void forwardClientMessage(bool ok);

  void onRequest(bool ok);
  void onUnaryFinish(bool ok);
  void onUpStart(bool ok);
  void onUpWrite(bool ok);
  void onUpWritesDone(bool ok);
  void onUpRead(bool ok);
  void onWrite(bool ok);
  void onUpFinish(bool ok);
  void onClientMessage(bool ok);

  ServerCall& call_;
  CallShape shape_;
  std::shared_ptr<grpc::Channel> channel_;
  bool local_;
  Upstreams& upstreams_;
  grpc::GenericStub stub_;
  grpc::ClientContext cctx_;
  std::unique_ptr<grpc::GenericClientAsyncResponseReader> unary_;
  std::unique_ptr<grpc::GenericClientAsyncReaderWriter> up_;
  grpc::ByteBuffer req_;
  grpc::ByteBuffer resp_;
  grpc::Status upStatus_;
  bool upstreamStarted_ = false;
  bool upstreamHasInitial_ = false;
  bool initialCopied_ = false;
  bool writesDone_ = false;
  bool upStartDone_ = false;
  bool heldMessage_ = false;  // a client message that came before the upstream started
  bool heldOk_ = false;

  OpOf<SingleForwarder, &SingleForwarder::onRequest> requestOp_{this};
  OpOf<SingleForwarder, &SingleForwarder::onClientMessage> readOp_{this};
  OpOf<SingleForwarder, &SingleForwarder::onWrite> writeOp_{this};
  OpOf<SingleForwarder, &SingleForwarder::onUnaryFinish> unaryFinishOp_{this};
  OpOf<SingleForwarder, &SingleForwarder::onUpStart> upStartOp_{this};
  OpOf<SingleForwarder, &SingleForwarder::onUpWrite> upWriteOp_{this};
  OpOf<SingleForwarder, &SingleForwarder::onUpWritesDone> upWritesDoneOp_{this};
  OpOf<SingleForwarder, &SingleForwarder::onUpRead> upReadOp_{this};
  OpOf<SingleForwarder, &SingleForwarder::onUpFinish> upFinishOp_{this};
};

// Several nodes (or one, for a method with the per-node reply shape), in parallel, each
// with its own deadline. A unary call's replies are gathered in target order into one
// reply; a stream's messages are interleaved as they come. Every reply or message is
// stamped with its node; a node that fails or cannot be reached becomes an entry with its
// error, never a failure of the whole call.
class FanOutForwarder final : public Forwarder {
 public:
  // One channel (or the reason there is none) per upstream of `admission`, in order.
  FanOutForwarder(ServerCall& call, const Admission& admission,
                  std::vector<Result<std::shared_ptr<grpc::Channel>>> channels, Upstreams& upstreams,
                  std::chrono::milliseconds timeout);
  ~FanOutForwarder() override;
  void start() override;
  void cancel() override;

  struct Branch;

 private:
  void onRequest(bool ok);
  void onWrite(bool ok);
  void branchMessage(Branch& b);
  void branchDone(Branch& b, const grpc::Status& s);
  void pump();

  ServerCall& call_;
  bool stream_;
  Upstreams& upstreams_;
  std::chrono::milliseconds timeout_;
  MetadataList forward_;
  MetadataList forwardToBackend_;
  std::vector<std::unique_ptr<Branch>> branches_;
  std::vector<std::string> results_;
  std::deque<std::pair<Branch*, std::string>> queue_;  // stamped messages waiting to be written
  Branch* writingFrom_ = nullptr;
  bool writing_ = false;
  size_t branchesDone_ = 0;
  grpc::ByteBuffer req_;
  grpc::ByteBuffer reply_;

  OpOf<FanOutForwarder, &FanOutForwarder::onRequest> requestOp_{this};
  OpOf<FanOutForwarder, &FanOutForwarder::onWrite> writeOp_{this};
};

}  // namespace keel::apid
