// The downstream half of a forwarded call and its audit trace (forwarders.h).
#include "forwarders.h"

namespace keel::apid {

bool isTransportKey(std::string_view key) {
  return key.starts_with("grpc-") || key.starts_with(":") || key == "user-agent" || key == "te" ||
         key == "content-type";
}

bool hasDeadline(std::chrono::system_clock::time_point t) {
  return t < std::chrono::system_clock::now() + std::chrono::hours(24 * 365 * 10);
}

Trace::Trace(AuditRecord record, AuditLog* log, bool streaming)
    : record_(std::move(record)), log_(log), started_(std::chrono::steady_clock::now()), streaming_(streaming) {
  if (streaming_) {
    AuditRecord open = record_;
    open.event = "open";
    log_->write(open);
  }
}

void Trace::end(StatusCode code) {
  AuditRecord r = std::move(record_);
  r.event = streaming_ ? "end" : "call";
  r.code = code;
  r.duration = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - started_);
  r.bytesIn = bytesIn_;
  r.bytesOut = bytesOut_;
  log_->write(r);
}

ServerCall::~ServerCall() = default;

void ServerCall::abandon() {
  if (clientGone_) return;
  clientGone_ = true;
  if (forwarder_) forwarder_->cancel();
}

void ServerCall::finish(const grpc::Status& status) {
  if (finished_) return;
  finished_ = true;
  outcome_ = status;
  started();
  stream_.Finish(status, &finishOp_);
}

void ServerCall::finishWith(const grpc::ByteBuffer& reply, const grpc::Status& status) {
  if (finished_) return;
  finished_ = true;
  outcome_ = status;
  reply_ = reply;
  started();
  stream_.WriteAndFinish(reply_, grpc::WriteOptions(), status, &finishOp_);
}

void ServerCall::onFinished(bool /*ok*/) {
  completed();
  settle();
}

}  // namespace keel::apid
