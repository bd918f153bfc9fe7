#include "keel/supervisor/spawner.h"

#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <set>
#include <vector>

#include "keel/common/fd_io.h"
#include "keel/sandbox/policy.h"
#include "keel/sandbox/sandbox.h"
#include "keel/supervisor/child_setup.h"
#include "spawner_protocol.h"

namespace keel::supervisor {
namespace {

using detail::Reader;
using detail::Writer;

// Arguments, environment and paths of one service fit well within this; a larger request
// is refused rather than truncated.
constexpr size_t kMaxMessage = 128 * 1024;

enum class RequestType : std::uint8_t { kSpawn = 1, kLookupAccount = 2 };


Writer& statusReply(Writer& w, const Status& st) {
  return w.u8(static_cast<std::uint8_t>(st.code())).str(st.message());
}

// Sends one message, with up to two descriptors attached.
bool sendMessage(int sock, const std::string& data, const int* fds, size_t nfds) {
  iovec iov{const_cast<char*>(data.data()), data.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(2 * sizeof(int))]{};
  if (nfds > 0) {
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(nfds * sizeof(int));
    std::memcpy(CMSG_DATA(c), fds, nfds * sizeof(int));
  }
  for (;;) {
    const ssize_t n = ::sendmsg(sock, &msg, MSG_NOSIGNAL);
    if (n >= 0) return static_cast<size_t>(n) == data.size();
    if (errno != EINTR) return false;
  }
}

// Receives one message: its size, 0 on EOF, -1 with errno set on error (EMSGSIZE for a
// truncated message). Descriptors beyond `maxFds` are closed.
ssize_t receiveMessage(int sock, std::string& data, int* fds, size_t maxFds, size_t* gotFds) {
  data.resize(kMaxMessage);
  iovec iov{data.data(), data.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(4 * sizeof(int))]{};
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n = 0;
  do {
    n = ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (gotFds != nullptr) *gotFds = 0;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int fd = -1;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
      if (gotFds != nullptr && *gotFds < maxFds) {
        fds[(*gotFds)++] = fd;
      } else {
        ::close(fd);
      }
    }
  }
  if (n < 0) return -1;
  if ((msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0) {
    errno = EMSGSIZE;
    return -1;
  }
  data.resize(static_cast<size_t>(n));
  return n;
}

// ---- the spawner process ----

struct ServiceLaunch {
  std::vector<char*> argv;
  std::vector<char*> envp;
  const char* cwd = nullptr;
  std::vector<const char*> chownPaths;
  bool chown = false;
  uid_t uid = 0;
  gid_t gid = 0;
  sandbox::PreparedSandbox* sandbox = nullptr;
  pid_t machined = 0;
  int goFd = -1;
  int stdoutFd = -1;
  int stderrFd = -1;
  int statusFd = -1;
};

// The service process, between fork and exec. The spawner is single-threaded, but the
// same discipline as a multi-threaded parent keeps this easy to review: system calls only.
[[noreturn]] void runService(ServiceLaunch& l) {
  // Wait until the intermediate process has exited: from then on machined is the parent,
  // and the death signal set below refers to machined rather than to the intermediate.
  char go = 0;
  ssize_t r = 0;
  do {
    r = ::read(l.goFd, &go, 1);
  } while (r < 0 && errno == EINTR);
  if (r != 1) ::_exit(127);

  // Everything above stderr, the spawner's socket included, is gone at exec.
  setUpChild(l.statusFd, l.stdoutFd, l.stderrFd, l.cwd);
  if (l.chown) {
    // The service owns its state; its config stays readable by it alone.
    for (const char* path : l.chownPaths) {
      if (const int error = chownOwnedPath(path, l.uid, l.gid); error != 0) {
        reportChildFailure(l.statusFd, ChildStep::kChown, error);
      }
    }
  }
  if (l.sandbox != nullptr) {
    if (const int error = l.sandbox->applyInChild(); error != 0) {
      const int step = static_cast<int>(l.sandbox->failedStep());
      reportChildFailure(l.statusFd, ChildStep::kSandbox, error, step);
    }
  }
  // A service must not outlive a machined that died: a restarted machined starts it
  // again. Set after the identity switch, which clears it; if machined is already gone,
  // the signal would never come.
  if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) reportChildFailure(l.statusFd, ChildStep::kDeathSignal, errno);
  if (::getppid() != l.machined) reportChildFailure(l.statusFd, ChildStep::kParent, 0);
  execChild(l.statusFd, l.argv.data(), l.envp.data());
}

std::string_view sandboxStepName(int step) {
  return sandbox::stepName(static_cast<sandbox::Step>(step));
}

class SpawnerProcess {
 public:
  SpawnerProcess(int sock, pid_t machined) : sock_(sock), machined_(machined) {}

