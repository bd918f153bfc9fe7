#include "gateway.h"

#include <atomic>
#include <deque>
#include <mutex>
#include <optional>
#include <random>

#include <fmt/format.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/support/byte_buffer.h>
#include <spdlog/spdlog.h>

#include "keel/authz/authz.h"
#include "wire_stamp.h"

namespace keel::apid {

namespace {

using Clk = std::chrono::steady_clock;

std::string newRequestId() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return fmt::format("{:016x}", rng());
}

grpc::Status toGrpc(const Status& st) {
  return {static_cast<grpc::StatusCode>(st.code()), st.message()};
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

// Ends a refused call at once.
class Refusal final : public grpc::ServerGenericBidiReactor {
 public:
  explicit Refusal(const grpc::Status& status) { Finish(status); }
  void OnDone() override { delete this; }
};

// Audit bookkeeping shared by both kinds of forwarding.
class Trace {
 public:
  Trace(AuditRecord record, AuditLog* log, const Clock* clock, bool streaming)
      : record_(std::move(record)), log_(log), started_(Clk::now()), streaming_(streaming) {
    (void)clock;
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

// One call forwarded to one upstream (a backend, or one node's apid), bytes in both
// directions with flow control: a message is read from one side only after the previous
// one was written to the other. A unary request is sent with its end of stream; a unary
// reply goes back together with the status.
class PassThrough {
 public:
  PassThrough(grpc::GenericCallbackServerContext* sctx, std::shared_ptr<grpc::Channel> channel, const Forwarding& fwd,
              bool toBackend, bool clientStreaming, bool serverStreaming, std::unique_ptr<Trace> trace)
      : sctx_(sctx),
        channel_(std::move(channel)),
        stub_(channel_),
        clientStreaming_(clientStreaming),
        serverStreaming_(serverStreaming),
        trace_(std::move(trace)),
        down_(this),
        up_(this) {
    addForwardMetadata(cctx_, fwd, toBackend);
    if (hasDeadline(sctx_->deadline())) cctx_.set_deadline(sctx_->deadline());
    // A single request is read before the upstream call exists, so a request apid
    // refuses (too large, cut off) never reaches the backend.
    if (clientStreaming_) {
      stub_.PrepareBidiStreamingCall(&cctx_, sctx_->method(), grpc::StubOptions(), &up_);
      up_.AddHold();  // released when nothing more will be written upstream
      up_.StartRead(&resp_);
      up_.StartCall();
    }
    down_.StartRead(&req_);
  }

  grpc::ServerGenericBidiReactor* reactor() { return &down_; }

 private:
  // The client's side (downstream).
  struct Down final : grpc::ServerGenericBidiReactor {
    explicit Down(PassThrough* p) : p_(p) {}
    void OnReadDone(bool ok) override { p_->downReadDone(ok); }
    void OnWriteDone(bool ok) override { p_->downWriteDone(ok); }
    void OnCancel() override { p_->cctx_.TryCancel(); }
    void OnDone() override { p_->release(); }
    PassThrough* p_;
  };
  // The upstream call.
  struct Up final : grpc::ClientBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
    explicit Up(PassThrough* p) : p_(p) {}
    void OnWriteDone(bool ok) override { p_->upWriteDone(ok); }
    void OnReadDone(bool ok) override { p_->upReadDone(ok); }
    void OnDone(const grpc::Status& s) override { p_->upDone(s); }
    PassThrough* p_;
  };

  void downReadDone(bool ok) {
    if (!ok) {
      if (!clientStreaming_) {
        // No request came (cut off, or refused as too large): nothing was forwarded.
        {
          std::lock_guard lock(mu_);
          upDone_ = true;
          finished_ = true;
          status_ = grpc::Status(grpc::StatusCode::CANCELLED, "the call ended before its request message");
        }
        down_.Finish(status_);
        dropRef();  // the upstream call's reference: it never existed
        return;
      }
      // The client half-closed (or went away): so does the upstream call.
      up_.StartWritesDone();
      up_.RemoveHold();
      return;
    }
    trace_->bytesIn += req_.Length();
    if (!clientStreaming_) {
      stub_.PrepareBidiStreamingCall(&cctx_, sctx_->method(), grpc::StubOptions(), &up_);
      up_.StartWriteLast(&req_, grpc::WriteOptions());
      up_.StartRead(&resp_);
      up_.StartCall();
      return;
    }
    up_.StartWrite(&req_);
  }

  void upWriteDone(bool ok) {
    if (!clientStreaming_) return;
    if (!ok) {
      up_.RemoveHold();  // the upstream call is over; its status ends ours
      return;
    }
    down_.StartRead(&req_);
  }

  void copyInitialMetadata() {
    if (initialCopied_) return;
    initialCopied_ = true;
    copyMetadata(cctx_.GetServerInitialMetadata(),
                 [this](const std::string& k, const std::string& v) { sctx_->AddInitialMetadata(k, v); });
  }

  // gRPC may run a reaction inline in the thread that starts an operation (RemoveHold
  // ends a client call at once), so no operation is started while mu_ is held.
  void upReadDone(bool ok) {
    if (!ok) return;  // the status follows in upDone
    {
      std::lock_guard lock(mu_);
      copyInitialMetadata();
      trace_->bytesOut += resp_.Length();
      if (!serverStreaming_) {
        haveReply_ = true;  // sent together with the status
        return;
      }
      writing_ = true;
    }
    down_.StartWrite(&resp_);
  }

  void downWriteDone(bool ok) {
    bool finish = false;
    {
      std::lock_guard lock(mu_);
      writing_ = false;
      if (upDone_) finish = takeFinishLocked();
    }
    if (finish) {
      doFinish();
    } else if (!ok) {
      cctx_.TryCancel();  // upDone follows
    } else {
      up_.StartRead(&resp_);
    }
  }

  void upDone(const grpc::Status& status) {
    bool finish = false;
    {
      std::lock_guard lock(mu_);
      upDone_ = true;
      status_ = status;
      copyInitialMetadata();
      copyMetadata(cctx_.GetServerTrailingMetadata(),
                   [this](const std::string& k, const std::string& v) { sctx_->AddTrailingMetadata(k, v); });
      if (!writing_) finish = takeFinishLocked();
    }
    if (finish) doFinish();
    dropRef();
  }

  bool takeFinishLocked() {
    if (finished_) return false;
    finished_ = true;
    return true;
  }

  void doFinish() {
    if (haveReply_ && status_.ok()) {
      down_.StartWriteAndFinish(&resp_, grpc::WriteOptions(), status_);
    } else {
      down_.Finish(status_);
    }
  }

  void release() {
    trace_->end(status_);
    dropRef();
  }

  void dropRef() {
    bool last = false;
    {
      std::lock_guard lock(mu_);
      last = --refs_ == 0;
    }
    if (last) delete this;
  }

  grpc::GenericCallbackServerContext* sctx_;
  std::shared_ptr<grpc::Channel> channel_;
  grpc::GenericStub stub_;
  grpc::ClientContext cctx_;
  const bool clientStreaming_;
  const bool serverStreaming_;
  std::unique_ptr<Trace> trace_;
  Down down_;
  Up up_;
  grpc::ByteBuffer req_;
  grpc::ByteBuffer resp_;
  std::mutex mu_;
  bool initialCopied_ = false;
  bool writing_ = false;
  bool haveReply_ = false;
  bool upDone_ = false;
  bool finished_ = false;
  int refs_ = 2;
  grpc::Status status_;
};

// One call sent to several nodes at once. Each node's reply is stamped with the node's
// name; a node that fails or does not answer in time becomes an entry with its error.
// Unary: the entries of every node in one reply. Server streaming: messages of all
// nodes interleaved, each node's stream flow-controlled on its own (its next message is
// read once the previous one was written to the client). Like PassThrough, no gRPC
// operation is started while mu_ is held.
class FanOut {
 public:
  struct Target {
    std::string node;
    std::shared_ptr<grpc::Channel> channel;  // null: `error` says why
    bool toBackend = false;
    Status error;
  };

  FanOut(grpc::GenericCallbackServerContext* sctx, std::vector<Target> targets, Forwarding fwd, bool streaming,
         std::chrono::milliseconds perNode, std::unique_ptr<Trace> trace)
      : sctx_(sctx), fwd_(std::move(fwd)), streaming_(streaming), perNode_(perNode), trace_(std::move(trace)),
        down_(this) {
    for (size_t i = 0; i < targets.size(); ++i) {
      branches_.push_back(std::make_unique<Branch>(this, i, std::move(targets[i])));
    }
    results_.resize(branches_.size());
    refs_ = 1 + static_cast<int>(branches_.size());
    down_.StartRead(&req_);
  }

  grpc::ServerGenericBidiReactor* reactor() { return &down_; }

 private:
  struct Branch final : grpc::ClientBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
    Branch(FanOut* p, size_t i, Target t) : parent(p), index(i), target(std::move(t)) {}
    void OnReadDone(bool ok) override { parent->branchRead(*this, ok); }
    void OnDone(const grpc::Status& s) override { parent->branchDone(*this, s); }
    FanOut* parent;
    size_t index;
    Target target;
    std::unique_ptr<grpc::GenericStub> stub;
    grpc::ClientContext ctx;
    grpc::ByteBuffer resp;
    std::string reply;
    bool haveReply = false;
    bool started = false;
  };
  struct Down final : grpc::ServerGenericBidiReactor {
    explicit Down(FanOut* p) : p_(p) {}
    void OnReadDone(bool ok) override { p_->requestRead(ok); }
    void OnWriteDone(bool ok) override { p_->written(ok); }
    void OnCancel() override { p_->cancelAll(); }
    void OnDone() override { p_->release(); }
    FanOut* p_;
  };

  // What to do once mu_ is released.
  struct Next {
    std::optional<grpc::Status> finish;  // Finish the client's call with this status
    bool writeReply = false;             // StartWrite(reply_)
    bool writeAndFinish = false;         // StartWriteAndFinish(reply_, OK)
  };

  void run(const Next& n) {
    if (n.writeAndFinish) {
      down_.StartWriteAndFinish(&reply_, grpc::WriteOptions(), grpc::Status::OK);
    } else if (n.writeReply) {
      down_.StartWrite(&reply_);
    } else if (n.finish) {
      down_.Finish(*n.finish);
    }
  }

  void requestRead(bool ok) {
    if (!ok) {
      int unused = 0;
      {
        std::lock_guard lock(mu_);
        finished_ = true;
        status_ = grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "the call ended before its request message");
        unused = static_cast<int>(branches_.size());
        refs_ -= unused;  // no branch will run
      }
      down_.Finish(status_);
      return;
    }
    trace_->bytesIn += req_.Length();
    const auto now = std::chrono::system_clock::now();
    auto deadline = now + perNode_;
    if (hasDeadline(sctx_->deadline())) {
      // Leave a little of the client's time for the reply that gathers every node.
      const auto clientLeft = sctx_->deadline() - now;
      deadline = std::min(deadline, now + clientLeft * 9 / 10);
    }
    for (auto& b : branches_) {
      if (!b->target.channel) continue;
      b->stub = std::make_unique<grpc::GenericStub>(b->target.channel);
      addForwardMetadata(b->ctx, fwd_, b->target.toBackend);
      b->ctx.set_deadline(deadline);
      b->stub->PrepareBidiStreamingCall(&b->ctx, sctx_->method(), grpc::StubOptions(), b.get());
      if (streaming_) b->AddHold();  // later reads start after each write to the client
      b->StartWriteLast(&req_, grpc::WriteOptions());
      b->StartRead(&b->resp);
      b->started = true;
    }
    for (auto& b : branches_) {
      if (b->started) {
        b->StartCall();
      } else {
        const auto code = static_cast<grpc::StatusCode>(b->target.error.code());
        branchDone(*b, grpc::Status(code, b->target.error.message()));
      }
    }
  }

  void branchRead(Branch& b, bool ok) {
    if (!ok) {
      if (streaming_) b.RemoveHold();
      return;
    }
    std::string bytes = bufferToString(b.resp);
    if (!streaming_) {
      b.reply = std::move(bytes);
      b.haveReply = true;
      return;
    }
    Next next;
    bool readAgain = false;
    {
      std::lock_guard lock(mu_);
      if (cancelled_) {
        readAgain = true;  // nobody will write it; the failing read releases the hold
      } else {
        queue_.push_back({&b, stampStreamMessage(bytes, b.target.node)});
        next = pumpLocked();
      }
    }
    if (readAgain) b.StartRead(&b.resp);
    run(next);
  }

  void branchDone(Branch& b, const grpc::Status& s) {
    Next next;
    bool last = false;
    {
      std::lock_guard lock(mu_);
      const std::string& node = b.target.node;
      if (streaming_) {
        if (!s.ok()) queue_.push_back({nullptr, errorStreamMessage(node, s.error_code(), s.error_message())});
      } else if (s.ok() && b.haveReply) {
        auto stamped = stampUnaryReply(b.reply, node);
        results_[b.index] = stamped.ok() ? std::move(stamped).value()
                                         : errorUnaryReply(node, static_cast<int>(stamped.status().code()),
                                                           stamped.status().message());
      } else {
        const int code = s.ok() ? static_cast<int>(grpc::StatusCode::INTERNAL) : s.error_code();
        results_[b.index] = errorUnaryReply(node, code, s.ok() ? "the node sent no reply" : s.error_message());
      }
      ++done_;
      if (streaming_) {
        next = pumpLocked();
      } else if (done_ == branches_.size() && !finished_) {
        std::string all;
        for (const auto& r : results_) all += r;
        trace_->bytesOut += all.size();
        reply_ = stringToBuffer(std::move(all));
        finished_ = true;
        next.writeAndFinish = true;
      }
      last = --refs_ == 0;
    }
    run(next);
    if (last) delete this;
  }

  Next pumpLocked() {
    Next n;
    if (writing_ || finished_) return n;
    if (cancelled_) {
      if (done_ == branches_.size()) {
        finished_ = true;
        n.finish = grpc::Status(grpc::StatusCode::CANCELLED, "the client went away");
      }
      queue_.clear();
      return n;
    }
    if (!queue_.empty()) {
      auto item = std::move(queue_.front());
      queue_.pop_front();
      writingFrom_ = item.first;
      trace_->bytesOut += item.second.size();
      reply_ = stringToBuffer(std::move(item.second));
      writing_ = true;
      n.writeReply = true;
    } else if (done_ == branches_.size()) {
      finished_ = true;
      n.finish = grpc::Status::OK;
    }
    return n;
  }

  void written(bool ok) {
    Branch* from = nullptr;
    Next next;
    {
      std::lock_guard lock(mu_);
      writing_ = false;
      from = writingFrom_;
      writingFrom_ = nullptr;
      if (ok) next = pumpLocked();
    }
    // After a cancel this read fails at once and releases the branch's hold.
    if (from != nullptr) from->StartRead(&from->resp);
    if (!ok) {
      cancelAll();
      return;
    }
    run(next);
  }

  // The client is gone: every branch is cancelled, and the ones whose message waits in
  // the queue get their next (failing) read, which releases their hold.
  void cancelAll() {
    std::vector<Branch*> waiting;
    Next next;
    {
      std::lock_guard lock(mu_);
      cancelled_ = true;
      for (auto& item : queue_) {
        if (item.first != nullptr) waiting.push_back(item.first);
      }
      queue_.clear();
      if (!writing_ && !finished_ && done_ == branches_.size()) {
        finished_ = true;
        next.finish = grpc::Status(grpc::StatusCode::CANCELLED, "the client went away");
      }
    }
    for (auto& b : branches_) {
      if (b->started) b->ctx.TryCancel();
    }
    for (Branch* b : waiting) b->StartRead(&b->resp);
    run(next);
  }

  void release() {
    bool last = false;
    {
      std::lock_guard lock(mu_);
      trace_->end(finished_ && !cancelled_ ? status_ : grpc::Status(grpc::StatusCode::CANCELLED, "cancelled"));
      last = --refs_ == 0;
    }
    if (last) delete this;
  }

  grpc::GenericCallbackServerContext* sctx_;
  Forwarding fwd_;
  const bool streaming_;
  std::chrono::milliseconds perNode_;
  std::unique_ptr<Trace> trace_;
  Down down_;
  std::vector<std::unique_ptr<Branch>> branches_;
  std::vector<std::string> results_;
  grpc::ByteBuffer req_;
  grpc::ByteBuffer reply_;
  std::mutex mu_;
  std::deque<std::pair<Branch*, std::string>> queue_;
  Branch* writingFrom_ = nullptr;
  bool writing_ = false;
  bool finished_ = false;
  bool cancelled_ = false;
  size_t done_ = 0;
  int refs_ = 0;
  grpc::Status status_;
};

}  // namespace

