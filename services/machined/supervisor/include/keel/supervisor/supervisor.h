// The service supervisor of machined: starts the node's services in dependency order,
// restarts crashed ones with exponential backoff until a limit, stops them in reverse
// order, and keeps each one's output and lifecycle events for the API to show.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <sys/types.h>

#include "keel/common/clock.h"
#include "keel/common/status.h"
#include "keel/supervisor/log_store.h"
#include "keel/supervisor/service_spec.h"
#include "keel/supervisor/spawner.h"
#include "keel/supervisor/subscription.h"

namespace keel::supervisor {

// kStopped: no process, not wanted (initial state, or stopped by request).
// kWaiting: wanted, waiting for its dependencies to be running.
// kStarting: process started, not yet up for the settle time.
// kRunning: process up for at least the settle time; dependents may start.
// kBackoff: crashed; a restart is scheduled.
// kStopping: SIGTERM (later SIGKILL) sent, waiting for the exit.
// kFailed: given up (restart limit, exec failure, setup error); stays so until started again.
enum class ServiceState { kStopped, kWaiting, kStarting, kRunning, kBackoff, kStopping, kFailed };
std::string_view serviceStateName(ServiceState state);  // "stopped", "waiting", ...

enum class EventType { kStarting, kRunning, kExited, kRestarting, kFailed, kStopping, kStopped };
std::string_view eventTypeName(EventType type);  // "starting", "running", ...

struct Event {
  uint64_t sequence = 0;  // 1, 2, 3, ... across all services: deduplicates events() vs followEvents()
  TimePoint time;         // from the injected clock
  std::string serviceId;
  EventType type = EventType::kStarting;
  std::string message;  // says what happened and why, e.g. "killed by signal 9 (SIGKILL)"
  pid_t pid = 0;        // the process concerned, 0 when there is none
  // kExited and kStopped: how the process ended (exit code, or terminating signal).
  std::optional<int> exitCode;
  int signal = 0;
};

struct ServiceStatus {
  std::string id;
  ServiceState state = ServiceState::kStopped;
  pid_t pid = 0;     // 0 when no process
  int restarts = 0;  // automatic restarts since the service was last started by request
  std::optional<int> lastExitCode;
  int lastSignal = 0;
  TimePoint since;                  // when it entered `state` (injected clock)
  std::string message;              // why it is in `state`: failure reason, what it waits for, ...
  std::vector<Event> recentEvents;  // oldest first
};

struct SupervisorOptions {
  LogOptions logs;
  size_t maxEvents = 1000;             // events kept in total
  size_t recentEventsPerService = 20;  // events kept in each ServiceStatus
  // Starts one process of a service (argv, env, stateDir as working directory, confined
  // as spec.sandbox says) with the contract of Spawner::spawn, which it normally calls; the
  // returned pid must be a child of this process, since the supervisor reaps it with
  // waitpid. Called on the io thread. Required: create() refuses an empty one.
  std::function<Result<SpawnedProcess>(const ServiceSpec&)> spawn;
  // Also reaps children that are not services (orphans handed to a child subreaper):
  // only for a process whose children all belong to the supervisor.
  bool reapOrphans = false;
};

// Threading: the supervisor owns one io thread that runs every process, pipe, signal
// and timer. Public functions may be called from any thread; they run on the io thread
// (posted, then waited for), or directly when called from it, i.e. from a callback.
//
// Callbacks (followEvents, followLogs): event callbacks run on the io thread with no lock
// held, after the state change they report is complete, so they may call any function of
// the supervisor except shutdown() and the destructor. Log callbacks run on the thread
// that appended the line (the io thread for services). Both must be quick (they delay
// all supervision) and must not throw.
//
// Processes: each service is the leader of its own process group. Stopping signals the
// whole group; when the main process exits for any reason, what is left of its group is
// SIGKILLed before the exit is handled, so a service cannot leave helpers behind (a
// process that moves to another group escapes this; the sandbox is the place to stop that).
// Only the supervisor's own children are reaped (waitpid per pid, never waitpid(-1)).
//
// Dependencies: start(id) also starts the stopped or failed services `id` depends on;
// a dependent starts once its dependencies are kRunning. A dependency that crashes later
// does not take its running dependents down. stop(id) is refused while a service that
// depends on `id` is wanted (waiting, starting, running or in backoff): on a node managed
// only through apid, silently stopping a dependent (apid itself, say) could cut the
// operator off, so the caller stops dependents first and explicitly.
class Supervisor {
 public:
  static constexpr std::string_view kMachinedLogId = "machined";

