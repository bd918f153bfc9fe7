#include "gateway.h"

#include <atomic>
#include <deque>
#include <optional>
#include <random>

#include <fmt/format.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/support/byte_buffer.h>
#include <spdlog/spdlog.h>

#include "keel/authz/authz.h"
#include "keel/transport/grpc_status.h"
#include "wire_stamp.h"

namespace keel::apid {

namespace {

using transport::toGrpc;

using Clk = std::chrono::steady_clock;

std::string newRequestId() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return fmt::format("{:016x}", rng());
}

std::string toString(grpc::string_ref s) { return {s.data(), s.size()}; }

std::string bufferToString(const grpc::ByteBuffer& buf) {
  std::vector<grpc::Slice> slices;
  std::string out;
  if (!buf.Dump(&slices).ok()) return out;
  out.reserve(buf.Length());
  for (const auto& s : slices) out.append(reinterpret_cast<const char*>(s.begin()), s.size());
  return out;
}

grpc::ByteBuffer stringToBuffer(std::string s) {
  grpc::Slice slice(std::move(s));
  return grpc::ByteBuffer(&slice, 1);
}

// Metadata gRPC manages itself, which must not be copied from one call to another.
bool isTransportKey(std::string_view key) {
  return key.starts_with("grpc-") || key.starts_with(":") || key == "user-agent" || key == "te" ||
         key == "content-type";
}

void copyMetadata(const std::multimap<grpc::string_ref, grpc::string_ref>& from,
                  const std::function<void(const std::string&, const std::string&)>& add) {
  for (const auto& [k, v] : from) {
    const std::string key = toString(k);
    if (!isTransportKey(key)) add(key, toString(v));
  }
}

bool hasDeadline(std::chrono::system_clock::time_point t) {
  return t < std::chrono::system_clock::now() + std::chrono::hours(24 * 365 * 10);
}

// What a call carries to the next hop besides the client's own metadata.
struct Forwarding {
  std::string roles;
  std::string identity;
  std::string peer;
  std::string requestId;
  MetadataList passOn;
};

void addForwardMetadata(grpc::ClientContext& ctx, const Forwarding& f, bool toBackend) {
  for (const auto& [k, v] : f.passOn) ctx.AddMetadata(k, v);
  ctx.AddMetadata(std::string(authz::kRolesKey), f.roles);
  ctx.AddMetadata(std::string(authz::kIdentityKey), f.identity);
  ctx.AddMetadata(std::string(authz::kRequestIdKey), f.requestId);
  if (toBackend) ctx.AddMetadata(std::string(authz::kPeerKey), f.peer);
}

// Audit bookkeeping shared by both kinds of forwarding.
class Trace {
 public:
  Trace(AuditRecord record, AuditLog* log, bool streaming)
      : record_(std::move(record)), log_(log), started_(Clk::now()), streaming_(streaming) {
    if (streaming_) {
      AuditRecord open = record_;
      open.event = "open";
      log_->write(open);
    }
  }
  std::atomic<uint64_t> bytesIn{0};
  std::atomic<uint64_t> bytesOut{0};

  void end(const grpc::Status& status) {
    AuditRecord r = std::move(record_);
    r.event = streaming_ ? "end" : "call";
    r.code = static_cast<StatusCode>(status.error_code());
    r.duration = std::chrono::duration_cast<std::chrono::microseconds>(Clk::now() - started_);
    r.bytesIn = bytesIn.load();
    r.bytesOut = bytesOut.load();
    log_->write(r);
  }

 private:
  AuditRecord record_;
  AuditLog* log_;
  Clk::time_point started_;
  bool streaming_;
};


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

// One call to an upstream in a fan-out: its context, stream or unary reader, and ops.
class Call;
struct Branch {
  Branch(Call* c, size_t i) : call(c), index(i) {}
  void onUnaryFinish(bool ok);
  void onStreamWrite(bool ok);
  void onStreamRead(bool ok);
  void onStreamFinish(bool ok);

