#include "keel/supervisor/supervisor.h"

#include <signal.h>

#include <algorithm>
#include <cerrno>

#include <fmt/format.h>
#include <sys/wait.h>

#include "keel/common/assert.h"

#include "service_specs.h"
#include "supervisor_impl.h"

namespace keel::supervisor {

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

Status Supervisor::Impl::startThread() {
  boost::system::error_code ec;
  sigchld_.add(SIGCHLD, ec);
  if (ec) return internalError("installing the SIGCHLD handler: " + ec.message());
  waitForSigchld();
  thread_ = std::thread([this] { io_.run(); });
  return Status::ok();
}

void Supervisor::Impl::stopThread() {
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

Service* Supervisor::Impl::find(std::string_view id) {
  for (auto& s : services_) {
    if (s->spec.id == id) return s.get();
  }
  return nullptr;
}

Status Supervisor::Impl::unknownService(std::string_view id) {
  return notFound(fmt::format("service '{}': no such service", id));
}

ServiceStatus Supervisor::Impl::statusOf(const Service& s) const {
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

std::vector<pid_t> Supervisor::Impl::servicePids() {
  std::vector<pid_t> pids;
  for (auto& s : services_) {
    if (s->spec.mayCallMachined && s->pid > 0) pids.push_back(s->pid);
  }
  return pids;
}

Result<std::unique_ptr<Supervisor>> Supervisor::create(SupervisorOptions options,
                                                       std::vector<ServiceSpec> specs, const Clock& clock) {
  if (options.maxEvents == 0) return invalidArgument("supervisor options: expected maxEvents > 0, found 0");
  if (!options.spawn) {
    return invalidArgument("supervisor options: expected a spawn function (the spawner's), found none");
  }
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
