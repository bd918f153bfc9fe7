#include "cluster_commands.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <unistd.h>

#include <fstream>
#include <iostream>
#include <iterator>
#include <optional>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <sys/stat.h>
#include <sys/wait.h>

#include "keel/config/file_io.h"
#include "keel/config/generate.h"
#include "keel/config/machine_config.h"
#include "keel/config/secrets.h"

#include "machine_client.h"
#include "table.h"
#include "keel/common/status.h"

extern char** environ;

namespace keel::keelctl {

namespace fs = std::filesystem;

namespace {

constexpr const char* kStateFile = "cluster.json";
constexpr auto kPoll = std::chrono::milliseconds(250);
constexpr auto kStopGrace = std::chrono::seconds(20);
// Loopback addresses of the nodes: 127.0.1.1 and up.
constexpr int kMaxNodes = 250;

struct ClusterNode {
  std::string address;
  std::string type;  // "controlplane" / "worker"
  pid_t pid = 0;
};

struct ClusterState {
  std::string name;
  int apiPort = 0;
  int joinPort = 0;
  std::vector<ClusterNode> nodes;
};

std::string nodeAddress(int index) {
  return fmt::format("127.0.1.{}", index + 1);
}

nlohmann::json toJson(const ClusterState& s) {
  nlohmann::json nodes = nlohmann::json::array();
  for (const auto& n : s.nodes) nodes.push_back({{"address", n.address}, {"type", n.type}, {"pid", n.pid}});
  return {{"name", s.name}, {"apiPort", s.apiPort}, {"joinPort", s.joinPort}, {"nodes", nodes}};
}

Result<ClusterState> readState(const fs::path& root) {
  const fs::path file = root / kStateFile;
  if (!fs::exists(file)) {
    return Status(StatusCode::kNotFound,
                  fmt::format("{} holds no cluster (no {}): create one with 'keelctl cluster "
                              "create --root {}'",
                              root.string(), kStateFile, root.string()));
  }
  KEEL_ASSIGN_OR_RETURN(const auto text, config::readPrivateFile(file, "the cluster's state"));
  try {
    const auto j = nlohmann::json::parse(text);
    ClusterState s;
    s.name = j.at("name").get<std::string>();
    s.apiPort = j.at("apiPort").get<int>();
    s.joinPort = j.at("joinPort").get<int>();
    for (const auto& n : j.at("nodes")) {
      s.nodes.push_back(
          {n.at("address").get<std::string>(), n.at("type").get<std::string>(), n.at("pid").get<pid_t>()});
    }
    return s;
  } catch (const nlohmann::json::exception& e) {
    return invalidArgument(fmt::format("{} is damaged: {}", file.string(), e.what()));
  }
}

// True when `pid` is a machined process (not a process that reused the number).
bool isMachined(pid_t pid) {
  if (pid <= 0) return false;
  std::error_code ec;
  const auto exe = fs::read_symlink(fmt::format("/proc/{}/exe", pid), ec);
  if (ec) return kill(pid, 0) == 0;  // another user's process: judge by existence only
  return exe.filename().string().rfind("machined", 0) == 0;
}

// Starts machined detached in its own session, its output into `log`.
Result<pid_t> spawnNode(const std::vector<std::string>& argv, const fs::path& log) {
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&actions);
  posix_spawnattr_init(&attr);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, args[0], &actions, &attr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) return internalError(fmt::format("cannot start {}: {}", argv[0], errnoText(rc)));
  return pid;
}

std::string tailOf(const fs::path& log, size_t bytes = 2000) {
  std::error_code ec;
  if (!fs::exists(log, ec)) return "";
  auto text = config::readPrivateFile(log, "the node's log");
  if (!text.ok()) {
    FILE* f = std::fopen(log.c_str(), "r");
    if (f == nullptr) return "";
    std::string out(bytes, '\0');
    std::fseek(f, 0, SEEK_END);
    const long size = std::ftell(f);
    std::fseek(f, std::max(0L, size - static_cast<long>(bytes)), SEEK_SET);
    out.resize(std::fread(out.data(), 1, bytes, f));
    std::fclose(f);
    return out;
  }
  return text->size() > bytes ? text->substr(text->size() - bytes) : *text;
}