  Call* call;
  size_t index;
  std::string node;
  bool toBackend = false;
  std::shared_ptr<grpc::Channel> channel;
  Status error;  // why there is no channel
  std::unique_ptr<grpc::GenericStub> stub;
  grpc::ClientContext ctx;
  std::unique_ptr<grpc::GenericClientAsyncResponseReader> unary;
  std::unique_ptr<grpc::GenericClientAsyncReaderWriter> stream;
  grpc::ByteBuffer resp;
  grpc::Status status;
  OpOf<Branch, &Branch::onUnaryFinish> unaryFinishOp{this};
  OpOf<Branch, &Branch::onStreamWrite> writeOp{this};
  OpOf<Branch, &Branch::onStreamRead> readOp{this};
  OpOf<Branch, &Branch::onStreamFinish> finishOp{this};
};

// One call received on :50000, from the moment it is accepted to the moment gRPC is done
// with it. Every operation it starts, on its own stream or on upstream calls, completes
// on `cq_`, which one thread drains: the members need no lock. `pending_` counts the
// operations in flight; the object deletes itself when none is left and gRPC said the
// call is done.
class Call {
 public:
  Call(Gateway& g, grpc::ServerCompletionQueue* cq) : g_(g), cq_(cq), stream_(&ctx_) {}

  void arm() {
    ctx_.AsyncNotifyWhenDone(&doneOp_);
    g_.service().RequestCall(&ctx_, &stream_, cq_, cq_, &acceptOp_);
  }

 private:
  friend struct Branch;
  enum class Mode { kRefused, kUnary, kServerStream, kBidi, kFanOutUnary, kFanOutStream };

  // --- bookkeeping ---------------------------------------------------------------
  void started() { ++pending_; }
  // Called at the end of every completion handler.
  void settle() {
    if (pending_ == 0 && doneSeen_) {
      if (trace_) trace_->end(finalStatus_);
      delete this;
    }
  }
  void finish(const grpc::Status& status) {
    if (finished_) return;
    finished_ = true;
    finalStatus_ = status;
    copyInitialFromUpstream();
    started();
    stream_.Finish(status, &finishOp_);
  }
  void finishWith(grpc::ByteBuffer* reply, const grpc::Status& status) {
    finished_ = true;
    finalStatus_ = status;
    started();
    stream_.WriteAndFinish(*reply, grpc::WriteOptions(), status, &finishOp_);
  }
  void copyInitialFromUpstream() {
    if (initialCopied_ || !upstreamHasInitial_) return;
    initialCopied_ = true;
    copyMetadata(cctx_.GetServerInitialMetadata(),
                 [this](const std::string& k, const std::string& v) { ctx_.AddInitialMetadata(k, v); });
  }
  void copyTrailersFromUpstream() {
    copyMetadata(cctx_.GetServerTrailingMetadata(),
                 [this](const std::string& k, const std::string& v) { ctx_.AddTrailingMetadata(k, v); });
  }

  // --- accepting and deciding ----------------------------------------------------
  void onAccept(bool ok) {
    if (!ok) return;  // the server is shutting down; the queue drains and the process ends
    (new Call(g_, cq_))->arm();
    ++pending_;  // the done notification, armed in arm()
    decide();
    settle();
  }

  void onDone(bool /*ok*/) {
    --pending_;
    doneSeen_ = true;
    if (ctx_.IsCancelled()) cancelUpstream();
    settle();
  }

  void onFinished(bool /*ok*/) {
    --pending_;
    settle();
  }

  void cancelUpstream() {
    if (clientGone_) return;
    clientGone_ = true;
    if (upstreamStarted_) cctx_.TryCancel();
    for (auto& b : branches_) {
      if (b->stub) b->ctx.TryCancel();
    }
    // Branches whose message waits to be written read again instead: the read fails after
    // the cancel and their status is collected.
    for (auto& item : queue_) {
      if (item.first != nullptr) {
        started();
        item.first->stream->Read(&item.first->resp, &item.first->readOp);
      }
    }
    queue_.clear();
  }

  void decide();

  // A backend connection that fails a call as unavailable is given up, so the next call
  // opens a new one instead of failing the same way.
  void checkBackend(const grpc::Status& upstream) {
    if (backendChannel_ && upstream.error_code() == grpc::StatusCode::UNAVAILABLE) {
      g_.deps().backends->retire(backendChannel_);
    }
  }

