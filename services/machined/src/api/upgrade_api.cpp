// The machine API: installing a signed image into a root slot, and rolling back.
#include "src/api/machine_service.h"

#include <mutex>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "src/state/config_store.h"
#include "src/state/event_journal.h"
#include "keel/common/version.h"
#include "keel/transport/grpc_status.h"
#include "src/boot/slot_writer.h"
#include "src/api/api_detail.h"

namespace keel::machined {

using transport::toGrpc;

namespace {

// An image file larger than the format allows is refused from the call's header, before
// its signature is even checked.
constexpr uint64_t kMaxImageBytes = image::kHeaderSize + image::kMaxManifestBytes + image::kMaxPayloadBytes;

Status checkBootsFromSlots(const MachineServiceDeps& deps) {
  if (deps.bootDir.empty()) {
    return failedPrecondition(
        "this node does not boot from root slots: machined runs as a process on a host, not as the Keel OS "
        "image's PID 1, so there is no root to upgrade or roll back");
  }
  return Status::ok();
}

// The image's bytes after the header, into `writer`.
Status streamImage(grpc::ServerContext* ctx, grpc::ServerReader<v1::UpgradeRequest>* reader, SlotWriter& writer) {
  v1::UpgradeRequest req;
  while (reader->Read(&req)) {
    if (req.part_case() != v1::UpgradeRequest::kChunk) {
      return invalidArgument("expected the image's bytes after the header, found a second header");
    }
    KEEL_RETURN_IF_ERROR(writer.write(req.chunk()));
  }
  if (ctx->IsCancelled()) return {StatusCode::kCancelled, "the upgrade was cancelled; nothing changed"};
  return Status::ok();
}

std::string describe(const std::optional<RunningImage>& image) {
  if (!image) return "an image of unknown version";
  return fmt::format("{} (build {})", image->version.toString(), image->buildId);
}

}  // namespace

std::optional<RunningImage> MachineServiceImpl::runningImage() const {
  std::call_once(runningOnce_, [this] {
    auto running = readRunningImage(deps_.bootDir, deps_.bootedSlot, deps_.rootDir);
    if (running.ok()) {
      running_ = *running;
    } else {
      spdlog::warn("machined: the running image's version is unknown: {}", running.status().message());
    }
  });
  return running_;
}

grpc::Status MachineServiceImpl::refuseUpgrade(const Status& why, bool downgrade) {
  if (why.code() != StatusCode::kCancelled) {
    spdlog::warn("upgrade refused: {}", why.message());
    deps_.events->record("machine", "upgrade", downgrade ? "downgrade-refused" : "refused", why.message());
  }
  return toGrpc(why);
}

grpc::Status MachineServiceImpl::Upgrade(grpc::ServerContext* ctx, grpc::ServerReader<v1::UpgradeRequest>* reader,
                                         v1::UpgradeResponse* resp) {
  KEEL_AUTHORIZE(ctx);
  if (const Status s = checkBootsFromSlots(deps_); !s.isOk()) return toGrpc(s);
  const auto key = deps_.config->current().imageSigningKey;
  if (!key) {
    return toGrpc(failedPrecondition(
        "the machine config has no machine.upgrade.publicKey, so no image can be trusted: apply a config that "
        "names the public key your images are signed with ('keelctl gen image-key' makes a pair)"));
  }
  std::unique_lock lock(upgradeMu_, std::try_to_lock);
  if (!lock.owns_lock()) return toGrpc({StatusCode::kAborted, "another upgrade or rollback is in progress"});
  if (const Status s = checkUpgradeAllowed(deps_.bootDir, deps_.bootedSlot); !s.isOk()) return toGrpc(s);
  v1::UpgradeRequest req;
  if (!reader->Read(&req) || req.part_case() != v1::UpgradeRequest::kHeader) {
    return toGrpc(invalidArgument("expected the upgrade's header (size, sha256, signature) as its first message"));
  }
  const v1::UpgradeHeader header = req.header();
  if (header.size() > kMaxImageBytes) {
    return toGrpc(invalidArgument(
        fmt::format("the image is {} bytes; at most {} are accepted", header.size(), kMaxImageBytes)));
  }
  const std::optional<RunningImage> running = runningImage();
  bool downgradeRefused = false;
  const ManifestCheck versionPolicy = [&](const image::Manifest& m) {
    Status s = checkImageVersion(running, m, header.allow_downgrade());
    downgradeRefused = !s.isOk();
    return s;
  };
  auto writer = SlotWriter::begin(deps_.bootDir, deps_.bootedSlot, header.sha256(), header.signature(), *key,
                                  header.size(), versionPolicy);
  if (!writer.ok()) return refuseUpgrade(writer.status(), false);
  if (const Status s = streamImage(ctx, reader, **writer); !s.isOk()) return refuseUpgrade(s, downgradeRefused);
  auto slot = (*writer)->finish();
  if (!slot.ok()) return refuseUpgrade(slot.status(), false);
  const image::Manifest& manifest = *(*writer)->manifest();
  const bool downgrade = !running || manifest.version < running->version;
  const std::string message = fmt::format(
      "installed image {} (build {}) into slot {}{}; the next boot tries it, falling back to slot {} ({})",
      manifest.version.toString(), manifest.buildId, *slot,
      downgrade ? ", allowed as a downgrade by the request" : "", deps_.bootedSlot, describe(running));
  spdlog::info("{}", message);
  deps_.events->record("machine", "upgrade", downgrade ? "downgraded" : "installed", message);
  auto* m = resp->add_messages();
  KEEL_META(m);
  m->set_slot(*slot);
  m->set_previous(deps_.bootedSlot);
  m->set_bytes(header.size());
  m->set_rebooting(!header.no_reboot());
  m->set_version(manifest.version.toString());
  if (running) m->set_previous_version(running->version.toString());
  if (!header.no_reboot()) deps_.power(PowerAction::kReboot);
  return grpc::Status::OK;
}

grpc::Status MachineServiceImpl::Rollback(grpc::ServerContext* ctx, const Empty*, v1::RollbackResponse* resp) {
  KEEL_AUTHORIZE(ctx);
  if (const Status s = checkBootsFromSlots(deps_); !s.isOk()) return toGrpc(s);
  std::unique_lock lock(upgradeMu_, std::try_to_lock);
  if (!lock.owns_lock()) return toGrpc({StatusCode::kAborted, "another upgrade or rollback is in progress"});
  const std::string& booted = deps_.bootedSlot;
  auto rolledBack = rollBack(deps_.bootDir, booted);
  if (!rolledBack.ok()) return toGrpc(rolledBack.status());
  const std::string target = *rolledBack;
  const std::string message = fmt::format("rolling back from slot {} to slot {}", booted, target);
  spdlog::info("{}", message);
  deps_.events->record("machine", "rollback", "requested", message);
  auto* m = resp->add_messages();
  KEEL_META(m);
  m->set_slot(target);
  m->set_previous(booted);
  deps_.power(PowerAction::kReboot);
  return grpc::Status::OK;
}

}  // namespace keel::machined
