// The machine API: logs, the kernel log and the event journal, each as a snapshot or followed.
#include "src/api/machine_service.h"

#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>

#include "src/state/event_journal.h"
#include "keel/supervisor/supervisor.h"
#include "keel/transport/grpc_status.h"
#include "src/boot/kmsg.h"
#include "src/api/api_detail.h"

namespace keel::machined {

using namespace api_detail;
using transport::toGrpc;

namespace {

// A queue between a subscription callback (any thread) and the handler thread that
// writes the stream. Bounded: a follower too slow to keep up loses the oldest items and
// is told so, instead of growing machined's memory.
template <typename T>
class FollowQueue {
 public:
  explicit FollowQueue(size_t capacity) : capacity_(capacity) {}
  void push(T item) {
    std::lock_guard lock(mu_);
    if (items_.size() >= capacity_) {
      items_.pop_front();
      ++dropped_;
    }
    items_.push_back(std::move(item));
    cv_.notify_one();
  }
  // Waits up to `timeout` for items; returns them all (and how many were dropped).
  std::deque<T> take(std::chrono::milliseconds timeout, size_t& dropped) {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, timeout, [&] { return !items_.empty(); });
    dropped = std::exchange(dropped_, 0);
    return std::exchange(items_, {});
  }

 private:
  size_t capacity_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<T> items_;
  size_t dropped_ = 0;
};

}  // namespace

grpc::Status MachineServiceImpl::Logs(grpc::ServerContext* ctx, const v1::LogsRequest* req,
                                      grpc::ServerWriter<v1::LogLine>* writer) {
  KEEL_AUTHORIZE(ctx);
  const size_t tail = req->tail_lines() <= 0 ? std::numeric_limits<size_t>::max()
                                             : static_cast<size_t>(req->tail_lines());
  // Subscribe before reading the tail, so no line falls between the two; a line that
  // arrives in between may be shown twice, which is better than lost.
  FollowQueue<std::string> queue(10000);
  supervisor::Subscription sub;
  if (req->follow()) {
    auto s = deps_.supervisor->followLogs(req->service(), [&queue](const std::string& l) { queue.push(l); });
    if (!s.ok()) return toGrpc(s.status());
    sub = std::move(*s);
  }
  auto lines = deps_.supervisor->logs(req->service(), tail);
  if (!lines.ok()) return toGrpc(lines.status());
  v1::LogLine out;
  KEEL_META((&out));
  for (const auto& l : *lines) {
    out.set_line(l);
    if (!writer->Write(out)) return grpc::Status::CANCELLED;
  }
  if (!req->follow()) return grpc::Status::OK;
  while (!ctx->IsCancelled()) {
    size_t dropped = 0;
    auto batch = queue.take(kFollowPoll, dropped);
    if (dropped > 0) {
      out.set_line("[" + std::to_string(dropped) + " lines dropped: the reader fell behind]");
      if (!writer->Write(out)) return grpc::Status::CANCELLED;
    }
    for (auto& l : batch) {
      out.set_line(std::move(l));
      if (!writer->Write(out)) return grpc::Status::CANCELLED;
    }
  }
  return grpc::Status::CANCELLED;
}

grpc::Status MachineServiceImpl::Dmesg(grpc::ServerContext* ctx, const v1::DmesgRequest* req,
                                       grpc::ServerWriter<v1::LogLine>* writer) {
  KEEL_AUTHORIZE(ctx);
  auto log = KernelLog::open(deps_.kmsgPath);
  if (!log.ok()) return toGrpc(log.status());
  auto lines = log->readAvailable();
  if (!lines.ok()) return toGrpc(lines.status());
  size_t start = 0;
  if (req->tail_lines() > 0 && lines->size() > static_cast<size_t>(req->tail_lines())) {
    start = lines->size() - static_cast<size_t>(req->tail_lines());
  }
  v1::LogLine out;
  KEEL_META((&out));
  for (size_t i = start; i < lines->size(); ++i) {
    out.set_line((*lines)[i]);
    if (!writer->Write(out)) return grpc::Status::CANCELLED;
  }
  if (!req->follow()) return grpc::Status::OK;
  while (!ctx->IsCancelled()) {
    if (!log->waitReadable(static_cast<int>(kFollowPoll.count()))) continue;
    auto more = log->readAvailable();
    if (!more.ok()) return toGrpc(more.status());
    if (more->empty()) {
      // A regular file (tests) is always "readable"; do not spin on it.
      std::this_thread::sleep_for(kFollowPoll);
      continue;
    }
    for (auto& l : *more) {
      out.set_line(std::move(l));
      if (!writer->Write(out)) return grpc::Status::CANCELLED;
    }
  }
  return grpc::Status::CANCELLED;
}

grpc::Status MachineServiceImpl::Events(grpc::ServerContext* ctx, const v1::EventsRequest* req,
                                        grpc::ServerWriter<v1::Event>* writer) {
  KEEL_AUTHORIZE(ctx);
  FollowQueue<NodeEvent> queue(10000);
  supervisor::Subscription sub;
  // tail_events > 0: the last N; 0: none; < 0: every event kept.
  const size_t tail = req->tail_events() < 0 ? 0 : static_cast<size_t>(req->tail_events());
  auto initial = deps_.events->tailAndFollow(tail, [&queue](const NodeEvent& e) { queue.push(e); }, sub);
  if (req->tail_events() == 0) initial.clear();
  if (!req->follow()) sub.reset();
  v1::Event out;
  KEEL_META((&out));
  auto send = [&](const NodeEvent& e) {
    out.set_unix_nanos(unixNanos(e.time));
    out.set_kind(e.kind);
    out.set_subject(e.subject);
    out.set_state(e.state);
    out.set_message(e.message);
    return writer->Write(out);
  };
  for (const auto& e : initial) {
    if (!send(e)) return grpc::Status::CANCELLED;
  }
  if (!req->follow()) return grpc::Status::OK;
  while (!ctx->IsCancelled()) {
    size_t dropped = 0;
    for (const auto& e : queue.take(kFollowPoll, dropped)) {
      if (!send(e)) return grpc::Status::CANCELLED;
    }
  }
  return grpc::Status::CANCELLED;
}

}  // namespace keel::machined