  [[noreturn]] void run() {
    sigset_t term;
    ::sigemptyset(&term);
    ::sigaddset(&term, SIGTERM);
    ::sigprocmask(SIG_BLOCK, &term, nullptr);
    const int sigFd = ::signalfd(-1, &term, SFD_CLOEXEC);
    for (;;) {
      pollfd fds[2] = {{sock_, POLLIN, 0}, {sigFd, POLLIN, 0}};
      const int n = ::poll(fds, sigFd >= 0 ? 2 : 1, -1);
      if (n < 0) {
        if (errno == EINTR) continue;
        finish();
      }
      if (sigFd >= 0 && (fds[1].revents & POLLIN) != 0) finish();
      if (fds[0].revents == 0) continue;
      std::string request;
      const ssize_t got = receiveMessage(sock_, request, nullptr, 0, nullptr);
      if (got == 0) finish();
      if (got < 0) {
        if (errno == EMSGSIZE) {
          Writer w;
          reply(statusReply(w, invalidArgument("spawner: request larger than " + std::to_string(kMaxMessage) +
                                               " bytes"))
                    .take(),
                nullptr, 0);
          continue;
        }
        finish();
      }
      handle(request);
    }
  }

 private:
  // machined is gone (or the spawner is told to stop): its services go with it.
  [[noreturn]] void finish() {
    for (pid_t pgid : groups_) ::kill(-pgid, SIGKILL);
    ::_exit(0);
  }

  void reply(const std::string& data, const int* fds, size_t nfds) {
    if (!sendMessage(sock_, data, fds, nfds)) finish();
  }

  void handle(const std::string& request) {
    Reader in(request);
    std::uint8_t type = 0;
    in.u8(type);
    Writer w;
    if (type == static_cast<std::uint8_t>(RequestType::kLookupAccount)) {
      std::string user;
      in.str(user);
      if (!in.done()) {
        reply(statusReply(w, invalidArgument("spawner: malformed account lookup")).take(), nullptr, 0);
        return;
      }
      const passwd* pw = ::getpwnam(user.c_str());
      statusReply(w, Status::ok()).u8(pw != nullptr ? 1 : 0);
      w.u32(pw != nullptr ? pw->pw_uid : 0).u32(pw != nullptr ? pw->pw_gid : 0);
      reply(w.take(), nullptr, 0);
      return;
    }
    if (type != static_cast<std::uint8_t>(RequestType::kSpawn)) {
      reply(statusReply(w, invalidArgument("spawner: unknown request type " + std::to_string(type))).take(), nullptr,
            0);
      return;
    }
    auto fields = detail::decodeSpawnRequest(std::string_view(request).substr(1));
    if (!fields) {
      reply(statusReply(w, invalidArgument("spawner: malformed spawn request")).take(), nullptr, 0);
      return;
    }
    SpawnJob job;
    job.argv = std::move(fields->argv);
    job.env = std::move(fields->env);
    job.cwd = std::move(fields->cwd);
    job.chownPaths = std::move(fields->chownPaths);
    job.seccompProfile = std::move(fields->seccompProfile);
    const std::uint8_t confine = fields->confine ? 1 : 0;
    const std::uint8_t hasIdentity = fields->hasIdentity ? 1 : 0;
    const std::uint32_t uid = fields->uid;
    const std::uint32_t gid = fields->gid;
    // machined may be the one compromised: the spawner, outside its filter, never starts
    // an unconfined process or one with root's uid, whatever the request says.
    // Running as root, a request without an identity would leave the service root too.
    const bool rootWithoutIdentity = ::geteuid() == 0 && hasIdentity == 0;
    if (confine == 0 || rootWithoutIdentity || (hasIdentity != 0 && (uid == 0 || gid == 0))) {
      const std::string found = confine == 0 ? "no confinement" : rootWithoutIdentity ? "no account" : "uid/gid 0";
      reply(statusReply(w, permissionDenied("spawner: expected a confined service under a non-root account, "
                                            "found a request for " + found))
                .take(),
            nullptr, 0);
      return;
    }
    job.confine = true;
    if (hasIdentity != 0) {
      job.uid = uid;
      job.gid = gid;
    }
    auto spawned = spawn(job);
    if (!spawned.ok()) {
      reply(statusReply(w, spawned.status()).take(), nullptr, 0);
      return;
    }
    statusReply(w, Status::ok()).u32(static_cast<std::uint32_t>(spawned->pid)).str(spawned->setupError);
    const int fds[2] = {spawned->stdoutFd.get(), spawned->stderrFd.get()};
    reply(w.take(), fds, 2);
  }

