#include "node.h"

#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>

#include <cstring>
#include <unistd.h>

#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "apid_identity.h"
#include "backend_resources.h"
#include "config_store.h"
#include "event_journal.h"
#include "file_roots.h"
#include "keel/config/file_io.h"
#include "keel/config/join_tokens.h"
#include "keel/facts/system_facts.h"
#include "keel/sandbox/diagnostics.h"
#include "keel/sandbox/sandbox.h"
#include "keel/supervisor/log_sink.h"
#include "keel/supervisor/supervisor.h"
#include "keel/transport/unix_listener.h"
#include "keel/common/status.h"
#include "keel/apis/builtin.h"

namespace keel::machined {

namespace fs = std::filesystem;

namespace {

// Calls that stream (logs -f) get this long to finish when the node stops.
constexpr auto kApiDrain = std::chrono::seconds(2);
constexpr auto kTick = std::chrono::milliseconds(250);

Status makeDir(const fs::path& dir, fs::perms perms) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return internalError("cannot create " + dir.string() + ": " + ec.message());
  fs::permissions(dir, perms, fs::perm_options::replace, ec);
  if (ec) return internalError("cannot set the mode of " + dir.string() + ": " + ec.message());
  return Status::ok();
}

// "host:port", bracketing an IPv6 address.
std::string hostPort(const std::string& host, int port) {
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

}  // namespace

Node::Node(NodeOptions options, const Clock& clock)
    : options_(std::move(options)), clock_(clock), paths_(options_.root) {}

Node::~Node() { stopAll(); }

Status Node::prepareDirectories() {
  const auto owner = fs::perms::owner_all;
  // Services running under their own uids traverse these on the way to their state
  // directory and to the socket directory; listing them is not needed.
  const auto traverse = owner | fs::perms::group_exec | fs::perms::others_exec;
  for (const auto& dir : {paths_.root(), paths_.root() / "var", paths_.root() / "var/lib", paths_.root() / "run"}) {
    if (!fs::exists(dir)) KEEL_RETURN_IF_ERROR(makeDir(dir, traverse));
  }
  KEEL_RETURN_IF_ERROR(makeDir(paths_.etcDir(), owner));
  // Services running under their own uids must reach their own directory below it.
  KEEL_RETURN_IF_ERROR(makeDir(paths_.stateRoot(), owner | fs::perms::group_exec | fs::perms::others_exec));
  KEEL_RETURN_IF_ERROR(makeDir(paths_.logDir(), owner));
  // machined's own state (the accounts it gave, accounts.h): its alone.
  KEEL_RETURN_IF_ERROR(makeDir(paths_.stateDir("machined"), owner));
  // Only machined's and apid's group may enter the socket directory.
  KEEL_RETURN_IF_ERROR(makeDir(paths_.runDir(), owner | fs::perms::group_read | fs::perms::group_exec));
  return Status::ok();
}

Status Node::start() {
  if (!options_.spawn) {
    return failedPrecondition("node options: expected a spawn function (the spawner's), found none");
  }
  KEEL_RETURN_IF_ERROR(prepareDirectories());
  journal_ = std::make_unique<EventJournal>(clock_, 2000);
  if (!options_.bootFallback.empty()) journal_->record("machine", "rollback", "automatic", options_.bootFallback);
  config_ = std::make_unique<ConfigStore>(paths_, clock_);
  config_->setEventSink([this](const std::string& state, const std::string& message) {
    journal_->record("config", "machine-config", state, message);
  });
  KEEL_RETURN_IF_ERROR(config_->load(options_.configPath));
  const auto cfg = config_->current();
  files_ = std::make_unique<FileRoots>(paths_.root(), cfg.allowedFileRoots);
  config_->setLiveApplier([this](const config::MachineConfig& c) {
    files_->setAllowedRoots(c.allowedFileRoots);
    applyTrust(c);
  });
  facts::FactsOptions factsOptions;
  factsOptions.procRoot = options_.procRoot;
  factsOptions.sysRoot = options_.sysRoot;
  facts_ = std::make_unique<facts::SystemFacts>(factsOptions);
  // Looked up now: name lookups may talk to other daemons, which the API threads, once
  // confined, may not.
  KEEL_ASSIGN_OR_RETURN(const auto apidAccount, serviceAccount("apid", true));
  apidGid_ = apidAccount.second;
  routed_.clear();
  KEEL_RETURN_IF_ERROR(writeBackendManifest("machined", paths_.socket("machined"), {apis::kMachineService},
                                            geteuid()));
  KEEL_RETURN_IF_ERROR(startServices());
  const Status api = startApi();
  if (!api.isOk()) {
    stopAll();
    return api;
  }
  journal_->record("config", "machine-config", "loaded",
                   std::string(config::machineTypeName(cfg.type)) + " node of cluster " + cfg.clusterName);
  spdlog::info("machined: node {} is up; API on {}", options_.address, paths_.socket("machined").string());
  return Status::ok();
}

void Node::applyTrust(const config::MachineConfig& cfg) {
  const bool controlPlane = cfg.type == config::MachineType::kControlPlane;
  // trustd first: the CA it issues with is in place before apid asks for certificates under it.
  const std::string service = controlPlane ? "trustd" : "apid";
  const fs::path file = paths_.stateDir(service) / "config.json";
  if (fs::exists(file)) {
    const auto changed = rewriteServiceTrust(cfg, file);
    if (!changed.ok()) {
      spdlog::error("machined: the new join tokens or CAs did not reach {}: {}", service, changed.status().message());
      journal_->record("config", "trust", "failed", changed.status().message());
    } else if (*changed && controlPlane) {
      const Status restarted = supervisor_ ? supervisor_->restart("trustd") : Status::ok();
      const std::string message = fmt::format("trustd restarted with {} accepted join tokens and {} OS CAs",
                                              config::acceptedJoinTokens(cfg).size(), 1 + cfg.ca.accepted.size());
      spdlog::info("machined: {}", restarted.isOk() ? message : "restarting trustd failed: " + restarted.message());
      journal_->record("config", "trust", restarted.isOk() ? "applied" : "failed",
                       restarted.isOk() ? message : restarted.message());
    } else if (*changed) {
      // apid presents the token only to join again; it renews with its certificate.
      journal_->record("config", "join-tokens", "applied", "apid joins with the new machine.token from its next start");
    }
  }
  const fs::path apidDir = paths_.stateDir("apid");
  if (!fs::exists(apidDir / kApidCaFile)) return;  // apid not set up on this node
  std::optional<std::pair<uid_t, gid_t>> owner;
  if (geteuid() == 0) {
    const auto account = serviceAccount("apid", true);
    if (account.ok()) owner = *account;
  }
  const auto bundle = rewriteApidCaBundle(cfg, apidDir, owner);
  if (!bundle.ok()) {
    spdlog::error("machined: apid's CA bundle was not updated: {}", bundle.status().message());
    journal_->record("config", "certificate-authorities", "failed", bundle.status().message());
  } else if (*bundle) {
    const std::string message = fmt::format("apid accepts {} OS CAs; it re-issues its certificates when the issuing "
                                            "one changed", 1 + cfg.ca.accepted.size());
    spdlog::info("machined: {}", message);
    journal_->record("config", "certificate-authorities", "applied", message);
  }
}

Result<std::pair<uid_t, gid_t>> Node::serviceAccount(const std::string& name, bool builtin) {
  const std::string user = "keel-" + name;
  std::optional<std::pair<uid_t, gid_t>> found;
  if (options_.lookupAccount) {
    KEEL_ASSIGN_OR_RETURN(found, options_.lookupAccount(user));
  } else if (const passwd* pw = getpwnam(user.c_str())) {
    found = std::make_pair(pw->pw_uid, pw->pw_gid);
  }
  if (found) return *found;
  if (builtin) return std::make_pair(uid_t{65534}, gid_t{65534});
  // Never a shared account for backends and extensions: one of machined's own.
  return accounts_.accountFor(name);
}

Status Node::writeBackendManifest(const std::string& name, const fs::path& socket,
                                  const std::vector<std::string>& services, uid_t uid, const std::string& rules) {
  const fs::path dir = paths_.backendsDir();
  // Like the socket directory: only machined and apid's group may read the manifests.
  KEEL_RETURN_IF_ERROR(makeDir(dir, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec));
  const bool root = geteuid() == 0;
  if (root && chown(dir.c_str(), 0, apidGid_) != 0) {
    return internalError("cannot give " + dir.string() + " to apid's group: " + errnoText(errno));
  }
  const nlohmann::json manifest = {{"name", name},
                                   {"socket", fs::absolute(socket).lexically_normal().string()},
                                   {"services", services},
                                   {"allowedUids", nlohmann::json::array({uid})},
                                   {"rules", rules}};
  // Mode and group are set on a temporary name, then renamed: apid never sees the file
  // with the wrong ones.
  const fs::path file = dir / (name + ".json");
  const fs::path tmp = dir / ("." + name + ".json.new");
  KEEL_RETURN_IF_ERROR(config::writePrivateFile(tmp, manifest.dump(2) + "\n", config::Overwrite::kYes));
  std::error_code ec;
  fs::permissions(tmp, fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read,
                  fs::perm_options::replace, ec);
  if (ec) return internalError("cannot set the mode of " + tmp.string() + ": " + ec.message());
  if (root && chown(tmp.c_str(), 0, apidGid_) != 0) {
    return internalError("cannot give " + tmp.string() + " to apid's group: " + errnoText(errno));
  }
  fs::rename(tmp, file, ec);
  if (ec) return internalError("cannot rename " + tmp.string() + " to " + file.string() + ": " + ec.message());
  routed_.insert(name);
  return Status::ok();
}

void Node::removeStaleRoutes() {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(paths_.backendsDir(), ec)) {
    const fs::path& p = entry.path();
    if (p.extension() != ".json" || p.filename().string().front() == '.') continue;
    if (routed_.count(p.stem().string()) != 0) continue;
    std::error_code removeError;
    fs::remove(p, removeError);
    if (removeError) {
      spdlog::warn("machined: cannot remove the stale route {}: {}", p.string(), removeError.message());
    } else {
      spdlog::info("machined: removed the route {}: no such backend runs on this node", p.string());
    }
  }
}