grpc::ServerGenericBidiReactor* Gateway::CreateReactor(grpc::GenericCallbackServerContext* ctx) {
  const auto routes = deps_.routes();
  AuditRecord record;
  record.method = ctx->method();
  record.peer = ctx->peer();

  // Who is calling: the verified leaf certificate of the TLS session.
  std::shared_ptr<const PeerIdentity> identity;
  Status identityError;
  if (const auto auth = ctx->auth_context(); auth) {
    const auto pems = auth->FindPropertyValues("x509_pem_cert");
    if (!pems.empty()) {
      auto found = deps_.identities->lookup(std::string_view(pems.front().data(), pems.front().size()));
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
  for (const auto& [k, v] : ctx->client_metadata()) {
    std::string key = toString(k);
    if (isTransportKey(key)) continue;
    request.metadata.emplace_back(std::move(key), toString(v));
  }
  PolicyOptions policy;
  policy.mayForward = deps_.peers != nullptr;
  policy.selfNames = options_.selfNames;
  policy.newRequestId = newRequestId();
  CallDecision d = decideCall(request, routes->rules(), policy);
  if (d.status.isOk() && !identityError.isOk()) d.status = identityError;

  record.requestId = d.requestId;
  record.identity = d.identity;
  record.roles = d.roles;
  record.targets = d.targets;

  const MethodInfo* info = d.status.isOk() ? routes->find(record.method) : nullptr;
  if (d.status.isOk() && info == nullptr) d.status = Status(StatusCode::kUnimplemented, "unknown method " + record.method);
  if (d.status.isOk() && d.targets.size() > 1 && !info->fanOut) {
    d.status = invalidArgument(fmt::format("{} cannot be sent to several nodes at once; target one node", record.method));
  }

  Forwarding fwd;
  fwd.roles = authz::formatRoles(d.roles);
  fwd.identity = d.identity;
  fwd.peer = record.peer;
  fwd.requestId = d.requestId;
  fwd.passOn = std::move(d.passOn);

  auto localChannel = [&]() -> Result<std::shared_ptr<grpc::Channel>> { return deps_.backends->get(*info->backend); };
  auto nodeChannel = [&](const std::string& node) -> Result<std::shared_ptr<grpc::Channel>> {
    return deps_.peers->get(node);
  };
  auto isSelf = [&](const std::string& node) {
    return std::find(options_.selfNames.begin(), options_.selfNames.end(), node) != options_.selfNames.end();
  };

  std::shared_ptr<grpc::Channel> single;
  bool singleToBackend = true;
  if (d.status.isOk() && (d.targets.empty() || (d.targets.size() == 1 && !info->fanOut))) {
    auto ch = d.targets.empty() || isSelf(d.targets.front()) ? localChannel() : nodeChannel(d.targets.front());
    singleToBackend = d.targets.empty() || isSelf(d.targets.front());
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
    deps_.audit->write(record);
    return new Refusal(toGrpc(d.status));
  }
  record.allowed = true;
  const bool streaming = info->clientStreaming || info->serverStreaming;
  auto trace = std::make_unique<Trace>(record, deps_.audit, deps_.clock, streaming);

  if (single) {
    auto* call = new PassThrough(ctx, std::move(single), fwd, singleToBackend, info->clientStreaming,
                                 info->serverStreaming, std::move(trace));
    return call->reactor();
  }
  std::vector<FanOut::Target> targets;
  for (const auto& node : d.targets) {
    FanOut::Target t;
    t.node = node;
    t.toBackend = isSelf(node);
    auto ch = t.toBackend ? localChannel() : nodeChannel(node);
    if (ch.ok()) {
      t.channel = *ch;
    } else {
      t.error = ch.status();
    }
    targets.push_back(std::move(t));
  }
  auto* call = new FanOut(ctx, std::move(targets), std::move(fwd), info->serverStreaming, options_.forwardTimeout,
                          std::move(trace));
  return call->reactor();
}

}  // namespace keel::apid
