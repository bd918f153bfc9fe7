#include "src/boot/slot_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>

#include "keel/common/assert.h"
#include "keel/pki/pki.h"
#include "keel/common/status.h"

namespace keel::machined {

namespace fs = std::filesystem;

namespace {

std::optional<std::string> fromHex(std::string_view hex) {
  if (hex.size() != 64) return std::nullopt;
  std::string out;
  for (size_t i = 0; i < hex.size(); i += 2) {
    int v = 0;
    for (const char c : hex.substr(i, 2)) {
      v <<= 4;
      if (c >= '0' && c <= '9') v |= c - '0';
      else if (c >= 'a' && c <= 'f') v |= c - 'a' + 10;
      else return std::nullopt;
    }
    out.push_back(static_cast<char>(v));
  }
  return out;
}

Status syncDir(const fs::path& dir) {
  const int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return internalError("cannot open " + dir.string() + ": " + errnoText(errno));
  const int rc = fsync(fd);
  close(fd);
  if (rc != 0) return internalError("cannot sync " + dir.string() + ": " + errnoText(errno));
  return Status::ok();
}

Status writeDurably(const fs::path& path, std::string_view text) {
  const fs::path tmp = path.string() + ".new";
  const int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return internalError("cannot create " + tmp.string() + ": " + errnoText(errno));
  const bool ok = write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) && fsync(fd) == 0;
  close(fd);
  if (!ok || rename(tmp.c_str(), path.c_str()) != 0) {
    return internalError("cannot write " + path.string() + ": " + errnoText(errno));
  }
  return syncDir(path.parent_path());
}

}  // namespace

std::string inactiveSlot(std::string_view booted) { return booted == "a" ? "b" : "a"; }

Result<std::optional<BootPointer>> readBootPointer(const fs::path& dir) {
  const fs::path path = dir / "pointer";
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    if (errno == ENOENT) return std::optional<BootPointer>();
    return internalError("cannot read " + path.string() + ": " + errnoText(errno));
  }
  std::string text(256, '\0');
  const ssize_t n = ::read(fd, text.data(), text.size());
  close(fd);
  if (n < 0) return internalError("cannot read " + path.string() + ": " + errnoText(errno));
  text.resize(static_cast<size_t>(n));
  const auto parsed = parseBootPointer(text);
  if (!parsed.complete) {
    return dataLoss(path.string() + " does not name a slot to boot, one to fall back to and the tries left");
  }
  return std::optional<BootPointer>(parsed.pointer);
}

Status writeBootPointer(const fs::path& dir, std::string_view boot, std::string_view fallback, int tries) {
  return writeDurably(dir / "pointer",
                      formatBootPointer({.boot = std::string(boot), .fallback = std::string(fallback), .tries = tries}));
}

Status checkUpgradeAllowed(const fs::path& dir, const std::string& booted) {
  KEEL_ASSIGN_OR_RETURN(const auto pointer, readBootPointer(dir));
  if (pointer && pointer->boot == booted && pointer->tries >= 0) {
    return failedPrecondition("slot " + booted +
                              " is on trial until it serves the API; upgrade again once it is kept (or rolled back)");
  }
  return Status::ok();
}

Result<std::string> rollBack(const fs::path& dir, const std::string& booted) {
  KEEL_ASSIGN_OR_RETURN(const auto pointer, readBootPointer(dir));
  if (!pointer || (pointer->boot == booted && pointer->fallback == booted)) {
    return failedPrecondition("slot " + booted + " is the only slot this node has booted: there is nothing to roll "
                              "back to");
  }
  if (pointer->boot != booted) {
    return failedPrecondition("the next boot already leaves slot " + booted + " for slot " + pointer->boot +
                              "; reboot to try it, or upgrade again");
  }
  const std::string target = pointer->fallback;
  std::error_code ec;
  if (target != "factory" && !fs::exists(slotFiles(dir, target).root, ec)) {
    return failedPrecondition("slot " + target + " is no longer on the state disk");
  }
  KEEL_RETURN_IF_ERROR(writeBootPointer(dir, target, booted, -1));
  return target;
}

SlotFiles slotFiles(const fs::path& dir, std::string_view slot) {
  const std::string base = "slot-" + std::string(slot);
  return {.root = dir / (base + ".squashfs"),
          .kernel = dir / (base + ".vmlinuz"),
          .initramfs = dir / (base + ".initrd"),
          .verity = dir / (base + ".verity"),
          .manifest = dir / (base + ".manifest.json"),
          .signature = dir / (base + ".manifest.sig")};
}

namespace {

// Where each part and the signed bytes go, in the order finish() puts them in place: the
// root last but for the manifest, so a slot's manifest always describes its root.
std::vector<std::pair<std::string, fs::path>> slotTargets(const fs::path& dir, std::string_view slot) {
  const SlotFiles f = slotFiles(dir, slot);
  return {{"kernel", f.kernel},     {"initramfs", f.initramfs}, {"verity", f.verity},
          {"root", f.root},         {"signature", f.signature}, {"manifest", f.manifest}};
}

fs::path partialOf(const fs::path& p) { return p.string() + ".partial"; }

Status writeAll(int fd, std::string_view bytes) {
  size_t off = 0;
  while (off < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + off, bytes.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return internalError("cannot write the new slot: " + std::string(errnoText(errno)));
    off += static_cast<size_t>(n);
  }
  return Status::ok();
}

}  // namespace