namespace {

// The services every node of a type runs, in the order they depend on each other.
struct BuiltinService {
  const char* name;
  bool controlPlaneOnly;
  bool mayCallMachined;
  std::vector<std::string> dependsOn;
};

std::vector<BuiltinService> builtinServices(config::MachineType type) {
  std::vector<BuiltinService> all = {
      {"trustd", true, false, {}},
      {"apid", false, true, {}},
  };
  std::vector<BuiltinService> out;
  for (auto& b : all) {
    if (b.controlPlaneOnly && type != config::MachineType::kControlPlane) continue;
    if (type == config::MachineType::kControlPlane && std::string(b.name) == "apid") b.dependsOn = {"trustd"};
    out.push_back(b);
  }
  return out;
}

}  // namespace

// A backend daemon's checked manifest and what it loaded (its seccomp profile).
struct Node::ServiceBackend {
  const BackendManifest& manifest;
  const BackendResources& resources;
};

Status Node::prepareService(const config::MachineConfig& cfg, const std::string& name, std::vector<std::string> argv,
                            std::vector<std::string> dependsOn, bool mayCallMachined, const ServiceBackend* backend,
                            std::vector<supervisor::ServiceSpec>& specs) {
  supervisor::ServiceSpec spec;
  spec.id = name;
  spec.argv = std::move(argv);
  spec.stateDir = paths_.stateDir(name);
  spec.configFile = spec.stateDir / "config.json";
  spec.dependsOn = std::move(dependsOn);
  spec.mayCallMachined = mayCallMachined;
  spec.settleTime = options_.serviceSettleTime;
  spec.stopGracePeriod = options_.serviceStopGrace;
  spec.env = {"KEEL_SERVICE_CONFIG=" + spec.configFile.string(), "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
              "KEEL_NODE_ADDRESS=" + options_.address};
  // Each service's own config file: what it needs to know, nothing of the node's secrets.
  KEEL_RETURN_IF_ERROR(makeDir(spec.stateDir, fs::perms::owner_all));
  nlohmann::json own = {{"name", name},
                        {"socket", paths_.socket(name).string()},
                        {"stateDir", spec.stateDir.string()},
                        {"nodeAddress", options_.address},
                        {"machinedSocket", paths_.socket("machined").string()}};
  std::vector<fs::path> owned = {spec.stateDir, spec.configFile};
  if (backend != nullptr) KEEL_RETURN_IF_ERROR(describeBackend(name, backend->manifest, own));
  if (name == "apid" || name == "trustd") KEEL_RETURN_IF_ERROR(describeBuiltin(cfg, name, own, owned));
  // Every service is confined whether or not it confines itself: the spawner does it from
  // this description (keel/supervisor/spawner.h), with its own uid, no capabilities,
  // no_new_privs, no core dumps, and the extension seccomp profile (everything but the
  // hard deny list; a daemon of ours narrows it further itself) or the reviewed profile a
  // backend ships.
  spec.sandbox.confine = true;
  if (geteuid() == 0) {
    const bool builtin = name == "apid" || name == "trustd";
    KEEL_ASSIGN_OR_RETURN(const auto account, serviceAccount(name, builtin));
    spec.sandbox.uid = account.first;
    spec.sandbox.gid = account.second;
    // The service owns its state; its config and keys stay readable by it alone.
    spec.sandbox.chownPaths = owned;
  }
  if (backend != nullptr) spec.sandbox.seccompProfile = backend->resources.profileText;
  KEEL_RETURN_IF_ERROR(config::writePrivateFile(spec.configFile, own.dump(2) + "\n", config::Overwrite::kYes));
  specs.push_back(std::move(spec));
  return Status::ok();
}