  // --- one upstream: unary ----------------------------------------------------------
  void onRequest(bool ok) {
    --pending_;
    if (!ok) {
      // No request came (cut off, or refused as too large): nothing was forwarded.
      finish(grpc::Status(grpc::StatusCode::CANCELLED, "the call ended before its request message"));
      settle();
      return;
    }
    trace_->bytesIn += req_.Length();
    switch (mode_) {
      case Mode::kUnary:
        upstreamStarted_ = true;
        unary_ = stub_->PrepareUnaryCall(&cctx_, ctx_.method(), req_, cq_);
        unary_->StartCall();
        started();
        unary_->Finish(&resp_, &upStatus_, &upUnaryFinishOp_);
        break;
      case Mode::kServerStream:
        upstreamStarted_ = true;
        // The initial metadata waits for the request: one batch, and no second write
        // while the first is in flight.
        cctx_.set_initial_metadata_corked(true);
        up_ = stub_->PrepareCall(&cctx_, ctx_.method(), cq_);
        up_->StartCall(nullptr);
        started();
        up_->WriteLast(req_, grpc::WriteOptions(), &upWriteOp_);
        started();
        up_->Read(&resp_, &upReadOp_);
        break;
      case Mode::kFanOutUnary:
      case Mode::kFanOutStream:
        startBranches();
        break;
      default:
        KEEL_RELEASE_ASSERT(false, "a request read in a mode that reads none");
    }
    settle();
  }

  void onUpUnaryFinish(bool /*ok*/) {
    --pending_;
    checkBackend(upStatus_);
    upstreamHasInitial_ = true;
    copyTrailersFromUpstream();
    if (clientGone_) {
      finalStatus_ = upStatus_;
    } else if (upStatus_.ok()) {
      copyInitialFromUpstream();
      trace_->bytesOut += resp_.Length();
      finishWith(&resp_, upStatus_);
    } else {
      finish(upStatus_);
    }
    settle();
  }

  // --- one upstream: streams ----------------------------------------------------------
  void onUpStart(bool ok) {
    --pending_;
    (void)ok;  // a failed start shows in the reads and the status
    upStartDone_ = true;
    // A client message that came first waited for the start (they share one slot).
    if (heldMessage_) {
      heldMessage_ = false;
      forwardClientMessage(heldOk_);
    }
    settle();
  }

  void onUpWrite(bool ok) {
    --pending_;
    if (mode_ == Mode::kBidi && ok && !clientGone_) {
      started();
      stream_.Read(&req_, &readOp_);
    }
    settle();
  }

  void onUpWritesDone(bool /*ok*/) {
    --pending_;
    settle();
  }

  void onUpRead(bool ok) {
    --pending_;
    if (!ok || clientGone_) {
      started();
      up_->Finish(&upStatus_, &upFinishOp_);
      settle();
      return;
    }
    upstreamHasInitial_ = true;
    copyInitialFromUpstream();
    trace_->bytesOut += resp_.Length();
    started();
    stream_.Write(resp_, &writeOp_);
    settle();
  }

  void onWrite(bool ok) {
    --pending_;
    if (!ok) cancelUpstream();
    if (mode_ == Mode::kFanOutStream) {
      Branch* from = writingFrom_;
      writingFrom_ = nullptr;
      writing_ = false;
      if (from != nullptr) {
        started();
        from->stream->Read(&from->resp, &from->readOp);
      }
      pump();
    } else {
      // After a cancel this read fails at once, and the status is collected.
      started();
      up_->Read(&resp_, &upReadOp_);
    }
    settle();
  }

  void onUpFinish(bool /*ok*/) {
    --pending_;
    checkBackend(upStatus_);
    upstreamHasInitial_ = true;
    copyTrailersFromUpstream();
    if (clientGone_) {
      finalStatus_ = upStatus_;
    } else {
      finish(upStatus_);
    }
    settle();
  }

  // Bidi and client streaming: the client's messages, one at a time.
  void onClientMessage(bool ok) {
    --pending_;
    if (!upStartDone_) {
      heldMessage_ = true;
      heldOk_ = ok;
      settle();
      return;
    }
    forwardClientMessage(ok);
    settle();
  }

  void forwardClientMessage(bool ok) {
    if (!ok) {
      if (!clientGone_ && !writesDone_) {
        writesDone_ = true;
        started();
        up_->WritesDone(&upWritesDoneOp_);
      }
      return;
    }
    trace_->bytesIn += req_.Length();
    started();
    up_->Write(req_, &upWriteOp_);
  }

