#include "audit.h"

#include <nlohmann/json.hpp>
#include <spdlog/sinks/rotating_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include "keel/common/clock.h"

namespace keel::apid {

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
  return std::unique_ptr<AuditLog>(new AuditLog(std::move(logger), std::move(out), clock));
}

AuditLog::~AuditLog() { flush(); }

void AuditLog::write(const AuditRecord& record) {
  const std::string line = formatAuditLine(record, clock_.now());
  logger_->info(line);
  if (out_) out_->info(line);
}

void AuditLog::flushOutput() {
  if (out_) out_->flush();
}

void AuditLog::flush() {
  logger_->flush();
  flushOutput();
}

}  // namespace keel::apid
