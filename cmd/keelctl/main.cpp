// keelctl: the remote CLI of Keel and its offline generators. This file only wires the
// command line to the command functions, which hold all the behaviour.
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <iostream>

#include <CLI/CLI.hpp>

#include "cli_tree.h"
#include "cluster_commands.h"
#include "command_env.h"
#include "config_commands.h"
#include "expiry.h"
#include "gen_commands.h"
#include "machine_cli.h"
#include "keel/common/clock.h"
#include "keel/config/random.h"

namespace {

using keel::Status;
using keel::keelctl::CommandEnv;
using keel::keelctl::CommandAction;
using keel::keelctl::runWhenChosen;

int fail(const std::string& message) {
  std::cerr << "keelctl: " << message << '\n';
  return 1;
}

// A whole-number option shown with its default and refused outside [min, max].
template <typename T>
CLI::Option* addBoundedOption(CLI::App* cmd, const std::string& name, T& value, const std::string& help,
                              T min, T max) {
  return cmd->add_option(name, value, help)->capture_default_str()->check(CLI::Range(min, max));
}

// keelctl gen …: a cluster's secrets, configs and image-signing key, offline.
void addGenCommands(CLI::App& app, CommandAction& action) {
  struct Args {
    keel::keelctl::GenSecretsOptions genSecretsOptions;
    std::string genSecretsOutput = "secrets.json";
    keel::keelctl::GenConfigOptions genConfigOptions;
    std::string withSecrets;
    std::string genConfigOutDir = ".";
    std::string genConfigImageKey;
    keel::keelctl::GenImageKeyOptions genImageKeyOptions;
    std::string genImageKeyDir = ".";
  };
  auto o = std::make_shared<Args>();
  auto* gen = app.add_subcommand("gen", "Generate a cluster's secrets and configs (offline)");
  gen->require_subcommand(1);

  auto* genSecrets = gen->add_subcommand("secrets", "Generate a new secrets bundle: CAs, keys, tokens (mode 0600)");
  genSecrets->add_option("-o,--output", o->genSecretsOutput, "File to write")->capture_default_str();
  genSecrets->add_flag("--force", o->genSecretsOptions.force, "Replace the file if it exists");
  genSecrets->footer(
      "The bundle holds every CA key of the cluster: keep it offline and readable by you only.\n\n"
      "Examples:\n"
      "  keelctl gen secrets -o secrets.json\n"
      "  keelctl gen config prod 10.0.0.10 --with-secrets secrets.json");
  runWhenChosen(*genSecrets, action, [o](CommandEnv& env) {
    o->genSecretsOptions.output = o->genSecretsOutput;
    return keel::keelctl::genSecrets(o->genSecretsOptions, env);
  });

  auto* genConfig = gen->add_subcommand(
      "config", "Generate controlplane.json, worker.json and an admin keelconfig for a cluster");
  genConfig->add_option("cluster-name", o->genConfigOptions.clusterName, "Cluster name (also the keelconfig context)")
      ->required();
  genConfig->add_option("endpoint", o->genConfigOptions.endpoint,
                        "Control plane API endpoint: IP, host, IP:port, host:port, [v6]:port or https://host:port "
                        "(port 50000 by default)")
      ->required();
  genConfig->add_option("--with-secrets", o->withSecrets,
                        "Secrets bundle from 'keelctl gen secrets' (default: new secrets, not saved separately)");
  genConfig->add_option("-o,--output-dir", o->genConfigOutDir, "Directory to write the files into")->capture_default_str();
  genConfig->add_option("--crt-ttl", o->genConfigOptions.crtTtl, "Lifetime of the admin client certificate")
      ->capture_default_str();
  genConfig->add_option("--additional-sans", o->genConfigOptions.additionalSans,
                        "Extra IPs or DNS names for the control plane's API certificate")
      ->delimiter(',');
  genConfig->add_option("--config-patch", o->genConfigOptions.configPatches,
                        "JSON merge patch (RFC 7396) applied to both machine configs (repeatable)")
      ->check(CLI::ExistingFile);
  genConfig->add_option("--config-patch-control-plane", o->genConfigOptions.configPatchesControlPlane,
                        "JSON merge patch applied to controlplane.json only (repeatable)")
      ->check(CLI::ExistingFile);
  genConfig->add_option("--config-patch-worker", o->genConfigOptions.configPatchesWorker,
                        "JSON merge patch applied to worker.json only (repeatable)")
      ->check(CLI::ExistingFile);
  genConfig->add_option("--image-key", o->genConfigImageKey,
                        "Public key from 'keelctl gen image-key': the nodes accept upgrades signed with it")
      ->check(CLI::ExistingFile);
  genConfig->add_flag("--force", o->genConfigOptions.force, "Replace existing files");
  genConfig->footer(
      "Durations: 24h, 90m, 1h30m, 10d, 30s.\n\n"
      "Examples:\n"
      "  keelctl gen config prod 10.0.0.10 --with-secrets secrets.json -o ./prod\n"
      "  keelctl gen config lab https://cp.lab.example:50000 --crt-ttl 720h");
  runWhenChosen(*genConfig, action, [o](CommandEnv& env) {
    if (!o->withSecrets.empty()) o->genConfigOptions.withSecrets = o->withSecrets;
    if (!o->genConfigImageKey.empty()) o->genConfigOptions.imageKey = o->genConfigImageKey;
    o->genConfigOptions.outputDir = o->genConfigOutDir;
    return keel::keelctl::genConfig(o->genConfigOptions, env);
  });

  auto* genImageKey = gen->add_subcommand(
      "image-key", "Generate the key pair that signs node images: image-signing.key (0600) and image-signing.pub");
  genImageKey->add_option("-o,--output-dir", o->genImageKeyDir, "Directory to write the files into")->capture_default_str();
  genImageKey->add_flag("--force", o->genImageKeyOptions.force, "Replace existing files");
  runWhenChosen(*genImageKey, action, [o](CommandEnv& env) {
    o->genImageKeyOptions.outputDir = o->genImageKeyDir;
    return keel::keelctl::genImageKey(o->genImageKeyOptions, env);
  });
}

// keelctl sign-image, offline.
void addSignImageCommand(CLI::App& app, CommandAction& action) {
  struct Args {
    keel::keelctl::SignImageOptions signImageOptions;
    std::string signImagePath;
    std::string signImageKey;
    std::string signImageOutput;
  };
  auto o = std::make_shared<Args>();
  auto* signImage = app.add_subcommand("sign-image", "Sign a node image for 'keelctl upgrade' (offline)");
  signImage->add_option("image", o->signImagePath, "The image file (keel-VERSION.img of 'ninja image')")->required()->check(CLI::ExistingFile);
  signImage->add_option("--key", o->signImageKey, "The private key from 'keelctl gen image-key'")
      ->required()
      ->check(CLI::ExistingFile);
  signImage->add_option("-o,--output", o->signImageOutput, "Signature file to write (default: IMAGE.sig)");
  signImage->add_flag("--force", o->signImageOptions.force, "Replace the signature file if it exists");
  signImage->footer("The signature is the DER ECDSA P-256 signature of the SHA-256 of the image's manifest,\n"
                    "whose hashes cover every part: the bytes 'openssl dgst -sha256 -sign image-signing.key'\n"
                    "writes for the manifest ('keel_image_pack show IMAGE' prints it).");
  runWhenChosen(*signImage, action, [o](CommandEnv& env) {
    o->signImageOptions.image = o->signImagePath;
    o->signImageOptions.key = o->signImageKey;
    if (!o->signImageOutput.empty()) o->signImageOptions.output = o->signImageOutput;
    return keel::keelctl::signImage(o->signImageOptions, env);
  });
}

// keelctl config …: the client config itself (the commands that reach a node are added
// to it by addCertificateCommands). Returns the `config` command.
CLI::App* addConfigCommands(CLI::App& app, CommandAction& action) {
  struct Args {
    std::string useName;
    std::vector<std::string> endpoints;
    std::vector<std::string> nodes;
    std::string mergeFile;
    keel::keelctl::ConfigNewOptions newOptions;
    std::string newOutput;
    std::string newFrom;
  };
  auto o = std::make_shared<Args>();
  auto* cfg = app.add_subcommand("config", "Inspect and edit the client config (keelconfig)");
  cfg->require_subcommand(1);
  cfg->footer(
      "The client config is --keelconfig if given, else $KEELCONFIG, else ~/.keel/config.\n\n"
      "Examples:\n"
      "  keelctl config contexts\n"
      "  keelctl config use-context prod\n"
      "  keelctl config endpoint 10.0.0.10 10.0.0.11:50000\n"
      "  keelctl config node 10.0.0.21\n"
      "  keelctl config merge ./prod/keelconfig\n"
      "  keelctl config info");

  auto* contexts = cfg->add_subcommand("contexts", "List the contexts; '*' marks the current one");
  runWhenChosen(*contexts, action, keel::keelctl::configContexts);

  auto* use = cfg->add_subcommand("use-context", "Make a context the current one");
  use->add_option("name", o->useName, "Context name")->required();
  use->footer("Example:\n  keelctl config use-context prod");
  runWhenChosen(*use, action, [o](CommandEnv& env) { return keel::keelctl::configUseContext(o->useName, env); });

  auto* endpoint = cfg->add_subcommand("endpoint", "Set the endpoints of the current context");
  endpoint->add_option("endpoints", o->endpoints, "Endpoints (IP, host, host:port, [v6]:port, https://host:port)")
      ->required();
  endpoint->footer("Example:\n  keelctl config endpoint 10.0.0.10 cp2.example:50000 [fd00::1]:50000");
  runWhenChosen(*endpoint, action,
                [o](CommandEnv& env) { return keel::keelctl::configEndpoint(o->endpoints, env); });

  auto* node = cfg->add_subcommand("node", "Set the default target nodes of the current context (none clears them)");
  node->add_option("nodes", o->nodes, "Node addresses or host names (no port)");
  node->footer("Examples:\n  keelctl config node 10.0.0.21 10.0.0.22\n  keelctl config node   # clear");
  runWhenChosen(*node, action, [o](CommandEnv& env) { return keel::keelctl::configNode(o->nodes, env); });

  auto* merge = cfg->add_subcommand("merge", "Merge the contexts of another client config into this one");
  merge->add_option("file", o->mergeFile, "Client config to merge in")->required();
  merge->footer(
      "A context whose name is taken is added as name-1, name-2, … and the rename is printed.\n"
      "The merged file's current context becomes current.\n\n"
      "Example:\n  keelctl config merge ./prod/keelconfig");
  runWhenChosen(*merge, action, [o](CommandEnv& env) { return keel::keelctl::configMerge(o->mergeFile, env); });

  auto* info = cfg->add_subcommand("info", "Show the current context: endpoints, nodes, roles, certificate expiry");
  runWhenChosen(*info, action, keel::keelctl::configInfo);

  auto* newCmd = cfg->add_subcommand("new", "Write a new client config with chosen roles, from the secrets bundle");
  newCmd->add_option("path", o->newOutput, "File to write")->required();
  newCmd->add_option("--roles", o->newOptions.roles, "Roles: os:admin, os:operator, os:reader, os:impersonator")
      ->delimiter(',')
      ->required();
  newCmd->add_option("--from", o->newFrom, "Secrets bundle from 'keelctl gen secrets'")->required();
  newCmd->add_option("--crt-ttl", o->newOptions.crtTtl, "Lifetime of the client certificate")->capture_default_str();
  newCmd->add_option("--context", o->newOptions.contextName, "Name of the context")->capture_default_str();
  newCmd->add_option("--identity", o->newOptions.identity, "Certificate CN, shown in audit logs")->capture_default_str();
  newCmd->add_option("--endpoints", o->newOptions.endpoints, "Endpoints of the context")->delimiter(',');
  newCmd->add_option("--nodes", o->newOptions.nodes, "Default target nodes of the context")->delimiter(',');
  newCmd->add_flag("--force", o->newOptions.force, "Replace the file if it exists");
  newCmd->footer(
      "Examples:\n"
      "  keelctl config new reader.keelconfig --roles os:reader --crt-ttl 24h --from secrets.json\n"
      "  keelctl config new ops.keelconfig --roles os:operator,os:reader --identity alice \\\n"
      "      --endpoints 10.0.0.10 --from secrets.json");
  runWhenChosen(*newCmd, action, [o](CommandEnv& env) {
    o->newOptions.output = o->newOutput;
    o->newOptions.from = o->newFrom;
    return keel::keelctl::configNew(o->newOptions, env);
  });
  return cfg;
}

// keelctl cluster …: a local cluster on this machine's loopback addresses.
void addClusterCommands(CLI::App& app, CommandAction& action) {
  struct Args {
    keel::keelctl::ClusterCreateOptions clusterOptions;
    std::string clusterRoot = "keel-cluster";
    int clusterWaitSeconds = 300;
  };
  auto o = std::make_shared<Args>();
  auto* cluster = app.add_subcommand("cluster", "Create, show or destroy a local cluster on loopback addresses");
  cluster->require_subcommand(1);
  {
    // The binaries default to those installed beside keelctl.
    std::error_code ec;
    const auto self = std::filesystem::read_symlink("/proc/self/exe", ec).parent_path();
    o->clusterOptions.machined = self / "machined";
    o->clusterOptions.libexec = self;
  }
  auto* create = cluster->add_subcommand("create", "Start a local cluster: each node's machined on its own "
                                                   "127.0.1.x address, unprivileged, under --root");
  addBoundedOption(create, "--controlplanes", o->clusterOptions.controlPlanes,
                   "Control-plane nodes (127.0.1.1, …)", 1, 250);
  addBoundedOption(create, "--workers", o->clusterOptions.workers, "Worker nodes, after the control planes", 0,
                   249);
  create->add_option("--root", o->clusterRoot, "Directory for everything the cluster writes")->capture_default_str();
  create->add_option("--name", o->clusterOptions.name, "Cluster name (the client config's context)")->capture_default_str();
  create->add_option("--machined", o->clusterOptions.machined, "The machined binary (default: the one beside keelctl)");
  create->add_option("--libexec", o->clusterOptions.libexec,
                     "Directory holding apid and trustd (default: keelctl's own directory)");
  addBoundedOption(create, "--api-port", o->clusterOptions.apiPort, "apid's API port on every node", 1, 65535);
  addBoundedOption(create, "--join-port", o->clusterOptions.joinPort, "The control planes' join port", 1, 65535);
  create->add_option("--config-patch", o->clusterOptions.configPatches,
                     "A JSON merge patch for every node's machine config (repeatable), e.g. to add extensions");
  addBoundedOption(create, "--wait", o->clusterWaitSeconds,
                   "Seconds to wait for every node's apid to answer and Keel's services to run", 1, 3600);
  create->footer("Examples:\n  keelctl cluster create --controlplanes 1 --workers 2 --root /tmp/keel\n"
                 "  KEELCONFIG=/tmp/keel/keelconfig keelctl version      # every node of the cluster");
  runWhenChosen(*create, action, [o](CommandEnv& env) {
    o->clusterOptions.root = o->clusterRoot;
    o->clusterOptions.wait = std::chrono::seconds(o->clusterWaitSeconds);
    return keel::keelctl::clusterCreate(o->clusterOptions, env);
  });
  auto* show = cluster->add_subcommand("show", "Show a local cluster's nodes, their type and health");
  show->add_option("--root", o->clusterRoot, "The cluster's directory")->capture_default_str();
  runWhenChosen(*show, action, [o](CommandEnv& env) { return keel::keelctl::clusterShow(o->clusterRoot, env); });
  auto* destroy = cluster->add_subcommand("destroy", "Stop everything a local cluster started and remove its files");
  destroy->add_option("--root", o->clusterRoot, "The cluster's directory")->capture_default_str();
  runWhenChosen(*destroy, action,
                [o](CommandEnv& env) { return keel::keelctl::clusterDestroy(o->clusterRoot, env); });
}

// What keelctl says about itself: shell completion and the CLI reference.
void addSelfCommands(CLI::App& app, CommandAction& action) {
  struct Args {
    std::string shell;
    std::string docsOutput;
  };
  auto o = std::make_shared<Args>();
  auto* completion = app.add_subcommand("completion", "Print the shell completion script for bash, zsh or fish");
  completion->add_option("shell", o->shell, "bash, zsh or fish")->required();
  completion->footer(
      "Examples:\n"
      "  source <(keelctl completion bash)                       # this shell; add it to ~/.bashrc to keep it\n"
      "  keelctl completion zsh > \"${fpath[1]}/_keelctl\"\n"
      "  keelctl completion fish > ~/.config/fish/completions/keelctl.fish");
  runWhenChosen(*completion, action, [o, &app](CommandEnv& env) -> Status {
    KEEL_ASSIGN_OR_RETURN(const auto script, keel::keelctl::completionScript(app, o->shell));
    env.out << script;
    return Status::ok();
  });
  auto* docs = app.add_subcommand("docs", "Write the CLI reference (Markdown) from keelctl's command tree");
  docs->add_option("-o,--output", o->docsOutput, "File to write (default: standard output)");
  docs->footer("Example:\n  keelctl docs -o docs/cli.md");
  runWhenChosen(*docs, action, [o, &app](CommandEnv& env) -> Status {
    const std::string text = keel::keelctl::cliReference(app);
    if (o->docsOutput.empty()) {
      env.out << text;
      return Status::ok();
    }
    std::ofstream out(o->docsOutput, std::ios::trunc);
    out << text;
    out.close();
    if (!out) return keel::internalError("cannot write " + o->docsOutput);
    return Status::ok();
  });
  auto* nodeNames = app.add_subcommand("__node-names", "The context's nodes, one per line");
  nodeNames->group("");
  runWhenChosen(*nodeNames, action, keel::keelctl::configNodeNames);
}

// Parses the command line; the exit code when keelctl is done after it (help, a usage
// error), nothing when the chosen command is to run.
std::optional<int> parseCommandLine(CLI::App& app, int argc, char** argv) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);
    // CLI11 reports a missing subcommand before the word it did not recognise; name that
    // word, since it is usually a typo of the intended command.
    std::string unexpected;
    for (const CLI::App* level = &app; level != nullptr;) {
      for (const auto& word : level->remaining()) unexpected += (unexpected.empty() ? "" : " ") + word;
      const auto selected = level->get_subcommands();
      level = selected.empty() ? nullptr : selected.front();
    }
    std::cerr << "keelctl: " << e.what();
    if (!unexpected.empty() && std::string(e.what()).find(unexpected) == std::string::npos) {
      std::cerr << " (unknown command or argument: " << unexpected << ")";
    }
    std::cerr << "\nRun 'keelctl --help' (or 'keelctl <command> --help') for usage.\n";
    return 2;
  }
  return std::nullopt;
}

}  // namespace

