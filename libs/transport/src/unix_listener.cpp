#include "keel/transport/unix_listener.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <grpcpp/server.h>
#include <grpcpp/server_posix.h>

#include <spdlog/spdlog.h>
#include "keel/common/status.h"

namespace keel::transport {

Result<std::unique_ptr<UnixListener>> UnixListener::bind(const std::filesystem::path& socketPath,
                                                         PeerPolicy policy) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  const std::string p = socketPath.string();
  if (p.size() >= sizeof(addr.sun_path)) {
    return invalidArgument("socket path " + p + " is " + std::to_string(p.size()) +
                           " bytes; a Unix socket path must be shorter than " +
                           std::to_string(sizeof(addr.sun_path)));
  }
  std::memcpy(addr.sun_path, p.c_str(), p.size() + 1);
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return internalError(std::string("socket(AF_UNIX): ") + errnoText(errno));
  struct stat st {};
  if (lstat(p.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      close(fd);
      return failedPrecondition(p + " exists and is not a socket; refusing to replace it");
    }
    unlink(p.c_str());
  }
  // Create the socket inode with mode 0660 from the start: no window where it is wider.
  const mode_t old = umask(0117);
  const int rc = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  const int bindErrno = errno;
  umask(old);
  if (rc != 0) {
    close(fd);
    return unavailable("bind " + p + ": " + errnoText(bindErrno));
  }
  if (listen(fd, 64) != 0) {
    const int e = errno;
    close(fd);
    unlink(p.c_str());
    return internalError("listen " + p + ": " + errnoText(e));
  }
  return std::unique_ptr<UnixListener>(new UnixListener(fd, socketPath, std::move(policy)));
}

UnixListener::UnixListener(int fd, std::filesystem::path path, PeerPolicy policy)
    : fd_(fd), wakeFd_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)), path_(std::move(path)), policy_(std::move(policy)) {
  KEEL_RELEASE_ASSERT(static_cast<bool>(wakeFd_), "eventfd failed");
}

UnixListener::~UnixListener() {
  stop();
}

void UnixListener::start(grpc::Server* server) {
  KEEL_RELEASE_ASSERT(!thread_.joinable(), "listener started twice");
  thread_ = std::thread([this, server] { acceptLoop(server); });
}

void UnixListener::stop() {
  if (stopping_.exchange(true)) return;
  const uint64_t one = 1;
  [[maybe_unused]] auto n = write(wakeFd_.get(), &one, sizeof one);
  if (thread_.joinable()) thread_.join();
  std::error_code ec;
  std::filesystem::remove(path_, ec);
}

void UnixListener::acceptLoop(grpc::Server* server) {
  while (!stopping_.load()) {
    pollfd fds[2] = {{fd_.get(), POLLIN, 0}, {wakeFd_.get(), POLLIN, 0}};
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      spdlog::error("poll on {} failed: {}", path_.string(), errnoText(errno));
      return;
    }
    if ((fds[1].revents & POLLIN) != 0) return;
    const int conn = accept4(fd_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (conn < 0) {
      if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED) {
        spdlog::warn("accept on {} failed: {}", path_.string(), errnoText(errno));
      }
      continue;
    }
    ucred cred{};
    socklen_t len = sizeof cred;
    if (getsockopt(conn, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
      spdlog::warn("refused a peer on {}: SO_PEERCRED failed: {}", path_.string(), errnoText(errno));
      close(conn);
      continue;
    }
    const PeerCredentials peer{cred.pid, cred.uid, cred.gid};
    const Status verdict = policy_(peer);
    if (!verdict.isOk()) {
      spdlog::warn("refused peer pid={} uid={} gid={} on {}: {}", peer.pid, peer.uid, peer.gid,
                   path_.string(), verdict.message());
      close(conn);
      continue;
    }
    spdlog::debug("accepted peer pid={} uid={} on {}", peer.pid, peer.uid, path_.string());
    // gRPC takes ownership of the fd.
    grpc::AddInsecureChannelFromFd(server, conn);
  }
}

}  // namespace keel::transport
