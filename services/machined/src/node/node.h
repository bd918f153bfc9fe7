// A running node: machined's components wired together. Prepares the node's
// directories, loads the machine config, supervises the services it declares, serves
// the machine API on machined.sock, and carries out power actions. main() only parses
// flags and calls into this, so integration tests drive a whole node the same way.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "src/node/accounts.h"
#include "src/backends/backend_manifest.h"
#include "src/backends/backend_resources.h"
#include "keel/backend/health.h"
#include "keel/common/clock.h"
#include "keel/common/status.h"
#include "keel/config/machine_config.h"
#include "keel/sandbox/policy.h"
#include "keel/supervisor/subscription.h"
#include "keel/supervisor/supervisor.h"
#include "src/api/machine_service.h"
#include "src/trust/apid_identity.h"
#include "src/paths.h"

namespace grpc {
class Server;
}

namespace keel::machined {

class ConfigStore;
class EventJournal;
class FileRoots;
}  // namespace keel::machined
namespace keel::transport {
class UnixListener;
}  // namespace keel::transport
namespace keel::machined {
using transport::UnixListener;

struct NodeOptions {
  std::filesystem::path root = "/";
  std::optional<std::filesystem::path> configPath;  // used when no config is stored yet
  std::string address;                              // the node's address: its name in replies
  int apiPort = 50000;                              // apid's API port on `address`
  // apid's join listener on a control plane, and the port a worker joins the control
  // plane on (a cluster uses one port for it).
  int joinPort = 50001;
  // Peers allowed on machined.sock by uid, besides the services machined started.
  std::vector<uid_t> allowedUids;
  std::filesystem::path kmsgPath = "/dev/kmsg";
  // Where the built-in service binaries (apid, trustd) are installed.
  std::filesystem::path libexecDir;
  // Where backend manifests (<name>.json, see backend_manifest.h) are looked up for the
  // names in machine.backends. Empty: <libexecDir>/backends.
  std::filesystem::path backendsDir;
  std::filesystem::path procRoot = "/proc";
  std::filesystem::path sysRoot = "/sys";
  // Services started by machined: shorter timings make tests fast.
  std::chrono::milliseconds serviceSettleTime{1000};
  std::chrono::milliseconds serviceStopGrace{10'000};
  // Booted from the OS image: the state disk's root slots and boot pointer, and the slot
  // booted now (see MachineServiceDeps). Empty: Upgrade and Rollback are refused.
  std::filesystem::path bootDir;
  std::string bootedSlot = "factory";
  // The initramfs the node booted with, as it names itself (KEEL_INITRAMFS).
  std::string initramfs;
  // Booted from the OS image: marks a step of the boot timeline (src/boot/boot_timeline.h)
  // and returns it as "STEP T s"; empty outside the image. `bootTimeline` holds the steps
  // keel_init and PID 1 marked before ("STEP T s, …"); once apid listens, the whole
  // timeline is an event (machine/boot/timeline).
  std::function<std::string(const std::string&)> bootMark;
  std::string bootTimeline;
  // Why the initramfs booted the previous slot instead of the pointer's (empty: it did not);
  // recorded as a rollback event when the node starts.
  std::string bootFallback;
  // Starts a service process outside this process (machined's spawner), confined as
  // ServiceSpec::sandbox says; the process must be a child of this one (see
  // SupervisorOptions::spawn). Required: start() refuses to run without it.
  std::function<Result<supervisor::SpawnedProcess>(const supervisor::ServiceSpec&)> spawn;
  // The uid and gid of an account, nullopt when there is none. Empty: getpwnam in this
  // process (name lookups may need calls a confined machined may not make).
  std::function<Result<std::optional<std::pair<uid_t, gid_t>>>(const std::string&)> lookupAccount;
};

class Node {
 public:
  Node(NodeOptions options, const Clock& clock);
  ~Node();
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  // Prepares directories and config, starts the services and the API. On error nothing
  // keeps running.
  Status start();

  // Blocks until a power action is requested (through the API or requestStop()), runs
  // the periodic work meanwhile (rolling back an unconfirmed tried config), then stops
  // the API and every service. For kReset it also wipes the state directories. Returns
  // the action: the caller exits (kShutdown) or re-executes machined (kReboot, kReset).
  PowerAction run();

  // Asks run() to return with `action`. Thread-safe and async-signal-unsafe.
  void requestStop(PowerAction action);

  const NodePaths& paths() const { return paths_; }