// Reaps a child that exited (keelctl is machined's parent until it returns).
void reapExited() {
  while (waitpid(-1, nullptr, WNOHANG) > 0) {
  }
}

// Stops every machined of the cluster: SIGTERM, then SIGKILL after the grace period.
void stopNodes(const std::vector<ClusterNode>& nodes) {
  std::vector<pid_t> running;
  for (const auto& n : nodes) {
    if (isMachined(n.pid) && kill(n.pid, SIGTERM) == 0) running.push_back(n.pid);
  }
  const auto deadline = std::chrono::steady_clock::now() + kStopGrace;
  while (!running.empty() && std::chrono::steady_clock::now() < deadline) {
    reapExited();
    std::erase_if(running, [](pid_t p) { return kill(p, 0) != 0; });
    std::this_thread::sleep_for(kPoll);
  }
  for (const pid_t p : running) kill(p, SIGKILL);
  reapExited();
}

MachineClient adminClient(const std::string& endpoint, const config::ClientContext& admin, const Clock& clock) {
  MachineTarget t;
  t.endpoint = endpoint;
  t.tls = {.ca = admin.ca, .crt = admin.crt, .key = admin.key};
  t.clock = &clock;
  return MachineClient(std::move(t));
}

bool apidAnswers(const std::string& endpoint, const config::ClientContext& admin, const Clock& clock) {
  auto client = adminClient(endpoint, admin, clock);
  auto ctx = client.context(std::chrono::seconds(2));
  keel::machine::v1::VersionResponse resp;
  return client.stub().Version(ctx.get(), keel::common::v1::Empty(), &resp).ok();
}

// A node is ready when its apid answers and Keel's own services there (apid, and trustd on a
// control plane) are running: a service stays "starting" for machined's settle time after it
// first answers. Extensions are left to `keelctl health`, which reports one that fails.
bool nodeReady(const std::string& endpoint, const config::ClientContext& admin, const Clock& clock) {
  auto client = adminClient(endpoint, admin, clock);
  auto ctx = client.context(std::chrono::seconds(2));
  keel::machine::v1::ServiceListResponse resp;
  if (!client.stub().ServiceList(ctx.get(), keel::common::v1::Empty(), &resp).ok()) return false;
  for (const auto& m : resp.messages()) {
    for (const auto& s : m.services()) {
      if ((s.id() == "apid" || s.id() == "trustd") && s.state() != "running") return false;
    }
  }
  return true;
}

// Run as root, machined starts each node's services under accounts of their own, which
// must reach their files under `path` (and, with `andItself`, list `path`): each directory
// above it that exists has to be searchable by others. A clone under /root (mode 0700) is
// not, and its services would fail at once.
Status checkReachable(const fs::path& path, std::string_view what, bool andItself) {
  if (geteuid() != 0) return Status::ok();
  const fs::path full = fs::absolute(path).lexically_normal();
  for (fs::path dir = andItself ? full : full.parent_path();; dir = dir.parent_path()) {
    struct stat st {};
    if (stat(dir.c_str(), &st) == 0 && (st.st_mode & S_IXOTH) == 0) {
      return failedPrecondition(fmt::format(
          "{} {} is out of reach of the nodes' services, which run under accounts of their own: {} is not "
          "searchable by others (mode {:04o}); choose a place outside it (for instance under /var/tmp)",
          what, full.string(), dir.string(), st.st_mode & 07777));
    }
    if (dir == dir.parent_path()) return Status::ok();
  }
}

