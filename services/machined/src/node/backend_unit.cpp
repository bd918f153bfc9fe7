// The node unit for backends that ship a manifest: each checked on its own, its socket
// directory, account and route.
#include "src/node/node.h"

#include <unistd.h>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "src/state/event_journal.h"

#include "src/node/node_detail.h"

namespace keel::machined {

namespace fs = std::filesystem;

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
    prepared = writeRoute(name, socket, manifest.services, uid, manifest.descriptorSet.string());
  }
  if (!prepared.isOk()) {
    specs.resize(before);
    return prepared.withContext(file.string());
  }
  return Status::ok();
}

}  // namespace keel::machined