  // --- fan-out ------------------------------------------------------------------------
  void startBranches() {
    const auto now = std::chrono::system_clock::now();
    auto deadline = now + g_.options().forwardTimeout;
    if (hasDeadline(ctx_.deadline())) {
      // Leave a little of the client's time for the reply that gathers every node.
      deadline = std::min(deadline, now + (ctx_.deadline() - now) * 9 / 10);
    }
    results_.resize(branches_.size());
    for (auto& b : branches_) {
      if (!b->channel) {
        branchDone(*b, grpc::Status(static_cast<grpc::StatusCode>(b->error.code()), b->error.message()));
        continue;
      }
      b->stub = std::make_unique<grpc::GenericStub>(b->channel);
      addForwardMetadata(b->ctx, fwd_, b->toBackend);
      b->ctx.set_deadline(deadline);
      if (mode_ == Mode::kFanOutUnary) {
        b->unary = b->stub->PrepareUnaryCall(&b->ctx, ctx_.method(), req_, cq_);
        b->unary->StartCall();
        started();
        b->unary->Finish(&b->resp, &b->status, &b->unaryFinishOp);
      } else {
        b->ctx.set_initial_metadata_corked(true);
        b->stream = b->stub->PrepareCall(&b->ctx, ctx_.method(), cq_);
        b->stream->StartCall(nullptr);
        started();
        b->stream->WriteLast(req_, grpc::WriteOptions(), &b->writeOp);
        started();
        b->stream->Read(&b->resp, &b->readOp);
      }
    }
  }

  void branchMessage(Branch& b) {
    if (clientGone_) {
      started();
      b.stream->Read(&b.resp, &b.readOp);  // fails after the cancel; then the status
      return;
    }
    queue_.push_back({&b, stampStreamMessage(bufferToString(b.resp), b.node)});
    pump();
  }

  void branchDone(Branch& b, const grpc::Status& s) {
    if (b.toBackend && b.channel && s.error_code() == grpc::StatusCode::UNAVAILABLE) g_.deps().backends->retire(b.channel);
    if (mode_ == Mode::kFanOutStream) {
      if (!s.ok() && !clientGone_) queue_.push_back({nullptr, errorStreamMessage(b.node, s.error_code(), s.error_message())});
    } else if (s.ok()) {
      auto stamped = stampUnaryReply(bufferToString(b.resp), b.node);
      results_[b.index] = stamped.ok() ? std::move(stamped).value()
                                       : errorUnaryReply(b.node, static_cast<int>(stamped.status().code()),
                                                         stamped.status().message());
    } else {
      results_[b.index] = errorUnaryReply(b.node, s.error_code(), s.error_message());
    }
    ++branchesDone_;
    if (mode_ == Mode::kFanOutStream) {
      pump();
    } else if (branchesDone_ == branches_.size() && !clientGone_) {
      std::string all;
      for (const auto& r : results_) all += r;
      trace_->bytesOut += all.size();
      reply_ = stringToBuffer(std::move(all));
      finishWith(&reply_, grpc::Status::OK);
    }
  }

  void pump() {
    if (writing_ || finished_) return;
    if (clientGone_) {
      if (branchesDone_ == branches_.size()) finish(grpc::Status(grpc::StatusCode::CANCELLED, "the client went away"));
      return;
    }
    if (!queue_.empty()) {
      auto item = std::move(queue_.front());
      queue_.pop_front();
      writingFrom_ = item.first;
      trace_->bytesOut += item.second.size();
      reply_ = stringToBuffer(std::move(item.second));
      writing_ = true;
      started();
      stream_.Write(reply_, &writeOp_);
    } else if (branchesDone_ == branches_.size()) {
      finish(grpc::Status::OK);
    }
  }

  Gateway& g_;
  grpc::ServerCompletionQueue* cq_;
  grpc::GenericServerContext ctx_;
  grpc::GenericServerAsyncReaderWriter stream_;
  Mode mode_ = Mode::kRefused;
  int pending_ = 0;
  bool doneSeen_ = false;
  bool finished_ = false;
  bool clientGone_ = false;
  bool initialCopied_ = false;
  bool upstreamHasInitial_ = false;
  bool upstreamStarted_ = false;
  bool writesDone_ = false;
  bool upStartDone_ = false;
  bool heldMessage_ = false;
  bool heldOk_ = false;
  grpc::Status finalStatus_;
  std::unique_ptr<Trace> trace_;
  Forwarding fwd_;