  struct SpawnJob {
    std::vector<std::string> argv;
    std::vector<std::string> env;
    std::string cwd;
    bool confine = false;
    std::optional<uid_t> uid;
    std::optional<gid_t> gid;
    std::vector<std::string> chownPaths;
    std::string seccompProfile;
  };

  Result<SpawnedProcess> spawn(SpawnJob& job) {
    if (job.argv.empty()) return invalidArgument("spawn: expected a non-empty argv, found none");
    KEEL_ASSIGN_OR_RETURN(ChildPipes pipes, ChildPipes::open());
    UniqueFd goRead, goWrite, pidRead, pidWrite;
    KEEL_RETURN_IF_ERROR(makePipe(goRead, goWrite));
    KEEL_RETURN_IF_ERROR(makePipe(pidRead, pidWrite));

    // Every service is confined whether or not it confines itself: its own uid, no
    // capabilities, no_new_privs, no core dumps, and the extension seccomp profile or the
    // profile the request carries. The profile is parsed here again: the hard deny list
    // holds whatever machined sent.
    std::optional<sandbox::PreparedSandbox> prepared;
    if (job.confine) {
      sandbox::SandboxOptions options;
      if (job.seccompProfile.empty()) {
        options.policy = sandbox::extensionPolicy();
      } else {
        auto policy = sandbox::parsePolicy(job.seccompProfile);
        if (!policy.ok()) return policy.status().withContext("seccomp profile of " + job.argv[0]);
        options.policy = std::move(policy).value();
      }
      options.uid = job.uid;
      options.gid = job.gid;
      options.keepFds = {pipes.statusWrite.get()};
      auto p = sandbox::prepare(options);
      if (!p.ok()) return p.status().withContext("sandbox of " + job.argv[0]);
      prepared = std::move(p).value();
    }

    ServiceLaunch launch;
    for (auto& a : job.argv) launch.argv.push_back(a.data());
    launch.argv.push_back(nullptr);
    for (auto& e : job.env) launch.envp.push_back(e.data());
    launch.envp.push_back(nullptr);
    launch.cwd = job.cwd.c_str();
    launch.chown = job.uid.has_value() && ::geteuid() == 0;
    launch.uid = job.uid.value_or(0);
    launch.gid = job.gid.value_or(0);
    for (const auto& p : job.chownPaths) launch.chownPaths.push_back(p.c_str());
    launch.sandbox = prepared ? &*prepared : nullptr;
    launch.machined = machined_;
    launch.goFd = goRead.get();
    launch.stdoutFd = pipes.stdoutWrite.get();
    launch.stderrFd = pipes.stderrWrite.get();
    launch.statusFd = pipes.statusWrite.get();

    // The intermediate forks the service and exits at once, so the service is orphaned
    // and handed to machined, the nearest child subreaper, which then reaps it.
    const pid_t intermediate = ::fork();
    if (intermediate < 0) return unavailable("fork: " + errnoText(errno));
    if (intermediate == 0) {
      const pid_t pid = ::fork();
      if (pid == 0) runService(launch);
      const int value = pid > 0 ? pid : -errno;
      [[maybe_unused]] ssize_t ignored = ::write(pidWrite.get(), &value, sizeof value);
      ::_exit(0);
    }
    pipes.closeChildEnds();
    goRead.reset();
    pidWrite.reset();
    while (::waitpid(intermediate, nullptr, 0) < 0 && errno == EINTR) {
    }
    int value = 0;
    ssize_t n = 0;
    do {
      n = ::read(pidRead.get(), &value, sizeof value);
    } while (n < 0 && errno == EINTR);
    if (n != static_cast<ssize_t>(sizeof value)) return unavailable("fork: the intermediate process reported nothing");
    if (value <= 0) return unavailable("fork: " + errnoText(-value));
    SpawnedProcess spawned;
    spawned.pid = value;
    spawned.stdoutFd = std::move(pipes.stdoutRead);
    spawned.stderrFd = std::move(pipes.stderrRead);
    prune();
    groups_.insert(spawned.pid);

    // The service may go on now; it reports a failed step, and exec closes the pipe.
    const char go = 1;
    [[maybe_unused]] ssize_t ignored = ::write(goWrite.get(), &go, 1);
    goWrite.reset();
    const Status setup =
        readChildReport(pipes.statusRead.get(), {job.argv[0], job.cwd, sandboxStepName});
    if (!setup.isOk()) spawned.setupError = setup.message();
    return spawned;
  }