// The checks made before anything is written: the sizes, the name, the binaries, that the
// services can reach the root and the binaries, and no cluster under the root yet.
Status checkCreate(const ClusterCreateOptions& o) {
  const int total = o.controlPlanes + o.workers;
  if (o.controlPlanes < 1)
    return invalidArgument("a cluster needs at least one control plane (--controlplanes)");
  if (o.workers < 0 || total > kMaxNodes) {
    return invalidArgument(fmt::format("expected between 1 and {} nodes in all, found {}", kMaxNodes, total));
  }
  KEEL_RETURN_IF_ERROR(config::validateClusterName(o.name));
  for (const auto& [path, what] : {std::pair{o.machined, "machined binary (--machined)"},
                                   std::pair{o.libexec / "apid", "apid binary (in --libexec)"},
                                   std::pair{o.libexec / "trustd", "trustd binary (in --libexec)"}}) {
    if (access(path.c_str(), X_OK) != 0) {
      return failedPrecondition(fmt::format("no {} at {}", what, path.string()));
    }
  }
  KEEL_RETURN_IF_ERROR(checkReachable(o.root, "--root", false));
  KEEL_RETURN_IF_ERROR(checkReachable(o.libexec, "--libexec", true));
  std::error_code ec;
  if (fs::exists(o.root / kStateFile, ec)) {
    return alreadyExists(fmt::format("{} already holds a cluster: 'keelctl cluster destroy --root {}' first",
                                     o.root.string(), o.root.string()));
  }
  return Status::ok();
}

// The secrets bundle and the two machine configs under `root` (--config-patch applied,
// then loopback's join rules); returns the admin client context, endpoints and nodes
// still to fill.
Result<config::ClientContext> writeClusterFiles(const ClusterCreateOptions& o, const fs::path& root, CommandEnv& env) {
  const int total = o.controlPlanes + o.workers;
  KEEL_ASSIGN_OR_RETURN(auto secrets, config::generateSecrets({}, env.clock, env.random));
  KEEL_RETURN_IF_ERROR(config::writeSecretsFile(root / "secrets.json", secrets, config::Overwrite::kNo));
  config::MachineConfigOptions mco;
  mco.clusterName = o.name;
  mco.endpoint.host = nodeAddress(0);
  mco.endpoint.port = static_cast<uint16_t>(o.apiPort);
  KEEL_ASSIGN_OR_RETURN(auto configs, config::generateMachineConfigs(secrets, mco));
  // On loopback every connection comes from 127.0.0.1: the control planes let joining
  // nodes name their 127.0.1.x address, and as many join at once as there are nodes.
  for (const auto& patchFile : o.configPatches) {
    auto text = config::readPrivateFile(patchFile, "a config patch");
    if (!text.ok()) {
      // A patch is not secret; read it whatever its mode.
      std::ifstream in(patchFile);
      if (!in)
        return Status(StatusCode::kNotFound, fmt::format("cannot read config patch {}", patchFile.string()));
      text = std::string(std::istreambuf_iterator<char>(in), {});
    }
    for (auto* c : {&configs.controlPlane, &configs.worker}) {
      auto patched = config::patchMachineConfig(*c, *text);
      if (!patched.ok()) return patched.status().withContext("--config-patch " + patchFile.string());
      *c = std::move(patched).value();
    }
  }
  configs.controlPlane.trustd.joinExtraSans = {"127.0.1.0/24"};
  configs.controlPlane.trustd.joinRatePerMinute = std::max(30, 2 * total);
  KEEL_RETURN_IF_ERROR(config::writeMachineConfigFile(root / "controlplane.json", configs.controlPlane,
                                                      config::Overwrite::kYes));
  KEEL_RETURN_IF_ERROR(
      config::writeMachineConfigFile(root / "worker.json", configs.worker, config::Overwrite::kYes));
  return config::generateClientContext(secrets, {}, env.clock);

}

// The built-in service (apid or trustd) a node's machined gave up restarting, if its log
// says so: then the node cannot become ready, and waiting on would only hide why.
std::optional<std::string> givenUpService(const fs::path& machinedLog) {
  std::ifstream in(machinedLog);
  std::string line;
  while (std::getline(in, line)) {
    for (const char* service : {"apid", "trustd"}) {
      if (line.find(fmt::format("service {} failed: gave up", service)) != std::string::npos) return service;
    }
  }
  return std::nullopt;
}