Status Node::describeBuiltin(const config::MachineConfig& cfg, const std::string& name, nlohmann::json& own,
                             std::vector<fs::path>& owned) {
  KEEL_ASSIGN_OR_RETURN(const std::string hostname, nodeHostname(cfg));
  ApidIdentityRequest request;
  request.stateDir = paths_.stateDir("apid");
  request.nodeAddress = options_.address;
  request.hostname = hostname;
  request.trustdSocket = paths_.trustdSocket();
  request.apiPort = options_.apiPort;
  request.joinPort = options_.joinPort;
  if (name == "apid") {
    // apid gets its certificates itself, from trustd; stale ones are removed first.
    KEEL_ASSIGN_OR_RETURN(const auto written, prepareApidState(cfg, request));
    owned.insert(owned.end(), written.begin(), written.end());
    own["listen"] = hostPort(options_.address, options_.apiPort);
    own["backendsDir"] = paths_.backendsDir().string();
    KEEL_ASSIGN_OR_RETURN(const auto identity, apidIdentityConfig(cfg, request));
    own.update(identity);
  } else {
    // Only apid may use trustd.sock: its account, or in --root mode the invoking user,
    // under whose uid every service then runs.
    uid_t apidUid = geteuid();
    uid_t trustdUid = geteuid();
    KEEL_RETURN_IF_ERROR(makeDir(paths_.trustdSocketDir(), fs::perms::owner_all | fs::perms::group_read |
                                                               fs::perms::group_exec | fs::perms::set_gid));
    if (geteuid() == 0) {
      KEEL_ASSIGN_OR_RETURN(const auto apidAccount, serviceAccount("apid", true));
      KEEL_ASSIGN_OR_RETURN(const auto trustdAccount, serviceAccount("trustd", true));
      apidUid = apidAccount.first;
      trustdUid = trustdAccount.first;
      // The socket trustd creates there inherits apid's group (set-group-ID directory).
      if (chown(paths_.trustdSocketDir().c_str(), trustdAccount.first, apidGid_) != 0) {
        return internalError("cannot hand " + paths_.trustdSocketDir().string() + " to trustd: " + errnoText(errno));
      }
    }
    own["socket"] = paths_.trustdSocket().string();
    own.update(trustdConfig(cfg, request, {apidUid}));
    // apid routes the CA's API (SecurityService) to it; LocalIssuerService is never routed.
    KEEL_RETURN_IF_ERROR(
        writeBackendManifest("trustd", paths_.trustdSocket(), {apis::kSecurityService}, trustdUid));
  }
  return Status::ok();
}