  // Forgets process groups that no longer exist.
  void prune() {
    for (auto it = groups_.begin(); it != groups_.end();) {
      if (::kill(-*it, 0) != 0 && errno == ESRCH) {
        it = groups_.erase(it);
      } else {
        ++it;
      }
    }
  }

  int sock_;
  pid_t machined_;
  std::set<pid_t> groups_;
};

}  // namespace

Result<std::unique_ptr<Spawner>> Spawner::start() {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
    return internalError("socketpair for the spawner: " + errnoText(errno));
  }
  const pid_t machined = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    const int error = errno;
    ::close(sv[0]);
    ::close(sv[1]);
    return unavailable("fork of the spawner: " + errnoText(error));
  }
  if (pid == 0) {
    ::close(sv[0]);
    ::prctl(PR_SET_NAME, "machined-spawn", 0, 0, 0);
    // SIGTERM rather than SIGKILL: the spawner still has to take the services down. The
    // socket's EOF says the same; this covers a machined that dies while its socket is
    // held open elsewhere.
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    ::signal(SIGINT, SIG_IGN);  // a terminal's ^C is for machined, which stops the node
    ::signal(SIGPIPE, SIG_IGN);
    SpawnerProcess(sv[1], machined).run();
  }
  ::close(sv[1]);
  return std::unique_ptr<Spawner>(new Spawner(sv[0]));
}

Result<std::unique_ptr<Spawner>> Spawner::adopt(int fd) {
  int type = 0;
  socklen_t len = sizeof type;
  if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0 || type != SOCK_SEQPACKET) {
    return failedPrecondition("spawner socket: expected a SOCK_SEQPACKET socket at fd " + std::to_string(fd));
  }
  // A socketpair's peer credentials are those of the process that created it: this pid,
  // before its execve.
  ucred peer{};
  len = sizeof peer;
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &len) != 0 || peer.pid != ::getpid()) {
    return failedPrecondition("spawner socket: expected a socketpair created by pid " + std::to_string(::getpid()) +
                              ", found one of pid " + std::to_string(peer.pid));
  }
  if (::fcntl(fd, F_SETFD, FD_CLOEXEC) != 0) return internalError("spawner socket: " + errnoText(errno));
  return std::unique_ptr<Spawner>(new Spawner(fd));
}

Spawner::~Spawner() = default;

