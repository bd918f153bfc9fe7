// Files that hold secrets (CA keys, client keys, tokens): written atomically with mode
// 0600, never over an existing file unless asked, and refused when readable or
// writable by anyone but their owner.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

#include "keel/common/status.h"

namespace keel::config {

// Files larger than this are refused when read: every file Keel reads this way is
// a few kilobytes, so a huge one is a mistake (or an attack), not a config.
inline constexpr size_t kMaxPrivateFileSize = 1 << 20;

enum class Overwrite { kNo, kYes };

// Writes `content` to `path` with mode 0600: a temporary file in the same directory,
// fsync, then an atomic link (kNo: fails with ALREADY_EXISTS if `path` exists, even if it
// appears meanwhile) or rename (kYes), then fsync of the directory. A reader never sees
// a partial file.
Status writePrivateFile(const std::filesystem::path& path, std::string_view content, Overwrite overwrite);

// Reads a whole file that holds secrets. `why` completes the refusal message for a file
// others may access ("it holds CA keys"). Errors: NOT_FOUND (missing), PERMISSION_DENIED
// (mode allows group/others, or unreadable), FAILED_PRECONDITION (not a regular file, too
// large).
Result<std::string> readPrivateFile(const std::filesystem::path& path, std::string_view why);

// readPrivateFile, then `parse` (text -> Result<T>); a parse error starts with the path.
template <typename Parse>
auto readPrivateDocument(const std::filesystem::path& path, std::string_view why, Parse parse)
    -> decltype(parse(std::string_view())) {
  KEEL_ASSIGN_OR_RETURN(const std::string text, readPrivateFile(path, why));
  auto parsed = parse(text);
  if (!parsed.ok()) return parsed.status().withContext(path.string());
  return parsed;
}

}  // namespace keel::config