#if defined(__SANITIZE_ADDRESS__)
// Sanitizer builds only. keelctl can exit while gRPC's own threads still hold TLS objects
// that OpenSSL 3 allocated (grpc/grpc#38539), which LeakSanitizer then reports now and
// then. Only allocations made through libcrypto are left out, and only in
// keelctl: the PKI code's own leaks are checked in pki_test, which this does not reach.
extern "C" const char* __lsan_default_suppressions() { return "leak:libcrypto.so\n"; }
#endif

int main(int argc, char** argv) {
  CLI::App app{"keelctl manages Keel nodes through their mutual-TLS API, and generates a cluster's secrets and "
               "configs offline.",
               "keelctl"};
  app.require_subcommand(1);
  app.fallthrough();
  std::string keelconfig;
  app.add_option("--keelconfig", keelconfig,
                 "Client config to use (default: $KEELCONFIG, then ~/.keel/config)");
  app.footer("Run 'keelctl <command> --help' for the options of a command.");

  keel::keelctl::CommandAction action;
  addGenCommands(app, action);
  addSignImageCommand(app, action);
  CLI::App* cfg = addConfigCommands(app, action);
  // Commands against a node: version, services, logs, …
  keel::keelctl::MachineCliOptions machineOptions;
  keel::keelctl::addMachineCommands(app, machineOptions, action);
  keel::keelctl::addCertificateCommands(*cfg, machineOptions, action);
  addClusterCommands(app, action);
  addSelfCommands(app, action);
  if (const auto exit = parseCommandLine(app, argc, argv)) return *exit;
  if (!action) return fail("no command given; run 'keelctl --help'");

  keel::SystemClock clock;
  keel::config::SystemRandom random;
  CommandEnv env{.clock = clock,
                 .random = random,
                 .env = keel::config::ClientConfigEnv::fromProcess(),
                 .keelconfigFlag = keelconfig.empty() ? std::nullopt : std::optional<std::filesystem::path>(keelconfig),
                 .out = std::cout};
  // One warning per command when the certificate it would call with is about to expire.
  if (const auto warning = keel::keelctl::expiryWarningForCommand(env.keelconfigFlag, env.env, clock.now())) {
    std::cerr << "keelctl: warning: " << *warning << '\n';
  }
  const Status status = action(env);
  std::cout.flush();
  if (!status.isOk()) {
    fail(status.message());
    return env.exitCode != 0 ? env.exitCode : 1;
  }
  return env.exitCode;
}