Status Spawner::call(const std::string& request, std::string& reply, int* fds, size_t maxFds, size_t* gotFds) {
  if (request.size() > kMaxMessage) {
    return invalidArgument("spawner: expected a request of at most " + std::to_string(kMaxMessage) +
                           " bytes, found " + std::to_string(request.size()));
  }
  std::lock_guard lock(mu_);
  if (!sendMessage(fd_.get(), request, nullptr, 0)) return unavailable("spawner: sending a request: " + errnoText(errno));
  const ssize_t n = receiveMessage(fd_.get(), reply, fds, maxFds, gotFds);
  if (n == 0) return unavailable("spawner: the spawner process is gone");
  if (n < 0) return unavailable("spawner: reading the reply: " + errnoText(errno));
  return Status::ok();
}

Result<SpawnedProcess> Spawner::spawn(const ServiceSpec& spec) {
  if (spec.sandbox.seccompProfile.size() > detail::kMaxSeccompProfile) {
    return invalidArgument("spawner: expected a seccomp profile of at most " +
                           std::to_string(detail::kMaxSeccompProfile) + " bytes, found " +
                           std::to_string(spec.sandbox.seccompProfile.size()));
  }
  std::vector<std::string> chownPaths;
  for (const auto& p : spec.sandbox.chownPaths) chownPaths.push_back(p.string());
  const bool identity = spec.sandbox.uid.has_value() && spec.sandbox.gid.has_value();
  Writer w;
  w.u8(static_cast<std::uint8_t>(RequestType::kSpawn))
      .strings(spec.argv)
      .strings(spec.env)
      .str(spec.stateDir.string())
      .u8(spec.sandbox.confine ? 1 : 0)
      .u8(identity ? 1 : 0)
      .u32(identity ? *spec.sandbox.uid : 0)
      .u32(identity ? *spec.sandbox.gid : 0)
      .strings(chownPaths)
      .str(spec.sandbox.seccompProfile);
  int fds[2] = {-1, -1};
  size_t gotFds = 0;
  std::string reply;
  const Status sent = call(w.take(), reply, fds, 2, &gotFds);
  SpawnedProcess spawned;
  spawned.stdoutFd = UniqueFd(gotFds > 0 ? fds[0] : -1);
  spawned.stderrFd = UniqueFd(gotFds > 1 ? fds[1] : -1);
  if (!sent.isOk()) return sent;
  Reader in(reply);
  std::uint8_t code = 0;
  std::string message;
  std::uint32_t pid = 0;
  if (!in.u8(code) || !in.str(message)) return internalError("spawner: malformed reply");
  if (code != 0) return Status(static_cast<StatusCode>(code), message);
  if (!in.u32(pid) || !in.str(spawned.setupError) || !in.done() || gotFds != 2 || pid == 0) {
    return internalError("spawner: malformed spawn reply");
  }
  spawned.pid = static_cast<pid_t>(pid);
  return spawned;
}

Result<std::optional<std::pair<uid_t, gid_t>>> Spawner::lookupAccount(const std::string& user) {
  Writer w;
  w.u8(static_cast<std::uint8_t>(RequestType::kLookupAccount)).str(user);
  std::string reply;
  KEEL_RETURN_IF_ERROR(call(w.take(), reply, nullptr, 0, nullptr));
  Reader in(reply);
  std::uint8_t code = 0;
  std::string message;
  std::uint8_t found = 0;
  std::uint32_t uid = 0;
  std::uint32_t gid = 0;
  if (!in.u8(code) || !in.str(message)) return internalError("spawner: malformed reply");
  if (code != 0) return Status(static_cast<StatusCode>(code), message);
  if (!in.u8(found) || !in.u32(uid) || !in.u32(gid) || !in.done()) {
    return internalError("spawner: malformed account reply");
  }
  if (found == 0) return std::optional<std::pair<uid_t, gid_t>>();
  return std::optional<std::pair<uid_t, gid_t>>(std::make_pair(static_cast<uid_t>(uid), static_cast<gid_t>(gid)));
}

}  // namespace keel::supervisor