// Waits until every node's apid answers and Keel's services run there, showing the count
// on stderr. Errors: UNAVAILABLE when a node exits, DEADLINE_EXCEEDED after o.wait.
Status waitUntilReady(const ClusterState& state, const ClusterCreateOptions& o, const fs::path& root,
                      const config::ClientContext& admin, const Clock& clock) {
  std::vector<bool> ready(state.nodes.size(), false);
  size_t readyCount = 0;
  size_t shown = SIZE_MAX;
  const bool tty = isatty(STDERR_FILENO) != 0;
  const auto started = std::chrono::steady_clock::now();
  const auto deadline = started + o.wait;
  while (readyCount < state.nodes.size()) {
    for (size_t i = 0; i < state.nodes.size(); ++i) {
      if (ready[i]) continue;
      const auto& n = state.nodes[i];
      reapExited();
      if (kill(n.pid, 0) != 0) {
        return unavailable(fmt::format("node {} ({}) exited while starting; the end of its log:\n{}", n.address,
                                    n.type, tailOf(root / "nodes" / n.address / "machined.log")));
      }
      const auto log = root / "nodes" / n.address / "machined.log";
      if (const auto gaveUp = givenUpService(log)) {
        return unavailable(fmt::format("node {} ({}): machined gave up restarting {} (its log: {}); the end of "
                                       "machined's log:\n{}",
                                       n.address, n.type, *gaveUp,
                                       (log.parent_path() / "root/var/log/keel" / (*gaveUp + ".log")).string(),
                                       tailOf(log)));
      }
      if (nodeReady(fmt::format("{}:{}", n.address, o.apiPort), admin, clock)) {
        ready[i] = true;
        ++readyCount;
      }
    }
    // One line rewritten in place on a terminal; a line per change otherwise (logs, CI).
    if (tty || readyCount != shown) {
      std::cerr << fmt::format("{}keelctl: {}/{} nodes ready ({} s){}", tty ? "\r" : "", readyCount,
                               state.nodes.size(),
                               std::chrono::duration_cast<std::chrono::seconds>(
                                   std::chrono::steady_clock::now() - started)
                                   .count(),
                               tty ? "" : "\n")
                << std::flush;
      shown = readyCount;
    }
    if (readyCount == state.nodes.size()) break;
    if (std::chrono::steady_clock::now() > deadline) {
      if (tty) std::cerr << "\n";
      std::string missing;
      for (size_t i = 0; i < ready.size(); ++i) {
        if (!ready[i]) missing += (missing.empty() ? "" : ", ") + state.nodes[i].address;
      }
      return Status(StatusCode::kDeadlineExceeded,
                 fmt::format("these nodes' apid did not answer, or apid and trustd were not both running, within {} s: {} "
                             "(their logs are under {})",
                             o.wait.count(), missing, (root / "nodes").string()));
    }
    std::this_thread::sleep_for(kPoll);
  }
  if (tty) std::cerr << "\n";
  return Status::ok();
}

}  // namespace

