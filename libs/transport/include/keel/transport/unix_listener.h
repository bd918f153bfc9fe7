// A Unix-socket listener that checks each connecting peer's credentials
// (SO_PEERCRED) before gRPC sees a single byte: a refused peer never reaches a handler.
// Accepted connections are handed to a gRPC server that has no ports of its own.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <filesystem>
#include <functional>
#include <string>
#include <thread>

#include "keel/common/status.h"
#include "keel/common/fd_io.h"

namespace grpc {
class Server;
}

namespace keel::transport {

struct PeerCredentials {
  pid_t pid = 0;
  uid_t uid = 0;
  gid_t gid = 0;
};

// Decides whether a peer may talk to the server. Called on the listener thread.
// Returns OK to accept; otherwise the reason, which is logged.
using PeerPolicy = std::function<Status(const PeerCredentials&)>;

class UnixListener {
 public:
  // Binds `socketPath` (an existing stale socket file is replaced) with mode 0660.
  // The directory must already exist with the access rights it should have.
  static Result<std::unique_ptr<UnixListener>> bind(const std::filesystem::path& socketPath, PeerPolicy policy);
  ~UnixListener();
  UnixListener(const UnixListener&) = delete;
  UnixListener& operator=(const UnixListener&) = delete;

  // Starts accepting on a thread of its own, handing accepted fds to `server`.
  // `server` must outlive the listener (stop the listener first).
  void start(grpc::Server* server);
  // Stops accepting and removes the socket file. Idempotent.
  void stop();

  const std::filesystem::path& path() const { return path_; }

 private:
  UnixListener(int fd, std::filesystem::path path, PeerPolicy policy);
  void acceptLoop(grpc::Server* server);

  UniqueFd fd_;
  UniqueFd wakeFd_;  // eventfd that interrupts accept on stop()
  std::filesystem::path path_;
  PeerPolicy policy_;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace keel::transport
