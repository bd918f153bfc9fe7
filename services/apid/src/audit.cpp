#include "audit.h"

#include <condition_variable>
#include <mutex>

#include <nlohmann/json.hpp>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/rotating_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include "keel/common/clock.h"

namespace keel::apid {

// The last sink of the audit logger. The logging thread flushes sinks in order, so once
// this one has flushed N lines, the file sink before it has written and flushed them too.
// spdlog 1.10's flush() of an async logger only queues a request; this makes it wait.
class AuditFlushBarrier final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  void waitFor(uint64_t lines) {
    std::unique_lock lock(waitMu_);
    flushedCv_.wait(lock, [&] { return flushed_ >= lines; });
  }

 protected:
  void sink_it_(const spdlog::details::log_msg& /*msg*/) override { ++seen_; }
  void flush_() override {
    {
      std::lock_guard lock(waitMu_);
      flushed_ = seen_;
    }
    flushedCv_.notify_all();
  }

 private:
  uint64_t seen_ = 0;  // guarded by base_sink's mutex
  std::mutex waitMu_;
  std::condition_variable flushedCv_;
  uint64_t flushed_ = 0;
};

std::string formatAuditLine(const AuditRecord& r, TimePoint time) {
  nlohmann::json j = {
      {"time", formatTime(time)},
      {"event", r.event},
      {"requestId", r.requestId},
      {"peer", r.peer},
      {"identity", r.identity},
      {"roles", r.roles},
      {"method", r.method},
      {"targets", r.targets},
      {"decision", r.allowed ? "allow" : "deny"},
      {"code", std::string(statusCodeName(r.code))},
  };
  if (!r.reason.empty()) j["reason"] = r.reason;
  if (r.event != "open") {
    j["durationUs"] = r.duration.count();
    j["bytesIn"] = r.bytesIn;
    j["bytesOut"] = r.bytesOut;
  }
  // Identities and methods come from clients: replace invalid UTF-8 rather than fail.
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

Result<std::unique_ptr<AuditLog>> AuditLog::open(const std::filesystem::path& dir, std::size_t maxFileBytes,
                                                 std::size_t maxFiles, bool toStdout, const Clock& clock) {
  std::vector<spdlog::sink_ptr> sinks;
  try {
    sinks.push_back(
        std::make_shared<spdlog::sinks::rotating_file_sink_mt>((dir / "audit.log").string(), maxFileBytes, maxFiles));
  } catch (const spdlog::spdlog_ex& e) {
    return internalError("cannot open the audit log in " + dir.string() + ": " + e.what());
  }
  auto barrier = std::make_shared<AuditFlushBarrier>();
  sinks.push_back(barrier);
  // Written by the thread that handles the call, before the call's reply: no thread hop
  // per call, and a line is in the file before the client hears back.
  auto logger = std::make_shared<spdlog::logger>("audit", sinks.begin(), sinks.end());
  logger->set_pattern("%v");
  logger->set_level(spdlog::level::info);
  logger->flush_on(spdlog::level::info);
  // The copy on stdout (machined's service log of apid) is buffered and flushed by
  // flushOutput(): one pipe write per batch of lines rather than one per call.
  std::shared_ptr<spdlog::logger> out;
  if (toStdout) {
    out = std::make_shared<spdlog::logger>("audit-out", std::make_shared<spdlog::sinks::stdout_sink_mt>());
    out->set_pattern("%v");
    out->set_level(spdlog::level::info);
    out->flush_on(spdlog::level::off);
  }
  return std::unique_ptr<AuditLog>(new AuditLog(std::move(logger), std::move(out), std::move(barrier), clock));
}

AuditLog::~AuditLog() { flush(); }

void AuditLog::write(const AuditRecord& record) {
  written_.fetch_add(1);
  const std::string line = formatAuditLine(record, clock_.now());
  logger_->info(line);
  if (out_) out_->info(line);
}

void AuditLog::flushOutput() {
  if (out_) out_->flush();
}

void AuditLog::flush() {
  const uint64_t lines = written_.load();
  logger_->flush();
  barrier_->waitFor(lines);
  flushOutput();
}

}  // namespace keel::apid
