// The spawner, the one way the supervisor starts a service process: a small
// single-threaded process forked before machined (or a test's main) starts any thread or
// loads its seccomp filter. It forks, confines (ServiceSpec::sandbox) and execs the
// services (a child inherits the filter of the thread that forks it) and resolves their
// accounts, so that every thread of machined can run under machined's own filter.
//
// Protocol: one request and one reply per SOCK_SEQPACKET message on a socketpair, plain
// data only; a spawn reply carries the service's stdout/stderr read ends (SCM_RIGHTS).
// Each service is double-forked, so it is reparented to the process that started the
// spawner (machined, a child subreaper) before the reply, and that process reaps it with
// waitpid as if it had forked it itself. When the socket reaches EOF (machined is gone)
// or the spawner gets SIGTERM, it SIGKILLs the process group of every service it started
// and exits.
#pragma once

#include <sys/types.h>

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>

#include "keel/common/fd_io.h"
#include "keel/common/status.h"
#include "keel/supervisor/service_spec.h"

namespace keel::supervisor {

// One service process, started: its stdin is /dev/null, its stdout and stderr are fresh
// pipes, it leads its own process group, its signal dispositions and mask are reset, no
// other descriptor survived its exec, and its working directory is its state directory.
struct SpawnedProcess {
  pid_t pid = -1;
  UniqueFd stdoutFd;  // read ends, O_CLOEXEC
  UniqueFd stderrFd;
  // Set when the child failed before or at exec ("exec /x: No such file or directory");
  // it has then exited with code 127 and still has to be reaped.
  std::string setupError;
};

// The supervising process's end of the socketpair. Thread-safe: requests are serialised.
class Spawner {
 public:
  // Forks the spawner. Call first thing in main, while the process has one thread and no
  // filter, after making the caller a child subreaper (PR_SET_CHILD_SUBREAPER).
  static Result<std::unique_ptr<Spawner>> start();

  // Takes over the spawner a previous image of this same process started (machined
  // re-executes itself for a reboot), given the socket descriptor it left open. Refuses a
  // descriptor that is not a socketpair this pid created.
  static Result<std::unique_ptr<Spawner>> adopt(int fd);

  ~Spawner();
  Spawner(const Spawner&) = delete;
  Spawner& operator=(const Spawner&) = delete;

  // Starts a service process (argv, env, stateDir as working directory), confined as
  // spec.sandbox says; see SpawnedProcess. PERMISSION_DENIED for an unconfined request or
  // one for root, INVALID_ARGUMENT for a malformed or oversized one, UNAVAILABLE when the
  // spawner is gone or fork failed: nothing was started. Blocks until the service has
  // exec'd or failed.
  Result<SpawnedProcess> spawn(const ServiceSpec& spec);

  // The uid and gid of account `user`, or nullopt when there is none. Name lookups may
  // talk to other daemons (nscd, sssd), which machined's filter forbids.
  Result<std::optional<std::pair<uid_t, gid_t>>> lookupAccount(const std::string& user);

  // The socket, to keep across machined's execve (see adopt()).
  int fd() const { return fd_.get(); }

 private:
  explicit Spawner(int fd) : fd_(fd) {}
  // Sends `request` and receives the reply, with up to `maxFds` descriptors (owned by
  // the caller, also on error).
  Status call(const std::string& request, std::string& reply, int* fds, size_t maxFds, size_t* gotFds);

  std::mutex mu_;
  UniqueFd fd_;
};

}  // namespace keel::supervisor
