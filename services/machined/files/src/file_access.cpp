#include "keel/files/file_access.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <climits>
#include <cstring>
#include <memory>
#include <optional>
#include <string_view>
#include <utility>

#include <sys/stat.h>

#include "keel/common/fd_io.h"
#include "open_beneath.h"
#include "keel/common/status.h"

namespace keel::files {

namespace {

struct DirCloser {
  void operator()(DIR* d) const { ::closedir(d); }
};
using DirPtr = std::unique_ptr<DIR, DirCloser>;

// Splits an absolute path into its components, dropping empty and "." ones. Returns
// false when a ".." is present: after the lexical match against the roots it could
// only be an attempt to climb out of one.
bool splitPath(std::string_view path, std::vector<std::string>& out) {
  out.clear();
  size_t i = 0;
  while (i < path.size()) {
    const size_t slash = path.find('/', i);
    const size_t end = slash == std::string_view::npos ? path.size() : slash;
    const std::string_view c = path.substr(i, end - i);
    if (c == "..") return false;
    if (!c.empty() && c != ".") out.emplace_back(c);
    i = end + 1;
  }
  return true;
}

std::string joinAbsolute(const std::vector<std::string>& components) {
  std::string s;
  for (const auto& c : components) s += "/" + c;
  return s.empty() ? "/" : s;
}

std::string joinChild(const std::string& parent, const std::string& name) {
  if (parent.empty()) return name;
  return parent == "/" ? "/" + name : parent + "/" + name;
}

std::string_view typeName(mode_t mode) {
  if (S_ISREG(mode)) return "a regular file";
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISLNK(mode)) return "a symlink";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISSOCK(mode)) return "a socket";
  return "an unknown file type";
}

EntryType entryType(mode_t mode) {
  if (S_ISREG(mode)) return EntryType::kRegular;
  if (S_ISDIR(mode)) return EntryType::kDirectory;
  if (S_ISLNK(mode)) return EntryType::kSymlink;
  return EntryType::kOther;
}

}  // namespace

// ----------------------------------------------------------------------------------------
// FileReader

FileReader::FileReader(int fd, std::string path, size_t chunkBytes, uint64_t sizeAtOpen)
    : fd_(fd), path_(std::move(path)), chunkBytes_(chunkBytes), sizeAtOpen_(sizeAtOpen) {}

Result<std::string> FileReader::next() {
  if (!fd_)
    return failedPrecondition("read of " + path_ + ": expected an open reader, found a moved-from one");
  std::string chunk(chunkBytes_, '\0');
  size_t filled = 0;
  // Fill the chunk unless the file ends, so callers see full chunks on short reads.
  while (filled < chunk.size()) {
    const ssize_t n = ::read(fd_.get(), chunk.data() + filled, chunk.size() - filled);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      return Status(err == EIO ? StatusCode::kDataLoss : StatusCode::kInternal,
                    "read of " + path_ + " failed: " + errnoText(err));
    }
    if (n == 0) break;
    filled += static_cast<size_t>(n);
  }
  chunk.resize(filled);
  return chunk;
}

// ----------------------------------------------------------------------------------------
// FileAccess

struct FileAccess::Target {
  size_t root = 0;                    // index into roots_
  std::vector<std::string> relative;  // components below the root; empty for the root itself
  std::string display;                // normalized absolute path, for names and messages
};

FileAccess::FileAccess(std::vector<std::filesystem::path> allowedRoots, FileAccessOptions options)
    : options_(options) {
  if (options_.chunkBytes == 0) options_.chunkBytes = 1;
  for (const auto& root : allowedRoots) {
    const std::string s = root.lexically_normal().string();
    std::vector<std::string> components;
    // A relative root would be resolved against machined's working directory, which
    // is nothing the config can mean; one that still climbs with '..' is nonsense.
    if (s.empty() || s.front() != '/' || !splitPath(s, components)) continue;
    roots_.push_back(joinAbsolute(components));
    rootComponents_.push_back(std::move(components));
  }
}

std::string FileAccess::rootsForMessage() const {
  if (roots_.empty()) return "none configured";
  std::string s;
  for (const auto& r : roots_) s += (s.empty() ? "" : ", ") + r;
  return s;
}

Result<FileAccess::Target> FileAccess::locate(const std::filesystem::path& path) const {
  const std::string& s = path.native();
  if (s.find('\0') != std::string::npos) return invalidArgument("expected a path without NUL bytes");
  if (s.empty() || s.front() != '/') {
    return invalidArgument("expected an absolute path under one of the allowed roots (" + rootsForMessage() +
                           "), got '" + s + "'");
  }
  std::vector<std::string> components;
  if (!splitPath(s, components)) {
    return permissionDenied("'" + s + "' contains '..': expected a path inside one of the allowed roots (" +
                            rootsForMessage() + ") without '..'");
  }
  // Whole components are compared, so /srv/allowed-evil never matches /srv/allowed;
  // the longest root wins so a nested root's own settings apply.
  std::optional<size_t> best;
  for (size_t i = 0; i < rootComponents_.size(); ++i) {
    const auto& rc = rootComponents_[i];
    if (rc.size() > components.size() || !std::equal(rc.begin(), rc.end(), components.begin())) continue;
    if (!best || rc.size() > rootComponents_[*best].size()) best = i;
  }
  const std::string display = joinAbsolute(components);
  if (!best) {
    return permissionDenied("'" + display + "' is outside the allowed roots: expected a path under one of " +
                            rootsForMessage());
  }
  Target t;
  t.root = *best;
  t.relative.assign(components.begin() + static_cast<std::ptrdiff_t>(rootComponents_[*best].size()),
                    components.end());
  t.display = display;
  return t;
}