Status Node::describeBackend(const std::string& name, const BackendManifest& manifest, nlohmann::json& own) {
  // Its socket, and who may connect to it: apid, then the peers its manifest adds.
  own["socket"] = (paths_.backendSocketDir(name) / manifest.socket).string();
  own["version"] = manifest.version;
  uid_t apidUid = geteuid();
  if (geteuid() == 0) {
    KEEL_ASSIGN_OR_RETURN(const auto apidAccount, serviceAccount("apid", true));
    apidUid = apidAccount.first;
  }
  nlohmann::json peers = nlohmann::json::array({apidUid});
  for (const uid_t uid : manifest.allowedPeerUids) peers.push_back(uid);
  own["allowedPeerUids"] = std::move(peers);
  return Status::ok();
}

Status Node::prepareBuiltins(const config::MachineConfig& cfg, std::vector<supervisor::ServiceSpec>& specs) {
  std::vector<std::string> installed;
  for (const auto& b : builtinServices(cfg.type)) {
    const fs::path binary = options_.libexecDir / b.name;
    if (options_.libexecDir.empty() || access(binary.c_str(), X_OK) != 0) {
      // A node image always has them; a development build may not have built them yet.
      spdlog::warn("machined: built-in service {} is not installed at {}; the node runs without it", b.name,
                   binary.string());
      journal_->record("service", b.name, "not-installed", "no executable at " + binary.string());
      continue;
    }
    std::vector<std::string> deps;
    for (const auto& d : b.dependsOn) {
      if (std::find(installed.begin(), installed.end(), d) != installed.end()) deps.push_back(d);
    }
    const std::string configFile = (paths_.stateDir(b.name) / "config.json").string();
    KEEL_RETURN_IF_ERROR(
        prepareService(cfg, b.name, {binary.string(), "--config", configFile}, deps, b.mayCallMachined, nullptr, specs));
    installed.emplace_back(b.name);
  }
  for (const auto& ext : cfg.extensions) {
    std::vector<std::string> argv = {ext.command};
    argv.insert(argv.end(), ext.args.begin(), ext.args.end());
    KEEL_RETURN_IF_ERROR(prepareService(cfg, ext.name, std::move(argv), ext.dependsOn, false, nullptr, specs));
  }
  return Status::ok();
}

