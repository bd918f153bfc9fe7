// The node unit every service shares: its account, its spec and config file, how it is confined;
// and the built-in services of a node type.
#include "src/node/node.h"

#include <pwd.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "keel/config/file_io.h"
#include "src/state/event_journal.h"

#include "src/node/node_detail.h"

namespace keel::machined {

namespace fs = std::filesystem;

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
  std::string file = own.dump(2) + "\n";
  if (name == "trustd") {
    KEEL_ASSIGN_OR_RETURN(file, trustdConfigFile(cfg));
  }
  if (name == "apid") {
    KEEL_ASSIGN_OR_RETURN(file, apidConfigFile(cfg, owned));
  }
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
  KEEL_RETURN_IF_ERROR(config::writePrivateFile(spec.configFile, file, config::Overwrite::kYes));
  specs.push_back(std::move(spec));
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

}  // namespace keel::machined
