// The gRPC adapter of the machine API: converts MachineService requests into calls on
// machined's plain-C++ components and their results into protobuf replies. The only
// file of machined that sees protobuf or grpc::ServerContext.
#pragma once

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "keel/backend/authorize.h"
#include "keel/config/machine_config.h"
#include "keel/machine/v1/machine.grpc.pb.h"
#include "src/boot/running_image.h"

namespace keel::supervisor {
class Supervisor;
}
namespace keel::facts {
class SystemFacts;
}

namespace keel::machined {

class ConfigStore;
class EventJournal;
class FileRoots;

enum class PowerAction { kReboot, kShutdown, kReset };

struct MachineServiceDeps {
  supervisor::Supervisor* supervisor = nullptr;
  const facts::SystemFacts* facts = nullptr;
  FileRoots* files = nullptr;
  ConfigStore* config = nullptr;
  EventJournal* events = nullptr;
  std::string nodeName;                       // stamped into each reply entry's metadata
  std::filesystem::path kmsgPath = "/dev/kmsg";
  // Starts a power action after the reply is sent. Must not block.
  std::function<void(PowerAction)> power;
  // A node booted from the OS image: the state disk's directory of root slots and boot
  // pointer (/var/lib/keel-boot), and the slot booted now ("factory", "a" or "b"). Empty
  // bootDir: machined runs as a process on a host, and Upgrade and Rollback are refused.
  std::filesystem::path bootDir;
  std::string bootedSlot = "factory";
  // What the initramfs said it is ("VERSION BUILD_ID"); empty outside the OS image.
  std::string initramfs;
  // The node's root (--root), where the factory root's image version is read: Version
  // reports the running image and Upgrade refuses an older one unless the request allows
  // a downgrade (readRunningImage; read at each call, the files are small).
  std::filesystem::path rootDir = "/";
  // apid's state directory: UpdateCertificateAuthorities reports which CA signed the
  // certificates apid holds there. Empty: not reported.
  std::filesystem::path apidStateDir;
  // The version of each service that declares one (backends, from their manifests).
  std::map<std::string, std::string> serviceVersions;
};

namespace v1 = keel::machine::v1;
using Empty = keel::common::v1::Empty;

// Every handler starts with KEEL_AUTHORIZE(ctx): the backend SDK's check of the roles apid
// forwarded against the method's rule (libs/backend/include/keel/backend/authorize.h).
class MachineServiceImpl final : public backend::AuthorizedService<keel::machine::v1::MachineService> {
 public:
  explicit MachineServiceImpl(MachineServiceDeps deps);

