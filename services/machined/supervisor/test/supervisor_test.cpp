#include "keel/supervisor/supervisor.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>
#include <spdlog/logger.h>

#include "keel/supervisor/log_sink.h"
#include "keel/testing/testing.h"
#include "test_spawner.h"

namespace keel::supervisor {
namespace {

using namespace std::chrono_literals;
using Catch::Matchers::ContainsSubstring;
using keel::testing::TempDir;

// Generous: sanitizer builds on a shared 2-core machine are slow. Waits end as soon as
// their condition holds.
constexpr auto kTimeout = std::chrono::seconds(30);
// A distinctive duration, so leftover processes of these tests are easy to spot.
constexpr const char* kLongSleep = "exec /bin/sleep 3617";

// Collects every event of a supervisor and lets a test wait for a condition on them.
class EventRecorder {
 public:
  explicit EventRecorder(Supervisor& supervisor)
      : subscription_(supervisor.followEvents([this](const Event& e) {
          std::lock_guard lock(mutex_);
          events_.push_back(e);
          changed_.notify_all();
        })) {}

  // Waits until `done(events)` holds; fails the test after kTimeout.
  std::vector<Event> waitFor(const std::function<bool(const std::vector<Event>&)>& done) {
    std::unique_lock lock(mutex_);
    const bool ok = changed_.wait_for(lock, kTimeout, [&] { return done(events_); });
    if (!ok) {
      std::string dump;
      for (const auto& e : events_) dump += describe(e) + "\n";
      FAIL("timed out waiting for an event condition; events so far:\n" << dump);
    }
    return events_;
  }

  // Waits for the first event of `id` and `type` at or after index `from` that matches `extra`.
  Event waitForEvent(const std::string& id, EventType type, size_t from = 0,
                     const std::function<bool(const Event&)>& extra = nullptr) {
    const auto events = waitFor(
        [&](const std::vector<Event>& all) { return indexOf(all, id, type, from, extra).has_value(); });
    return events[*indexOf(events, id, type, from, extra)];
  }

  std::vector<Event> snapshot() {
    std::lock_guard lock(mutex_);
    return events_;
  }

  static std::optional<size_t> indexOf(const std::vector<Event>& all, const std::string& id, EventType type,
                                       size_t from = 0,
                                       const std::function<bool(const Event&)>& extra = nullptr) {
    for (size_t i = from; i < all.size(); ++i) {
      if (all[i].serviceId == id && all[i].type == type && (!extra || extra(all[i]))) return i;
    }
    return std::nullopt;
  }

  static std::string describe(const Event& e) {
    return e.serviceId + " " + std::string(eventTypeName(e.type)) + " pid=" + std::to_string(e.pid) + ": " +
           e.message;
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<Event> events_;
  Subscription subscription_;  // last: unsubscribes before the members it writes go away
};

// Collects the lines of one log.
class LogRecorder {
 public:
  LogRecorder(Supervisor& supervisor, const std::string& id) {
    auto sub = supervisor.followLogs(id, [this](const std::string& line) {
      std::lock_guard lock(mutex_);
      lines_.push_back(line);
      changed_.notify_all();
    });
    REQUIRE(sub.ok());
    subscription_ = std::move(*sub);
  }

  std::vector<std::string> waitForLine(const std::string& line) {
    std::unique_lock lock(mutex_);
    const bool ok = changed_.wait_for(
        lock, kTimeout, [&] { return std::find(lines_.begin(), lines_.end(), line) != lines_.end(); });
    if (!ok) FAIL("timed out waiting for log line '" << line << "'");
    return lines_;
  }

  void unsubscribe() { subscription_.reset(); }