void Node::prepareBackends(const config::MachineConfig& cfg, std::vector<supervisor::ServiceSpec>& specs) {
  // Backends that ship a manifest. Each is checked on its own: a bad one is refused and
  // logged, and the node and the other backends start as if it were not configured.
  std::vector<std::string> extensionNames;
  for (const auto& ext : cfg.extensions) extensionNames.push_back(ext.name);
  BackendClaims claims(extensionNames);
  const fs::path backendsDir = options_.backendsDir.empty() ? options_.libexecDir / "backends" : options_.backendsDir;
  for (const auto& name : cfg.backends) {
    const fs::path file = (fs::absolute(backendsDir) / (name + ".json")).lexically_normal();
    const auto refuse = [&](const Status& why) {
      spdlog::error("machined: backend {} refused: {}", name, why.message());
      journal_->record("backend", name, "refused", why.message());
    };
    auto manifest = readBackendManifest(backendsDir, name, options_.libexecDir);
    if (!manifest.ok()) {
      refuse(manifest.status().code() == StatusCode::kNotFound ? notFound(file.string() + ": no such manifest")
                                                               : manifest.status());
      continue;
    }
    if (!runsOn(*manifest, cfg.type)) {
      const std::string why = file.string() + ": nodeTypes does not list " +
                              std::string(config::machineTypeName(cfg.type)) + ", the type of this node";
      spdlog::info("machined: backend {} skipped: {}", name, why);
      journal_->record("backend", name, "skipped", why);
      continue;
    }
    if (const Status st = prepareBackend(cfg, name, file, *manifest, claims, specs); !st.isOk()) {
      refuse(st);
      continue;
    }
    claims.add(*manifest);
    serviceVersions_[name] = manifest->version;
    spdlog::info("machined: backend {} {} accepted from {}: serves {}", name, manifest->version, file.string(),
                 fmt::format("{}", fmt::join(manifest->services, ", ")));
  }
}

