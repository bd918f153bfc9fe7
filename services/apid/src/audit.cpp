#include "audit.h"

#include <unistd.h>

#include <spdlog/sinks/rotating_file_sink.h>
#include <spdlog/spdlog.h>

#include <cerrno>

#include "json_line.h"
#include "keel/common/clock.h"

namespace keel::apid {

std::string formatAuditLine(const AuditRecord& r, TimePoint time) {
  JsonLine line;
  line.field("time", formatTime(time))
      .field("event", r.event)
      .field("requestId", r.requestId)
      .field("peer", r.peer)
      .field("identity", r.identity)
      .field("roles", r.roles)
      .field("method", r.method)
      .field("targets", r.targets)
      .field("decision", r.allowed ? "allow" : "deny")
      .field("code", statusCodeName(r.code));
  if (!r.reason.empty()) line.field("reason", r.reason);
  if (r.count > 0) line.field("count", r.count);
  if (r.event != "open") {
    line.field("durationUs", static_cast<int64_t>(r.duration.count()))
        .field("bytesIn", r.bytesIn)
        .field("bytesOut", r.bytesOut);
  }
  return std::move(line).finish();
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
  // Written by the thread that handles the call, before the call's reply: no thread hop
  // per call, and a line is in the file before the client hears back.
  auto logger = std::make_shared<spdlog::logger>("audit", sinks.begin(), sinks.end());
  logger->set_pattern("%v");
  logger->set_level(spdlog::level::info);
  logger->flush_on(spdlog::level::info);
  return std::unique_ptr<AuditLog>(new AuditLog(std::move(logger), toStdout, clock));
}

AuditLog::~AuditLog() { flush(); }

void AuditLog::write(const AuditRecord& record) {
  const std::string line = formatAuditLine(record, clock_.now());
  logger_->info(line);
  if (!toStdout_) return;
  bool full = false;
  {
    std::lock_guard lock(bufferMu_);
    buffer_ += line;
    buffer_ += '\n';
    full = buffer_.size() >= kMaxBufferedOutput;
  }
  if (full) flushOutput();
}

void AuditLog::flushOutput() {
  if (!toStdout_) return;
  // One writer at a time keeps batches in order; lines go on being buffered meanwhile.
  std::lock_guard writing(writeMu_);
  std::string batch;
  {
    std::lock_guard lock(bufferMu_);
    batch.swap(buffer_);
  }
  size_t done = 0;
  while (done < batch.size()) {
    const ssize_t n = ::write(STDOUT_FILENO, batch.data() + done, batch.size() - done);
    if (n < 0 && errno == EINTR) continue;
    // Nobody reads the copy any more (the file still has every line): drop it, and say so
    // once.
    if (n <= 0) {
      if (!outputLost_) {
        outputLost_ = true;
        spdlog::warn("apid: the audit copy on stdout cannot be written ({}); audit.log keeps every line",
                     n < 0 ? errnoText(errno) : std::string("nothing written"));
      }
      return;
    }
    done += static_cast<size_t>(n);
  }
}

void AuditLog::flush() {
  logger_->flush();
  flushOutput();
}

}  // namespace keel::apid