  // Validates the options (a spawn function is required) and the specs (ids, absolute
  // paths, known dependencies without cycles, sane policies): INVALID_ARGUMENT otherwise.
  // Creates the log store with one log per service plus kMachinedLogId, and starts the io
  // thread. Starts no service. `clock` must outlive the supervisor.
  static Result<std::unique_ptr<Supervisor>> create(SupervisorOptions options, std::vector<ServiceSpec> specs,
                                                    const Clock& clock);

  // Stops every service as shutdown() does, then ends the io thread. No child outlives it.
  // Must not be called from a supervisor callback.
  ~Supervisor();
  Supervisor(const Supervisor&) = delete;
  Supervisor& operator=(const Supervisor&) = delete;

  // Starts every service in dependency order (each once its dependencies are kRunning).
  // Services already wanted are left alone. FAILED_PRECONDITION after shutdown().
  Status startAll();

  // Starts one service (and the stopped or failed services it depends on). Works from
  // kStopped, kFailed (with a fresh restart budget) and kBackoff (starts at once).
  // Returns once the start is under way; watch events or status for the outcome.
  // NOT_FOUND for an unknown id, FAILED_PRECONDITION when already wanted or stopping.
  Status start(std::string_view id);

  // Stops one service: SIGTERM to its process group, SIGKILL after the grace period. It
  // is not restarted. Returns once the stop is under way; kStopping is a no-op.
  // NOT_FOUND, FAILED_PRECONDITION when already stopped or failed, or when a dependent
  // is wanted (see the class comment).
  Status stop(std::string_view id);

  // Stops the service if it has a process and starts it again with a fresh restart
  // budget (a new pid); from kStopped or kFailed it is start(). Dependents keep running.
  // NOT_FOUND; FAILED_PRECONDITION after shutdown().
  Status restart(std::string_view id);

  // Stops every service in reverse dependency order (a service gets SIGTERM once all its
  // dependents have exited) and returns when all are reaped. Later starts are refused.
  // Idempotent. Blocks: must not be called from a supervisor callback.
  void shutdown();

  // NOT_FOUND for an unknown id.
  Result<ServiceStatus> status(std::string_view id) const;
  // Every service, in dependency order.
  std::vector<ServiceStatus> statuses() const;

  // Pids of the live processes of services with mayCallMachined, for machined's
  // SO_PEERCRED check. A pid leaves this list before its process is reaped, so at the time
  // of the call no listed pid belongs to an unrelated process: ask per connection, do not
  // cache the list.
  std::vector<pid_t> servicePids() const;

  // The last `tail` events, oldest first.
  std::vector<Event> events(size_t tail) const;
  // Calls `callback` with each event recorded from now on (see the class comment).
  Subscription followEvents(std::function<void(const Event&)> callback);

  // The last `tailLines` lines of a service's log (or kMachinedLogId), oldest first.
  // NOT_FOUND for an unknown id.
  Result<std::vector<std::string>> logs(std::string_view id, size_t tailLines) const;
  // Calls `callback` with each new line of log `id`. NOT_FOUND for an unknown id.
  Result<Subscription> followLogs(std::string_view id, std::function<void(const std::string&)> callback);
  // Appends a line (or several, split at '\n') to log `id`. NOT_FOUND for an unknown id.
  Status appendLog(std::string_view id, std::string_view line);
  // The store behind logs(), for LogStoreSink (machined's own spdlog output).
  std::shared_ptr<LogStore> logStore() const;

 private:
  struct Impl;
  explicit Supervisor(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace keel::supervisor
