// The accounts backends and extensions run under on a host whose packaging did not make
// a `keel-<name>` account for them: machined gives each name a uid of its own from a
// range no packaged account uses, and remembers it in a file of its state, so a name
// keeps its uid across restarts and two names never share one. (Shared accounts would let
// one backend signal another, replace its socket and read its state.)
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <string>
#include <utility>

#include "keel/common/status.h"

namespace keel::machined {

class DynamicAccounts {
 public:
  // uids (and gids: the same numbers) kBase .. kBase + kCount - 1. Above the ranges of
  // system and ordinary users, of systemd's dynamic users and of the usual subordinate
  // ranges of user namespaces; below 2^31.
  static constexpr uid_t kBase = 0x7E4B0000;
  static constexpr uid_t kCount = 65536;

  // `file`: the JSON object name -> uid (mode 0600), created on first use.
  explicit DynamicAccounts(std::filesystem::path file) : file_(std::move(file)) {}

  // The uid and gid of `name`: the one it was given before, else the lowest free one,
  // recorded before it is returned. Errors: INVALID_ARGUMENT for a file that does not
  // parse; RESOURCE_EXHAUSTED when the range is used up; the file's write errors.
  Result<std::pair<uid_t, gid_t>> accountFor(const std::string& name);

 private:
  std::filesystem::path file_;
};

}  // namespace keel::machined
