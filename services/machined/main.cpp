// machined: owns the machine. Parses flags and runs a Node; see src/node.h.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <climits>
#include <cstdlib>
#include <atomic>
#include <thread>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "keel/common/clock.h"
#include "src/node.h"

int main(int argc, char** argv) {
  // Files machined creates (logs, configs, keys) are its own unless made otherwise.
  umask(077);
  // Kept for the re-exec that a reboot outside PID 1 is.
  std::vector<std::string> originalArgs(argv, argv + argc);
  char self[PATH_MAX];
  const ssize_t selfLen = readlink("/proc/self/exe", self, sizeof self - 1);
  if (selfLen <= 0) {
    std::fprintf(stderr, "machined: cannot read /proc/self/exe\n");
    return 1;
  }
  self[selfLen] = '\0';

  CLI::App app{"machined: owns a Keel node's machine — its config, services, logs and power — and serves the "
               "machine API on the Unix socket <root>/run/keel/machined.sock."};
  keel::machined::NodeOptions options;
  std::string root = "/";
  std::string config;
  std::vector<uid_t> allowUids;
  std::string level = "info";
  int settleMs = 1000;
  int graceMs = 10000;
  app.add_option("--root", root, "Prefix of every path the node uses (/etc/keel, /var/lib/keel, /run/keel); "
                                 "a directory other than / runs an unprivileged node for tests and local clusters")
      ->capture_default_str();
  app.add_option("--config", config, "Machine config to install when the node has none stored yet "
                                     "(from `keelctl gen config`)")
      ->check(CLI::ExistingFile);
  app.add_option("--address", options.address, "The node's address (for example 127.0.1.1): its apid binds it "
                                               "and it names the node in replies")
      ->required()
      ->check([](const std::string& v) { return v.empty() ? std::string("must not be empty") : std::string(); });
  app.add_option("--allow-uid", allowUids, "A uid that may call machined.sock directly (repeatable); "
                                           "in --root mode the invoking user is always allowed");
  bool denyInvokingUser = false;
  app.add_flag("--no-allow-invoking-user", denyInvokingUser,
               "In --root mode, do not add the invoking user to the allow-list (only the services machined "
               "started and --allow-uid may call)");
  app.add_option("--log-level", level, "trace, debug, info, warn, error")->capture_default_str();
  app.add_option("--kmsg", options.kmsgPath, "Kernel log device")->capture_default_str();
  std::string libexec;
  app.add_option("--libexec", libexec, "Directory of the built-in service binaries (apid, trustd); "
                                       "default: the directory machined's executable is in");
  app.add_option("--service-settle-ms", settleMs, "How long a service must stay up to count as running")
      ->capture_default_str();
  app.add_option("--service-stop-grace-ms", graceMs, "SIGTERM to SIGKILL grace period when stopping a service")
      ->capture_default_str();
  app.footer("Example: machined --root /tmp/node1 --config controlplane.json --address 127.0.1.1");
  CLI11_PARSE(app, argc, argv);

  auto logger = std::make_shared<spdlog::logger>("machined", std::make_shared<spdlog::sinks::stderr_color_sink_mt>());
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::from_str(level));

  options.root = root;
  options.libexecDir = libexec.empty() ? std::filesystem::path(self).parent_path() : std::filesystem::path(libexec);
  if (!config.empty()) options.configPath = config;
  options.allowedUids = allowUids;
  const bool rootMode = options.root != "/";
  if (rootMode && !denyInvokingUser) options.allowedUids.push_back(getuid());
  options.serviceSettleTime = std::chrono::milliseconds(settleMs);
  options.serviceStopGrace = std::chrono::milliseconds(graceMs);
  if (getpid() != 1 && !rootMode && getuid() != 0) {
    spdlog::error("machined: a node with --root / must run as root; use --root DIR for an unprivileged node");
    return 1;
  }

  // SIGTERM/SIGINT stop the node; they are taken by a thread of their own with sigwait,
  // so the rest of machined never runs in a signal handler.
  sigset_t stopSignals;
  sigemptyset(&stopSignals);
  sigaddset(&stopSignals, SIGTERM);
  sigaddset(&stopSignals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stopSignals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  keel::SystemClock clock;
  keel::machined::Node node(options, clock);
  const keel::Status started = node.start();
  if (!started.isOk()) {
    spdlog::error("machined: the node did not start: {}", started.toString());
    return 1;
  }
  static std::atomic<bool> stopSignalled{false};
  std::thread signals([&node, stopSignals] {
    int sig = 0;
    if (sigwait(&stopSignals, &sig) == 0) {
      stopSignalled = true;
      spdlog::info("machined: signal {} received", sig);
      node.requestStop(keel::machined::PowerAction::kShutdown);
    }
  });
  const auto action = node.run();
  // A stop signal that arrived while a reboot was under way wins over the reboot.
  if (action == keel::machined::PowerAction::kShutdown || stopSignalled.load()) {
    spdlog::info("machined: stopped");
    // The signal thread may still be waiting: a process exit ends it.
    signals.detach();
    std::_Exit(0);
  }
  signals.detach();
  spdlog::info("machined: re-executing for the reboot");
  spdlog::default_logger()->flush();
  std::vector<char*> args;
  for (auto& a : originalArgs) args.push_back(a.data());
  args.push_back(nullptr);
  // Stop signals stay blocked across exec; the new image blocks them again anyway.
  execv(self, args.data());
  spdlog::error("machined: re-exec of {} failed: {}", self, std::strerror(errno));
  return 1;
}
