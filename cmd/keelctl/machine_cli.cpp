#include "machine_cli.h"

#include <signal.h>

#include <CLI/CLI.hpp>
#include <iostream>
#include <memory>
#include <cstdlib>
#include <thread>

#include <fmt/format.h>

#include "keel/config/client_config.h"
#include "keel/config/duration.h"
#include "keel/config/endpoint.h"
#include "keel/pki/pki.h"
#include "ca_commands.h"
#include "dashboard.h"
#include "call_command.h"
#include "health_command.h"
#include "machine_commands.h"
#include "time_command.h"
#include "rotate_ca_commands.h"
#include "token_commands.h"

namespace keel::keelctl {

namespace {

constexpr std::string_view kMissingConfigHint =
    "create one with 'keelctl gen config' or 'keelctl config new', point --keelconfig or $KEELCONFIG at one, or "
    "use --root DIR to reach a local node started with 'machined --root DIR'";

// The local path (--root/--socket: machined.sock directly) or the network path (apid,
// with the current context of the client config).
Result<MachineTarget> resolveTarget(const MachineCliOptions& o, const CommandEnv& env) {
  MachineTarget t;
  t.roles = o.roles;
  t.clock = &env.clock;
  if (!o.socket.empty() || !o.root.empty()) {
    if (!o.nodes.empty() || !o.endpoints.empty()) {
      return invalidArgument("-n/--nodes and -e/--endpoints choose nodes reached through apid; --root and --socket "
                             "talk to one local machined directly: use one or the other");
    }
    t.socket = !o.socket.empty() ? std::filesystem::path(o.socket) : machinedSocketUnder(o.root);
    return t;
  }
  KEEL_ASSIGN_OR_RETURN(const auto path, config::resolveClientConfigPath(env.keelconfigFlag, env.env));
  auto cfg = config::readClientConfigFile(path);
  if (!cfg.ok()) return withHint(cfg.status(), kMissingConfigHint);
  KEEL_ASSIGN_OR_RETURN(config::ClientContext* const ctx, config::currentContext(*cfg));
  std::vector<std::string> endpoints = ctx->endpoints;
  if (!o.endpoints.empty()) {
    endpoints.clear();
    for (const auto& e : o.endpoints) {
      auto parsed = config::parseEndpoint(e);
      if (!parsed.ok()) return parsed.status().withContext("-e/--endpoints");
      endpoints.push_back(parsed->hostPort());
    }
  }
  if (endpoints.empty()) {
    return failedPrecondition(fmt::format("context '{}' of {} has no endpoints: set them with 'keelctl config "
                                          "endpoint <address>' or pass -e/--endpoints",
                                          cfg->context, path.string()));
  }
  t.nodes = ctx->nodes;
  if (!o.nodes.empty()) {
    t.nodes.clear();
    t.nodesFromFlag = true;
    for (const auto& n : o.nodes) {
      auto parsed = config::parseNodeName(n);
      if (!parsed.ok()) return parsed.status().withContext("-n/--nodes");
      t.nodes.push_back(*parsed);
    }
  }
  KEEL_RETURN_IF_ERROR(checkClientCertificate(ctx->crt, cfg->context, env.clock));
  t.endpoint = endpoints.front();
  t.fallbackEndpoints.assign(endpoints.begin() + 1, endpoints.end());
  t.tls = {.ca = ctx->ca, .crt = ctx->crt, .key = ctx->key};
  return t;
}

// Ctrl-C during a following stream cancels the call so the command ends cleanly.
void watchInterrupts() {
  static bool started = false;
  if (started) return;
  started = true;
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::thread([set] {
    int sig = 0;
    if (sigwait(&set, &sig) != 0) return;
    // Outside a stream there is nothing to end cleanly: stop as the signal would have.
    if (!StreamCancel::instance().cancel()) std::_Exit(128 + sig);
  }).detach();
}

struct Common {
  std::string output = "table";
  bool yes = false;
};

// Arguments of the commands; they live as long as the CLI parser that fills them.
struct Args {
  std::string serviceId;
  std::string serviceAction = "status";
  std::string logsService;
  int logsTail = 0;
  bool logsFollow = false;
  int dmesgTail = 0;
  bool dmesgFollow = false;
  int eventsTail = -1;
  bool eventsFollow = false;
  std::string usagePath;
  int usageDepth = 0;
  std::string lsPath = "/var/log";
  int lsDepth = 0;
  std::vector<std::string> lsTypes;
  std::string readPath;
  std::string applyFile;
  std::string applyMode = "auto";
  std::string applyTimeout = "60s";
  UpgradeArgs upgrade;
  RotateTokenArgs rotateToken;
  RotateCaArgs rotateCa;
  std::string rotateCaWait = "5m";
  std::string rotateCaOutput = "table";
};

// When `cmd` is chosen: resolves the target from the global flags, then runs `run` with it.
void runWithTarget(CLI::App& cmd, const MachineCliOptions& options, CommandAction& action,
                   std::function<Status(MachineTarget, CommandEnv&)> run) {
  runWhenChosen(cmd, action, [&options, run = std::move(run)](CommandEnv& env) -> Status {
    KEEL_ASSIGN_OR_RETURN(auto target, resolveTarget(options, env));
    return run(std::move(target), env);
  });
}

using MachineRun = std::function<Status(MachineCommandEnv&)>;

// Runs `run` with a client of `target`: it reports on stderr and asks on stdin.
Status runWithClient(MachineTarget target, CommandEnv& env, OutputFormat format, bool assumeYes,
                     const MachineRun& run) {
  MachineClient client(std::move(target));
  MachineCommandEnv menv{client, format, env.out, std::cerr, std::cin, assumeYes};
  return run(menv);
}

// --tail and -f/--follow of the commands that read a stream of `what` (lines, events).
void addTailFollow(CLI::App& cmd, int& tail, const std::string& tailHelp, bool& follow, const std::string& what) {
  cmd.add_option("--tail", tail, tailHelp)->capture_default_str();
  cmd.add_flag("-f,--follow", follow, "Keep printing new " + what + " until Ctrl-C");
}

// The flags a machine command shares with others, after its own arguments.
struct SharedFlags {
  bool confirm = false;  // -y/--yes: skip the confirmation
  bool output = true;    // -o/--output: table, json or yaml
};

// Adds the machine commands to `app`: each gets its own arguments, then the flags the
// commands share, and runs with a client of the resolved target.
class MachineCommandAdder {
 public:
  MachineCommandAdder(CLI::App& app, const MachineCliOptions& options, CommandAction& action)
      : app_(app), options_(options), action_(action) {}