namespace {

// Turns an errno from a confined open into a status that says what was refused and why.
Status openError(int err, const std::string& path, const std::string& root) {
  switch (err) {
    case ENOENT: return notFound("'" + path + "' does not exist");
    case ENOTDIR: return notFound("'" + path + "' does not exist: a component of it is not a directory");
    case ELOOP:
      return permissionDenied("'" + path +
                              "' goes through a symlink: expected a path without symlinks under " + root +
                              ", symlinks are never followed");
    case EXDEV:
      return permissionDenied("'" + path + "' crosses into another mount or out of " + root +
                              ": expected a path on the allowed root's own mount");
    case EACCES:
    case EPERM: return permissionDenied("'" + path + "': " + errnoText(err));
    case ENAMETOOLONG: return invalidArgument("'" + path + "': " + errnoText(err));
    case EAGAIN: return unavailable("'" + path + "' kept changing while being resolved; retry");
    default: return internalError("cannot open '" + path + "': " + errnoText(err));
  }
}

Result<UniqueFd> openRoot(const std::string& root) {
  // The root's own path comes from the machine config and is resolved as written;
  // only its last component is held to the no-symlink rule, so a root directory
  // swapped for a symlink is not followed out of place.
  UniqueFd fd(::open(root.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
  if (fd.get() < 0) {
    const int err = errno;
    if (err == ENOENT || err == ENOTDIR) return notFound("allowed root " + root + " does not exist");
    return internalError("cannot open allowed root " + root + ": " + errnoText(err));
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0)
    return internalError("cannot stat allowed root " + root + ": " + errnoText(errno));
  if (S_ISLNK(st.st_mode)) {
    return permissionDenied("allowed root " + root +
                            " is a symlink: expected a directory, symlinks are never followed");
  }
  if (!S_ISDIR(st.st_mode)) {
    return failedPrecondition("allowed root " + root + ": expected a directory, found " +
                              std::string(typeName(st.st_mode)));
  }
  return fd;
}

// Opens a confined path in two steps: an O_PATH look first, which opens nothing
// (no FIFO blocks, no device driver runs) and tells what the path is; then the real
// open, accepted only if it reached the same inode.
Result<UniqueFd> openChecked(int rootFd, const std::vector<std::string>& relative, const std::string& display,
                             const std::string& root, bool wantDirectory, PathResolver resolver,
                             struct stat& st) {
  UniqueFd probe(detail::openBeneath(rootFd, relative, O_PATH, resolver));
  if (probe.get() < 0) return openError(-probe.release(), display, root);
  struct stat probed {};
  if (::fstat(probe.get(), &probed) != 0) return openError(errno, display, root);
  if (S_ISLNK(probed.st_mode)) {
    return permissionDenied("'" + display +
                            "' is a symlink: symlinks under an allowed root are never followed");
  }
  const bool ok = wantDirectory ? S_ISDIR(probed.st_mode) : S_ISREG(probed.st_mode);
  if (!ok) {
    return failedPrecondition("'" + display + "': expected " +
                              (wantDirectory ? "a directory" : "a regular file") + ", found " +
                              std::string(typeName(probed.st_mode)));
  }
  const int flags = wantDirectory ? (O_RDONLY | O_DIRECTORY) : (O_RDONLY | O_NONBLOCK | O_NOCTTY);
  UniqueFd fd(detail::openBeneath(rootFd, relative, flags, resolver));
  if (fd.get() < 0) return openError(-fd.release(), display, root);
  if (::fstat(fd.get(), &st) != 0) return openError(errno, display, root);
  if (st.st_dev != probed.st_dev || st.st_ino != probed.st_ino) {
    return Status(StatusCode::kAborted, "'" + display + "' was replaced while being opened; retry");
  }
  if (!wantDirectory && ::fcntl(fd.get(), F_SETFL, 0) != 0) return openError(errno, display, root);
  return fd;
}

// Lists one tree through descriptors: each directory is opened beneath its parent's
// descriptor by a single name, so nothing is ever re-resolved from a path string.
class Lister {
 public:
  Lister(const FileAccessOptions& options, int depth, const std::vector<EntryType>& types, std::string base,
         Listing& out)
      : options_(options), depth_(depth), types_(types), base_(std::move(base)), out_(out) {}

  // Lists the directory open at `fd` (taken over), whose entries are `level` deep.
  void list(UniqueFd fd, const std::string& relative, size_t level) {
    DirPtr dir(::fdopendir(fd.get()));
    if (!dir) return;  // only on ENOMEM/EBADF: fd is valid and a directory
    fd.release();
    std::vector<std::string> names;
    while (const dirent* d = ::readdir(dir.get())) {
      const std::string_view name = d->d_name;
      if (name == "." || name == "..") continue;
      if (visited_ + names.size() >= options_.maxListVisited) {
        stop();
        break;
      }
      names.emplace_back(name);
    }
    std::sort(names.begin(), names.end());
    const int dfd = ::dirfd(dir.get());
    for (const auto& name : names) {
      if (stopped_) return;
      ++visited_;
      visit(dfd, name, joinChild(relative, name), level);
    }
  }

 private:
  void stop() {
    out_.truncated = true;
    stopped_ = true;
  }

  bool wanted(EntryType type) const {
    return types_.empty() || std::find(types_.begin(), types_.end(), type) != types_.end();
  }

  void visit(int dfd, const std::string& name, const std::string& relative, size_t level) {
    FileEntry entry;
    entry.name = joinChild(base_, relative);
    entry.relativeName = relative;
    struct stat st {};
    if (::fstatat(dfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT) return;  // removed since the directory was read
      entry.error = errnoText(errno);
      if (wanted(EntryType::kOther)) add(std::move(entry));
      return;
    }
    entry.type = entryType(st.st_mode);
    entry.size = st.st_size > 0 ? static_cast<uint64_t>(st.st_size) : 0;
    entry.mode = st.st_mode;
    entry.modifiedUnix = st.st_mtim.tv_sec;
    entry.isDir = S_ISDIR(st.st_mode);
    if (S_ISLNK(st.st_mode)) {
      std::array<char, PATH_MAX> buf;
      const ssize_t n = ::readlinkat(dfd, name.c_str(), buf.data(), buf.size());
      if (n >= 0) {
        entry.link.assign(buf.data(), static_cast<size_t>(n));
      } else {
        entry.error = std::string("cannot read the link: ") + errnoText(errno);
      }
    }
    const bool descend = entry.isDir && (depth_ < 0 || level < static_cast<size_t>(depth_));
    UniqueFd child;
    if (descend) {
      if (level + 1 >= options_.maxNesting) {
        entry.error = "not descended: nesting deeper than " + std::to_string(options_.maxNesting) + " levels";
      } else {
        child.reset(detail::openBeneath(dfd, {name}, O_RDONLY | O_DIRECTORY, options_.resolver));
        struct stat opened {};
        if (child.get() < 0) {
          const int err = -child.release();
          if (err == ENOENT) return;
          entry.error = err == EXDEV ? "not descended: another filesystem is mounted here"
                                     : std::string("not descended: ") + errnoText(err);
        } else if (::fstat(child.get(), &opened) != 0 || opened.st_dev != st.st_dev ||
                   opened.st_ino != st.st_ino) {
          entry.error = "not descended: replaced while being listed";
          child.reset(-1);
        }
      }
    }
    if (wanted(entry.type)) {
      if (!add(std::move(entry))) return;
    }
    if (child.get() >= 0) list(std::move(child), relative, level + 1);
  }

  bool add(FileEntry entry) {
    if (out_.entries.size() >= options_.maxListEntries) {
      stop();
      return false;
    }
    out_.entries.push_back(std::move(entry));
    return true;
  }

  const FileAccessOptions& options_;
  int depth_;
  const std::vector<EntryType>& types_;
  std::string base_;
  Listing& out_;
  size_t visited_ = 0;
  bool stopped_ = false;
};

}  // namespace

Result<Listing> FileAccess::list(const std::filesystem::path& root, int recursionDepth,
                                 const std::vector<EntryType>& types) const {
  KEEL_ASSIGN_OR_RETURN(const Target target, locate(root));
  KEEL_ASSIGN_OR_RETURN(const UniqueFd rootFd, openRoot(roots_[target.root]));
  struct stat st {};
  KEEL_ASSIGN_OR_RETURN(UniqueFd dir, openChecked(rootFd.get(), target.relative, target.display,
                                                  roots_[target.root], true, options_.resolver, st));
  Listing listing;
  Lister lister(options_, recursionDepth, types, target.display, listing);
  lister.list(std::move(dir), "", 0);
  return listing;
}

Result<FileReader> FileAccess::openForRead(const std::filesystem::path& path) const {
  KEEL_ASSIGN_OR_RETURN(const Target target, locate(path));
  KEEL_ASSIGN_OR_RETURN(const UniqueFd rootFd, openRoot(roots_[target.root]));
  struct stat st {};
  KEEL_ASSIGN_OR_RETURN(UniqueFd fd, openChecked(rootFd.get(), target.relative, target.display,
                                                 roots_[target.root], false, options_.resolver, st));
  const uint64_t size = st.st_size > 0 ? static_cast<uint64_t>(st.st_size) : 0;
  return FileReader(fd.release(), target.display, options_.chunkBytes, size);
}

}  // namespace keel::files