  std::vector<std::string> lines() {
    std::lock_guard lock(mutex_);
    return lines_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<std::string> lines_;
  Subscription subscription_;
};

ServiceSpec shellService(const TempDir& dir, const std::string& id, const std::string& script) {
  ServiceSpec spec;
  spec.id = id;
  spec.argv = {"/bin/sh", "-c", script};
  spec.env = {"PATH=/usr/bin:/bin", "SERVICE_ID=" + id};
  spec.stateDir = dir / ("state/" + id);
  spec.settleTime = 50ms;
  spec.stopGracePeriod = 10s;
  spec.restart = {.initialBackoff = 10ms, .maxBackoff = 40ms, .maxRestarts = 3, .window = 60s};
  testing::confine(spec);
  return spec;
}

SupervisorOptions testOptions(const TempDir& dir) {
  SupervisorOptions options;
  options.logs.dir = dir / "logs";
  options.logs.maxLines = 200;
  options.spawn = testing::spawnFunction();
  return options;
}

std::unique_ptr<Supervisor> makeSupervisor(const TempDir& dir, std::vector<ServiceSpec> specs,
                                           const Clock& clock, SupervisorOptions options) {
  auto supervisor = Supervisor::create(std::move(options), std::move(specs), clock);
  if (!supervisor.ok()) FAIL(supervisor.status().toString());
  (void)dir;
  return std::move(*supervisor);
}

std::unique_ptr<Supervisor> makeSupervisor(const TempDir& dir, std::vector<ServiceSpec> specs) {
  static const SystemClock clock;
  return makeSupervisor(dir, std::move(specs), clock, testOptions(dir));
}

// A service that ignores SIGTERM, so only the SIGKILL after `grace` ends it; it logs
// "ready" once the trap is set. An ignored signal stays ignored across exec, so sleep
// itself ignores SIGTERM.
ServiceSpec stubbornService(const TempDir& dir, std::chrono::milliseconds grace) {
  auto spec = shellService(dir, "stubborn", std::string("trap '' TERM; echo ready; ") + kLongSleep);
  spec.stopGracePeriod = grace;
  return spec;
}

// Starts every service and waits until `id` has logged "ready" and is running; its pid.
pid_t startAllUntilReady(Supervisor& supervisor, EventRecorder& recorder, const std::string& id) {
  LogRecorder log(supervisor, id);
  REQUIRE(supervisor.startAll().isOk());
  log.waitForLine("ready");
  return recorder.waitForEvent(id, EventType::kRunning).pid;
}

ServiceStatus statusOf(Supervisor& supervisor, const std::string& id) {
  auto status = supervisor.status(id);
  REQUIRE(status.ok());
  return *status;
}

pid_t pidOf(Supervisor& supervisor, const std::string& id) {
  return statusOf(supervisor, id).pid;
}

// True once `pid` is gone or a zombie (a reparented grandchild is reaped by whoever is
// PID 1 here, which may never happen in a container).
bool processGone(pid_t pid) {
  if (::kill(pid, 0) != 0 && errno == ESRCH) return true;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string content((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  const size_t close = content.rfind(')');
  return close == std::string::npos || (close + 2 < content.size() && content[close + 2] == 'Z');
}

bool waitUntilGone(pid_t pid) {
  const auto deadline = std::chrono::steady_clock::now() + kTimeout;
  while (!processGone(pid)) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(10ms);  // polling a condition no event reports
  }
  return true;
}

// Field `n` (1-based, after the command name) of /proc/<pid>/stat.
long procStatField(pid_t pid, int n) {
  const std::string content = keel::testing::readFile("/proc/" + std::to_string(pid) + "/stat");
  std::istringstream rest(content.substr(content.rfind(')') + 2));
  std::string field;
  for (int i = 3; i <= n; ++i) rest >> field;
  return std::stol(field);
}

TEST_CASE("starts services in dependency order and stops them in reverse order", "[supervisor]") {
  TempDir dir;
  const std::string order = (dir / "order").string();
  // A trap that appends to a shared file shows the order in which the processes got SIGTERM.
  // Run as root, the services are nobody: they own the file and may pass through `dir`.
  keel::testing::writeFile(order, "");
  if (::geteuid() == 0) {
    std::filesystem::permissions(dir.path(), std::filesystem::perms::others_exec, std::filesystem::perm_options::add);
    REQUIRE(::chown(order.c_str(), testing::kServiceUid, testing::kServiceGid) == 0);
  }
  const std::string script = "trap 'echo stop-$SERVICE_ID >> " + order +
                             "; exit 0' TERM; echo ready; while :; do /bin/sleep 3617 & wait; done";
  auto c = shellService(dir, "c", script);
  c.dependsOn = {"b"};
  auto b = shellService(dir, "b", script);
  b.dependsOn = {"a"};
  auto a = shellService(dir, "a", script);
  auto supervisor = makeSupervisor(dir, {c, b, a});  // declared in the wrong order on purpose
  EventRecorder recorder(*supervisor);
  LogRecorder logA(*supervisor, "a");
  LogRecorder logB(*supervisor, "b");
  LogRecorder logC(*supervisor, "c");

  REQUIRE(supervisor->startAll().isOk());
  auto events = recorder.waitFor(
      [](const auto& all) { return EventRecorder::indexOf(all, "c", EventType::kRunning).has_value(); });
  const auto index = [&](const std::string& id, EventType type) {
    return *EventRecorder::indexOf(events, id, type);
  };
  CHECK(index("a", EventType::kRunning) < index("b", EventType::kStarting));
  CHECK(index("b", EventType::kRunning) < index("c", EventType::kStarting));
  const auto statuses = supervisor->statuses();
  REQUIRE(statuses.size() == 3);
  CHECK(statuses[0].id == "a");
  CHECK(statuses[2].id == "c");

  logA.waitForLine("ready");
  logB.waitForLine("ready");
  logC.waitForLine("ready");
  supervisor->shutdown();
  events = recorder.waitFor(
      [](const auto& all) { return EventRecorder::indexOf(all, "a", EventType::kStopped).has_value(); });
  CHECK(index("c", EventType::kStopped) < index("b", EventType::kStopping));
  CHECK(index("b", EventType::kStopped) < index("a", EventType::kStopping));
  CHECK(keel::testing::readFile(order) == "stop-c\nstop-b\nstop-a\n");
  for (const auto& s : supervisor->statuses()) CHECK(s.state == ServiceState::kStopped);
  CHECK(supervisor->start("a").code() == StatusCode::kFailedPrecondition);
}

TEST_CASE("restarts a service killed with SIGKILL after a doubling backoff", "[supervisor]") {
  TempDir dir;
  auto supervisor = makeSupervisor(dir, {shellService(dir, "svc", kLongSleep)});
  EventRecorder recorder(*supervisor);
  REQUIRE(supervisor->startAll().isOk());
  const Event firstRun = recorder.waitForEvent("svc", EventType::kRunning);
  const pid_t first = firstRun.pid;
  CHECK(pidOf(*supervisor, "svc") == first);

  REQUIRE(::kill(first, SIGKILL) == 0);
  const Event secondRun =
      recorder.waitForEvent("svc", EventType::kRunning, 0, [&](const Event& e) { return e.pid != first; });
  auto events = recorder.snapshot();
  const size_t start = *EventRecorder::indexOf(events, "svc", EventType::kRunning);
  const size_t exited = *EventRecorder::indexOf(events, "svc", EventType::kExited, start);
  const size_t restarting = *EventRecorder::indexOf(events, "svc", EventType::kRestarting, start);
  const size_t starting = *EventRecorder::indexOf(events, "svc", EventType::kStarting, start);
  CHECK(exited < restarting);
  CHECK(restarting < starting);
  CHECK(events[exited].signal == SIGKILL);
  CHECK(events[exited].pid == first);
  CHECK_FALSE(events[exited].exitCode.has_value());
  CHECK_THAT(events[exited].message, ContainsSubstring("SIGKILL"));
  CHECK_THAT(events[restarting].message, ContainsSubstring("restarting in 10ms"));

  // The second crash within the window waits twice as long.
  REQUIRE(::kill(secondRun.pid, SIGKILL) == 0);
  const Event again = recorder.waitForEvent("svc", EventType::kRestarting, restarting + 1);
  CHECK_THAT(again.message, ContainsSubstring("restarting in 20ms"));
  recorder.waitForEvent("svc", EventType::kRunning, 0,
                        [&](const Event& e) { return e.pid != first && e.pid != secondRun.pid; });
  const ServiceStatus status = statusOf(*supervisor, "svc");
  CHECK(status.state == ServiceState::kRunning);
  CHECK(status.restarts == 2);
  CHECK(status.lastSignal == SIGKILL);
  CHECK(!status.recentEvents.empty());
}

TEST_CASE("gives up on a service that keeps exiting and reports it failed", "[supervisor]") {
  TempDir dir;
  auto supervisor = makeSupervisor(dir, {shellService(dir, "svc", "echo crashing; exit 3")});
  EventRecorder recorder(*supervisor);
  REQUIRE(supervisor->startAll().isOk());
  const Event failed = recorder.waitForEvent("svc", EventType::kFailed);
  CHECK_THAT(failed.message, ContainsSubstring("gave up after 3 restarts"));
  CHECK_THAT(failed.message, ContainsSubstring("exited with code 3"));

  const auto events = recorder.snapshot();
  const auto count = [&](EventType type) {
    return std::count_if(events.begin(), events.end(), [&](const Event& e) { return e.type == type; });
  };
  CHECK(count(EventType::kStarting) == 4);
  CHECK(count(EventType::kExited) == 4);
  CHECK(count(EventType::kRestarting) == 3);
  for (const auto& e : events) {
    if (e.type == EventType::kExited) CHECK(e.exitCode == 3);
  }
  const ServiceStatus status = statusOf(*supervisor, "svc");
  CHECK(status.state == ServiceState::kFailed);
  CHECK(status.pid == 0);
  CHECK(status.lastExitCode == 3);
  CHECK_THAT(status.message, ContainsSubstring("gave up"));
  CHECK(supervisor->stop("svc").code() == StatusCode::kFailedPrecondition);
}

TEST_CASE("starting a failed service starts it again with a fresh restart budget", "[supervisor]") {
  TempDir dir;
  // Fails until the file "ok" appears in its state directory (its working directory).
  auto spec = shellService(dir, "svc", std::string("[ -f ok ] || exit 1; echo ready; ") + kLongSleep);
  spec.restart.maxRestarts = 1;
  auto supervisor = makeSupervisor(dir, {spec});
  EventRecorder recorder(*supervisor);
  REQUIRE(supervisor->startAll().isOk());
  recorder.waitForEvent("svc", EventType::kFailed);

  keel::testing::writeFile(spec.stateDir / "ok", "");
  REQUIRE(supervisor->start("svc").isOk());
  recorder.waitForEvent("svc", EventType::kRunning);
  const ServiceStatus status = statusOf(*supervisor, "svc");
  CHECK(status.state == ServiceState::kRunning);
  CHECK(status.restarts == 0);
  CHECK(supervisor->start("svc").code() == StatusCode::kFailedPrecondition);
}

TEST_CASE("sends SIGKILL to a service that ignores SIGTERM once the grace period is over", "[supervisor]") {
  TempDir dir;
  auto supervisor = makeSupervisor(dir, {stubbornService(dir, 200ms)});
  EventRecorder recorder(*supervisor);
  const pid_t pid = startAllUntilReady(*supervisor, recorder, "stubborn");

  const auto before = std::chrono::steady_clock::now();
  REQUIRE(supervisor->stop("stubborn").isOk());
  const Event stopped = recorder.waitForEvent("stubborn", EventType::kStopped);
  CHECK(std::chrono::steady_clock::now() - before >= 200ms);
  CHECK(stopped.signal == SIGKILL);
  CHECK(stopped.pid == pid);
  const auto events = recorder.snapshot();
  const size_t firstStopping = *EventRecorder::indexOf(events, "stubborn", EventType::kStopping);
  const auto escalation = EventRecorder::indexOf(events, "stubborn", EventType::kStopping, firstStopping + 1);
  REQUIRE(escalation.has_value());
  CHECK_THAT(events[*escalation].message, ContainsSubstring("SIGKILL sent"));
  CHECK(processGone(pid));
}

TEST_CASE("captures output line by line, with tail and follow", "[supervisor]") {
  TempDir dir;
  auto spec = shellService(dir, "svc",
                           "echo one; echo two; echo to-stderr >&2; printf 'no newline yet'; "
                           "head -c 250 /dev/zero | tr '\\0' x; echo; echo done; " +
                               std::string(kLongSleep));
  SupervisorOptions options = testOptions(dir);
  options.logs.maxLineLength = 100;
  static const SystemClock clock;
  auto supervisor = makeSupervisor(dir, {spec}, clock, options);
  LogRecorder follower(*supervisor, "svc");
  REQUIRE(supervisor->startAll().isOk());

  // stdout and stderr are separate pipes: their relative order is not defined.
  follower.waitForLine("to-stderr");
  const auto lines = follower.waitForLine("done");
  std::vector<std::string> stdoutLines;
  std::copy_if(lines.begin(), lines.end(), std::back_inserter(stdoutLines),
               [](const std::string& l) { return l != "to-stderr"; });
  CHECK(stdoutLines == std::vector<std::string>{"one", "two", "no newline yet" + std::string(86, 'x'),
                                                std::string(100, 'x'), std::string(64, 'x'), "done"});
  const auto all = supervisor->logs("svc", 100);
  REQUIRE(all.ok());
  CHECK(*all == lines);
  const auto tail = supervisor->logs("svc", 2);
  REQUIRE(tail.ok());
  CHECK(*tail == std::vector<std::string>(lines.end() - 2, lines.end()));

  follower.unsubscribe();
  REQUIRE(supervisor->appendLog("svc", "after unsubscribe").isOk());
  CHECK(follower.lines().size() == lines.size());
  CHECK(supervisor->logs("svc", 1)->back() == "after unsubscribe");
}

TEST_CASE("keeps the in-memory log bounded and the log file under its cap", "[supervisor]") {
  TempDir dir;
  auto spec =
      shellService(dir, "chatty",
                   "i=0; while [ $i -lt 20000 ]; do echo \"line $i of a chatty service\"; i=$((i+1)); done; "
                   "echo done; " +
                       std::string(kLongSleep));
  SupervisorOptions options = testOptions(dir);
  options.logs.maxLines = 100;
  options.logs.fileMaxBytes = 64 * 1024;
  options.logs.fileCount = 2;
  static const SystemClock clock;
  auto supervisor = makeSupervisor(dir, {spec}, clock, options);
  LogRecorder follower(*supervisor, "chatty");
  REQUIRE(supervisor->startAll().isOk());
  follower.waitForLine("done");

  const auto lines = supervisor->logs("chatty", 1000);
  REQUIRE(lines.ok());
  CHECK(lines->size() == 100);
  CHECK(lines->front() == "line 19901 of a chatty service");
  CHECK(lines->back() == "done");
  const auto logDir = dir / "logs";
  REQUIRE(std::filesystem::exists(logDir / "chatty.log"));
  CHECK(std::filesystem::file_size(logDir / "chatty.log") <= 64 * 1024);
  CHECK(std::filesystem::file_size(logDir / "chatty.1.log") <= 64 * 1024);
  CHECK_FALSE(std::filesystem::exists(logDir / "chatty.2.log"));
  CHECK(keel::testing::readFile(logDir / "chatty.log").ends_with("line 19999 of a chatty service\ndone\n"));
}

TEST_CASE("a missing binary fails the service at once with a clear message", "[supervisor]") {
  TempDir dir;
  ServiceSpec spec = shellService(dir, "ghost", "");
  spec.argv = {"/nonexistent/keel-no-such-binary", "--flag"};
  auto supervisor = makeSupervisor(dir, {spec});
  EventRecorder recorder(*supervisor);
  REQUIRE(supervisor->startAll().isOk());
  const Event failed = recorder.waitForEvent("ghost", EventType::kFailed);
  CHECK_THAT(failed.message,
             ContainsSubstring("exec /nonexistent/keel-no-such-binary: No such file or directory"));
  CHECK_THAT(failed.message, ContainsSubstring("not restarting"));

  const auto events = recorder.snapshot();
  const auto exited = EventRecorder::indexOf(events, "ghost", EventType::kExited);
  REQUIRE(exited.has_value());
  CHECK(events[*exited].exitCode == 127);
  CHECK_THAT(events[*exited].message, ContainsSubstring("No such file or directory"));
  CHECK_FALSE(EventRecorder::indexOf(events, "ghost", EventType::kRestarting).has_value());
  const ServiceStatus status = statusOf(*supervisor, "ghost");
  CHECK(status.state == ServiceState::kFailed);
  CHECK_THAT(status.message, ContainsSubstring("No such file or directory"));
}

TEST_CASE("a missing config file fails the service before it runs", "[supervisor]") {
  TempDir dir;
  ServiceSpec spec = shellService(dir, "svc", kLongSleep);
  spec.configFile = dir / "state/svc/config.json";
  auto supervisor = makeSupervisor(dir, {spec});
  EventRecorder recorder(*supervisor);
  REQUIRE(supervisor->startAll().isOk());
  const Event failed = recorder.waitForEvent("svc", EventType::kFailed);
  CHECK_THAT(failed.message, ContainsSubstring("expected a regular file, found nothing"));
  CHECK_FALSE(EventRecorder::indexOf(recorder.snapshot(), "svc", EventType::kStarting).has_value());
}

TEST_CASE("a service stopped by request is not restarted", "[supervisor]") {
  TempDir dir;
  auto probe = shellService(dir, "probe", kLongSleep);
  auto supervisor = makeSupervisor(dir, {shellService(dir, "svc", kLongSleep), probe});
  EventRecorder recorder(*supervisor);
  REQUIRE(supervisor->start("svc").isOk());
  const pid_t pid = recorder.waitForEvent("svc", EventType::kRunning).pid;

  REQUIRE(supervisor->stop("svc").isOk());
  const Event stopped = recorder.waitForEvent("svc", EventType::kStopped);
  CHECK(stopped.signal == SIGTERM);
  CHECK(processGone(pid));
  // A barrier: the probe's settle time (50ms) is longer than svc's backoff (10ms), so a
  // wrongful restart would have shown up by the time the probe runs.
  REQUIRE(supervisor->start("probe").isOk());
  recorder.waitForEvent("probe", EventType::kRunning);
  const auto events = recorder.snapshot();
  CHECK(EventRecorder::indexOf(events, "svc", EventType::kStarting,
                               *EventRecorder::indexOf(events, "svc", EventType::kStopped)) == std::nullopt);
  const ServiceStatus status = statusOf(*supervisor, "svc");
  CHECK(status.state == ServiceState::kStopped);
  CHECK(status.pid == 0);
  CHECK(supervisor->stop("svc").code() == StatusCode::kFailedPrecondition);
}

TEST_CASE("stopping a service that is already stopping changes nothing", "[supervisor]") {
  TempDir dir;
  // The test ends the process itself, long before the grace period is over.
  auto supervisor = makeSupervisor(dir, {stubbornService(dir, 60s)});
  EventRecorder recorder(*supervisor);
  const pid_t pid = startAllUntilReady(*supervisor, recorder, "stubborn");

  REQUIRE(supervisor->stop("stubborn").isOk());
  CHECK(supervisor->stop("stubborn").isOk());
  CHECK(supervisor->status("stubborn")->state == ServiceState::kStopping);
  CHECK(supervisor->start("stubborn").code() == StatusCode::kFailedPrecondition);
  REQUIRE(::kill(pid, SIGKILL) == 0);
  const Event stopped = recorder.waitForEvent("stubborn", EventType::kStopped);
  CHECK(stopped.signal == SIGKILL);
  const auto events = recorder.snapshot();
  CHECK(std::count_if(events.begin(), events.end(),
                      [](const Event& e) { return e.type == EventType::kStopping; }) == 1);
  CHECK(supervisor->status("stubborn")->state == ServiceState::kStopped);
}

TEST_CASE("restart by id replaces the process with a new one", "[supervisor]") {
  TempDir dir;
  auto supervisor = makeSupervisor(dir, {shellService(dir, "svc", kLongSleep)});
  EventRecorder recorder(*supervisor);
  REQUIRE(supervisor->startAll().isOk());
  const pid_t first = recorder.waitForEvent("svc", EventType::kRunning).pid;

  REQUIRE(supervisor->restart("svc").isOk());
  const Event running =
      recorder.waitForEvent("svc", EventType::kRunning, 0, [&](const Event& e) { return e.pid != first; });
  CHECK(running.pid != first);
  CHECK(processGone(first));
  const auto events = recorder.snapshot();
  const size_t stopping = *EventRecorder::indexOf(events, "svc", EventType::kStopping);
  const size_t stopped = *EventRecorder::indexOf(events, "svc", EventType::kStopped);
  CHECK(stopping < stopped);
  CHECK_FALSE(EventRecorder::indexOf(events, "svc", EventType::kRestarting).has_value());
  CHECK(pidOf(*supervisor, "svc") == running.pid);
  CHECK(supervisor->status("svc")->restarts == 0);
}

TEST_CASE("destroying the supervisor leaves no process behind, grandchildren included", "[supervisor]") {
  TempDir dir;
  auto plain = shellService(dir, "plain", kLongSleep);
  auto parent = shellService(dir, "parent", "/bin/sleep 3617 & echo $! > grandchild.pid; echo ready; wait");
  auto stubborn = stubbornService(dir, 100ms);
  auto waiting = shellService(dir, "waiting", kLongSleep);
  waiting.dependsOn = {"ghost"};
  auto ghost = shellService(dir, "ghost", "");
  ghost.argv = {"/nonexistent/keel-no-such-binary"};
  std::vector<pid_t> pids;
  pid_t grandchild = 0;
  {
    auto supervisor = makeSupervisor(dir, {plain, parent, stubborn, ghost, waiting});
    EventRecorder recorder(*supervisor);
    LogRecorder parentLog(*supervisor, "parent");
    LogRecorder stubbornLog(*supervisor, "stubborn");
    REQUIRE(supervisor->startAll().isOk());
    for (const char* id : {"plain", "parent", "stubborn"})
      pids.push_back(recorder.waitForEvent(id, EventType::kRunning).pid);
    parentLog.waitForLine("ready");
    stubbornLog.waitForLine("ready");
    grandchild = std::stoi(keel::testing::readFile(parent.stateDir / "grandchild.pid"));
    CHECK(supervisor->status("waiting")->state == ServiceState::kWaiting);
  }
  for (pid_t pid : pids) {
    errno = 0;
    CHECK(::kill(pid, 0) == -1);
    CHECK(errno == ESRCH);
  }
  CHECK(waitUntilGone(grandchild));
}

TEST_CASE("refuses to be created without a spawn function", "[supervisor]") {
  TempDir dir;
  const SystemClock clock;
  SupervisorOptions options = testOptions(dir);
  options.spawn = nullptr;
  const auto status = Supervisor::create(std::move(options), {shellService(dir, "svc", kLongSleep)}, clock).status();
  CHECK(status.code() == StatusCode::kInvalidArgument);
  CHECK_THAT(status.message(), ContainsSubstring("expected a spawn function"));
}

TEST_CASE("unknown service ids are NOT_FOUND", "[supervisor]") {
  TempDir dir;
  auto supervisor = makeSupervisor(dir, {shellService(dir, "svc", kLongSleep)});
  CHECK(supervisor->start("nope").code() == StatusCode::kNotFound);
  CHECK(supervisor->stop("nope").code() == StatusCode::kNotFound);
  CHECK(supervisor->restart("nope").code() == StatusCode::kNotFound);
  CHECK(supervisor->status("nope").status().code() == StatusCode::kNotFound);
  CHECK(supervisor->logs("nope", 10).status().code() == StatusCode::kNotFound);
  CHECK(supervisor->followLogs("nope", [](const std::string&) {}).status().code() == StatusCode::kNotFound);
  CHECK(supervisor->appendLog("nope", "x").code() == StatusCode::kNotFound);
  CHECK_THAT(supervisor->start("nope").message(), ContainsSubstring("'nope'"));
}

TEST_CASE("rejects invalid service declarations", "[supervisor]") {
  TempDir dir;
  const SystemClock clock;
  const auto code = [&](std::vector<ServiceSpec> specs) {
    return Supervisor::create(testOptions(dir), std::move(specs), clock).status().code();
  };
  auto ok = shellService(dir, "ok", kLongSleep);
  CHECK(code({ok}) == StatusCode::kOk);

  auto bad = ok;
  bad.id = "Bad/Id";
  CHECK(code({bad}) == StatusCode::kInvalidArgument);
  bad = ok;
  bad.id = "machined";
  CHECK(code({bad}) == StatusCode::kInvalidArgument);
  bad = ok;
  bad.argv = {"sh", "-c", "true"};
  CHECK(code({bad}) == StatusCode::kInvalidArgument);
  bad = ok;
  bad.stateDir = "relative/dir";
  CHECK(code({bad}) == StatusCode::kInvalidArgument);
  bad = ok;
  bad.env = {"NOEQUALS"};
  CHECK(code({bad}) == StatusCode::kInvalidArgument);
  bad = ok;
  bad.restart.maxBackoff = 1ms;
  CHECK(code({bad}) == StatusCode::kInvalidArgument);
  CHECK(code({ok, ok}) == StatusCode::kInvalidArgument);

  auto unknownDep = shellService(dir, "b", kLongSleep);
  unknownDep.dependsOn = {"missing"};
  const auto status = Supervisor::create(testOptions(dir), {ok, unknownDep}, clock).status();
  CHECK(status.code() == StatusCode::kInvalidArgument);
  CHECK_THAT(status.message(), ContainsSubstring("'missing'"));

  auto x = shellService(dir, "x", kLongSleep);
  auto y = shellService(dir, "y", kLongSleep);
  x.dependsOn = {"y"};
  y.dependsOn = {"x"};
  const auto cycle = Supervisor::create(testOptions(dir), {ok, x, y}, clock).status();
  CHECK(cycle.code() == StatusCode::kInvalidArgument);
  CHECK_THAT(cycle.message(), ContainsSubstring("cycle"));
}

TEST_CASE("refuses to stop a service that a wanted service depends on", "[supervisor]") {
  TempDir dir;
  auto a = shellService(dir, "a", kLongSleep);
  auto b = shellService(dir, "b", kLongSleep);
  b.dependsOn = {"a"};
  auto supervisor = makeSupervisor(dir, {a, b});
  EventRecorder recorder(*supervisor);
  REQUIRE(supervisor->start("b").isOk());  // pulls in a
  recorder.waitForEvent("b", EventType::kRunning);

  const Status refused = supervisor->stop("a");
  CHECK(refused.code() == StatusCode::kFailedPrecondition);
  CHECK_THAT(refused.message(), ContainsSubstring("'b' (running)"));
  REQUIRE(supervisor->stop("b").isOk());
  recorder.waitForEvent("b", EventType::kStopped);
  REQUIRE(supervisor->stop("a").isOk());
  recorder.waitForEvent("a", EventType::kStopped);
}

TEST_CASE("lists the pids of live services that may call machined", "[supervisor]") {
  TempDir dir;
  auto caller = shellService(dir, "caller", kLongSleep);
  caller.mayCallMachined = true;
  auto other = shellService(dir, "other", kLongSleep);
  auto supervisor = makeSupervisor(dir, {caller, other});
  EventRecorder recorder(*supervisor);
  REQUIRE(supervisor->startAll().isOk());
  const pid_t callerPid = recorder.waitForEvent("caller", EventType::kRunning).pid;
  recorder.waitForEvent("other", EventType::kRunning);
  CHECK(supervisor->servicePids() == std::vector<pid_t>{callerPid});

  REQUIRE(supervisor->stop("caller").isOk());
  recorder.waitForEvent("caller", EventType::kStopped);
  CHECK(supervisor->servicePids().empty());
}

TEST_CASE("a service runs in its own 0700 state dir and process group with only its given env and stdio",
          "[supervisor]") {
  TempDir dir;
  // An fd the test process leaked on purpose to the spawner (not close-on-exec), so only
  // the spawner's own closing keeps it from the child; the same for its environment.
  const int leaked = testing::leakedFd();
  REQUIRE(leaked > 2);
  auto spec = shellService(
      dir, "probe",
      "echo cwd=$(pwd); echo stdin=$(readlink /proc/$$/fd/0); echo uid=$(id -u); "
      "if [ -e /proc/$$/fd/" +
          std::to_string(leaked) +
          " ]; then echo leaked=yes; else echo leaked=no; fi; "
          "echo inherited=${" + std::string(testing::kLeakedEnv) + ":-unset}; echo given=$GIVEN; echo ready; " +
          std::string(kLongSleep));
  spec.env.push_back("GIVEN=yes");
  // The signal state as exec'd: a shell would show its own transient mask instead.
  auto signals = shellService(dir, "signals", "");
  signals.argv = {"/bin/grep", "-E", "^Sig(Blk|Ign)", "/proc/self/status"};
  signals.restart.maxRestarts = 0;
  auto supervisor = makeSupervisor(dir, {spec, signals});
  EventRecorder recorder(*supervisor);
  LogRecorder log(*supervisor, "probe");
  LogRecorder signalsLog(*supervisor, "signals");
  REQUIRE(supervisor->startAll().isOk());
  signalsLog.waitForLine("SigBlk:\t0000000000000000");
  signalsLog.waitForLine("SigIgn:\t0000000000000000");
  const auto lines = log.waitForLine("ready");
  const auto has = [&](const std::string& line) {
    return std::find(lines.begin(), lines.end(), line) != lines.end();
  };
  CHECK(has("cwd=" + spec.stateDir.string()));
  CHECK(has("stdin=/dev/null"));
  CHECK(has("leaked=no"));
  CHECK(has("inherited=unset"));
  CHECK(has("given=yes"));
  // Confined as a node's services are: as root, under the account the spawner was given.
  if (::geteuid() == 0) CHECK(has("uid=" + std::to_string(testing::kServiceUid)));
  CHECK((std::filesystem::status(spec.stateDir).permissions() & std::filesystem::perms::all) ==
        std::filesystem::perms::owner_all);
  const pid_t pid = recorder.waitForEvent("probe", EventType::kRunning).pid;
  CHECK(procStatField(pid, 5) == pid);  // pgrp: its own group
}

TEST_CASE("machined's own spdlog output lands in the 'machined' log", "[supervisor]") {
  TempDir dir;
  auto supervisor = makeSupervisor(dir, {});
  LogRecorder follower(*supervisor, "machined");
  auto sink = std::make_shared<LogStoreSink>(supervisor->logStore(), std::string(Supervisor::kMachinedLogId));
  sink->set_pattern("%v");
  spdlog::logger logger("machined", sink);
  logger.info("supervisor up with {} services", 0);
  follower.waitForLine("supervisor up with 0 services");
  const auto tail = supervisor->logs("machined", 5);
  REQUIRE(tail.ok());
  CHECK(tail->back() == "supervisor up with 0 services");
  CHECK(keel::testing::readFile(dir / "logs/machined.log") == "supervisor up with 0 services\n");
}

TEST_CASE("events carry the injected clock's time and a growing sequence", "[supervisor]") {
  TempDir dir;
  const TimePoint fixed = std::chrono::sys_days(std::chrono::year(2030) / 1 / 2) + std::chrono::hours(3);
  const ManualClock clock(fixed);  // never changed while the supervisor runs
  auto supervisor = makeSupervisor(dir, {shellService(dir, "svc", kLongSleep)}, clock, testOptions(dir));
  EventRecorder recorder(*supervisor);
  REQUIRE(supervisor->startAll().isOk());
  recorder.waitForEvent("svc", EventType::kRunning);
  const auto events = supervisor->events(10);
  REQUIRE(events.size() == 2);
  CHECK(events[0].type == EventType::kStarting);
  CHECK(events[1].sequence == events[0].sequence + 1);
  for (const auto& e : events) CHECK(e.time == fixed);
  CHECK(supervisor->status("svc")->since == fixed);
  CHECK(supervisor->events(1).size() == 1);
}

TEST_CASE("an event callback may call back into the supervisor", "[supervisor]") {
  TempDir dir;
  auto supervisor = makeSupervisor(dir, {shellService(dir, "svc", kLongSleep)});
  EventRecorder recorder(*supervisor);
  std::mutex mutex;
  std::vector<ServiceState> statesSeen;
  auto sub = supervisor->followEvents([&](const Event& e) {
    auto status = supervisor->status(e.serviceId);
    {
      std::lock_guard lock(mutex);
      statesSeen.push_back(status->state);
    }
    if (e.type == EventType::kRunning) CHECK(supervisor->stop(e.serviceId).isOk());
  });
  REQUIRE(supervisor->startAll().isOk());
  recorder.waitForEvent("svc", EventType::kStopped);
  sub.reset();
  CHECK(supervisor->status("svc")->state == ServiceState::kStopped);
  std::lock_guard lock(mutex);
  CHECK(statesSeen.size() >= 3);
}

}  // namespace
}  // namespace keel::supervisor
