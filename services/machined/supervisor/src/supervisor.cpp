#include "keel/supervisor/supervisor.h"

#include <signal.h>
#include <string.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <deque>
#include <future>
#include <mutex>
#include <set>
#include <system_error>
#include <thread>
#include <type_traits>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <fmt/format.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "keel/common/assert.h"

#include "spawn.h"

namespace keel::supervisor {

namespace asio = boost::asio;
using SteadyClock = std::chrono::steady_clock;
using std::chrono::milliseconds;

std::string_view serviceStateName(ServiceState state) {
  switch (state) {
    case ServiceState::kStopped: return "stopped";
    case ServiceState::kWaiting: return "waiting";
    case ServiceState::kStarting: return "starting";
    case ServiceState::kRunning: return "running";
    case ServiceState::kBackoff: return "backoff";
    case ServiceState::kStopping: return "stopping";
    case ServiceState::kFailed: return "failed";
  }
  return "unknown";
}

std::string_view eventTypeName(EventType type) {
  switch (type) {
    case EventType::kStarting: return "starting";
    case EventType::kRunning: return "running";
    case EventType::kExited: return "exited";
    case EventType::kRestarting: return "restarting";
    case EventType::kFailed: return "failed";
    case EventType::kStopping: return "stopping";
    case EventType::kStopped: return "stopped";
  }
  return "unknown";
}

namespace {


std::string signalName(int sig) {
  const char* abbrev = ::sigabbrev_np(sig);
  return abbrev != nullptr ? fmt::format("SIG{}", abbrev) : fmt::format("signal {}", sig);
}

// How a process ended, from its wait status (empty when someone else reaped it).
struct ExitInfo {
  std::optional<int> exitCode;
  int signal = 0;
  std::string description;
};

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

// Signals a service's process group; the process alone when the group is already gone
// (it had not yet called setpgid, or it left its group).
void signalGroup(pid_t pid, int sig) {
  if (::kill(-pid, sig) != 0 && errno == ESRCH) ::kill(pid, sig);
}

// Reads one output pipe of a service into its log. Lines longer than the limit are
// handed on in pieces as they arrive, so a writer without newlines cannot grow the
// buffer. Lives as long as a read is pending; ends at EOF or close().
class PipeReader : public std::enable_shared_from_this<PipeReader> {
 public:
  PipeReader(asio::io_context& io, UniqueFd fd, std::shared_ptr<LogStore> store, std::string id)
      : stream_(io, fd.release()),
        store_(std::move(store)),
        id_(std::move(id)),
        maxLine_(store_->options().maxLineLength) {}

  void start() { readSome(); }
  void close() {
    boost::system::error_code ignored;
    stream_.close(ignored);
  }

 private:
  void readSome() {
    stream_.async_read_some(asio::buffer(buffer_),
                            [self = shared_from_this()](const boost::system::error_code& ec, size_t n) {
                              self->consume(n);
                              if (ec) {
                                self->flush();
                                return;
                              }
                              self->readSome();
                            });
  }

  void consume(size_t n) {
    partial_.append(buffer_.data(), n);
    const size_t newline = partial_.rfind('\n');
    size_t cut = newline == std::string::npos ? 0 : newline + 1;
    // Keep 1..maxLine_ bytes of an unfinished line: a line of exactly maxLine_ bytes whose
    // '\n' comes in the next read must not produce an extra empty line.
    const size_t rest = partial_.size() - cut;
    if (rest > maxLine_) cut += (rest - 1) / maxLine_ * maxLine_;
    if (cut == 0) return;
    (void)store_->append(id_, std::string_view(partial_).substr(0, cut));  // the log exists for every service
    partial_.erase(0, cut);
  }

  void flush() {
    if (!partial_.empty()) (void)store_->append(id_, partial_);
    partial_.clear();
  }