  grpc::ByteBuffer req_;
  grpc::ByteBuffer resp_;
  grpc::ByteBuffer reply_;
  std::unique_ptr<grpc::GenericStub> stub_;
  std::shared_ptr<grpc::Channel> backendChannel_;  // set when the one upstream is a backend
  grpc::ClientContext cctx_;
  std::unique_ptr<grpc::GenericClientAsyncResponseReader> unary_;
  std::unique_ptr<grpc::GenericClientAsyncReaderWriter> up_;
  grpc::Status upStatus_;

  std::vector<std::unique_ptr<Branch>> branches_;
  std::vector<std::string> results_;
  std::deque<std::pair<Branch*, std::string>> queue_;
  Branch* writingFrom_ = nullptr;
  bool writing_ = false;
  size_t branchesDone_ = 0;

  OpOf<Call, &Call::onAccept> acceptOp_{this};
  OpOf<Call, &Call::onDone> doneOp_{this};
  OpOf<Call, &Call::onFinished> finishOp_{this};
  OpOf<Call, &Call::onRequest> requestOp_{this};
  OpOf<Call, &Call::onClientMessage> readOp_{this};
  OpOf<Call, &Call::onWrite> writeOp_{this};
  OpOf<Call, &Call::onUpUnaryFinish> upUnaryFinishOp_{this};
  OpOf<Call, &Call::onUpStart> upStartOp_{this};
  OpOf<Call, &Call::onUpWrite> upWriteOp_{this};
  OpOf<Call, &Call::onUpWritesDone> upWritesDoneOp_{this};
  OpOf<Call, &Call::onUpRead> upReadOp_{this};
  OpOf<Call, &Call::onUpFinish> upFinishOp_{this};
};

void Branch::onUnaryFinish(bool /*ok*/) {
  --call->pending_;
  call->branchDone(*this, status);
  call->settle();
}
void Branch::onStreamWrite(bool /*ok*/) {
  --call->pending_;
  call->settle();
}
void Branch::onStreamRead(bool ok) {
  --call->pending_;
  if (ok) {
    call->branchMessage(*this);
  } else {
    call->started();
    stream->Finish(&status, &finishOp);
  }
  call->settle();
}
void Branch::onStreamFinish(bool /*ok*/) {
  --call->pending_;
  call->branchDone(*this, status);
  call->settle();
}

void Call::decide() {
  const auto routes = g_.deps().routes();
  AuditRecord record;
  record.method = ctx_.method();
  record.peer = ctx_.peer();

  // Who is calling: the verified leaf certificate of the TLS session.
  std::shared_ptr<const PeerIdentity> identity;
  Status identityError;
  if (const auto auth = ctx_.auth_context(); auth) {
    const auto pems = auth->FindPropertyValues("x509_pem_cert");
    if (!pems.empty()) {
      auto found = g_.deps().identities->lookup(std::string_view(pems.front().data(), pems.front().size()));
      if (found.ok()) {
        identity = *found;
      } else {
        identityError = found.status();
      }
    }
  }

  CallRequest request;
  request.method = record.method;
  request.peerAddress = record.peer;
  request.peer = identity.get();
  for (const auto& [k, v] : ctx_.client_metadata()) {
    std::string key = toString(k);
    if (isTransportKey(key)) continue;
    request.metadata.emplace_back(std::move(key), toString(v));
  }
  PolicyOptions policy;
  policy.mayForward = g_.deps().peers != nullptr;
  policy.selfNames = g_.options().selfNames;
  policy.newRequestId = newRequestId();
  policy.maxTargets = g_.options().maxTargets;
  CallDecision d = decideCall(request, routes->rules(), policy);
  // Without a readable certificate the policy can only say there is no identity; the
  // reason it could not be read is what the client and the audit line need.
  if (!identityError.isOk()) d.status = identityError;

  record.requestId = d.requestId;
  record.identity = d.identity;
  record.roles = d.roles;
  record.targets = d.targets;

  const MethodInfo* info = d.status.isOk() ? routes->find(record.method) : nullptr;
  if (d.status.isOk() && info == nullptr) d.status = Status(StatusCode::kUnimplemented, "unknown method " + record.method);
  if (d.status.isOk() && d.targets.size() > 1 && !info->fanOut) {
    d.status = invalidArgument(fmt::format("{} cannot be sent to several nodes at once; target one node", record.method));
  }

  fwd_.roles = authz::formatRoles(d.roles);
  fwd_.identity = d.identity;
  fwd_.peer = record.peer;
  fwd_.requestId = d.requestId;
  fwd_.passOn = std::move(d.passOn);

  const auto& selfNames = g_.options().selfNames;
  auto isSelf = [&](const std::string& node) {
    return std::find(selfNames.begin(), selfNames.end(), node) != selfNames.end();
  };
  auto channelFor = [&](const std::string* node) -> Result<std::shared_ptr<grpc::Channel>> {
    if (node == nullptr || isSelf(*node)) return g_.deps().backends->get(*info->backend);
    return g_.deps().peers->get(*node);
  };

  std::shared_ptr<grpc::Channel> single;
  bool singleToBackend = true;
  // `info` is null when the call was refused: no route was looked up.
  const bool oneUpstream = d.targets.empty() || (d.targets.size() == 1 && (info == nullptr || !info->fanOut));
  if (d.status.isOk() && oneUpstream) {
    const std::string* node = d.targets.empty() ? nullptr : &d.targets.front();
    singleToBackend = node == nullptr || isSelf(*node);
    auto ch = channelFor(node);
    if (ch.ok()) {
      single = *ch;
    } else {
      d.status = ch.status();
    }
  }

  if (!d.status.isOk()) {
    // Refused by policy, or allowed but its backend is down: either way nothing was forwarded.
    record.allowed = false;
    record.code = d.status.code();
    record.reason = d.status.message();
    g_.deps().audit->write(record);
    mode_ = Mode::kRefused;
    finish(toGrpc(d.status));
    return;
  }
  record.allowed = true;
  const bool streaming = info->clientStreaming || info->serverStreaming;
  trace_ = std::make_unique<Trace>(record, g_.deps().audit, streaming);

  if (single) {
    if (singleToBackend) backendChannel_ = single;
    stub_ = std::make_unique<grpc::GenericStub>(single);
    addForwardMetadata(cctx_, fwd_, singleToBackend);
    if (hasDeadline(ctx_.deadline())) cctx_.set_deadline(ctx_.deadline());
    if (info->clientStreaming) {
      // Both directions at once, each flow-controlled: the next message is read from
      // one side once the previous one was written to the other.
      mode_ = Mode::kBidi;
      upstreamStarted_ = true;
      up_ = stub_->PrepareCall(&cctx_, ctx_.method(), cq_);
      started();
      up_->StartCall(&upStartOp_);
      started();
      up_->Read(&resp_, &upReadOp_);
      started();
      stream_.Read(&req_, &readOp_);
      return;
    }
    // A single request is read before the upstream call exists, so a request apid
    // refuses (too large, cut off) never reaches the backend.
    mode_ = info->serverStreaming ? Mode::kServerStream : Mode::kUnary;
    started();
    stream_.Read(&req_, &requestOp_);
    return;
  }
  mode_ = info->serverStreaming ? Mode::kFanOutStream : Mode::kFanOutUnary;
  for (const auto& node : d.targets) {
    auto b = std::make_unique<Branch>(this, branches_.size());
    b->node = node;
    b->toBackend = isSelf(node);
    auto ch = channelFor(&node);
    if (ch.ok()) {
      b->channel = *ch;
    } else {
      b->error = ch.status();
    }
    branches_.push_back(std::move(b));
  }
  started();
  stream_.Read(&req_, &requestOp_);
}

}  // namespace

void Gateway::registerWith(grpc::ServerBuilder& builder) {
  builder.RegisterAsyncGenericService(&service_);
  const int n = std::max(1, options_.threads);
  for (int i = 0; i < n; ++i) queues_.push_back(builder.AddCompletionQueue());
}

void Gateway::start() {
  for (auto& q : queues_) {
    auto* cq = q.get();
    // Several calls may be accepted at once on each queue.
    for (int i = 0; i < 4; ++i) (new Call(*this, cq))->arm();
    threads_.emplace_back([cq] {
      void* tag = nullptr;
      bool ok = false;
      while (cq->Next(&tag, &ok)) static_cast<Op*>(tag)->complete(ok);
    });
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
