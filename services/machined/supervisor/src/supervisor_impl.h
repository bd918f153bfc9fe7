// The inside of a Supervisor, shared by the files that implement it: supervisor.cpp (the
// public functions, the io thread) and state_machine.cpp (what happens to each service).
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include "keel/supervisor/supervisor.h"

#include "pipe_reader.h"

namespace keel::supervisor {

// One service and its process, as the io thread sees it.
struct Service {
  Service(boost::asio::io_context& io, ServiceSpec s) : spec(std::move(s)), timer(io) {}

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
  std::deque<std::chrono::steady_clock::time_point> restartTimes;  // automatic restarts within the window
  std::string setupError;                                          // the current process failed to exec
  // One timer for settle, backoff and grace: a service is in at most one of them. The
  // generation makes a handler that was already queued when the timer was re-armed or
  // cancelled a no-op.
  boost::asio::steady_timer timer;
  uint64_t timerGeneration = 0;
  std::deque<Event> recent;
};

// How a process ended, from its wait status.
struct ExitInfo {
  std::optional<int> exitCode;
  int signal = 0;
  std::string description;
};

struct Supervisor::Impl {
  Impl(SupervisorOptions options, const Clock& clock, std::shared_ptr<LogStore> logs)
      : clock_(clock), options_(std::move(options)), logs_(std::move(logs)) {}

  // ---- threading (supervisor.cpp) ----

  bool onIoThread() { return io_.get_executor().running_in_this_thread(); }

  // Runs `f` on the io thread and returns its result; inline when already there.
  template <typename F>
  std::invoke_result_t<F> callOnIo(F&& f) {
    if (onIoThread()) return f();
    std::packaged_task<std::invoke_result_t<F>()> task(std::forward<F>(f));
    auto result = task.get_future();
    boost::asio::post(io_, [&task] { task(); });
    return result.get();
  }

  Status startThread();
  void stopThread();

  // ---- lookup (supervisor.cpp) ----

  Service* find(std::string_view id);
  static Status unknownService(std::string_view id);
  ServiceStatus statusOf(const Service& s) const;
  std::vector<pid_t> servicePids();

  // ---- events, state and timers (state_machine.cpp; io thread only) ----

  void setState(Service& s, ServiceState state, std::string message);
  void emit(Service& s, EventType type, std::string message, pid_t pid, const ExitInfo* exit = nullptr);
  void armTimer(Service& s, std::chrono::milliseconds delay, std::function<void(Service&)> action);
  void cancelTimer(Service& s);

  // ---- the state machine (state_machine.cpp; io thread only) ----

  // Starts `s` if its dependencies are running, otherwise parks it in kWaiting.
  void tryStart(Service& s);
  // Re-evaluates dependents parked in kWaiting: starts them, or refreshes what they wait for.
  void wakeDependents(Service& s);
  void launch(Service& s);
  void attachReader(UniqueFd fd, const std::string& id);
  void markRunning(Service& s);
  void fail(Service& s, std::string reason);
  void scheduleRestart(Service& s, const std::string& why);
  void beginStop(Service& s, std::string_view reason);
  // Ends a service that has no process (waiting or in backoff).
  void stopIdle(Service& s, std::string reason);
  void waitForSigchld();
  void reap();
  void reapOrphans();
  void onExit(Service& s, pid_t pid, std::optional<int> status);

  // ---- operations (state_machine.cpp; io thread only) ----

  // The service a start or restart request names, or NOT_FOUND, or FAILED_PRECONDITION
  // during shutdown. `what` names the request in the error.
  Result<Service*> findToStart(std::string_view what, std::string_view id);
  Status start(std::string_view id);
  // Wants `target` and every service it transitively depends on, and starts those that
  // have nothing going on, dependencies first. A request starts with a fresh budget.
  void startWithDependencies(Service& target);
  Status startAll();
  Status stop(std::string_view id);
  Status restart(std::string_view id);
  // Registers a waiter for the end of shutdown and moves it along.
  void beginShutdown(std::promise<void> done);
  // Sends SIGTERM to each process whose dependents are all down; finishes the shutdown
  // when no process is left. Called again after every exit.
  void advanceShutdown();

  // ---- members ----

  const Clock& clock_;
  const SupervisorOptions options_;
  const std::shared_ptr<LogStore> logs_;

  mutable std::mutex eventsMutex_;
  std::deque<Event> events_;   // guarded by eventsMutex_
  uint64_t nextSequence_ = 1;  // guarded by eventsMutex_
  Subscribers<Event> eventSubscribers_;

  // Everything below is touched on the io thread only (services_ is fixed after create).
  boost::asio::io_context io_;
  boost::asio::signal_set sigchld_{io_};
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_{io_.get_executor()};
  std::vector<std::unique_ptr<Service>> services_;  // dependency order
  std::vector<std::weak_ptr<PipeReader>> readers_;
  bool shuttingDown_ = false;
  std::vector<std::promise<void>> shutdownWaiters_;
  std::thread thread_;
};

// Signals a service's process group; the process alone when the group is already gone
// (it had not yet called setpgid, or it left its group).
void signalGroup(pid_t pid, int sig);

}  // namespace keel::supervisor