Status Node::prepareBackend(const config::MachineConfig& cfg, const std::string& name, const fs::path& file,
                            const BackendManifest& manifest, BackendClaims& claims,
                            std::vector<supervisor::ServiceSpec>& specs) {
  auto resources = loadBackendResources(manifest);
  if (!resources.ok()) {
    return resources.status().withContext(file.string());
  }
  const fs::path socket = paths_.backendSocketDir(name) / manifest.socket;
  // sockaddr_un's sun_path holds 108 bytes with the terminating NUL.
  if (socket.string().size() > 107) {
    return invalidArgument(file.string() + ": socket " + socket.string() +
                           " is longer than a Unix socket path may be (107 bytes)");
  }
  if (const Status clash = claims.check(manifest); !clash.isOk()) {
    return clash.withContext(file.string());
  }
  // The uid it runs under: apid accepts its socket only from that owner.
  Result<std::pair<uid_t, gid_t>> account = std::make_pair(geteuid(), getegid());
  if (geteuid() == 0) account = serviceAccount(name, false);
  if (!account.ok()) {
    return account.status().withContext(file.string() + ": the account of the backend");
  }
  const uid_t uid = account->first;
  // Its socket lives in a directory of its own that apid's group may enter (set-group-ID,
  // so the socket gets apid's group too): the backend cannot write into machined's.
  if (const Status made = makeDir(paths_.backendSocketDir(name), fs::perms::owner_all | fs::perms::group_read |
                                                                     fs::perms::group_exec | fs::perms::set_gid);
      !made.isOk()) {
    return made.withContext(file.string());
  }
  if (geteuid() == 0 && chown(paths_.backendSocketDir(name).c_str(), uid, apidGid_) != 0) {
    return internalError("cannot hand " + paths_.backendSocketDir(name).string() + " to the backend: " +
                         errnoText(errno));
  }
  std::vector<std::string> argv = {manifest.binary.string(), "--config",
                                   (paths_.stateDir(name) / "config.json").string()};
  argv.insert(argv.end(), manifest.args.begin(), manifest.args.end());
  const ServiceBackend backend{manifest, *resources};
  const size_t before = specs.size();
  Status prepared = prepareService(cfg, name, std::move(argv), {}, false, &backend, specs);
  if (prepared.isOk()) {
    // apid checks the backend's methods against the rules of its own descriptor set.
    prepared = writeBackendManifest(name, socket, manifest.services, uid, manifest.descriptorSet.string());
  }
  if (!prepared.isOk()) {
    specs.resize(before);
    return prepared.withContext(file.string());
  }
  return Status::ok();
}

Status Node::startSupervisor(std::vector<supervisor::ServiceSpec> specs) {
  supervisor::SupervisorOptions sopts;
  sopts.logs.dir = paths_.logDir();
  sopts.spawn = options_.spawn;
  // Services started by the spawner are reparented to machined, a child subreaper, which
  // then also inherits their orphans; every child of machined is the supervisor's.
  sopts.reapOrphans = true;
  auto sup = supervisor::Supervisor::create(sopts, std::move(specs), clock_);
  if (!sup.ok()) return sup.status().withContext("machine config services");
  supervisor_ = std::move(*sup);
  // machined's own log is kept like a service's: `keelctl logs machined`.
  auto logger = std::make_shared<spdlog::logger>(
      "machined", spdlog::sinks_init_list{spdlog::default_logger()->sinks().front(),
                                          std::make_shared<supervisor::LogStoreSink>(
                                              supervisor_->logStore(), std::string(supervisor::Supervisor::kMachinedLogId))});
  logger->set_level(spdlog::default_logger()->level());
  spdlog::set_default_logger(logger);
  serviceEvents_ = supervisor_->followEvents([this](const supervisor::Event& e) {
    if (e.type == supervisor::EventType::kExited && e.signal == SIGSYS) {
      // Killed by a seccomp filter: name the system call when the kernel's record of it
      // is already there (it is printed a moment later and rate-limited).
      std::string what = "a system call its sandbox forbids";
      if (auto kmsg = sandbox::readKernelLog(); kmsg.ok()) {
        if (auto nr = sandbox::findSeccompKill(*kmsg, e.pid)) {
          what = "the forbidden system call " + sandbox::describeSyscall(*nr) + " (" + std::to_string(*nr) + ")";
        }
      }
      spdlog::error("machined: service {} (pid {}) was killed by its sandbox for {}", e.serviceId, e.pid, what);
      journal_->record("service", e.serviceId, "sandbox-violation", "pid " + std::to_string(e.pid) + ": " + what);
    }
    journal_->record("service", e.serviceId, std::string(supervisor::eventTypeName(e.type)), e.message);
    const auto level = e.type == supervisor::EventType::kFailed   ? spdlog::level::err
                       : e.type == supervisor::EventType::kExited ? spdlog::level::warn
                                                                  : spdlog::level::info;
    spdlog::log(level, "machined: service {} {}: {}", e.serviceId, supervisor::eventTypeName(e.type), e.message);
  });
  return supervisor_->startAll();
}