Result<int> removeStalePartials(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return 0;
  int removed = 0;
  for (const auto& slot : {"a", "b"}) {
    for (const auto& [_, path] : slotTargets(dir, slot)) {
      const fs::path partial = partialOf(path);
      if (!fs::is_regular_file(fs::symlink_status(partial, ec))) continue;
      if (!fs::remove(partial, ec) || ec) return internalError("cannot remove " + partial.string() + ": " + ec.message());
      ++removed;
    }
  }
  return removed;
}

Result<std::unique_ptr<SlotWriter>> SlotWriter::begin(fs::path dir, std::string booted, std::string_view manifestSha256Hex,
                                     std::string_view signature, std::string_view publicKeyPem, uint64_t size,
                                     ManifestCheck check) {
  const auto digest = fromHex(manifestSha256Hex);
  if (!digest) return invalidArgument("expected the image manifest's SHA-256 as 64 lowercase hex digits");
  if (size <= image::kHeaderSize) return invalidArgument("the image is too short to hold a manifest");
  // The signature covers the manifest, whose hashes cover every part: checked before a
  // byte is written, so an unsigned image never reaches the disk.
  KEEL_RETURN_IF_ERROR(pki::verifyDigestSignature(publicKeyPem, *digest, signature));
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return internalError("cannot create " + dir.string() + ": " + ec.message());
  // Not make_unique: the constructor is private.
  std::unique_ptr<SlotWriter> w(
      new SlotWriter(std::move(dir), std::move(booted), size, std::string(signature), std::move(check)));
  SlotWriter* self = w.get();
  w->verifier_ = std::make_unique<image::ImageStreamVerifier>(
      *digest, size,
      image::ImageStreamVerifier::Callbacks{
          .manifest =
              [self](const image::Manifest& m, std::string_view bytes) {
                if (self->check_) KEEL_RETURN_IF_ERROR(self->check_(m));
                return self->openPartials(bytes);
              },
          .part = [self](const image::Part& p, std::string_view bytes) { return self->writePart(p, bytes); }});
  return w;
}

SlotWriter::SlotWriter(fs::path dir, std::string booted, uint64_t size, std::string signature, ManifestCheck check)
    : dir_(std::move(dir)),
      booted_(std::move(booted)),
      target_(inactiveSlot(booted_)),
      signature_(std::move(signature)),
      size_(size),
      check_(std::move(check)) {}

SlotWriter::~SlotWriter() {
  if (!done_) removePartials();
}

void SlotWriter::removePartials() {
  std::error_code ec;
  for (const auto& [_, path] : slotTargets(dir_, target_)) fs::remove(partialOf(path), ec);
}

// Called once the manifest matches the signed hash: the version policy, then one partial
// file per target, the manifest and signature written at once.
Status SlotWriter::openPartials(std::string_view manifestBytes) {
  for (const auto& [name, path] : slotTargets(dir_, target_)) {
    const fs::path partial = partialOf(path);
    const int fd = open(partial.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) return internalError("cannot create " + partial.string() + ": " + errnoText(errno));
    fds_[name].reset(fd);
  }
  KEEL_RETURN_IF_ERROR(writeAll(fds_["manifest"].get(), manifestBytes));
  return writeAll(fds_["signature"].get(), signature_);
}

Status SlotWriter::writePart(const image::Part& part, std::string_view bytes) {
  const auto it = fds_.find(part.name);
  KEEL_RELEASE_ASSERT(it != fds_.end(), "a part the manifest parser does not allow: " + part.name);
  return writeAll(it->second.get(), bytes);
}

Status SlotWriter::write(std::string_view chunk) {
  if (done_) return failedPrecondition("the upgrade is over");
  return verifier_->feed(chunk);
}

Result<std::string> SlotWriter::finish() {
  if (done_) return failedPrecondition("the upgrade is over");
  KEEL_RETURN_IF_ERROR(verifier_->finish());
  for (auto& [name, fd] : fds_) {
    if (fsync(fd.get()) != 0) return internalError("cannot sync the new slot: " + errnoText(errno));
    fd.reset();
  }
  fds_.clear();
  for (const auto& [_, path] : slotTargets(dir_, target_)) {
    if (rename(partialOf(path).c_str(), path.c_str()) != 0) {
      return internalError("cannot install the new slot: " + std::string(errnoText(errno)));
    }
  }
  done_ = true;
  KEEL_RETURN_IF_ERROR(syncDir(dir_));
  KEEL_RETURN_IF_ERROR(writeBootPointer(dir_, target_, booted_, 1));
  return target_;
}

}  // namespace keel::machined
