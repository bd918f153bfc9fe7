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
#include "ca_commands.h"
#include "health_command.h"
#include "machine_commands.h"

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
};

void addOutput(CLI::App* cmd, Common& c) {
  cmd->add_option("-o,--output", c.output, "Output format: table, json or yaml")->capture_default_str();
}

}  // namespace

void addMachineCommands(CLI::App& app, MachineCliOptions& options, std::function<Status(CommandEnv&)>& action) {
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

  auto common = std::make_shared<Common>();
  auto a = std::make_shared<Args>();
  // Each command: its CLI11 subcommand and a function run with the resolved client.
  auto bind = [&app, &options, &action, common](CLI::App* cmd,
                                                std::function<Status(MachineCommandEnv&)> run) {
    cmd->callback([&options, &action, common, run] {
      action = [&options, common, run](CommandEnv& env) -> Status {
        KEEL_ASSIGN_OR_RETURN(auto target, resolveTarget(options, env));
        KEEL_ASSIGN_OR_RETURN(auto format, parseOutputFormat(common->output));
        // Before gRPC starts any thread, so that they all inherit the blocked mask.
        watchInterrupts();
        MachineClient client(std::move(target));
        MachineCommandEnv menv{client, format, env.out, std::cerr, std::cin, common->yes};
        return run(menv);
      };
    });
    (void)app;
  };

  auto* version = app.add_subcommand("version", "Show the node's Keel version");
  addOutput(version, *common);
  bind(version, [](MachineCommandEnv& e) { return cmdVersion(e); });

  auto* services = app.add_subcommand("services", "List the node's services and their state");
  addOutput(services, *common);
  bind(services, [](MachineCommandEnv& e) { return cmdServices(e); });

  auto* service = app.add_subcommand("service", "Show, start, stop or restart one service");
  service->add_option("id", a->serviceId, "Service id (see 'keelctl services')")->required();
  service->add_option("action", a->serviceAction, "status, start, stop or restart")
      ->check(CLI::IsMember({"status", "start", "stop", "restart"}))
      ->capture_default_str();
  addOutput(service, *common);
  service->footer("Examples:\n  keelctl --root /tmp/node1 service heartbeat\n  keelctl --root /tmp/node1 service heartbeat restart");
  bind(service, [a](MachineCommandEnv& e) { return cmdService(e, a->serviceId, a->serviceAction); });

  auto* logs = app.add_subcommand("logs", "Show a service's log (machined's own is 'machined')");
  logs->add_option("service", a->logsService, "Service id, or machined")->required();
  logs->add_option("--tail", a->logsTail, "Only the last N lines (0: all kept)")->capture_default_str();
  logs->add_flag("-f,--follow", a->logsFollow, "Keep printing new lines until Ctrl-C");
  addOutput(logs, *common);
  bind(logs, [a](MachineCommandEnv& e) { return cmdLogs(e, a->logsService, a->logsTail, a->logsFollow); });

  auto* dmesg = app.add_subcommand("dmesg", "Show the kernel log");
  dmesg->add_option("--tail", a->dmesgTail, "Only the last N lines (0: all)")->capture_default_str();
  dmesg->add_flag("-f,--follow", a->dmesgFollow, "Keep printing new lines until Ctrl-C");
  addOutput(dmesg, *common);
  bind(dmesg, [a](MachineCommandEnv& e) { return cmdDmesg(e, a->dmesgTail, a->dmesgFollow); });

  auto* events = app.add_subcommand("events", "Show service and configuration events");
  events->add_option("--tail", a->eventsTail, "The last N events (-1: all kept, 0: only new ones)")
      ->capture_default_str();
  events->add_flag("-f,--follow", a->eventsFollow, "Keep printing new events until Ctrl-C");
  addOutput(events, *common);
  bind(events, [a](MachineCommandEnv& e) { return cmdEvents(e, a->eventsTail, a->eventsFollow); });

  auto* health = app.add_subcommand(
      "health", "Check every node: reachable, its certificate valid and far from expiry, its services running");
  health->footer("Each node is reached directly on the endpoint's port. The exit code adds up what failed:\n"
                 "  1 a node is unreachable, 2 a certificate is expired or near expiry, 4 a service is not running\n"
                 "Example:\n  keelctl -n 127.0.1.1,127.0.1.2,127.0.1.3 health");
  health->callback([&options, &action] {
    action = [&options](CommandEnv& env) -> Status {
      KEEL_ASSIGN_OR_RETURN(auto target, resolveTarget(options, env));
      if (!target.viaApid()) return invalidArgument("'health' checks nodes through apid; it does not work with --root");
      int bits = 0;
      const Status st = cmdHealth(target, HealthOptions{}, env.clock, env.out, bits);
      env.exitCode = bits;
      return st;
    };
  });

  auto* memory = app.add_subcommand("memory", "Show memory usage");
  addOutput(memory, *common);
  bind(memory, [](MachineCommandEnv& e) { return cmdMemory(e); });

  auto* processes = app.add_subcommand("processes", "List the node's processes");
  addOutput(processes, *common);
  bind(processes, [](MachineCommandEnv& e) { return cmdProcesses(e); });

  auto* mounts = app.add_subcommand("mounts", "List mounted filesystems with their size");
  addOutput(mounts, *common);
  bind(mounts, [](MachineCommandEnv& e) { return cmdMounts(e); });

  auto* usage = app.add_subcommand("usage", "Disk usage of a path under the allowed file roots");
  usage->add_option("path", a->usagePath, "Absolute path on the node")->required();
  usage->add_option("-d,--depth", a->usageDepth, "Also list subdirectories this many levels down")
      ->capture_default_str();
  addOutput(usage, *common);
  bind(usage, [a](MachineCommandEnv& e) { return cmdUsage(e, a->usagePath, a->usageDepth); });

  auto* ls = app.add_subcommand("ls", "List files under the allowed file roots");
  ls->add_option("path", a->lsPath, "Absolute directory on the node")->capture_default_str();
  ls->add_option("-d,--depth", a->lsDepth, "Recurse this many levels (-1: as deep as allowed)")->capture_default_str();
  ls->add_option("-t,--type", a->lsTypes, "Only these types: f (file), d (directory), l (symlink)")->delimiter(',');
  addOutput(ls, *common);
  bind(ls, [a](MachineCommandEnv& e) { return cmdList(e, a->lsPath, a->lsDepth, a->lsTypes); });

  auto* read = app.add_subcommand("read", "Print a file from the node (admin only)");
  read->add_option("path", a->readPath, "Absolute path of a regular file under the allowed roots")->required();
  bind(read, [a](MachineCommandEnv& e) { return cmdRead(e, a->readPath); });

  auto* getConfig = app.add_subcommand("get-config", "Print the node's machine config, secrets redacted");
  addOutput(getConfig, *common);
  bind(getConfig, [](MachineCommandEnv& e) { return cmdGetConfig(e); });

  auto* apply = app.add_subcommand("apply-config", "Replace the node's machine config");
  apply->add_option("file", a->applyFile, "The whole new machine config (JSON)")->required()->check(CLI::ExistingFile);
  apply->add_option("--mode", a->applyMode,
                    "auto: without reboot when the change allows it; no-reboot: refuse otherwise; reboot; "
                    "try: roll back unless confirmed within --timeout")
      ->check(CLI::IsMember({"auto", "no-reboot", "reboot", "try"}))
      ->capture_default_str();
  apply->add_option("--timeout", a->applyTimeout, "With --mode try: how long until it rolls back")->capture_default_str();
  addOutput(apply, *common);
  apply->footer("Examples:\n  keelctl --root /tmp/node1 apply-config new.json --mode try --timeout 2m\n"
                "  keelctl --root /tmp/node1 confirm-config");
  bind(apply, [a](MachineCommandEnv& e) -> Status {
    KEEL_ASSIGN_OR_RETURN(auto timeout, config::parseDuration(a->applyTimeout, std::chrono::hours(24)));
    return cmdApplyConfig(e, a->applyFile, a->applyMode, timeout);
  });

  auto* confirm = app.add_subcommand("confirm-config", "Keep a config applied with --mode try");
  addOutput(confirm, *common);
  bind(confirm, [](MachineCommandEnv& e) { return cmdConfirmConfig(e); });

  for (const char* power : {"reboot", "shutdown", "reset"}) {
    const std::string name = power;
    const std::string help = name == "reboot"     ? "Restart every service of the node"
                             : name == "shutdown" ? "Stop the node"
                                                  : "Wipe the node's state (not its config) and reboot it";
    auto* cmd = app.add_subcommand(name, help);
    cmd->add_flag("-y,--yes", common->yes, "Do not ask for confirmation");
    addOutput(cmd, *common);
    bind(cmd, [name](MachineCommandEnv& e) { return cmdPower(e, name); });
  }

  auto* upgrade = app.add_subcommand(
      "upgrade", "Install a signed root image on a node booted from the Keel OS image, and reboot into it (admin only)");
  upgrade->add_option("image", a->upgrade.image, "The root image (root.squashfs of 'ninja image')")
      ->required()
      ->check(CLI::ExistingFile);
  upgrade->add_option("--signature", a->upgrade.signature, "Its signature (default: IMAGE.sig, from 'keelctl sign-image')");
  upgrade->add_flag("--no-reboot", a->upgrade.noReboot, "Install it for the next boot, but do not reboot now");
  upgrade->add_flag("-y,--yes", common->yes, "Do not ask for confirmation");
  addOutput(upgrade, *common);
  upgrade->footer(
      "The node accepts only an image signed with the key its machine config names (machine.upgrade.publicKey).\n"
      "It writes the inactive root slot and boots it on trial: unless the new root serves the API in time, the\n"
      "next boot returns to the current one by itself.\n\n"
      "Examples:\n  keelctl gen image-key -o ./keys\n  keelctl sign-image --key ./keys/image-signing.key root.squashfs\n"
      "  keelctl -n 10.0.0.11 upgrade root.squashfs");
  bind(upgrade, [a](MachineCommandEnv& e) { return cmdUpgrade(e, a->upgrade); });

  auto* rollback = app.add_subcommand("rollback", "Reboot a node into the root slot it booted before the current one");
  rollback->add_flag("-y,--yes", common->yes, "Do not ask for confirmation");
  addOutput(rollback, *common);
  bind(rollback, [](MachineCommandEnv& e) { return cmdRollback(e); });
}

