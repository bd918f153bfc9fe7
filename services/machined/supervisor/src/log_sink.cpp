#include "keel/supervisor/log_sink.h"

#include <spdlog/pattern_formatter.h>

namespace keel::supervisor {

LogStoreSink::LogStoreSink(std::shared_ptr<LogStore> store, std::string id)
    : store_(std::move(store)),
      id_(std::move(id)),
      formatter_(std::make_unique<spdlog::pattern_formatter>()) {}

void LogStoreSink::log(const spdlog::details::log_msg& msg) {
  spdlog::memory_buf_t formatted;
  {
    std::lock_guard lock(formatterMutex_);
    formatter_->format(msg, formatted);
  }
  // The store splits at '\n' and ignores the final one, so the formatter's eol is harmless.
  // A missing log is a wiring error of the daemon; a log call has nowhere to report it.
  (void)store_->append(id_, std::string_view(formatted.data(), formatted.size()));
}

void LogStoreSink::set_pattern(const std::string& pattern) {
  set_formatter(std::make_unique<spdlog::pattern_formatter>(pattern));
}

void LogStoreSink::set_formatter(std::unique_ptr<spdlog::formatter> formatter) {
  std::lock_guard lock(formatterMutex_);
  formatter_ = std::move(formatter);
}

}  // namespace keel::supervisor
