#include "keel/supervisor/log_store.h"

#include <deque>
#include <system_error>

#include <fmt/format.h>
#include <spdlog/common.h>
#include <spdlog/details/log_msg.h>
#include <spdlog/sinks/rotating_file_sink.h>
#include <sys/stat.h>

namespace keel::supervisor {

namespace {

constexpr size_t kMaxIdLength = 63;

// Splits `text` into lines of at most `maxLength` bytes (see LogStore::append).
std::vector<std::string> splitLines(std::string_view text, size_t maxLength) {
  std::vector<std::string> lines;
  while (!text.empty()) {
    const size_t newline = text.find('\n');
    std::string_view line = text.substr(0, newline);
    text = newline == std::string_view::npos ? std::string_view() : text.substr(newline + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) {
      lines.emplace_back();
      continue;
    }
    while (!line.empty()) {
      lines.emplace_back(line.substr(0, maxLength));
      line.remove_prefix(std::min(maxLength, line.size()));
    }
  }
  return lines;
}

}  // namespace

bool isValidId(std::string_view id) {
  if (id.empty() || id.size() > kMaxIdLength) return false;
  auto lowerOrDigit = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  if (!lowerOrDigit(id.front())) return false;
  for (char c : id) {
    if (!lowerOrDigit(c) && c != '.' && c != '_' && c != '-') return false;
  }
  return true;
}

struct LogStore::Log {
  std::deque<std::string> lines;
  // Single-threaded sink: every write happens under the store's mutex.
  std::unique_ptr<spdlog::sinks::rotating_file_sink_st> file;
  bool fileFailed = false;  // a write error is recorded once in memory, not on every line
  Subscribers<std::string> followers;
};

LogStore::LogStore(LogOptions options) : options_(std::move(options)) {}
LogStore::~LogStore() = default;

Result<std::shared_ptr<LogStore>> LogStore::create(LogOptions options) {
  if (options.maxLines == 0 || options.maxLineLength == 0 || options.fileMaxBytes == 0 ||
      options.fileCount == 0) {
    return invalidArgument(
        fmt::format("log options: expected maxLines, maxLineLength, fileMaxBytes and fileCount above 0, "
                    "found {}, {}, {}, {}",
                    options.maxLines, options.maxLineLength, options.fileMaxBytes, options.fileCount));
  }
  if (!options.dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(options.dir, ec);
    if (ec)
      return internalError(fmt::format("creating log directory {}: {}", options.dir.string(), ec.message()));
    if (::chmod(options.dir.c_str(), 0700) != 0) {
      return internalError(fmt::format("chmod 0700 {}: {}", options.dir.string(),
                                       std::error_code(errno, std::generic_category()).message()));
    }
  }
  return std::shared_ptr<LogStore>(new LogStore(std::move(options)));
}

LogStore::Log* LogStore::find(std::string_view id) const {
  const auto it = logs_.find(id);
  return it == logs_.end() ? nullptr : it->second.get();
}

Status LogStore::addLog(std::string_view id) {
  if (!isValidId(id)) {
    return invalidArgument(fmt::format(
        "log id: expected [a-z0-9][a-z0-9._-]* of at most {} bytes, found '{}'", kMaxIdLength, id));
  }
  auto log = std::make_unique<Log>();
  if (!options_.dir.empty()) {
    const auto path = options_.dir / (std::string(id) + ".log");
    try {
      // spdlog counts rotated files only; the current file is the extra one.
      log->file = std::make_unique<spdlog::sinks::rotating_file_sink_st>(path.string(), options_.fileMaxBytes,
                                                                         options_.fileCount - 1);
      log->file->set_pattern("%v");
    } catch (const spdlog::spdlog_ex& e) {
      return internalError(fmt::format("opening log file {}: {}", path.string(), e.what()));
    }
  }
  std::lock_guard lock(mutex_);
  if (find(id) != nullptr) return alreadyExists(fmt::format("log '{}' already exists", id));
  logs_.emplace(std::string(id), std::move(log));
  return Status::ok();
}

Status LogStore::append(std::string_view id, std::string_view text) {
  std::vector<std::string> lines = splitLines(text, options_.maxLineLength);
  Log* log = nullptr;
  {
    std::lock_guard lock(mutex_);
    log = find(id);
    if (log == nullptr) return notFound(fmt::format("log '{}': no such log", id));
    for (const auto& line : lines) {
      if (log->file && !log->fileFailed) {
        try {
          spdlog::details::log_msg msg(spdlog::source_loc{}, spdlog::string_view_t(id.data(), id.size()),
                                       spdlog::level::info, spdlog::string_view_t(line.data(), line.size()));
          log->file->log(msg);
        } catch (const spdlog::spdlog_ex& e) {
          log->fileFailed = true;
          log->lines.push_back(fmt::format("[log file disabled after a write error: {}]", e.what()));
        }
      }
      log->lines.push_back(line);
      while (log->lines.size() > options_.maxLines) log->lines.pop_front();
    }
    if (log->file && !log->fileFailed) {
      try {
        // One flush per append: a batch from a pipe read is one write, and the file is
        // current when someone reads it after a crash.
        log->file->flush();
      } catch (const spdlog::spdlog_ex&) {
        log->fileFailed = true;
      }
    }
  }
  for (const auto& line : lines) log->followers.publish(line);
  return Status::ok();
}

Result<std::vector<std::string>> LogStore::tail(std::string_view id, size_t n) const {
  std::lock_guard lock(mutex_);
  const Log* log = find(id);
  if (log == nullptr) return notFound(fmt::format("log '{}': no such log", id));
  const size_t count = std::min(n, log->lines.size());
  return std::vector<std::string>(log->lines.end() - static_cast<std::ptrdiff_t>(count), log->lines.end());
}

Result<Subscription> LogStore::follow(std::string_view id, std::function<void(const std::string&)> callback) {
  Log* log = nullptr;
  {
    std::lock_guard lock(mutex_);
    log = find(id);
    if (log == nullptr) return notFound(fmt::format("log '{}': no such log", id));
  }
  return log->followers.add(std::move(callback));
}

}  // namespace keel::supervisor