void addCertificateCommands(CLI::App& configCmd, MachineCliOptions& options,
                            std::function<Status(CommandEnv&)>& action) {
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
  generate->callback([&options, &action, a, ttlOf] {
    action = [&options, a, ttlOf](CommandEnv& env) -> Status {
      KEEL_ASSIGN_OR_RETURN(auto target, resolveTarget(options, env));
      KEEL_ASSIGN_OR_RETURN(a->generate.ttl, ttlOf(a->ttl));
      a->generate.output = a->output;
      MachineClient client(std::move(target));
      MachineCommandEnv menv{client, OutputFormat::kTable, env.out, std::cerr, std::cin, true};
      return cmdConfigGenerate(menv, a->generate);
    };
  });

  auto* renew = configCmd.add_subcommand(
      "renew", "Renew the current context's client certificate (same identity and roles) while it is still valid");
  renew->add_option("--crt-ttl", a->renewTtl, "Lifetime of the new certificate (default: the cluster's)");
  renew->footer("Examples:\n  keelctl config renew\n  keelctl --keelconfig ops.keelconfig config renew --crt-ttl 720h");
  renew->callback([&options, &action, a, ttlOf] {
    action = [&options, a, ttlOf](CommandEnv& env) -> Status {
      KEEL_ASSIGN_OR_RETURN(auto target, resolveTarget(options, env));
      KEEL_ASSIGN_OR_RETURN(const auto ttl, ttlOf(a->renewTtl));
      KEEL_ASSIGN_OR_RETURN(const auto path, config::resolveClientConfigPath(env.keelconfigFlag, env.env));
      KEEL_ASSIGN_OR_RETURN(auto cfg, config::readClientConfigFile(path));
      if (!target.viaApid()) return invalidArgument("'config renew' works through apid, not with --root or --socket");
      MachineClient client(std::move(target));
      MachineCommandEnv menv{client, OutputFormat::kTable, env.out, std::cerr, std::cin, true};
      return cmdConfigRenew(menv, path, std::move(cfg), ttl);
    };
  });
}

}  // namespace keel::keelctl
