#include "open_beneath.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>

#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>

namespace keel::files::detail {

namespace {

constexpr uint64_t kResolveFlags =
    RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV;

// The kernel answers EAGAIN when a rename or mount raced with a RESOLVE_BENEATH
// lookup; a few retries absorb ordinary churn without letting a hostile loop spin us.
constexpr int kMaxAgainRetries = 8;

// Set once openat2 is known to be missing, so later calls go straight to the walk.
std::atomic<bool> openat2Missing{false};

std::string joinRelative(const std::vector<std::string>& components) {
  if (components.empty()) return std::string(".");
  std::string relative = components.front();
  for (size_t i = 1; i < components.size(); ++i) relative.append("/").append(components[i]);
  return relative;
}

int openat2Beneath(int dirFd, const std::vector<std::string>& components, int flags) {
  const std::string relative = joinRelative(components);
  open_how how{};
  how.flags = static_cast<uint64_t>(flags | O_NOFOLLOW | O_CLOEXEC);
  how.resolve = kResolveFlags;
  for (int attempt = 0;; ++attempt) {
    const long fd = ::syscall(SYS_openat2, dirFd, relative.c_str(), &how, sizeof how);
    if (fd >= 0) return static_cast<int>(fd);
    if (errno == EINTR || (errno == EAGAIN && attempt < kMaxAgainRetries)) continue;
    return -errno;
  }
}

// What the walk needs to know about an opened component.
struct Identity {
  mode_t mode = 0;
  dev_t dev = 0;
  uint64_t mountId = 0;
  bool haveMountId = false;
};

int identify(int fd, Identity& id) {
  struct statx stx {};
  if (::statx(fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, STATX_TYPE | STATX_MNT_ID, &stx) == 0) {
    id.mode = stx.stx_mode;
    id.dev = makedev(stx.stx_dev_major, stx.stx_dev_minor);
    id.haveMountId = (stx.stx_mask & STATX_MNT_ID) != 0;
    id.mountId = stx.stx_mnt_id;
    return 0;
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) return -errno;
  id.mode = st.st_mode;
  id.dev = st.st_dev;
  id.haveMountId = false;
  return 0;
}

// A mount id tells bind mounts of the same filesystem apart; without one (kernels
// before 5.8) only a different device can be seen.
bool sameMount(const Identity& a, const Identity& b) {
  if (a.haveMountId && b.haveMountId) return a.mountId == b.mountId;
  return a.dev == b.dev;
}

// Opens one component at a time with O_NOFOLLOW, checking each before going on, so
// the result matches openat2 with kResolveFlags: components never contain '..' (the
// caller guarantees it), symlinks (magic ones included) are refused, and a component
// on another mount than its parent is refused.
int walkBeneath(int dirFd, const std::vector<std::string>& components, int flags) {
  if (components.empty()) {
    const int fd = ::openat(dirFd, ".", flags | O_NOFOLLOW | O_CLOEXEC);
    return fd >= 0 ? fd : -errno;
  }
  int current = ::fcntl(dirFd, F_DUPFD_CLOEXEC, 0);
  if (current < 0) return -errno;
  Identity parent;
  if (const int err = identify(current, parent); err != 0) {
    ::close(current);
    return err;
  }
  for (size_t i = 0; i < components.size(); ++i) {
    const bool last = i + 1 == components.size();
    const int openFlags = last ? (flags | O_NOFOLLOW | O_CLOEXEC) : (O_PATH | O_NOFOLLOW | O_CLOEXEC);
    const int next = ::openat(current, components[i].c_str(), openFlags);
    const int openErr = errno;
    ::close(current);
    if (next < 0) return -openErr;
    Identity id;
    int err = identify(next, id);
    if (err == 0 && S_ISLNK(id.mode) && !(last && (flags & O_PATH) != 0)) err = -ELOOP;
    if (err == 0 && !last && !S_ISDIR(id.mode)) err = -ENOTDIR;
    if (err == 0 && !sameMount(parent, id)) err = -EXDEV;
    if (err != 0) {
      ::close(next);
      return err;
    }
    current = next;
    parent = id;
  }
  return current;
}

}  // namespace

int openBeneath(int dirFd, const std::vector<std::string>& components, int flags, PathResolver resolver) {
  if (resolver == PathResolver::kAuto && !openat2Missing.load(std::memory_order_relaxed)) {
    const int fd = openat2Beneath(dirFd, components, flags);
    if (fd != -ENOSYS) return fd;
    openat2Missing.store(true, std::memory_order_relaxed);
  }
  return walkBeneath(dirFd, components, flags);
}

}  // namespace keel::files::detail