  // `own` adds the command's arguments; the shared flags follow them in --help.
  CLI::App* add(const std::string& name, const std::string& help, MachineRun run,
                const std::function<void(CLI::App&)>& own = {}, SharedFlags shared = {}) {
    auto* cmd = app_.add_subcommand(name, help);
    if (own) own(*cmd);
    if (shared.confirm) cmd->add_flag("-y,--yes", common_->yes, "Do not ask for confirmation");
    if (shared.output) {
      cmd->add_option("-o,--output", common_->output, "Output format: table, json or yaml")
          ->capture_default_str();
    }
    runWithTarget(*cmd, options_, action_,
                  [common = common_, run = std::move(run)](MachineTarget target, CommandEnv& env) -> Status {
                    KEEL_ASSIGN_OR_RETURN(auto format, parseOutputFormat(common->output));
                    // Before gRPC starts any thread, so that they all inherit the blocked mask.
                    watchInterrupts();
                    return runWithClient(std::move(target), env, format, common->yes, run);
                  });
    return cmd;
  }

 private:
  CLI::App& app_;
  const MachineCliOptions& options_;
  CommandAction& action_;
  // Filled by the parser and read when the command runs, after the adder is gone.
  std::shared_ptr<Common> common_ = std::make_shared<Common>();
};

// The flags that choose where a command goes: --root/--socket (a local machined.sock), -n
// (the nodes), -e (the endpoints), --local-roles.
void addTargetFlags(CLI::App& app, MachineCliOptions& options) {
  app.add_option("--root", options.root, "Root directory of a local node (machined --root DIR): talk to its "
                                         "machined.sock directly instead of through apid");
  app.add_option("--socket", options.socket, "Path of a machined.sock to talk to directly instead of through apid");
  app.add_option("-n,--nodes", options.nodes,
                 "Nodes to run the command on (addresses or host names, comma-separated); apid forwards the call "
                 "to each and tables gain their names. Default: the context's nodes, else the node behind the "
                 "endpoint")
      ->delimiter(',');
  app.add_option("-e,--endpoints", options.endpoints,
                 "apid endpoints to connect to (host or host:port, default port 50000), over mutual TLS with the "
                 "current context's certificate; the next is tried when one cannot be reached. Default: the context's "
                 "endpoints")
      ->delimiter(',');
  app.add_option("--local-roles", options.roles, "Roles claimed on a local socket (testing)")
      ->group("")
      ->capture_default_str();
}

// The node's state and what runs on it: version, services, the dashboard, one service,
// its logs, the kernel log, events.
void addNodeStatusCommands(MachineCommandAdder& commands, CLI::App& app, const MachineCliOptions& options,
                           CommandAction& action, const std::shared_ptr<Args>& a) {
  commands.add("version", "Show the node's Keel version", cmdVersion);
  commands.add("services", "List the node's services and their state", cmdServices);
  // Its own terminal handling, Ctrl-C included: not the adder's signal thread.
  auto* dashboard = app.add_subcommand(
      "dashboard", "A live view of the nodes: load, CPU, memory, services, a service's log, events (q quits)");
  dashboard->footer(
      "Keys: <-/-> (h/l, Tab) choose the node, up/down (k/j) the service whose log is shown, q quits.\n"
      "It refreshes about once a second; a node that stops answering is marked.\n\n"
      "Examples:\n  keelctl dashboard                      # the context's nodes\n"
      "  keelctl -n 10.0.0.21,10.0.0.22 dashboard");
  runWithTarget(*dashboard, options, action, [](MachineTarget target, CommandEnv& env) -> Status {
    const std::string title = target.endpoint.empty() ? "local node" : "through " + target.endpoint;
    return runWithClient(std::move(target), env, OutputFormat::kTable, true,
                         [&title](MachineCommandEnv& e) { return cmdDashboard(e, title); });
  });
  // For shell completion only: not in --help.
  commands.add("__service-names", "The node's service ids, one per line", cmdServiceNames, {}, SharedFlags{false, false})
      ->group("");

  auto* service = commands.add(
      "service", "Show, start, stop or restart one service",
      [a](MachineCommandEnv& e) { return cmdService(e, a->serviceId, a->serviceAction); },
      [a](CLI::App& cmd) {
        cmd.add_option("id", a->serviceId, "Service id (see 'keelctl services')")->required();
        cmd.add_option("action", a->serviceAction, "status, start, stop or restart")
            ->check(CLI::IsMember({"status", "start", "stop", "restart"}))
            ->capture_default_str();
      });
  service->footer("Examples:\n  keelctl --root /tmp/node1 service heartbeat\n  keelctl --root /tmp/node1 service heartbeat restart");

  commands.add(
      "logs", "Show a service's log (machined's own is 'machined')",
      [a](MachineCommandEnv& e) { return cmdLogs(e, a->logsService, a->logsTail, a->logsFollow); },
      [a](CLI::App& cmd) {
        cmd.add_option("service", a->logsService, "Service id, or machined")->required();
        addTailFollow(cmd, a->logsTail, "Only the last N lines (0: all kept)", a->logsFollow, "lines");
      });

  commands.add(
      "dmesg", "Show the kernel log",
      [a](MachineCommandEnv& e) { return cmdDmesg(e, a->dmesgTail, a->dmesgFollow); },
      [a](CLI::App& cmd) {
        addTailFollow(cmd, a->dmesgTail, "Only the last N lines (0: all)", a->dmesgFollow, "lines");
      });

  commands.add(
      "events", "Show service and configuration events",
      [a](MachineCommandEnv& e) { return cmdEvents(e, a->eventsTail, a->eventsFollow); },
      [a](CLI::App& cmd) {
        addTailFollow(cmd, a->eventsTail, "The last N events (-1: all kept, 0: only new ones)", a->eventsFollow,
                      "events");
      });

}

// Health of the nodes and of the caller's certificate, the nodes' clocks, and any method by
// name (through reflection).
void addNodeProbeCommands(MachineCommandAdder& commands, CLI::App& app, const MachineCliOptions& options,
                          CommandAction& action) {
  auto* health = app.add_subcommand(
      "health", "Check every node: reachable, its certificate valid and far from expiry, its services running");
  health->footer("Each node is reached directly on the endpoint's port. The exit code adds up what failed:\n"
                 "  1 a node is unreachable, 2 a certificate is expired or near expiry, 4 a service is not running\n"
                 "Example:\n  keelctl -n 127.0.1.1,127.0.1.2,127.0.1.3 health");
  runWithTarget(*health, options, action, [](MachineTarget target, CommandEnv& env) -> Status {
    if (!target.viaApid())
      return invalidArgument("'health' checks nodes through apid; it does not work with --root");
    int bits = 0;
    const Status st = cmdHealth(target, HealthOptions{}, env.clock, env.out, bits);
    env.exitCode = bits;
    return st;
  });

  auto* time = commands.add(
      "time", "Show the node's clocks: wall time, monotonic and boot time, clock source, hardware clock offset",
      cmdTime);
  time->footer(
      "Served by the time extension (timed). MONOTONIC and BOOT are the node's CLOCK_MONOTONIC and\n"
      "CLOCK_BOOTTIME (which counts suspend) as 3d4h5m6.123s; RTC OFFSET is the system clock minus the\n"
      "hardware clock, '-' on a node without one. -o json/yaml also show the time namespace offsets.\n\n"
      "Examples:\n  keelctl time\n  keelctl -n 127.0.1.1,127.0.1.2 time -o json");

  struct CallCliArgs {
    CallArgs call;
    bool list = false;
    std::string output = "json";
    std::string timeout;
  };
  auto c = std::make_shared<CallCliArgs>();
  auto* call = commands.add(
      "call", "Call any method the node serves with a JSON request; its schema comes from gRPC reflection",
      [c](MachineCommandEnv& e) -> Status {
        if (c->list && !c->call.method.empty()) {
          return invalidArgument("--list lists the services; to see a service's methods, run 'keelctl call <service>'");
        }
        c->call.compact = c->output == "jsonl";
        c->call.timeout.reset();
        if (c->timeout == "0") {
          c->call.timeout = std::chrono::seconds(0);
        } else if (!c->timeout.empty()) {
          auto timeout = config::parseDuration(c->timeout, std::chrono::hours(24 * 365));
          if (!timeout.ok()) return timeout.status().withContext("--timeout");
          c->call.timeout = *timeout;
        }
        return cmdCall(e, c->call);
      },
      [c](CLI::App& cmd) {
        cmd.add_option("method", c->call.method,
                       "package.Service/Method (also /package.Service/Method or package.Service.Method) to call; "
                       "a service's full name lists its methods; none lists the services");
        cmd.add_option("request", c->call.request,
                       "The request as JSON (proto3 JSON mapping); '-' reads it from stdin, @FILE from a file")
            ->capture_default_str();
        cmd.add_flag("--list", c->list, "List the services the node serves (the same as no method)");
        cmd.add_option("-o,--output", c->output, "json: each reply as indented JSON; jsonl: one reply per line")
            ->check(CLI::IsMember({"json", "jsonl"}))
            ->capture_default_str();
        cmd.add_option("--timeout", c->timeout,
                       "Deadline of the call, e.g. 10s or 2m; 0 for none (default: 30s for a unary method, none "
                       "for a server stream, which Ctrl-C ends)");
      },
      {.output = false});
  call->footer(
      "The node describes its APIs through gRPC reflection (through apid), so methods of extensions work\n"
      "without a new keelctl. With -n the schema comes from the first node named and the call goes to every\n"
      "node; a node's failure in a fan-out reply is printed as 'node: error' on stderr and fails the command.\n"
      "Unary and server-streaming methods only. Replies are printed with the .proto's field names.\n\n"
      "Examples:\n"
      "  keelctl call --list\n"
      "  keelctl call keel.time.v1.TimeService\n"
      "  keelctl -n 127.0.1.1,127.0.1.2 call keel.time.v1.TimeService/Now\n"
      "  keelctl call keel.machine.v1.MachineService/Logs '{\"service\": \"apid\", \"tail_lines\": 5}' -o jsonl\n"
      "  echo '{}' | keelctl call /keel.machine.v1.MachineService/Version -");
}

// What the node holds: memory, processes, mounts, disk usage, files.
void addNodeFactCommands(MachineCommandAdder& commands, const std::shared_ptr<Args>& a) {
  commands.add("memory", "Show memory usage", cmdMemory);
  commands.add("processes", "List the node's processes", cmdProcesses);
  commands.add("mounts", "List mounted filesystems with their size", cmdMounts);

  commands.add(
      "usage", "Disk usage of a path under the allowed file roots",
      [a](MachineCommandEnv& e) { return cmdUsage(e, a->usagePath, a->usageDepth); },
      [a](CLI::App& cmd) {
        cmd.add_option("path", a->usagePath, "Absolute path on the node")->required();
        cmd.add_option("-d,--depth", a->usageDepth, "Also list subdirectories this many levels down")
            ->capture_default_str();
      });

  commands.add(
      "ls", "List files under the allowed file roots",
      [a](MachineCommandEnv& e) { return cmdList(e, a->lsPath, a->lsDepth, a->lsTypes); },
      [a](CLI::App& cmd) {
        cmd.add_option("path", a->lsPath, "Absolute directory on the node")->capture_default_str();
        cmd.add_option("-d,--depth", a->lsDepth, "Recurse this many levels (-1: as deep as allowed)")
            ->capture_default_str();
        cmd.add_option("-t,--type", a->lsTypes, "Only these types: f (file), d (directory), l (symlink)")
            ->delimiter(',');
      });

  commands.add(
      "read", "Print a file from the node (admin only)",
      [a](MachineCommandEnv& e) { return cmdRead(e, a->readPath); },
      [a](CLI::App& cmd) {
        cmd.add_option("path", a->readPath, "Absolute path of a regular file under the allowed roots")
            ->required();
      },
      {.output = false});
}

// The node's machine config, and the cluster's join tokens and CAs.
void addConfigAndTrustCommands(MachineCommandAdder& commands, CLI::App& app, const MachineCliOptions& options,
                               CommandAction& action, const std::shared_ptr<Args>& a) {
  commands.add("get-config", "Print the node's machine config, secrets redacted", cmdGetConfig);

  auto* apply = commands.add(
      "apply-config", "Replace the node's machine config",
      [a](MachineCommandEnv& e) -> Status {
        KEEL_ASSIGN_OR_RETURN(auto timeout, config::parseDuration(a->applyTimeout, std::chrono::hours(24)));
        return cmdApplyConfig(e, a->applyFile, a->applyMode, timeout);
      },
      [a](CLI::App& cmd) {
        cmd.add_option("file", a->applyFile, "The whole new machine config (JSON)")
            ->required()
            ->check(CLI::ExistingFile);
        cmd.add_option("--mode", a->applyMode,
                       "auto: without reboot when the change allows it; no-reboot: refuse otherwise; reboot; "
                       "try: roll back unless confirmed within --timeout")
            ->check(CLI::IsMember({"auto", "no-reboot", "reboot", "try"}))
            ->capture_default_str();
        cmd.add_option("--timeout", a->applyTimeout, "With --mode try: how long until it rolls back")
            ->capture_default_str();
      });
  apply->footer(
      "Examples:\n  keelctl --root /tmp/node1 apply-config new.json --mode try --timeout 2m\n"
      "  keelctl --root /tmp/node1 confirm-config");

  commands.add("confirm-config", "Keep a config applied with --mode try", cmdConfirmConfig);

  auto* rotate = commands.add(
      "rotate-token", "Add a new join token to the cluster, or drop an old one (admin only)",
      [a](MachineCommandEnv& e) { return cmdRotateToken(e, a->rotateToken); },
      [a](CLI::App& cmd) {
        cmd.add_option("--drop", a->rotateToken.drop,
                       "Stop accepting this token (the whole token, as secret as ever; '-' reads it from stdin) "
                       "instead of adding one");
        cmd.add_flag("--force", a->rotateToken.force,
                     "With --drop: drop it even while a worker's machine config still presents it");
      },
      {.output = false});
  rotate->footer(
      "Join tokens are a set. Without arguments, every control plane among the nodes (the context's, or -n)\n"
      "accepts a new token, every worker's machine.token moves to it, and the token is printed: keep it\n"
      "secret, a machine that presents it may join. Once no worker presents the old token, drop it with\n"
      "--drop; a join that presents it is then refused. Nodes that joined keep working throughout: they\n"
      "renew their certificates with their certificates, not the token. Both steps apply without a reboot,\n"
      "and either can be run again after a failure. Tokens are shown by fingerprint only.\n\n"
      "Examples:\n  keelctl -n 127.0.1.1,127.0.1.2,127.0.1.3 rotate-token\n"
      "  keelctl -n 127.0.1.1,127.0.1.2,127.0.1.3 rotate-token --drop - < old-token");

  auto* rotateCa = app.add_subcommand(
      "rotate-ca", "Replace one of the cluster's CAs on every node, without a reboot (admin only)");
  rotateCa->add_option("--kind", a->rotateCa.kind, "Which CA: os (the node API's), kubernetes, etcd or aggregator")
      ->check(CLI::IsMember({"os", "kubernetes", "etcd", "aggregator"}))
      ->capture_default_str();
  rotateCa->add_flag("--status", a->rotateCa.status,
                     "Show where each node stands (issuing and accepted CAs, apid's certificates) and change nothing");
  rotateCa->add_option("--secrets", a->rotateCa.secrets,
                       "A secrets bundle ('keelctl gen secrets') to keep in step: it gains the new CA and its key");
  rotateCa->add_option("--wait", a->rotateCaWait,
                       "How long to wait for every apid to hold certificates of the new CA")
      ->capture_default_str();
  rotateCa->add_option("-o,--output", a->rotateCaOutput, "With --status: table, json or yaml")->capture_default_str();
  rotateCa->footer(
      "A rotation runs on the nodes the context names (or -n), in four steps, each on every node before the\n"
      "next: accept the new CA (beside the old one), issue with it (control planes first), re-issue what the\n"
      "old one signed (for the OS CA: each apid's serving and impersonator certificates, then this\n"
      "keelconfig's own client certificate), drop the old CA. The keelconfig's current context trusts both\n"
      "CAs while they overlap and the new one only at the end; it is rewritten atomically each time.\n"
      "The new CA and its key are kept in KEELCONFIG.rotate-ca-KIND (mode 0600) until the rotation ends, so\n"
      "an interrupted rotation resumes when run again. Each step needs every node: a node that is down\n"
      "stops the rotation before the step it would miss; run it again once the node is back, and the node\n"
      "takes every step it missed. apid applies a changed trust or certificate within 2 s, so each step\n"
      "that changes them waits 5 s before the next relies on it. Other keelconfigs of the cluster need a new certificate after the drop: generate them with\n"
      "'keelctl config generate' from the rotated keelconfig.\n"
      "For the Kubernetes, etcd and aggregator CAs, the machine configs (and --secrets) carry the issuing\n"
      "and accepted CAs, so a Kubernetes deployed on top can follow.\n\n"
      "Examples:\n  keelctl rotate-ca\n  keelctl rotate-ca --status\n"
      "  keelctl rotate-ca --kind etcd --secrets secrets.json");
  runWithTarget(*rotateCa, options, action, [a](MachineTarget target, CommandEnv& env) -> Status {
    KEEL_ASSIGN_OR_RETURN(const auto format, parseOutputFormat(a->rotateCaOutput));
    KEEL_ASSIGN_OR_RETURN(a->rotateCa.wait, config::parseDuration(a->rotateCaWait, std::chrono::hours(24)));
    return cmdRotateCa(std::move(target), env, format, a->rotateCa);
  });
}

// Power and images: reboot, shutdown, reset, upgrade, rollback.
void addPowerCommands(MachineCommandAdder& commands, const std::shared_ptr<Args>& a) {
  for (const char* power : {"reboot", "shutdown", "reset"}) {
    const std::string name = power;
    const std::string help = name == "reboot"     ? "Restart every service of the node"
                             : name == "shutdown" ? "Stop the node"
                                                  : "Wipe the node's state (not its config) and reboot it";
    commands.add(name, help, [name](MachineCommandEnv& e) { return cmdPower(e, name); }, {},
                 {.confirm = true});
  }

  auto* upgrade = commands.add(
      "upgrade",
      "Install a signed image file on a node booted from the Keel OS image, and reboot into it (admin only)",
      [a](MachineCommandEnv& e) { return cmdUpgrade(e, a->upgrade); },
      [a](CLI::App& cmd) {
        cmd.add_option("image", a->upgrade.image, "The image file (keel-VERSION.img of 'ninja image')")
            ->required()
            ->check(CLI::ExistingFile);
        cmd.add_option("--signature", a->upgrade.signature,
                       "Its signature (default: IMAGE.sig, from 'keelctl sign-image')");
        cmd.add_flag("--no-reboot", a->upgrade.noReboot,
                     "Install it for the next boot, but do not reboot now");
        cmd.add_flag("--allow-downgrade", a->upgrade.allowDowngrade,
                     "Install it even if its version is older than the one the node runs");
      },
      {.confirm = true});
  upgrade->footer(
      "The node accepts only an image signed with the key its machine config names (machine.upgrade.publicKey).\n"
      "It refuses an image older than the one it runs unless --allow-downgrade says so, writes the inactive\n"
      "slot and boots it on trial: unless the new root serves the API in time, the next boot returns to the\n"
      "current one by itself.\n\n"
      "Examples:\n  keelctl gen image-key -o ./keys\n"
      "  keelctl sign-image --key ./keys/image-signing.key keel-0.2.0.img\n"
      "  keelctl -n 10.0.0.11 upgrade keel-0.2.0.img");

  commands.add("rollback", "Reboot a node into the root slot it booted before the current one", cmdRollback,
               {}, {.confirm = true});
}

}  // namespace

void addMachineCommands(CLI::App& app, MachineCliOptions& options, CommandAction& action) {
  addTargetFlags(app, options);

  MachineCommandAdder commands(app, options, action);
  auto a = std::make_shared<Args>();
  addNodeStatusCommands(commands, app, options, action, a);
  addNodeProbeCommands(commands, app, options, action);
  addNodeFactCommands(commands, a);
  addConfigAndTrustCommands(commands, app, options, action, a);
  addPowerCommands(commands, a);
}


namespace {

// `config revoke` and `config revoked`: the cluster's revocation list (trustd, admin only).
void addRevocationCommands(CLI::App& configCmd, const MachineCliOptions& options, CommandAction& action) {
  struct RevokeArgs {
    RevokeOptions revoke;
    std::string certFile;
    std::string output = "table";
  };
  auto a = std::make_shared<RevokeArgs>();
  auto* revoke = configCmd.add_subcommand(
      "revoke", "Revoke a client or node certificate: every apid of the cluster refuses it within 30 s (admin only)");
  auto* cert = revoke->add_option("--cert", a->certFile, "The certificate to revoke (PEM)")->check(CLI::ExistingFile);
  auto* serial = revoke->add_option("--serial", a->revoke.serial,
                                    "The serial to revoke, in hex as 'openssl x509 -noout -serial' shows it");
  cert->excludes(serial);
  revoke->add_flag("--self", a->revoke.self, "Allow revoking the certificate this keelconfig calls with");
  revoke->add_option("-o,--output", a->output, "Output format: table, json or yaml")->capture_default_str();
  revoke->footer(
      "A certificate leaves the list when it expires. Revoking by serial keeps the entry for the longest\n"
      "lifetime the cluster issues, since the certificate's own expiry is not known then.\n"
      "Examples:\n  keelctl config revoke --cert alice.crt\n  keelctl config revoke --serial 5d:0c:91:...");
  runWithTarget(*revoke, options, action, [a](MachineTarget target, CommandEnv& env) -> Status {
    if (a->certFile.empty() && a->revoke.serial.empty()) return invalidArgument("expected --cert FILE or --serial HEX");
    if (!target.viaApid()) return invalidArgument("'config revoke' works through apid, not with --root or --socket");
    KEEL_ASSIGN_OR_RETURN(const auto format, parseOutputFormat(a->output));
    a->revoke.certFile = a->certFile;
    // The keelconfig's own certificate, so that revoking it takes --self.
    if (auto path = config::resolveClientConfigPath(env.keelconfigFlag, env.env); path.ok()) {
      if (auto cfg = config::readClientConfigFile(*path); cfg.ok()) {
        if (auto ctx = config::currentContext(*cfg); ctx.ok()) {
          if (auto own = pki::Certificate::fromPem((*ctx)->crt); own.ok()) a->revoke.ownSerial = own->serialHex();
        }
      }
    }
    return runWithClient(std::move(target), env, format, true,
                         [a](MachineCommandEnv& e) { return cmdConfigRevoke(e, a->revoke); });
  });

  auto* revoked = configCmd.add_subcommand("revoked", "List the revoked certificates (admin only)");
  revoked->add_option("-o,--output", a->output, "Output format: table, json or yaml")->capture_default_str();
  runWithTarget(*revoked, options, action, [a](MachineTarget target, CommandEnv& env) -> Status {
    if (!target.viaApid()) return invalidArgument("'config revoked' works through apid, not with --root or --socket");
    KEEL_ASSIGN_OR_RETURN(const auto format, parseOutputFormat(a->output));
    return runWithClient(std::move(target), env, format, true, [](MachineCommandEnv& e) { return cmdConfigRevoked(e); });
  });
}

}  // namespace

void addCertificateCommands(CLI::App& configCmd, MachineCliOptions& options, CommandAction& action) {
  struct CaArgs {
    ConfigGenerateOptions generate;
    std::string output;
    std::string ttl;
    std::string renewTtl;
  };
  auto a = std::make_shared<CaArgs>();
  // Parsed when the command runs, so that a bad value is a keelctl error like any other.
  auto ttlOf = [](const std::string& text) -> Result<std::chrono::seconds> {
    if (text.empty()) return std::chrono::seconds(0);
    return config::parseDuration(text, std::chrono::hours(24 * 365 * 10));
  };

  auto* generate = configCmd.add_subcommand(
      "generate", "Ask the cluster's certificate authority (through apid, admin only) for a new client config");
  generate->add_option("path", a->output, "File to write (mode 0600)")->required();
  generate->add_option("--roles", a->generate.roles, "Roles: os:admin, os:operator, os:reader")
      ->delimiter(',')
      ->required();
  generate->add_option("--crt-ttl", a->ttl, "Lifetime of the certificate (default: the cluster's, bounded by it)");
  generate->add_option("--identity", a->generate.identity, "Certificate CN, shown in audit logs (default: the role)");
  generate->add_flag("--force", a->generate.force, "Replace the file if it exists");
  generate->footer("Examples:\n  keelctl config generate reader.keelconfig --roles os:reader --crt-ttl 24h\n"
                   "  keelctl config generate alice.keelconfig --roles os:operator --identity alice");
  runWithTarget(*generate, options, action, [a, ttlOf](MachineTarget target, CommandEnv& env) -> Status {
    KEEL_ASSIGN_OR_RETURN(a->generate.ttl, ttlOf(a->ttl));
    a->generate.output = a->output;
    return runWithClient(std::move(target), env, OutputFormat::kTable, true,
                         [a](MachineCommandEnv& e) { return cmdConfigGenerate(e, a->generate); });
  });

  auto* renew = configCmd.add_subcommand(
      "renew", "Renew the current context's client certificate (same identity and roles) while it is still valid");
  renew->add_option("--crt-ttl", a->renewTtl,
                    "Lifetime of the new certificate (default: the current one's; never longer)");
  renew->footer("Examples:\n  keelctl config renew\n  keelctl --keelconfig ops.keelconfig config renew --crt-ttl 720h");
  runWithTarget(*renew, options, action, [a, ttlOf](MachineTarget target, CommandEnv& env) -> Status {
    KEEL_ASSIGN_OR_RETURN(const auto ttl, ttlOf(a->renewTtl));
    KEEL_ASSIGN_OR_RETURN(const auto path, config::resolveClientConfigPath(env.keelconfigFlag, env.env));
    KEEL_ASSIGN_OR_RETURN(auto cfg, config::readClientConfigFile(path));
    if (!target.viaApid())
      return invalidArgument("'config renew' works through apid, not with --root or --socket");
    return runWithClient(std::move(target), env, OutputFormat::kTable, true,
                         [&](MachineCommandEnv& e) { return cmdConfigRenew(e, path, std::move(cfg), ttl); });
  });
  addRevocationCommands(configCmd, options, action);
}

}  // namespace keel::keelctl