Status Node::startServices() {
  const auto cfg = config_->current();
  std::vector<supervisor::ServiceSpec> specs;
  KEEL_RETURN_IF_ERROR(prepareBuiltins(cfg, specs));
  prepareBackends(cfg, specs);
  removeStaleRoutes();
  return startSupervisor(std::move(specs));
}

Status Node::startApi() {
  MachineServiceDeps deps;
  deps.supervisor = supervisor_.get();
  deps.facts = facts_.get();
  deps.files = files_.get();
  deps.config = config_.get();
  deps.events = journal_.get();
  deps.nodeName = options_.address;
  deps.kmsgPath = options_.kmsgPath;
  deps.power = [this](PowerAction a) { requestStop(a); };
  deps.bootDir = options_.bootDir;
  deps.bootedSlot = options_.bootedSlot;
  deps.rootDir = options_.root;
  deps.apidStateDir = paths_.stateDir("apid");
  deps.serviceVersions = serviceVersions_;
  service_ = std::make_unique<MachineServiceImpl>(std::move(deps));

  grpc::ServerBuilder builder;
  builder.RegisterService(service_.get());
  // grpc.health.v1, as every backend serves it: apid asks it for MachineService.
  builder.RegisterService(&health_);
  builder.SetMaxReceiveMessageSize(16 * 1024 * 1024);
  server_ = builder.BuildAndStart();
  if (!server_) return internalError("the machine API server did not start");

  const auto allowed = options_.allowedUids;
  auto* sup = supervisor_.get();
  auto listener = UnixListener::bind(paths_.socket("machined"), [allowed, sup](const transport::PeerCredentials& peer) {
    const auto pids = sup->servicePids();
    if (std::find(pids.begin(), pids.end(), peer.pid) != pids.end()) return Status::ok();
    if (std::find(allowed.begin(), allowed.end(), peer.uid) != allowed.end()) return Status::ok();
    return permissionDenied("pid " + std::to_string(peer.pid) + " is not a service machined started and uid " +
                            std::to_string(peer.uid) + " is not on the allow-list");
  });
  if (!listener.ok()) return listener.status();
  listener_ = std::move(*listener);
  if (geteuid() == 0) {
    // The socket's group is apid's: only machined and apid may reach it.
    const gid_t apidGid = apidGid_;
    if (chown(paths_.runDir().c_str(), 0, apidGid) != 0 || chown(paths_.socket("machined").c_str(), 0, apidGid) != 0) {
      return internalError("cannot give " + paths_.runDir().string() + " to apid's group: " + errnoText(errno));
    }
  }
  health_.setServing(keel::machine::v1::MachineService::service_full_name(), true);
  listener_->start(server_.get());
  return Status::ok();
}

void Node::requestStop(PowerAction action) {
  std::lock_guard lock(mu_);
  if (!requested_) requested_ = action;
  cv_.notify_all();
}

PowerAction Node::run() {
  PowerAction action;
  {
    std::unique_lock lock(mu_);
    while (!requested_) {
      cv_.wait_for(lock, kTick);
      lock.unlock();
      if (config_ && config_->expireTry()) spdlog::warn("machined: configuration rolled back");
      lock.lock();
    }
    action = *requested_;
  }
  spdlog::info("machined: {} requested; stopping the API and every service",
               action == PowerAction::kReboot ? "reboot" : action == PowerAction::kReset ? "reset" : "shutdown");
  stopAll();
  if (action == PowerAction::kReset) {
    const Status st = wipeState();
    if (!st.isOk()) spdlog::error("machined: reset did not wipe everything: {}", st.toString());
  }
  return action;
}

void Node::stopAll() {
  if (stopped_) return;
  stopped_ = true;
  health_.shutdown();
  if (listener_) listener_->stop();
  if (server_) server_->Shutdown(std::chrono::system_clock::now() + kApiDrain);
  serviceEvents_.reset();
  if (supervisor_) supervisor_->shutdown();
}

Status Node::wipeState() {
  // Only the state and log directories under the node's root: never its config, never
  // anything outside --root.
  for (const auto& dir : {paths_.stateRoot(), paths_.logDir()}) {
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
      fs::remove_all(entry.path(), ec);
      if (ec) return internalError("cannot remove " + entry.path().string() + ": " + ec.message());
    }
  }
  return Status::ok();
}

}  // namespace keel::machined
