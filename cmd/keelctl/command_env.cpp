#include "command_env.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

namespace keel::keelctl {

void runWhenChosen(CLI::App& cmd, CommandAction& action, CommandAction run) {
  cmd.callback([&action, run = std::move(run)] { action = run; });
}

Status withHint(const Status& status, std::string_view missingFileHint) {
  if (status.code() == StatusCode::kNotFound && !missingFileHint.empty()) {
    return {status.code(), fmt::format("{} ({})", status.message(), missingFileHint)};
  }
  if (status.code() == StatusCode::kAlreadyExists) {
    return {status.code(), fmt::format("{} (pass --force to replace it)", status.message())};
  }
  return status;
}

}  // namespace keel::keelctl
