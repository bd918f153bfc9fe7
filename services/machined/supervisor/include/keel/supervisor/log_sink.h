// An spdlog sink that writes into a LogStore, so machined's own log is kept, rotated
// and followed exactly like a service's ("logs machined").
#pragma once

#include <memory>
#include <mutex>
#include <string>

#include <spdlog/formatter.h>
#include <spdlog/sinks/sink.h>

#include "keel/supervisor/log_store.h"

namespace keel::supervisor {

class LogStoreSink final : public spdlog::sinks::sink {
 public:
  // Writes to log `id` of `store`, which must exist (see Supervisor::kMachinedLogId).
  // Shares ownership of the store, so the sink may outlive the supervisor. Thread-safe.
  LogStoreSink(std::shared_ptr<LogStore> store, std::string id);

  // Formats with the sink's pattern and appends outside any spdlog lock, so a follower of
  // this log may itself use spdlog (but must not log to this same sink).
  void log(const spdlog::details::log_msg& msg) override;
  void flush() override {}
  void set_pattern(const std::string& pattern) override;
  void set_formatter(std::unique_ptr<spdlog::formatter> formatter) override;

 private:
  std::shared_ptr<LogStore> store_;
  std::string id_;
  std::mutex formatterMutex_;
  std::unique_ptr<spdlog::formatter> formatter_;
};

}  // namespace keel::supervisor
