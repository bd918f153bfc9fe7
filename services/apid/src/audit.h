// apid's audit log: one JSON line per call (a stream gets a line when it opens and one
// when it ends), to a size-rotated file in apid's state directory and to stdout, which
// machined keeps as apid's service log (`keelctl logs apid`). Never a key, a token or a
// message body: only who, what, where, the decision and its outcome.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "keel/common/clock.h"
#include "keel/common/status.h"

namespace spdlog {
class logger;
}

namespace keel::apid {

struct AuditRecord {
  std::string event = "call";      // "call" (a whole call), "open" (a stream starts), "end" (it ended)
  std::string requestId;
  std::string peer;                // remote address
  std::string identity;            // the client certificate's CN (or "<CN> via <apid>")
  std::vector<std::string> roles;
  std::string method;
  std::vector<std::string> targets;  // nodes; empty: this node
  bool allowed = false;
  StatusCode code = StatusCode::kOk;
  std::string reason;              // apid's own refusal message (never a backend's body)
  std::chrono::microseconds duration{0};
  uint64_t bytesIn = 0;
  uint64_t bytesOut = 0;
  uint64_t count = 0;              // a "summary" line: how many calls it stands for
};


// The JSON line of a record (no newline), with `time` in RFC 3339 UTC.
std::string formatAuditLine(const AuditRecord& record, TimePoint time);

class AuditLog {
 public:
  // Opens `dir`/audit.log, rotated at `maxFileBytes` keeping `maxFiles` old files.
  // `toStdout` also writes each line to stdout, buffered until flushOutput() or until
  // kMaxBufferedOutput bytes are waiting.
  static Result<std::unique_ptr<AuditLog>> open(const std::filesystem::path& dir, std::size_t maxFileBytes,
                                                std::size_t maxFiles, bool toStdout, const Clock& clock);
  ~AuditLog();

  // Thread-safe; the line is written (and flushed to the file) before it returns.
  void write(const AuditRecord& record);
  // Returns once every line written before the call is in the file (and on stdout).
  // Thread-safe.
  void flush();
  // Pushes the buffered stdout copy out; apid calls it a few times a second. Thread-safe.
  void flushOutput();

 private:
  static constexpr size_t kMaxBufferedOutput = 64 * 1024;

  AuditLog(std::shared_ptr<spdlog::logger> logger, bool toStdout, const Clock& clock)
      : logger_(std::move(logger)), toStdout_(toStdout), clock_(clock) {}
  std::shared_ptr<spdlog::logger> logger_;
  // The stdout copy: lines wait in `buffer_` and leave in one write per batch.
  const bool toStdout_;
  std::mutex bufferMu_;
  std::string buffer_;
  std::mutex writeMu_;
  bool outputLost_ = false;  // a write to stdout failed (guarded by writeMu_)
  const Clock& clock_;
};

}  // namespace keel::apid