  asio::posix::stream_descriptor stream_;
  std::shared_ptr<LogStore> store_;
  std::string id_;
  size_t maxLine_;
  std::array<char, 16384> buffer_{};
  std::string partial_;
};

bool isPositiveOrZero(milliseconds d) {
  return d.count() >= 0;
}

Status validateSpec(const ServiceSpec& spec) {
  const std::string id = spec.id;
  if (!isValidId(id)) {
    return invalidArgument(
        fmt::format("service id: expected [a-z0-9][a-z0-9._-]* of at most 63 bytes, found '{}'", id));
  }
  if (id == Supervisor::kMachinedLogId) {
    return invalidArgument(fmt::format("service id: '{}' is reserved for machined's own log", id));
  }
  if (spec.argv.empty() || spec.argv[0].empty() || spec.argv[0][0] != '/') {
    return invalidArgument(fmt::format("service '{}': expected argv[0] to be an absolute path, found '{}'",
                                       id, spec.argv.empty() ? std::string() : spec.argv[0]));
  }
  for (const auto& e : spec.env) {
    const size_t eq = e.find('=');
    if (eq == std::string::npos || eq == 0) {
      return invalidArgument(fmt::format("service '{}': expected env entries KEY=value, found '{}'", id, e));
    }
  }
  if (!spec.stateDir.is_absolute()) {
    return invalidArgument(
        fmt::format("service '{}': expected an absolute stateDir, found '{}'", id, spec.stateDir.string()));
  }
  if (!spec.configFile.empty() && !spec.configFile.is_absolute()) {
    return invalidArgument(fmt::format("service '{}': expected an absolute configFile, found '{}'", id,
                                       spec.configFile.string()));
  }
  const RestartPolicy& r = spec.restart;
  if (!isPositiveOrZero(r.initialBackoff) || r.maxBackoff < r.initialBackoff || r.maxRestarts < 0 ||
      r.window.count() <= 0) {
    return invalidArgument(
        fmt::format("service '{}': expected 0 <= initialBackoff <= maxBackoff, maxRestarts >= 0, window > 0; "
                    "found {}ms, {}ms, {}, {}ms",
                    id, r.initialBackoff.count(), r.maxBackoff.count(), r.maxRestarts, r.window.count()));
  }
  if (!isPositiveOrZero(spec.settleTime) || !isPositiveOrZero(spec.stopGracePeriod)) {
    return invalidArgument(
        fmt::format("service '{}': expected settleTime and stopGracePeriod >= 0, found {}ms, {}ms", id,
                    spec.settleTime.count(), spec.stopGracePeriod.count()));
  }
  return Status::ok();
}

// Orders specs so that each comes after its dependencies, keeping declaration order
// where the dependencies allow it.
Result<std::vector<ServiceSpec>> sortByDependencies(std::vector<ServiceSpec> specs) {
  std::set<std::string, std::less<>> ids;
  for (const auto& spec : specs) {
    KEEL_RETURN_IF_ERROR(validateSpec(spec));
    if (!ids.insert(spec.id).second) {
      return invalidArgument(fmt::format("service '{}': expected unique ids, found it twice", spec.id));
    }
  }
  for (const auto& spec : specs) {
    for (const auto& dep : spec.dependsOn) {
      if (ids.count(dep) == 0) {
        return invalidArgument(fmt::format(
            "service '{}' depends on '{}': expected a declared service, found none", spec.id, dep));
      }
    }
  }
  std::vector<ServiceSpec> sorted;
  std::set<std::string, std::less<>> placed;
  std::vector<bool> done(specs.size(), false);
  while (sorted.size() < specs.size()) {
    bool progress = false;
    for (size_t i = 0; i < specs.size(); ++i) {
      if (done[i]) continue;
      const bool ready = std::all_of(specs[i].dependsOn.begin(), specs[i].dependsOn.end(),
                                     [&](const std::string& d) { return placed.count(d) != 0; });
      if (!ready) continue;
      placed.insert(specs[i].id);
      sorted.push_back(std::move(specs[i]));
      done[i] = true;
      progress = true;
      break;  // restart the scan so declaration order wins among ready services
    }
    if (!progress) {
      std::string cycle;
      for (size_t i = 0; i < specs.size(); ++i) {
        if (!done[i]) cycle += fmt::format("{}'{}'", cycle.empty() ? "" : ", ", specs[i].id);
      }
      return invalidArgument(fmt::format("dependencies: expected no cycle, found one among {}", cycle));
    }
  }
  return sorted;
}

struct Service {
  Service(asio::io_context& io, ServiceSpec s) : spec(std::move(s)), timer(io) {}

