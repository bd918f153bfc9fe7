#include "keel/config/file_io.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include <fmt/format.h>

#include "keel/common/fd_io.h"
#include "keel/config/random.h"

namespace keel::config {
namespace {

Status writeAll(int fd, std::string_view content, const std::filesystem::path& path) {
  const char* p = content.data();
  size_t left = content.size();
  while (left > 0) {
    const ssize_t n = write(fd, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      return internalError(fmt::format("cannot write {}: {}", path.string(), errnoText(errno)));
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
  return Status::ok();
}

Status fsyncDirectory(const std::filesystem::path& dir) {
  UniqueFd fd(open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0) return internalError(fmt::format("cannot open directory {}: {}", dir.string(), errnoText(errno)));
  if (fsync(fd.get()) != 0) {
    return internalError(fmt::format("cannot fsync directory {}: {}", dir.string(), errnoText(errno)));
  }
  return Status::ok();
}

}  // namespace

Status writePrivateFile(const std::filesystem::path& path, std::string_view content, Overwrite overwrite) {
  if (path.filename().empty()) return invalidArgument(fmt::format("{}: expected a file path, found a directory", path.string()));
  const std::filesystem::path dir = path.parent_path().empty() ? std::filesystem::path(".") : path.parent_path();
  SystemRandom random;
  const std::filesystem::path tmp =
      dir / fmt::format(".{}.tmp-{}", path.filename().string(),
                        randomString(random, "abcdefghijklmnopqrstuvwxyz0123456789", 12));
  UniqueFd fd(open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (fd.get() < 0) {
    const int err = errno;
    if (err == ENOENT) return notFound(fmt::format("cannot write {}: directory {} does not exist", path.string(), dir.string()));
    if (err == EACCES) return permissionDenied(fmt::format("cannot write {}: {}", path.string(), errnoText(err)));
    return internalError(fmt::format("cannot write {}: {}", path.string(), errnoText(err)));
  }
  // The umask can only remove bits from 0600, but be explicit about the result.
  Status status = fchmod(fd.get(), 0600) == 0
                      ? writeAll(fd.get(), content, path)
                      : internalError(fmt::format("cannot chmod {}: {}", tmp.string(), errnoText(errno)));
  if (status.isOk() && fsync(fd.get()) != 0) {
    status = internalError(fmt::format("cannot fsync {}: {}", tmp.string(), errnoText(errno)));
  }
  if (status.isOk() && close(fd.release()) != 0) {
    status = internalError(fmt::format("cannot write {}: {}", path.string(), errnoText(errno)));
  }
  if (status.isOk()) {
    if (overwrite == Overwrite::kYes) {
      if (rename(tmp.c_str(), path.c_str()) != 0) {
        status = internalError(fmt::format("cannot replace {}: {}", path.string(), errnoText(errno)));
      }
    } else if (link(tmp.c_str(), path.c_str()) != 0) {
      // link() fails if the target exists, whenever it appeared: no check-then-write race.
      status = errno == EEXIST
                   ? alreadyExists(fmt::format("{} already exists: refusing to overwrite it", path.string()))
                   : internalError(fmt::format("cannot create {}: {}", path.string(), errnoText(errno)));
    }
  }
  unlink(tmp.c_str());  // after rename it no longer exists; after link it is the second name
  KEEL_RETURN_IF_ERROR(status);
  return fsyncDirectory(dir);
}

Result<std::string> readPrivateFile(const std::filesystem::path& path, std::string_view why) {
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
  if (fd.get() < 0) {
    const int err = errno;
    if (err == ENOENT) return notFound(fmt::format("{}: no such file", path.string()));
    if (err == EACCES) return permissionDenied(fmt::format("{}: cannot read it: {}", path.string(), errnoText(err)));
    return failedPrecondition(fmt::format("{}: cannot open it: {}", path.string(), errnoText(err)));
  }
  // Checked on the open descriptor, so the file judged is the file read.
  struct stat st {};
  if (fstat(fd.get(), &st) != 0) {
    return internalError(fmt::format("{}: cannot stat it: {}", path.string(), errnoText(errno)));
  }
  if (!S_ISREG(st.st_mode)) {
    return failedPrecondition(fmt::format("{}: expected a regular file, found {}", path.string(),
                                          S_ISDIR(st.st_mode) ? "a directory" : "a special file"));
  }
  if ((st.st_mode & 077) != 0) {
    return permissionDenied(fmt::format(
        "{} has mode {:04o}; {} and must be accessible by its owner only: chmod 600 {}", path.string(),
        st.st_mode & 07777, why, path.string()));
  }
  if (static_cast<uint64_t>(st.st_size) > kMaxPrivateFileSize) {
    return failedPrecondition(fmt::format("{}: expected at most {} bytes, found {}", path.string(),
                                          kMaxPrivateFileSize, st.st_size));
  }
  std::string content;
  char buf[16384];
  for (;;) {
    const ssize_t n = read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return internalError(fmt::format("{}: cannot read it: {}", path.string(), errnoText(errno)));
    }
    if (n == 0) break;
    content.append(buf, static_cast<size_t>(n));
    if (content.size() > kMaxPrivateFileSize) {
      return failedPrecondition(fmt::format("{}: expected at most {} bytes", path.string(), kMaxPrivateFileSize));
    }
  }
  return content;
}

}  // namespace keel::config
