#include "audit.h"

#include <nlohmann/json.hpp>
#include <spdlog/async.h>
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
  if (toStdout) sinks.push_back(std::make_shared<spdlog::sinks::stdout_sink_mt>());
  // One background thread writes; callers only queue. A full queue blocks rather than
  // drops: an audit line is never lost.
  static std::once_flag poolOnce;
  std::call_once(poolOnce, [] { spdlog::init_thread_pool(8192, 1); });
  auto logger = std::make_shared<spdlog::async_logger>("audit", sinks.begin(), sinks.end(), spdlog::thread_pool(),
                                                       spdlog::async_overflow_policy::block);
  logger->set_pattern("%v");
  logger->set_level(spdlog::level::info);
  logger->flush_on(spdlog::level::info);
  return std::unique_ptr<AuditLog>(new AuditLog(std::move(logger), clock));
}

AuditLog::~AuditLog() { flush(); }

void AuditLog::write(const AuditRecord& record) { logger_->info(formatAuditLine(record, clock_.now())); }

void AuditLog::flush() { logger_->flush(); }

}  // namespace keel::apid