  ServiceSpec spec;
  std::vector<Service*> dependencies;
  std::vector<Service*> dependents;
  ServiceState state = ServiceState::kStopped;
  bool wanted = false;  // should have a running process (cleared by stop, failure, shutdown)
  pid_t pid = 0;        // the live, unreaped process; 0 when none
  std::string message = "not started";
  TimePoint since;
  int restarts = 0;
  std::optional<int> lastExitCode;
  int lastSignal = 0;
  std::deque<SteadyClock::time_point> restartTimes;  // automatic restarts within the window
  std::string setupError;                            // the current process failed to exec
  // One timer for settle, backoff and grace: a service is in at most one of them. The
  // generation makes a handler that was already queued when the timer was re-armed or
  // cancelled a no-op.
  asio::steady_timer timer;
  uint64_t timerGeneration = 0;
  std::deque<Event> recent;
};

}  // namespace

struct Supervisor::Impl {
  Impl(SupervisorOptions options, const Clock& clock, std::shared_ptr<LogStore> logs)
      : clock_(clock), options_(std::move(options)), logs_(std::move(logs)) {}

  // ---- threading ----

  bool onIoThread() { return io_.get_executor().running_in_this_thread(); }

  // Runs `f` on the io thread and returns its result; inline when already there.
  template <typename F>
  std::invoke_result_t<F> callOnIo(F&& f) {
    if (onIoThread()) return f();
    std::packaged_task<std::invoke_result_t<F>()> task(std::forward<F>(f));
    auto result = task.get_future();
    asio::post(io_, [&task] { task(); });
    return result.get();
  }

  Status startThread() {
    boost::system::error_code ec;
    sigchld_.add(SIGCHLD, ec);
    if (ec) return internalError("installing the SIGCHLD handler: " + ec.message());
    waitForSigchld();
    thread_ = std::thread([this] { io_.run(); });
    return Status::ok();
  }

  void stopThread() {
    callOnIo([this] {
      boost::system::error_code ignored;
      sigchld_.cancel(ignored);
      for (auto& weak : readers_) {
        if (auto reader = weak.lock()) reader->close();
      }
      for (auto& s : services_) {
        ++s->timerGeneration;
        s->timer.cancel();
      }
    });
    work_.reset();
    io_.stop();
    thread_.join();
    // shutdown() reaped everything; this only matters if that invariant was broken.
    for (auto& s : services_) {
      if (s->pid <= 0) continue;
      signalGroup(s->pid, SIGKILL);
      while (::waitpid(s->pid, nullptr, 0) < 0 && errno == EINTR) {
      }
      s->pid = 0;
    }
  }

  // ---- lookup ----

  Service* find(std::string_view id) {
    for (auto& s : services_) {
      if (s->spec.id == id) return s.get();
    }
    return nullptr;
  }

  static Status unknownService(std::string_view id) {
    return notFound(fmt::format("service '{}': no such service", id));
  }

  Status refuseWhenShuttingDown(std::string_view what, std::string_view id) const {
    if (!shuttingDown_) return Status::ok();
    return failedPrecondition(
        fmt::format("{} '{}': expected a running supervisor, found it shutting down", what, id));
  }

  // ---- events and state ----

  void setState(Service& s, ServiceState state, std::string message) {
    s.state = state;
    s.message = std::move(message);
    s.since = clock_.now();
  }