 private:
  Status prepareDirectories();
  // Announces a backend to apid: <root>/run/keel/backends.d/<name>.json routing `services`
  // to `socket`, served by `uid`, with `rules` ("builtin" or the absolute path of the
  // backend's descriptor set). Remembers `name` as routed in this run.
  Status writeRoute(const std::string& name, const std::filesystem::path& socket,
                              const std::vector<std::string>& services, uid_t uid, const std::string& rules = "builtin");
  // Removes the routing manifests not written in this run (a backend no longer configured,
  // trustd on a node that is no longer a control plane).
  void removeStaleRoutes();
  // The services of the machine config, started under the supervisor: the built-in ones
  // installed (trustd, apid), the extensions, then each backend whose manifest passes.
  Status startServices();
  // A backend daemon's checked manifest and what it loaded (its seccomp profile).
  struct ServiceBackend {
    const BackendManifest& manifest;
    const BackendResources& resources;
  };
  // Adds service `name`'s spec to `specs` and writes its config file (0600): what it
  // needs to know (its socket, state directory, the node's address; more for apid, trustd
  // and backends), nothing else of the node's secrets.
  Status prepareService(const config::MachineConfig& cfg, const std::string& name, std::vector<std::string> argv,
                        std::vector<std::string> dependsOn, bool mayCallMachined, const ServiceBackend* backend,
                        std::vector<supervisor::ServiceSpec>& specs);
  // One unit per built-in service (apid_unit.cpp, trustd_unit.cpp): its config file, and
  // the paths it owns besides its state directory and config file.
  Result<std::string> apidConfigFile(const config::MachineConfig& cfg, std::vector<std::filesystem::path>& owned);
  Result<std::string> trustdConfigFile(const config::MachineConfig& cfg);
  // What apid's identity and trustd's settings are derived from, for this node.
  Result<ApidIdentityRequest> identityRequest(const config::MachineConfig& cfg) const;
  // A backend's socket, version and the peers that may connect to it.
  Status describeBackend(const std::string& name, const BackendManifest& manifest, nlohmann::json& own);
  Status prepareBuiltins(const config::MachineConfig& cfg, std::vector<supervisor::ServiceSpec>& specs);
  // Each backend is checked on its own: a bad one is refused and logged, and the node and
  // the other backends start as if it were not configured.
  void prepareBackends(const config::MachineConfig& cfg, std::vector<supervisor::ServiceSpec>& specs);
  Status prepareBackend(const config::MachineConfig& cfg, const std::string& name, const std::filesystem::path& file,
                        const BackendManifest& manifest, BackendClaims& claims,
                        std::vector<supervisor::ServiceSpec>& specs);
  // The supervisor over `specs`, machined's own log kept like a service's, events journaled.
  Status startSupervisor(std::vector<supervisor::ServiceSpec> specs);
  // Live application of a new join-token set or CA rotation step (ConfigStore's live
  // applier): trustd's config and a restart of trustd on a control plane, then apid's CA
  // bundle (apid re-reads it) and a worker's join token.
  void applyTrust(const config::MachineConfig& cfg);
  // The account service `name` runs under when machined runs as root: keel-<name> when
  // the packaging made it; else nobody for a built-in, and for a backend or an extension
  // a uid of its own that machined gives it (accounts.h).
  Result<std::pair<uid_t, gid_t>> serviceAccount(const std::string& name, bool builtin);
  Status startApi();
  // The boot timeline's steps that trustd's and apid's own log lines announce.
  void watchBootSteps();
  void markBootStep(const std::string& step, bool last);
  void stopAll();
  Status wipeState();

  NodeOptions options_;
  const Clock& clock_;
  NodePaths paths_;
  std::unique_ptr<ConfigStore> config_;
  std::unique_ptr<EventJournal> journal_;
  std::unique_ptr<FileRoots> files_;
  std::unique_ptr<facts::SystemFacts> facts_;
  std::unique_ptr<supervisor::Supervisor> supervisor_;
  supervisor::Subscription serviceEvents_;
  std::mutex timelineMu_;
  std::string timeline_;
  std::set<std::string> marked_;
  std::vector<supervisor::Subscription> bootStepLogs_;
  DynamicAccounts accounts_{paths_.stateDir("machined") / "accounts.json"};
  std::unique_ptr<MachineServiceImpl> service_;
  backend::HealthService health_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<UnixListener> listener_;

  gid_t apidGid_ = 0;
  // Names of the backends.d manifests written in this run.
  std::set<std::string> routed_;
  // A backend's version by service id, for the service list.
  std::map<std::string, std::string> serviceVersions_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::optional<PowerAction> requested_;
  bool stopped_ = false;
};

}  // namespace keel::machined