Status clusterCreate(const ClusterCreateOptions& o, CommandEnv& env) {
  KEEL_RETURN_IF_ERROR(checkCreate(o));
  const int total = o.controlPlanes + o.workers;
  std::error_code ec;
  fs::create_directories(o.root, ec);
  if (ec) return internalError(fmt::format("cannot create {}: {}", o.root.string(), ec.message()));
  // The folders just made above it follow the umask.
  KEEL_RETURN_IF_ERROR(checkReachable(o.root, "--root", false));
  // Services running under their own accounts (when this runs as root) traverse it.
  fs::permissions(o.root, fs::perms::owner_all | fs::perms::group_exec | fs::perms::others_exec,
                  fs::perm_options::replace, ec);
  const fs::path root = fs::absolute(o.root);

  KEEL_ASSIGN_OR_RETURN(auto admin, writeClusterFiles(o, root, env));
  ClusterState state{o.name, o.apiPort, o.joinPort, {}};
  const auto save = [&] {
    return config::writePrivateFile(root / kStateFile, toJson(state).dump(2) + "\n", config::Overwrite::kYes);
  };
  const auto fail = [&](Status st) {
    stopNodes(state.nodes);
    (void)save();
    return st.withContext(
        fmt::format("the cluster under {} was stopped again ('keelctl cluster destroy --root {}' "
                    "removes its files)",
                    root.string(), root.string()));
  };
  for (int i = 0; i < total; ++i) {
    const bool cp = i < o.controlPlanes;
    ClusterNode node{nodeAddress(i), cp ? "controlplane" : "worker", 0};
    const fs::path dir = root / "nodes" / node.address;
    fs::create_directories(dir, ec);
    fs::permissions(dir, fs::perms::owner_all | fs::perms::group_exec | fs::perms::others_exec,
                    fs::perm_options::replace, ec);
    auto pid =
        spawnNode({o.machined.string(), "--root", (dir / "root").string(), "--config",
                   (root / (cp ? "controlplane.json" : "worker.json")).string(), "--address", node.address,
                   "--libexec", fs::absolute(o.libexec).string(), "--api-port", std::to_string(o.apiPort),
                   "--join-port", std::to_string(o.joinPort), "--log-level", "warn"},
                  dir / "machined.log");
    if (!pid.ok()) return fail(pid.status());
    node.pid = *pid;
    state.nodes.push_back(node);
  }
  KEEL_RETURN_IF_ERROR(save());

  const auto started = std::chrono::steady_clock::now();
  if (const Status st = waitUntilReady(state, o, root, admin, env.clock); !st.isOk()) return fail(st);

  for (int i = 0; i < o.controlPlanes; ++i)
    admin.endpoints.push_back(fmt::format("{}:{}", nodeAddress(i), o.apiPort));
  for (const auto& n : state.nodes) admin.nodes.push_back(n.address);
  config::ClientConfig client;
  client.context = o.name;
  client.contexts[o.name] = admin;
  KEEL_RETURN_IF_ERROR(config::writeClientConfigFile(root / "keelconfig", client, config::Overwrite::kYes));
  const auto took =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
  env.out << fmt::format(
      "cluster '{}' is up: {} control plane(s), {} worker(s) on 127.0.1.1-{}, every node ready "
      "after {:.1f} s\n",
      o.name, o.controlPlanes, o.workers, state.nodes.back().address, took.count() / 1000.0);
  env.out << fmt::format("client config: {} (its context names every node)\n  export KEELCONFIG={}\n",
                         (root / "keelconfig").string(), (root / "keelconfig").string());
  return Status::ok();
}

Status clusterShow(const fs::path& root, CommandEnv& env) {
  KEEL_ASSIGN_OR_RETURN(const auto state, readState(root));
  auto client = config::readClientConfigFile(root / "keelconfig");
  std::vector<std::vector<std::string>> rows;
  for (const auto& n : state.nodes) {
    const bool alive = isMachined(n.pid);
    std::string apid = "-";
    if (alive && client.ok()) {
      auto* ctx = &client->contexts.begin()->second;
      apid = apidAnswers(fmt::format("{}:{}", n.address, state.apiPort), *ctx, env.clock) ? "answering"
                                                                                          : "not answering";
    }
    rows.push_back({n.address, n.type, std::to_string(n.pid), alive ? "running" : "stopped", apid});
  }
  env.out << fmt::format("cluster '{}' under {} (API port {}, join port {})\n", state.name, root.string(),
                         state.apiPort, state.joinPort);
  printTable(env.out, {"NODE", "TYPE", "PID", "MACHINED", "APID"}, rows);
  return Status::ok();
}

Status clusterDestroy(const fs::path& root, CommandEnv& env) {
  KEEL_ASSIGN_OR_RETURN(const auto state, readState(root));
  stopNodes(state.nodes);
  std::error_code ec;
  fs::remove_all(root, ec);
  if (ec)
    return internalError(
        fmt::format("stopped every node, but cannot remove {}: {}", root.string(), ec.message()));
  env.out << fmt::format("cluster '{}' stopped ({} nodes) and {} removed\n", state.name, state.nodes.size(),
                         root.string());
  return Status::ok();
}

}  // namespace keel::keelctl