  grpc::Status Version(grpc::ServerContext* ctx, const Empty* req, v1::VersionResponse* resp) override;
  grpc::Status Hostname(grpc::ServerContext* ctx, const Empty* req, v1::HostnameResponse* resp) override;
  grpc::Status ServiceList(grpc::ServerContext* ctx, const Empty* req, v1::ServiceListResponse* resp) override;
  grpc::Status ServiceStart(grpc::ServerContext* ctx, const v1::ServiceRequest* req, v1::ServiceActionResponse* resp) override;
  grpc::Status ServiceStop(grpc::ServerContext* ctx, const v1::ServiceRequest* req, v1::ServiceActionResponse* resp) override;
  grpc::Status ServiceRestart(grpc::ServerContext* ctx, const v1::ServiceRequest* req, v1::ServiceActionResponse* resp) override;
  grpc::Status Memory(grpc::ServerContext* ctx, const Empty* req, v1::MemoryResponse* resp) override;
  grpc::Status LoadAvg(grpc::ServerContext* ctx, const Empty* req, v1::LoadAvgResponse* resp) override;
  grpc::Status CPUInfo(grpc::ServerContext* ctx, const Empty* req, v1::CPUInfoResponse* resp) override;
  grpc::Status Processes(grpc::ServerContext* ctx, const Empty* req, v1::ProcessesResponse* resp) override;
  grpc::Status Mounts(grpc::ServerContext* ctx, const Empty* req, v1::MountsResponse* resp) override;
  grpc::Status DiskUsage(grpc::ServerContext* ctx, const v1::DiskUsageRequest* req, v1::DiskUsageResponse* resp) override;
  grpc::Status NetworkDeviceStats(grpc::ServerContext* ctx, const Empty* req, v1::NetworkDeviceStatsResponse* resp) override;
  grpc::Status SystemStat(grpc::ServerContext* ctx, const Empty* req, v1::SystemStatResponse* resp) override;
  grpc::Status Uptime(grpc::ServerContext* ctx, const Empty* req, v1::UptimeResponse* resp) override;
  grpc::Status GetConfiguration(grpc::ServerContext* ctx, const Empty* req, v1::GetConfigurationResponse* resp) override;
  grpc::Status ApplyConfiguration(grpc::ServerContext* ctx, const v1::ApplyConfigurationRequest* req, v1::ApplyConfigurationResponse* resp) override;
  grpc::Status ConfirmConfiguration(grpc::ServerContext* ctx, const Empty* req, v1::ConfirmConfigurationResponse* resp) override;
  grpc::Status UpdateJoinTokens(grpc::ServerContext* ctx, const v1::UpdateJoinTokensRequest* req,
                                v1::UpdateJoinTokensResponse* resp) override;
  grpc::Status UpdateCertificateAuthorities(grpc::ServerContext* ctx, const v1::UpdateCertificateAuthoritiesRequest* req,
                                            v1::UpdateCertificateAuthoritiesResponse* resp) override;
  grpc::Status Reboot(grpc::ServerContext* ctx, const Empty* req, v1::PowerResponse* resp) override;
  grpc::Status Shutdown(grpc::ServerContext* ctx, const Empty* req, v1::PowerResponse* resp) override;
  grpc::Status Reset(grpc::ServerContext* ctx, const Empty* req, v1::PowerResponse* resp) override;
  grpc::Status Upgrade(grpc::ServerContext* ctx, grpc::ServerReader<v1::UpgradeRequest>* reader,
                       v1::UpgradeResponse* resp) override;
  grpc::Status Rollback(grpc::ServerContext* ctx, const Empty* req, v1::RollbackResponse* resp) override;
  grpc::Status Logs(grpc::ServerContext* ctx, const v1::LogsRequest* req, grpc::ServerWriter<v1::LogLine>* writer) override;
  grpc::Status Dmesg(grpc::ServerContext* ctx, const v1::DmesgRequest* req, grpc::ServerWriter<v1::LogLine>* writer) override;
  grpc::Status Events(grpc::ServerContext* ctx, const v1::EventsRequest* req, grpc::ServerWriter<v1::Event>* writer) override;
  grpc::Status List(grpc::ServerContext* ctx, const v1::ListRequest* req, grpc::ServerWriter<v1::FileInfo>* writer) override;
  grpc::Status Read(grpc::ServerContext* ctx, const v1::ReadRequest* req, grpc::ServerWriter<v1::DataChunk>* writer) override;

 private:
  // Applies `next`, computed from `current`, without a reboot through the config store
  // (UpdateJoinTokens, UpdateCertificateAuthorities). False when it changes nothing.
  Result<bool> applyLive(const config::MachineConfig& current, const config::MachineConfig& next);
  // Records an upgrade that was refused (an event, a log line) and returns its status.
  grpc::Status refuseUpgrade(const Status& why, bool downgrade);
  // The image the node runs; nullopt when unknown (a damaged record is logged).
  // The image this boot runs: read once (it changes only with a reboot), not per call.
  std::optional<RunningImage> runningImage() const;
  mutable std::once_flag runningOnce_;
  mutable std::optional<RunningImage> running_;
  MachineServiceDeps deps_;
  // The running kernel, "RELEASE VERSION" from uname(2): fixed until the next boot.
  std::string kernel_;
  std::mutex upgradeMu_;  // one Upgrade or Rollback at a time
};

}  // namespace keel::machined
