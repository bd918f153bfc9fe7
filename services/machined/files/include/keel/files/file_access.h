// Listing and reading files for machined's List and Read calls, confined to the
// allowed roots of the machine config. Every path is resolved by the kernel beneath
// an opened root, with symlinks, magic links, '..' and mount crossings refused.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "keel/common/status.h"
#include "keel/common/fd_io.h"

namespace keel::files {

// Contract: nothing under an allowed root is ever reached through a symlink, not even
// a symlink to a file inside the same root. Symlinks are listed (with their target)
// but never followed, for reading or for recursion; the root's own path is the only
// one resolved normally, and its last component must not be a symlink either. Nothing
// on another mount than the root's is reached (bind mounts included): a filesystem
// mounted below a root must be configured as a root of its own.

enum class EntryType { kRegular, kDirectory, kSymlink, kOther };

struct FileEntry {
  std::string name;          // absolute path on the node
  std::string relativeName;  // relative to the root that was listed
  EntryType type = EntryType::kOther;
  uint64_t size = 0;
  uint32_t mode = 0;  // st_mode: file type and permission bits
  int64_t modifiedUnix = 0;
  bool isDir = false;
  std::string link;   // target of a symlink, as stored (never followed)
  std::string error;  // set when the entry could not be examined or descended into
};

struct Listing {
  std::vector<FileEntry> entries;  // pre-order, sorted by name within each directory
  bool truncated = false;          // a limit was reached: more entries exist than returned
};

// How paths are resolved beneath a root: openat2(2) when the kernel has it (5.6+),
// else an O_NOFOLLOW walk one component at a time. kWalk forces the walk (tests,
// and sandboxes whose seccomp filter denies openat2 with something other than ENOSYS).
enum class PathResolver { kAuto, kWalk };

struct FileAccessOptions {
  size_t maxListEntries = 10000;    // entries returned by one list()
  size_t maxListVisited = 1000000;  // names examined by one list(), filtered out or not
  size_t maxNesting = 64;           // directory levels list() descends: bounds open descriptors
  size_t chunkBytes = 64 * 1024;    // largest chunk FileReader::next() returns
  PathResolver resolver = PathResolver::kAuto;
};

// Streams one regular file opened by FileAccess::openForRead; owns the descriptor.
// Not thread-safe: one reader serves one stream.
class FileReader {
 public:
  FileReader(FileReader&& other) noexcept = default;
  FileReader& operator=(FileReader&& other) noexcept = default;
  FileReader(const FileReader&) = delete;
  FileReader& operator=(const FileReader&) = delete;
  ~FileReader() = default;

  // The next chunk of at most chunkBytes, or an empty string at end of file. Reads the
  // file that was opened even if its path is renamed or replaced afterwards.
  [[nodiscard]] Result<std::string> next();

  const std::string& path() const { return path_; }
  uint64_t sizeAtOpen() const { return sizeAtOpen_; }

 private:
  friend class FileAccess;
  FileReader(int fd, std::string path, size_t chunkBytes, uint64_t sizeAtOpen);

  UniqueFd fd_;
  std::string path_;
  size_t chunkBytes_ = 0;
  uint64_t sizeAtOpen_ = 0;
};

// Immutable after construction: list() and openForRead() are thread-safe.
class FileAccess {
 public:
  // Roots are absolute paths, normalized lexically; a relative root is ignored (it
  // never matches). Roots need not exist yet: each call opens its root anew.
  explicit FileAccess(std::vector<std::filesystem::path> allowedRoots, FileAccessOptions options = {});

  // Entries below the absolute directory `root` (an allowed root or a directory under
  // one). recursionDepth 0 lists the directory's own entries, n descends n levels, a
  // negative value descends until the limits. `types` keeps only entries of those
  // types (all when empty); recursion still passes through directories filtered out.
  // Errors: INVALID_ARGUMENT (relative path), PERMISSION_DENIED (outside the roots,
  // '..', a symlink or mount crossed on the way), NOT_FOUND, FAILED_PRECONDITION (not
  // a directory). Per-entry failures go in FileEntry::error.
  [[nodiscard]] Result<Listing> list(const std::filesystem::path& root, int recursionDepth,
                                     const std::vector<EntryType>& types = {}) const;

  // Opens the absolute `path` of a regular file under an allowed root for streaming.
  // Errors as list(), and FAILED_PRECONDITION for a directory, device, FIFO or socket,
  // PERMISSION_DENIED when `path` itself is a symlink, ABORTED when the file was
  // replaced between the check and the open.
  [[nodiscard]] Result<FileReader> openForRead(const std::filesystem::path& path) const;

  // The roots that paths are matched against, normalized; relative ones left out.
  const std::vector<std::string>& allowedRoots() const { return roots_; }

 private:
  struct Target;
  [[nodiscard]] Result<Target> locate(const std::filesystem::path& path) const;
  std::string rootsForMessage() const;

  std::vector<std::string> roots_;
  std::vector<std::vector<std::string>> rootComponents_;
  FileAccessOptions options_;
};

}  // namespace keel::files
