// What happens to each service: starts in dependency order, the settle time, crashes and
// their backoff, stops, the reaping of exited processes and the shutdown sequence.
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <set>
#include <system_error>

#include <fmt/format.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "supervisor_impl.h"

namespace keel::supervisor {

namespace asio = boost::asio;
using SteadyClock = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {

std::string signalName(int sig) {
  const char* abbrev = ::sigabbrev_np(sig);
  return abbrev != nullptr ? fmt::format("SIG{}", abbrev) : fmt::format("signal {}", sig);
}

// `status` is empty when someone else reaped the process.
ExitInfo describeExit(std::optional<int> status) {
  ExitInfo info;
  if (!status) {
    info.description = "exited with an unknown status (reaped by someone else)";
  } else if (WIFEXITED(*status)) {
    info.exitCode = WEXITSTATUS(*status);
    info.description = fmt::format("exited with code {}", *info.exitCode);
  } else if (WIFSIGNALED(*status)) {
    info.signal = WTERMSIG(*status);
    info.description = fmt::format("killed by signal {} ({}){}", info.signal, signalName(info.signal),
                                   WCOREDUMP(*status) ? ", core dumped" : "");
  } else {
    info.description = fmt::format("ended with wait status {:#x}", *status);
  }
  return info;
}

// Before each start: the state directory exists with mode 0700, the config file is there.
Status prepareStateDir(const ServiceSpec& spec) {
  std::error_code ec;
  std::filesystem::create_directories(spec.stateDir, ec);
  if (ec)
    return internalError(
        fmt::format("creating state directory {}: {}", spec.stateDir.string(), ec.message()));
  if (::chmod(spec.stateDir.c_str(), 0700) != 0) {
    return internalError(fmt::format("chmod 0700 {}: {}", spec.stateDir.string(), errnoText(errno)));
  }
  if (!spec.configFile.empty()) {
    const auto type = std::filesystem::status(spec.configFile, ec).type();
    if (type != std::filesystem::file_type::regular) {
      return failedPrecondition(
          fmt::format("config file {}: expected a regular file, found {}", spec.configFile.string(),
                      type == std::filesystem::file_type::not_found ? "nothing" : "another kind of file"));
    }
  }
  return Status::ok();
}

}  // namespace

void signalGroup(pid_t pid, int sig) {
  if (::kill(-pid, sig) != 0 && errno == ESRCH) ::kill(pid, sig);
}

void Supervisor::Impl::setState(Service& s, ServiceState state, std::string message) {
  s.state = state;
  s.message = std::move(message);
  s.since = clock_.now();
}

void Supervisor::Impl::emit(Service& s, EventType type, std::string message, pid_t pid,
                            const ExitInfo* exit) {
  Event event;
  event.time = clock_.now();
  event.serviceId = s.spec.id;
  event.type = type;
  event.message = std::move(message);
  event.pid = pid;
  if (exit != nullptr) {
    event.exitCode = exit->exitCode;
    event.signal = exit->signal;
  }
  {
    std::lock_guard lock(eventsMutex_);
    event.sequence = nextSequence_++;
    events_.push_back(event);
    while (events_.size() > options_.maxEvents) events_.pop_front();
  }
  s.recent.push_back(event);
  while (s.recent.size() > options_.recentEventsPerService) s.recent.pop_front();
  // Delivered from a fresh handler, not from here: the state change that caused the
  // event may still be half done, and a callback may call back into the supervisor.
  asio::post(io_, [this, event = std::move(event)] { eventSubscribers_.publish(event); });
}

void Supervisor::Impl::armTimer(Service& s, milliseconds delay, std::function<void(Service&)> action) {
  const uint64_t generation = ++s.timerGeneration;
  s.timer.expires_after(delay);
  s.timer.async_wait([&s, generation, action = std::move(action)](const boost::system::error_code& ec) {
    if (ec || s.timerGeneration != generation) return;
    action(s);
  });
}

void Supervisor::Impl::cancelTimer(Service& s) {
  ++s.timerGeneration;
  s.timer.cancel();
}

void Supervisor::Impl::tryStart(Service& s) {
  std::string missing;
  for (const Service* d : s.dependencies) {
    if (d->state != ServiceState::kRunning) {
      missing +=
          fmt::format("{}'{}' ({})", missing.empty() ? "" : ", ", d->spec.id, serviceStateName(d->state));
    }
  }
  if (!missing.empty()) {
    setState(s, ServiceState::kWaiting, "waiting for " + missing);
    return;
  }
  launch(s);
}

void Supervisor::Impl::wakeDependents(Service& s) {
  for (Service* d : s.dependents) {
    if (d->wanted && d->state == ServiceState::kWaiting) tryStart(*d);
  }
}

void Supervisor::Impl::launch(Service& s) {
  s.setupError.clear();
  if (Status st = prepareStateDir(s.spec); !st.isOk()) {
    fail(s, "cannot start: " + st.message());
    return;
  }
  auto spawned = options_.spawn(s.spec);
  if (!spawned.ok()) {
    // pipe/fork failures are resource shortages that may pass: treat them as a crash.
    scheduleRestart(s, "could not start: " + spawned.status().message());
    return;
  }
  s.pid = spawned->pid;
  setState(s, ServiceState::kStarting, fmt::format("started as pid {}", s.pid));
  emit(s, EventType::kStarting, fmt::format("started {} as pid {}", s.spec.argv[0], s.pid), s.pid);
  attachReader(std::move(spawned->stdoutFd), s.spec.id);
  attachReader(std::move(spawned->stderrFd), s.spec.id);
  if (!spawned->setupError.empty()) {
    // The child has exited with 127; the reaper turns this into kFailed.
    s.setupError = std::move(spawned->setupError);
    s.message = s.setupError;
    return;
  }
  if (s.spec.settleTime.count() == 0) {
    markRunning(s);
  } else {
    armTimer(s, s.spec.settleTime, [this](Service& svc) { markRunning(svc); });
  }
}

void Supervisor::Impl::attachReader(UniqueFd fd, const std::string& id) {
  std::erase_if(readers_, [](const std::weak_ptr<PipeReader>& r) { return r.expired(); });
  auto reader = std::make_shared<PipeReader>(io_, std::move(fd), logs_, id);
  reader->start();
  readers_.push_back(reader);
}

void Supervisor::Impl::markRunning(Service& s) {
  if (s.state != ServiceState::kStarting) return;
  setState(s, ServiceState::kRunning, fmt::format("running as pid {}", s.pid));
  emit(s, EventType::kRunning,
       s.spec.settleTime.count() == 0 ? std::string("running (exec succeeded)")
                                      : fmt::format("running (up for {}ms)", s.spec.settleTime.count()),
       s.pid);
  wakeDependents(s);
}

void Supervisor::Impl::fail(Service& s, std::string reason) {
  cancelTimer(s);
  s.wanted = false;
  setState(s, ServiceState::kFailed, reason);
  emit(s, EventType::kFailed, std::move(reason), 0);
  wakeDependents(s);
}

void Supervisor::Impl::scheduleRestart(Service& s, const std::string& why) {
  const RestartPolicy& policy = s.spec.restart;
  const auto now = SteadyClock::now();
  while (!s.restartTimes.empty() && now - s.restartTimes.front() >= policy.window) s.restartTimes.pop_front();
  if (s.restartTimes.size() >= static_cast<size_t>(policy.maxRestarts)) {
    fail(s, fmt::format("gave up after {} restarts within {}ms; last: {}", s.restartTimes.size(),
                        policy.window.count(), why));
    return;
  }
  milliseconds delay = policy.initialBackoff;
  for (size_t i = 0; i < s.restartTimes.size() && delay < policy.maxBackoff; ++i) delay *= 2;
  delay = std::min(delay, policy.maxBackoff);
  s.restartTimes.push_back(now);
  ++s.restarts;
  const std::string message =
      fmt::format("restarting in {}ms (restart {} of at most {} within {}ms) after it {}", delay.count(),
                  s.restartTimes.size(), policy.maxRestarts, policy.window.count(), why);
  setState(s, ServiceState::kBackoff, message);
  emit(s, EventType::kRestarting, message, 0);
  armTimer(s, delay, [this](Service& svc) {
    if (svc.state == ServiceState::kBackoff && svc.wanted) tryStart(svc);
  });
}

void Supervisor::Impl::beginStop(Service& s, std::string_view reason) {
  const pid_t pid = s.pid;
  const milliseconds grace = s.spec.stopGracePeriod;
  setState(s, ServiceState::kStopping, fmt::format("{}: SIGTERM sent to pid {}", reason, pid));
  emit(s, EventType::kStopping,
       fmt::format("{}: sending SIGTERM to process group {}, SIGKILL after {}ms", reason, pid, grace.count()),
       pid);
  signalGroup(pid, SIGTERM);
  armTimer(s, grace, [this, grace](Service& svc) {
    if (svc.state != ServiceState::kStopping || svc.pid <= 0) return;
    signalGroup(svc.pid, SIGKILL);
    svc.message =
        fmt::format("still running {}ms after SIGTERM: SIGKILL sent to pid {}", grace.count(), svc.pid);
    emit(svc, EventType::kStopping, svc.message, svc.pid);
  });
}

void Supervisor::Impl::stopIdle(Service& s, std::string reason) {
  cancelTimer(s);
  setState(s, ServiceState::kStopped, reason);
  emit(s, EventType::kStopped, std::move(reason), 0);
  wakeDependents(s);
}

void Supervisor::Impl::waitForSigchld() {
  sigchld_.async_wait([this](const boost::system::error_code& ec, int) {
    if (ec) return;
    reap();
    waitForSigchld();
  });
}

// Reaps our own children only: other code in the process (tests, helpers) may wait
// for children of its own, so waitpid(-1) is not ours to call.
void Supervisor::Impl::reap() {
  for (size_t i = 0; i < services_.size(); ++i) {
    Service& s = *services_[i];
    if (s.pid <= 0) continue;
    siginfo_t info{};
    int rc = 0;
    do {
      rc = ::waitid(P_PID, static_cast<id_t>(s.pid), &info, WEXITED | WNOHANG | WNOWAIT);
    } while (rc != 0 && errno == EINTR);
    const bool reapedElsewhere = rc != 0 && errno == ECHILD;
    if (rc != 0 && !reapedElsewhere) continue;
    if (rc == 0 && info.si_pid != s.pid) continue;  // still running
    const pid_t pid = s.pid;
    s.pid = 0;  // out of servicePids() while the zombie still holds the pid
    // Leftovers of its group go too; the zombie keeps the group id from being reused.
    ::kill(-pid, SIGKILL);
    std::optional<int> status;
    if (!reapedElsewhere) {
      int raw = 0;
      pid_t r = 0;
      do {
        r = ::waitpid(pid, &raw, 0);
      } while (r < 0 && errno == EINTR);
      if (r == pid) status = raw;
    }
    onExit(s, pid, status);
  }
  if (options_.reapOrphans) reapOrphans();
}

// A child subreaper inherits the orphans of its services (helpers whose parent died);
// their zombies would pile up. Services still running are never touched: the first
// zombie that is a service ends the loop, and the next SIGCHLD handles it.
void Supervisor::Impl::reapOrphans() {
  for (;;) {
    siginfo_t info{};
    if (::waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) != 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (info.si_pid == 0) return;
    const pid_t pid = info.si_pid;
    for (const auto& s : services_) {
      if (s->pid == pid) return;
    }
    while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
  }
}

void Supervisor::Impl::onExit(Service& s, pid_t pid, std::optional<int> status) {
  cancelTimer(s);
  const ExitInfo exit = describeExit(status);
  s.lastExitCode = exit.exitCode;
  s.lastSignal = exit.signal;
  if (s.state == ServiceState::kStopping) {
    const std::string message = "stopped: " + exit.description;
    setState(s, ServiceState::kStopped, message);
    emit(s, EventType::kStopped, message, pid, &exit);
    if (s.wanted && !shuttingDown_) {
      tryStart(s);  // restart(): the stop was its first half
    } else {
      wakeDependents(s);
    }
  } else {
    emit(s, EventType::kExited,
         s.setupError.empty() ? exit.description : fmt::format("{} ({})", exit.description, s.setupError),
         pid, &exit);
    if (!s.setupError.empty()) {
      // An exec or setup failure does not fix itself: retrying only hides it.
      fail(s, fmt::format("cannot start: {} (not restarting)", s.setupError));
    } else if (!s.wanted || shuttingDown_) {
      setState(s, ServiceState::kStopped, exit.description);
      wakeDependents(s);
    } else {
      scheduleRestart(s, exit.description);
    }
  }
  advanceShutdown();
}

Result<Service*> Supervisor::Impl::findToStart(std::string_view what, std::string_view id) {
  Service* s = find(id);
  if (s == nullptr) return unknownService(id);
  if (shuttingDown_) {
    return failedPrecondition(
        fmt::format("{} '{}': expected a running supervisor, found it shutting down", what, id));
  }
  return s;
}

Status Supervisor::Impl::start(std::string_view id) {
  KEEL_ASSIGN_OR_RETURN(Service * s, findToStart("start", id));
  switch (s->state) {
    case ServiceState::kStopped:
    case ServiceState::kFailed:
    case ServiceState::kBackoff: break;
    case ServiceState::kStopping:
      return failedPrecondition(
          fmt::format("start '{}': expected stopped, failed or backoff, found stopping (use restart)", id));
    case ServiceState::kWaiting:
    case ServiceState::kStarting:
    case ServiceState::kRunning:
      return failedPrecondition(fmt::format("start '{}': expected stopped, failed or backoff, found {}", id,
                                            serviceStateName(s->state)));
  }
  startWithDependencies(*s);
  return Status::ok();
}

void Supervisor::Impl::startWithDependencies(Service& target) {
  std::set<Service*> closure{&target};
  for (auto it = services_.rbegin(); it != services_.rend(); ++it) {  // dependents come later
    if (closure.count(it->get()) == 0) continue;
    for (Service* d : (*it)->dependencies) closure.insert(d);
  }
  for (auto& owned : services_) {
    Service& s = *owned;
    if (closure.count(&s) == 0) continue;
    const bool idle = s.state == ServiceState::kStopped || s.state == ServiceState::kFailed;
    if (&s == &target || idle) {
      s.wanted = true;
      s.restartTimes.clear();
      s.restarts = 0;
      if (s.state == ServiceState::kBackoff) cancelTimer(s);
      tryStart(s);
    } else if (s.state == ServiceState::kStopping) {
      s.wanted = true;  // a dependency on its way down comes back up afterwards
    }
  }
}

Status Supervisor::Impl::startAll() {
  if (shuttingDown_) {
    return failedPrecondition("startAll: expected a running supervisor, found it shutting down");
  }
  for (auto& s : services_) {
    if (s->state == ServiceState::kStopped || s->state == ServiceState::kFailed) {
      s->wanted = true;
      s->restartTimes.clear();
      s->restarts = 0;
      tryStart(*s);
    } else if (s->state == ServiceState::kStopping) {
      s->wanted = true;
    }
  }
  return Status::ok();
}

Status Supervisor::Impl::stop(std::string_view id) {
  Service* s = find(id);
  if (s == nullptr) return unknownService(id);
  if (s->state == ServiceState::kStopped || s->state == ServiceState::kFailed) {
    return failedPrecondition(
        fmt::format("stop '{}': expected waiting, starting, running, backoff or stopping, found {}", id,
                    serviceStateName(s->state)));
  }
  std::string blocking;
  for (const Service* d : s->dependents) {
    if (d->wanted) {
      blocking +=
          fmt::format("{}'{}' ({})", blocking.empty() ? "" : ", ", d->spec.id, serviceStateName(d->state));
    }
  }
  if (!blocking.empty()) {
    return failedPrecondition(
        fmt::format("stop '{}': expected no wanted dependents, found {}; stop them first", id, blocking));
  }
  s->wanted = false;
  switch (s->state) {
    case ServiceState::kWaiting:
    case ServiceState::kBackoff: stopIdle(*s, "stopped by request"); break;
    case ServiceState::kStarting:
    case ServiceState::kRunning: beginStop(*s, "stop requested"); break;
    default: break;  // kStopping: already on its way; clearing `wanted` cancels a restart()
  }
  return Status::ok();
}

Status Supervisor::Impl::restart(std::string_view id) {
  KEEL_ASSIGN_OR_RETURN(Service * s, findToStart("restart", id));
  switch (s->state) {
    case ServiceState::kStopped:
    case ServiceState::kFailed:
    case ServiceState::kBackoff: startWithDependencies(*s); break;
    case ServiceState::kWaiting: break;  // it starts as soon as it can
    case ServiceState::kStarting:
    case ServiceState::kRunning:
      s->wanted = true;
      s->restartTimes.clear();
      s->restarts = 0;
      beginStop(*s, "restart requested");
      break;
    case ServiceState::kStopping: s->wanted = true; break;
  }
  return Status::ok();
}

void Supervisor::Impl::beginShutdown(std::promise<void> done) {
  shutdownWaiters_.push_back(std::move(done));
  if (!shuttingDown_) {
    shuttingDown_ = true;
    for (auto& s : services_) {
      s->wanted = false;
      if (s->state == ServiceState::kWaiting || s->state == ServiceState::kBackoff) {
        stopIdle(*s, "stopped: supervisor shutting down");
      }
    }
  }
  advanceShutdown();
}

void Supervisor::Impl::advanceShutdown() {
  if (!shuttingDown_) return;
  bool done = true;
  for (auto it = services_.rbegin(); it != services_.rend(); ++it) {
    Service& s = **it;
    if (s.state == ServiceState::kStopping) {
      done = false;
    } else if (s.state == ServiceState::kStarting || s.state == ServiceState::kRunning) {
      done = false;
      const bool dependentsDown = std::all_of(s.dependents.begin(), s.dependents.end(), [](const Service* d) {
        return d->state == ServiceState::kStopped || d->state == ServiceState::kFailed;
      });
      if (dependentsDown) beginStop(s, "supervisor shutting down");
    }
  }
  if (!done) return;
  for (auto& waiter : shutdownWaiters_) waiter.set_value();
  shutdownWaiters_.clear();
}
}  // namespace keel::supervisor
