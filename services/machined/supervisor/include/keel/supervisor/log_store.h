// Bounded per-service logs: the last lines of each log in memory for `logs` and
// `logs --follow`, and a size-capped rotating file per log, so a chatty or hostile
// service can neither exhaust machined's memory nor fill the disk.
#pragma once

#include <cstddef>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "keel/common/status.h"
#include "keel/supervisor/subscription.h"

namespace keel::supervisor {

struct LogOptions {
  // Files go to "<dir>/<id>.log" (rotated ones "<dir>/<id>.1.log", ...); the directory is
  // created 0700. Empty: memory only.
  std::filesystem::path dir;
  size_t maxLines = 2000;                 // lines kept in memory per log
  size_t maxLineLength = 4096;            // bytes; longer lines are split into pieces
  size_t fileMaxBytes = 5 * 1024 * 1024;  // a file rotates before it would grow past this
  size_t fileCount = 2;                   // files kept per log, the current one included
};

class LogStore {
 public:
  // Validates the options and creates the directory.
  static Result<std::shared_ptr<LogStore>> create(LogOptions options);
  ~LogStore();
  LogStore(const LogStore&) = delete;
  LogStore& operator=(const LogStore&) = delete;

  // Creates the log `id` ([a-z0-9][a-z0-9._-]*, at most 63 bytes) and opens its file,
  // appending to what a previous run left. ALREADY_EXISTS when it exists. Thread-safe.
  Status addLog(std::string_view id);

  // Appends `text` as lines: split at '\n' (a final '\n' does not start an empty line;
  // a trailing '\r' is dropped) and into pieces of at most maxLineLength bytes. Lines go
  // to memory and the file, then to followers on the calling thread, with no lock of the
  // store held. NOT_FOUND for an unknown log. Thread-safe.
  Status append(std::string_view id, std::string_view text);

  // The last `n` lines of log `id`, oldest first. NOT_FOUND for an unknown log. Thread-safe.
  Result<std::vector<std::string>> tail(std::string_view id, size_t n) const;

  // Calls `callback` with each line appended to `id` from now on, on the appending thread,
  // until the returned handle is destroyed. The callback must not throw and must not append
  // to the same log (that would recurse). NOT_FOUND for an unknown log. Thread-safe.
  Result<Subscription> follow(std::string_view id, std::function<void(const std::string&)> callback);

  const LogOptions& options() const { return options_; }

 private:
  struct Log;
  explicit LogStore(LogOptions options);
  Log* find(std::string_view id) const;  // requires mutex_

  LogOptions options_;
  mutable std::mutex mutex_;
  // Logs are never removed, so a Log* stays valid for the store's lifetime.
  std::map<std::string, std::unique_ptr<Log>, std::less<>> logs_;
};

// Log and service ids: [a-z0-9][a-z0-9._-]*, at most 63 bytes; safe as a file name.
bool isValidId(std::string_view id);

}  // namespace keel::supervisor
