// Structured logs for Keel's daemons: one JSON object per line on stderr, which machined
// keeps as the service's log (`keelctl logs <name>`):
//   {"time":"2026-12-06T03:40:00.123Z","level":"info","daemon":"timed","msg":"serving"}
// The message is escaped (invalid UTF-8 replaced), so a line is always valid JSON.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include <spdlog/formatter.h>

namespace keel::backend {

std::unique_ptr<spdlog::formatter> jsonLineFormatter(std::string daemon);

// Makes the default logger write JSON lines to stderr at `level` ("trace" … "error").
// Errors: an unknown level name (the caller reports it; the level is left unchanged).
bool setUpLogging(std::string_view daemon, std::string_view level);

}  // namespace keel::backend