  void emit(Service& s, EventType type, std::string message, pid_t pid, const ExitInfo* exit = nullptr) {
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

  void armTimer(Service& s, milliseconds delay, std::function<void(Service&)> action) {
    const uint64_t generation = ++s.timerGeneration;
    s.timer.expires_after(delay);
    s.timer.async_wait([&s, generation, action = std::move(action)](const boost::system::error_code& ec) {
      if (ec || s.timerGeneration != generation) return;
      action(s);
    });
  }

  void cancelTimer(Service& s) {
    ++s.timerGeneration;
    s.timer.cancel();
  }

  ServiceStatus statusOf(const Service& s) const {
    ServiceStatus st;
    st.id = s.spec.id;
    st.state = s.state;
    st.pid = s.pid;
    st.restarts = s.restarts;
    st.lastExitCode = s.lastExitCode;
    st.lastSignal = s.lastSignal;
    st.since = s.since;
    st.message = s.message;
    st.recentEvents.assign(s.recent.begin(), s.recent.end());
    return st;
  }

  // ---- the state machine (io thread only) ----

  // Starts `s` if its dependencies are running, otherwise parks it in kWaiting.
  void tryStart(Service& s) {
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

  // Re-evaluates dependents parked in kWaiting: starts them, or refreshes what they wait for.
  void wakeDependents(Service& s) {
    for (Service* d : s.dependents) {
      if (d->wanted && d->state == ServiceState::kWaiting) tryStart(*d);
    }
  }

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

  void launch(Service& s) {
    s.setupError.clear();
    if (Status st = prepareStateDir(s.spec); !st.isOk()) {
      fail(s, "cannot start: " + st.message());
      return;
    }
    auto spawned = options_.spawn ? options_.spawn(s.spec)
                                  : spawnProcess({s.spec.argv, s.spec.env, s.spec.stateDir, s.spec.preExec});
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

  void attachReader(UniqueFd fd, const std::string& id) {
    std::erase_if(readers_, [](const std::weak_ptr<PipeReader>& r) { return r.expired(); });
    auto reader = std::make_shared<PipeReader>(io_, std::move(fd), logs_, id);
    reader->start();
    readers_.push_back(reader);
  }

  void markRunning(Service& s) {
    if (s.state != ServiceState::kStarting) return;
    setState(s, ServiceState::kRunning, fmt::format("running as pid {}", s.pid));
    emit(s, EventType::kRunning,
         s.spec.settleTime.count() == 0 ? std::string("running (exec succeeded)")
                                        : fmt::format("running (up for {}ms)", s.spec.settleTime.count()),
         s.pid);
    wakeDependents(s);
  }

  void fail(Service& s, std::string reason) {
    cancelTimer(s);
    s.wanted = false;
    setState(s, ServiceState::kFailed, reason);
    emit(s, EventType::kFailed, std::move(reason), 0);
    wakeDependents(s);
  }

  void scheduleRestart(Service& s, const std::string& why) {
    const RestartPolicy& policy = s.spec.restart;
    const auto now = SteadyClock::now();
    while (!s.restartTimes.empty() && now - s.restartTimes.front() >= policy.window)
      s.restartTimes.pop_front();
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

  void beginStop(Service& s, std::string_view reason) {
    const pid_t pid = s.pid;
    const milliseconds grace = s.spec.stopGracePeriod;
    setState(s, ServiceState::kStopping, fmt::format("{}: SIGTERM sent to pid {}", reason, pid));
    emit(s, EventType::kStopping,
         fmt::format("{}: sending SIGTERM to process group {}, SIGKILL after {}ms", reason, pid,
                     grace.count()),
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

  // Ends a service that has no process (waiting or in backoff).
  void stopIdle(Service& s, std::string reason) {
    cancelTimer(s);
    setState(s, ServiceState::kStopped, reason);
    emit(s, EventType::kStopped, std::move(reason), 0);
    wakeDependents(s);
  }

  void waitForSigchld() {
    sigchld_.async_wait([this](const boost::system::error_code& ec, int) {
      if (ec) return;
      reap();
      waitForSigchld();
    });
  }

  // Reaps our own children only: other code in the process (tests, helpers) may wait
  // for children of its own, so waitpid(-1) is not ours to call.
  void reap() {
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
  void reapOrphans() {
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

  void onExit(Service& s, pid_t pid, std::optional<int> status) {
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

  // ---- operations (io thread) ----

  Status start(std::string_view id) {
    Service* s = find(id);
    if (s == nullptr) return unknownService(id);
    KEEL_RETURN_IF_ERROR(refuseWhenShuttingDown("start", id));
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

  // Wants `target` and every service it transitively depends on, and starts those that
  // have nothing going on, dependencies first. A request starts with a fresh budget.
  void startWithDependencies(Service& target) {
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

  Status startAll() {
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

  Status stop(std::string_view id) {
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

  Status restart(std::string_view id) {
    Service* s = find(id);
    if (s == nullptr) return unknownService(id);
    KEEL_RETURN_IF_ERROR(refuseWhenShuttingDown("restart", id));
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

  // Registers a waiter for the end of shutdown and moves it along.
  void beginShutdown(std::promise<void> done) {
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

  // Sends SIGTERM to each process whose dependents are all down; finishes the shutdown
  // when no process is left. Called again after every exit.
  void advanceShutdown() {
    if (!shuttingDown_) return;
    bool done = true;
    for (auto it = services_.rbegin(); it != services_.rend(); ++it) {
      Service& s = **it;
      if (s.state == ServiceState::kStopping) {
        done = false;
      } else if (s.state == ServiceState::kStarting || s.state == ServiceState::kRunning) {
        done = false;
        const bool dependentsDown =
            std::all_of(s.dependents.begin(), s.dependents.end(), [](const Service* d) {
              return d->state == ServiceState::kStopped || d->state == ServiceState::kFailed;
            });
        if (dependentsDown) beginStop(s, "supervisor shutting down");
      }
    }
    if (!done) return;
    for (auto& waiter : shutdownWaiters_) waiter.set_value();
    shutdownWaiters_.clear();
  }

  std::vector<pid_t> servicePids() {
    std::vector<pid_t> pids;
    for (auto& s : services_) {
      if (s->spec.mayCallMachined && s->pid > 0) pids.push_back(s->pid);
    }
    return pids;
  }

  // ---- members ----

  const Clock& clock_;
  const SupervisorOptions options_;
  const std::shared_ptr<LogStore> logs_;

  mutable std::mutex eventsMutex_;
  std::deque<Event> events_;   // guarded by eventsMutex_
  uint64_t nextSequence_ = 1;  // guarded by eventsMutex_
  Subscribers<Event> eventSubscribers_;

  // Everything below is touched on the io thread only (services_ is fixed after create).
  asio::io_context io_;
  asio::signal_set sigchld_{io_};
  asio::executor_work_guard<asio::io_context::executor_type> work_{io_.get_executor()};
  std::vector<std::unique_ptr<Service>> services_;  // dependency order
  std::vector<std::weak_ptr<PipeReader>> readers_;
  bool shuttingDown_ = false;
  std::vector<std::promise<void>> shutdownWaiters_;
  std::thread thread_;
};

Result<std::unique_ptr<Supervisor>> Supervisor::create(SupervisorOptions options,
                                                       std::vector<ServiceSpec> specs, const Clock& clock) {
  if (options.maxEvents == 0) return invalidArgument("supervisor options: expected maxEvents > 0, found 0");
  KEEL_ASSIGN_OR_RETURN(std::vector<ServiceSpec> sorted, sortByDependencies(std::move(specs)));
  KEEL_ASSIGN_OR_RETURN(std::shared_ptr<LogStore> logs, LogStore::create(options.logs));
  KEEL_RETURN_IF_ERROR(logs->addLog(kMachinedLogId));
  for (const auto& spec : sorted) KEEL_RETURN_IF_ERROR(logs->addLog(spec.id));

  auto impl = std::make_unique<Impl>(std::move(options), clock, std::move(logs));
  for (auto& spec : sorted) {
    auto service = std::make_unique<Service>(impl->io_, std::move(spec));
    service->since = clock.now();
    impl->services_.push_back(std::move(service));
  }
  for (auto& s : impl->services_) {
    for (const auto& depId : s->spec.dependsOn) {
      Service* dep = impl->find(depId);
      if (std::find(s->dependencies.begin(), s->dependencies.end(), dep) != s->dependencies.end()) continue;
      s->dependencies.push_back(dep);
      dep->dependents.push_back(s.get());
    }
  }
  KEEL_RETURN_IF_ERROR(impl->startThread());
  return std::unique_ptr<Supervisor>(new Supervisor(std::move(impl)));
}

Supervisor::Supervisor(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Supervisor::~Supervisor() {
  KEEL_RELEASE_ASSERT(!impl_->onIoThread(), "a Supervisor destroyed from one of its own callbacks");
  shutdown();
  impl_->stopThread();
}

Status Supervisor::startAll() {
  return impl_->callOnIo([this] { return impl_->startAll(); });
}

Status Supervisor::start(std::string_view id) {
  return impl_->callOnIo([this, id] { return impl_->start(id); });
}

Status Supervisor::stop(std::string_view id) {
  return impl_->callOnIo([this, id] { return impl_->stop(id); });
}

Status Supervisor::restart(std::string_view id) {
  return impl_->callOnIo([this, id] { return impl_->restart(id); });
}

void Supervisor::shutdown() {
  KEEL_RELEASE_ASSERT(!impl_->onIoThread(), "Supervisor::shutdown called from one of its own callbacks");
  std::promise<void> done;
  auto finished = done.get_future();
  impl_->callOnIo([this, &done] { impl_->beginShutdown(std::move(done)); });
  finished.wait();
}

Result<ServiceStatus> Supervisor::status(std::string_view id) const {
  return impl_->callOnIo([this, id]() -> Result<ServiceStatus> {
    const Service* s = impl_->find(id);
    if (s == nullptr) return Impl::unknownService(id);
    return impl_->statusOf(*s);
  });
}

std::vector<ServiceStatus> Supervisor::statuses() const {
  return impl_->callOnIo([this] {
    std::vector<ServiceStatus> all;
    for (const auto& s : impl_->services_) all.push_back(impl_->statusOf(*s));
    return all;
  });
}

std::vector<pid_t> Supervisor::servicePids() const {
  return impl_->callOnIo([this] { return impl_->servicePids(); });
}

std::vector<Event> Supervisor::events(size_t tail) const {
  std::lock_guard lock(impl_->eventsMutex_);
  const auto& all = impl_->events_;
  const size_t count = std::min(tail, all.size());
  return std::vector<Event>(all.end() - static_cast<std::ptrdiff_t>(count), all.end());
}

Subscription Supervisor::followEvents(std::function<void(const Event&)> callback) {
  return impl_->eventSubscribers_.add(std::move(callback));
}

Result<std::vector<std::string>> Supervisor::logs(std::string_view id, size_t tailLines) const {
  return impl_->logs_->tail(id, tailLines);
}

Result<Subscription> Supervisor::followLogs(std::string_view id,
                                            std::function<void(const std::string&)> callback) {
  return impl_->logs_->follow(id, std::move(callback));
}

Status Supervisor::appendLog(std::string_view id, std::string_view line) {
  return impl_->logs_->append(id, line);
}

std::shared_ptr<LogStore> Supervisor::logStore() const {
  return impl_->logs_;
}

}  // namespace keel::supervisor
