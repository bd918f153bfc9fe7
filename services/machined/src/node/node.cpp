// The node: its directories, the order it starts in (config, services, API), its run loop
// and its stop.
#include "src/node/node.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "keel/apis/builtin.h"
#include "keel/common/status.h"
#include "keel/facts/system_facts.h"
#include "keel/sandbox/diagnostics.h"
#include "keel/supervisor/log_sink.h"
#include "keel/supervisor/supervisor.h"
#include "keel/transport/unix_listener.h"
#include "src/boot/slot_writer.h"
#include "src/state/config_store.h"
#include "src/state/event_journal.h"
#include "src/state/file_roots.h"

#include "src/node/node_detail.h"

namespace keel::machined {

namespace fs = std::filesystem;

namespace {

// Calls that stream (logs -f) get this long to finish when the node stops.
constexpr auto kApiDrain = std::chrono::seconds(2);
constexpr auto kTick = std::chrono::milliseconds(250);

}  // namespace

Status makeDir(const fs::path& dir, fs::perms perms) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return internalError("cannot create " + dir.string() + ": " + ec.message());
  fs::permissions(dir, perms, fs::perm_options::replace, ec);
  if (ec) return internalError("cannot set the mode of " + dir.string() + ": " + ec.message());
  return Status::ok();
}


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
  if (!options_.bootDir.empty()) {
    // An upgrade cut short by a power cut or a crash left its partial files behind.
    if (const auto removed = removeStalePartials(options_.bootDir); !removed.ok()) {
      spdlog::warn("machined: {}", removed.status().message());
    } else if (*removed > 0) {
      journal_->record("machine", "upgrade", "cut-short",
                       std::to_string(*removed) + " partial file(s) of an upgrade that did not finish removed");
    }
  }
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
  KEEL_RETURN_IF_ERROR(writeRoute("machined", paths_.socket("machined"), {apis::kMachineService},
                                            geteuid()));
  KEEL_RETURN_IF_ERROR(startServices());
  const Status api = startApi();
  if (!api.isOk()) {
    stopAll();
    return api;
  }
  journal_->record("config", "machine-config", "loaded",
                   std::string(config::machineTypeName(cfg.type)) + " node of cluster " + cfg.clusterName);
  if (options_.bootMark) markBootStep("machined's API up", false);
  spdlog::info("machined: node {} is up; API on {}", options_.address, paths_.socket("machined").string());
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
  if (options_.bootMark) watchBootSteps();
  return supervisor_->startAll();
}

void Node::markBootStep(const std::string& step, bool last) {
  std::lock_guard lock(timelineMu_);
  // A restart or a renewal says it again: the boot's first time counts.
  if (!marked_.insert(step).second) return;
  timeline_ += (timeline_.empty() ? "" : ", ") + options_.bootMark(step);
  if (last) journal_->record("machine", "boot", "timeline", timeline_);
}

void Node::watchBootSteps() {
  {
    std::lock_guard lock(timelineMu_);
    timeline_ = options_.bootTimeline;
  }
  struct Step {
    std::string_view service, line, step;
    bool last;
  };
  static constexpr Step kSteps[] = {{"trustd", "trustd: serving on ", "trustd ready", false},
                                    {"apid", "apid: new certificate from ", "apid's certificates", false},
                                    {"apid", "apid: listening on ", "apid listening", true}};
  for (const std::string_view service : {"trustd", "apid"}) {
    auto followed = supervisor_->followLogs(service, [this, service](const std::string& line) {
      for (const auto& s : kSteps) {
        if (s.service == service && line.find(s.line) != std::string::npos) markBootStep(std::string(s.step), s.last);
      }
    });
    // A worker runs no trustd.
    if (followed.ok()) bootStepLogs_.push_back(std::move(*followed));
  }
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
  deps.initramfs = options_.initramfs;
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
  bootStepLogs_.clear();
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
