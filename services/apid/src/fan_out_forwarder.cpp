// One call sent to several nodes (forwarders.h).
#include <algorithm>
#include <string>

#include "forwarders.h"
#include "wire_stamp.h"

namespace keel::apid {

namespace {

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

}  // namespace

// One node's call: its context, its stream or unary reader, and its operations.
struct FanOutForwarder::Branch {
  Branch(FanOutForwarder* o, size_t i) : owner(o), index(i) {}
  void onUnaryFinish(bool ok);
  void onStreamWrite(bool ok);
  void onStreamRead(bool ok);
  void onStreamFinish(bool ok);

  FanOutForwarder* owner;
  size_t index;
  std::string node;
  bool local = false;
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

FanOutForwarder::FanOutForwarder(ServerCall& call, const Admission& admission,
                                 std::vector<Result<std::shared_ptr<grpc::Channel>>> channels, Upstreams& upstreams,
                                 std::chrono::milliseconds timeout)
    : call_(call),
      stream_(admission.shape == CallShape::kServerStream),
      upstreams_(upstreams),
      timeout_(timeout),
      forward_(admission.forward),
      forwardToBackend_(admission.forwardToBackend) {
  KEEL_RELEASE_ASSERT(channels.size() == admission.upstreams.size(), "one channel per upstream");
  KEEL_RELEASE_ASSERT(admission.shape != CallShape::kClientStream, "a client stream fanned out");
  for (size_t i = 0; i < channels.size(); ++i) {
    auto b = std::make_unique<Branch>(this, i);
    b->node = admission.upstreams[i].node;
    b->local = admission.upstreams[i].local;
    if (channels[i].ok()) {
      b->channel = *channels[i];
    } else {
      b->error = channels[i].status();
    }
    branches_.push_back(std::move(b));
  }
  results_.resize(branches_.size());
}

FanOutForwarder::~FanOutForwarder() = default;

void FanOutForwarder::start() {
  call_.started();
  call_.stream().Read(&req_, &requestOp_);
}

void FanOutForwarder::cancel() {
  for (auto& b : branches_) {
    if (b->stub) b->ctx.TryCancel();
  }
  // Branches whose message waits to be written read again instead: the read fails after
  // the cancel and their status is collected.
  for (auto& item : queue_) {
    if (item.first != nullptr) {
      call_.started();
      item.first->stream->Read(&item.first->resp, &item.first->readOp);
    }
  }
  queue_.clear();
}

void FanOutForwarder::onRequest(bool ok) {
  call_.completed();
  if (!ok) {
    // No request came (cut off, or refused as too large): nothing was forwarded.
    call_.finishWithoutRequest();
    call_.settle();
    return;
  }
  call_.trace().addIn(req_.Length());
  const auto now = std::chrono::system_clock::now();
  auto deadline = now + timeout_;
  const auto clientDeadline = call_.context().deadline();
  if (hasDeadline(clientDeadline)) {
    // Leave a little of the client's time for the reply that gathers every node.
    deadline = std::min(deadline, now + (clientDeadline - now) * 9 / 10);
  }
  const auto& method = call_.context().method();
  for (auto& b : branches_) {
    if (!b->channel) {
      branchDone(*b, grpc::Status(static_cast<grpc::StatusCode>(b->error.code()), b->error.message()));
      continue;
    }
    b->stub = std::make_unique<grpc::GenericStub>(b->channel);
    for (const auto& [k, v] : forward_) b->ctx.AddMetadata(k, v);
    if (b->local) {
      for (const auto& [k, v] : forwardToBackend_) b->ctx.AddMetadata(k, v);
    }
    b->ctx.set_deadline(deadline);
    if (!stream_) {
      b->unary = b->stub->PrepareUnaryCall(&b->ctx, method, req_, call_.queue());
      b->unary->StartCall();
      call_.started();
      b->unary->Finish(&b->resp, &b->status, &b->unaryFinishOp);
    } else {
      b->ctx.set_initial_metadata_corked(true);
      b->stream = b->stub->PrepareCall(&b->ctx, method, call_.queue());
      b->stream->StartCall(nullptr);
      call_.started();
      b->stream->WriteLast(req_, grpc::WriteOptions(), &b->writeOp);
      call_.started();
      b->stream->Read(&b->resp, &b->readOp);
    }
  }
  call_.settle();
}

void FanOutForwarder::branchMessage(Branch& b) {
  if (call_.clientGone()) {
    call_.started();
    b.stream->Read(&b.resp, &b.readOp);  // fails after the cancel; then the status
    return;
  }
  queue_.push_back({&b, stampStreamMessage(bufferToString(b.resp), b.node)});
  pump();
}

void FanOutForwarder::branchDone(Branch& b, const grpc::Status& s) {
  if (b.channel && s.error_code() == grpc::StatusCode::UNAVAILABLE) upstreams_.retire(b.channel);
  if (stream_) {
    if (!s.ok() && !call_.clientGone()) {
      queue_.push_back({nullptr, errorStreamMessage(b.node, s.error_code(), s.error_message())});
    }
  } else if (s.ok()) {
    auto stamped = stampUnaryReply(bufferToString(b.resp), b.node);
    results_[b.index] = stamped.ok() ? std::move(stamped).value()
                                     : errorUnaryReply(b.node, static_cast<int>(stamped.status().code()),
                                                       stamped.status().message());
  } else {
    results_[b.index] = errorUnaryReply(b.node, s.error_code(), s.error_message());
  }
  ++branchesDone_;
  if (stream_) {
    pump();
  } else if (branchesDone_ == branches_.size() && !call_.clientGone()) {
    std::string all;
    for (const auto& r : results_) all += r;
    call_.trace().addOut(all.size());
    call_.finishWith(stringToBuffer(std::move(all)), grpc::Status::OK);
  }
}

// Writes the next waiting message to the client, one at a time; ends the call once every
// node is done and nothing waits.
void FanOutForwarder::pump() {
  if (writing_ || call_.finished()) return;
  if (call_.clientGone()) {
    if (branchesDone_ == branches_.size()) {
      call_.finish(grpc::Status(grpc::StatusCode::CANCELLED, "the client went away"));
    }
    return;
  }
  if (!queue_.empty()) {
    auto item = std::move(queue_.front());
    queue_.pop_front();
    writingFrom_ = item.first;
    call_.trace().addOut(item.second.size());
    reply_ = stringToBuffer(std::move(item.second));
    writing_ = true;
    call_.started();
    call_.stream().Write(reply_, &writeOp_);
  } else if (branchesDone_ == branches_.size()) {
    call_.finish(grpc::Status::OK);
  }
}

void FanOutForwarder::onWrite(bool ok) {
  call_.completed();
  if (!ok) call_.abandon();
  Branch* from = writingFrom_;
  writingFrom_ = nullptr;
  writing_ = false;
  if (from != nullptr) {
    call_.started();
    from->stream->Read(&from->resp, &from->readOp);
  }
  pump();
  call_.settle();
}

void FanOutForwarder::Branch::onUnaryFinish(bool /*ok*/) {
  owner->call_.completed();
  owner->branchDone(*this, status);
  owner->call_.settle();
}

void FanOutForwarder::Branch::onStreamWrite(bool /*ok*/) {
  owner->call_.completed();
  owner->call_.settle();
}

void FanOutForwarder::Branch::onStreamRead(bool ok) {
  owner->call_.completed();
  if (ok) {
    owner->branchMessage(*this);
  } else {
    owner->call_.started();
    stream->Finish(&status, &finishOp);
  }
  owner->call_.settle();
}

void FanOutForwarder::Branch::onStreamFinish(bool /*ok*/) {
  owner->call_.completed();
  owner->branchDone(*this, status);
  owner->call_.settle();
}

}  // namespace keel::apid
