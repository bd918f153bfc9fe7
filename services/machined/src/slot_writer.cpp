#include "slot_writer.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>

#include "keel/pki/pki.h"

namespace keel::machined {

namespace fs = std::filesystem;

namespace {

fs::path slotFile(const fs::path& dir, std::string_view slot) { return dir / ("slot-" + std::string(slot) + ".squashfs"); }
fs::path partialFile(const fs::path& dir, std::string_view slot) {
  return dir / ("slot-" + std::string(slot) + ".squashfs.partial");
}

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
  if (fd < 0) return internalError("cannot open " + dir.string() + ": " + std::strerror(errno));
  const int rc = fsync(fd);
  close(fd);
  if (rc != 0) return internalError("cannot sync " + dir.string() + ": " + std::strerror(errno));
  return Status::ok();
}

Status writeDurably(const fs::path& path, std::string_view text) {
  const fs::path tmp = path.string() + ".new";
  const int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return internalError("cannot create " + tmp.string() + ": " + std::strerror(errno));
  const bool ok = write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) && fsync(fd) == 0;
  close(fd);
  if (!ok || rename(tmp.c_str(), path.c_str()) != 0) {
    return internalError("cannot write " + path.string() + ": " + std::strerror(errno));
  }
  return syncDir(path.parent_path());
}

}  // namespace

void SlotWriter::HashDeleter::operator()(void* ctx) const { EVP_MD_CTX_free(static_cast<EVP_MD_CTX*>(ctx)); }

std::string inactiveSlot(std::string_view booted) { return booted == "a" ? "b" : "a"; }

Result<std::optional<BootPointer>> readBootPointer(const fs::path& dir) {
  const fs::path path = dir / "pointer";
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    if (errno == ENOENT) return std::optional<BootPointer>();
    return internalError("cannot read " + path.string() + ": " + std::strerror(errno));
  }
  std::string text(256, '\0');
  const ssize_t n = ::read(fd, text.data(), text.size());
  close(fd);
  if (n < 0) return internalError("cannot read " + path.string() + ": " + std::strerror(errno));
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
  if (target != "factory" && !fs::exists(slotFile(dir, target), ec)) {
    return failedPrecondition("slot " + target + " is no longer on the state disk");
  }
  KEEL_RETURN_IF_ERROR(writeBootPointer(dir, target, booted, -1));
  return target;
}

Result<SlotWriter> SlotWriter::begin(fs::path dir, std::string booted, std::string_view sha256Hex,
                                     std::string_view signature, std::string_view publicKeyPem, uint64_t size) {
  const auto digest = fromHex(sha256Hex);
  if (!digest) return invalidArgument("expected the image's SHA-256 as 64 lowercase hex digits");
  if (size == 0) return invalidArgument("the image is empty");
  // The signature covers the image's SHA-256: checked before a byte is written, so an
  // unsigned image never reaches the disk.
  KEEL_RETURN_IF_ERROR(pki::verifyDigestSignature(publicKeyPem, *digest, signature));
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return internalError("cannot create " + dir.string() + ": " + ec.message());
  const std::string target = inactiveSlot(booted);
  const fs::path partial = partialFile(dir, target);
  const int fd = open(partial.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return internalError("cannot create " + partial.string() + ": " + std::strerror(errno));
  std::unique_ptr<void, HashDeleter> hash(EVP_MD_CTX_new());
  if (!hash || EVP_DigestInit_ex(static_cast<EVP_MD_CTX*>(hash.get()), EVP_sha256(), nullptr) != 1) {
    close(fd);
    return internalError("cannot start a SHA-256");
  }
  return SlotWriter(std::move(dir), std::move(booted), target, *digest, size, fd, std::move(hash));
}

SlotWriter::SlotWriter(fs::path dir, std::string booted, std::string target, std::string sha256, uint64_t size, int fd,
                       std::unique_ptr<void, HashDeleter> hash)
    : dir_(std::move(dir)),
      booted_(std::move(booted)),
      target_(std::move(target)),
      sha256_(std::move(sha256)),
      size_(size),
      fd_(fd),
      hash_(std::move(hash)) {}

SlotWriter::SlotWriter(SlotWriter&& other) noexcept
    : dir_(std::move(other.dir_)),
      booted_(std::move(other.booted_)),
      target_(std::move(other.target_)),
      sha256_(std::move(other.sha256_)),
      size_(other.size_),
      received_(other.received_),
      fd_(other.fd_),
      done_(other.done_),
      hash_(std::move(other.hash_)) {
  other.fd_ = -1;
  other.done_ = true;
}

SlotWriter::~SlotWriter() {
  if (fd_ >= 0) close(fd_);
  if (!done_) {
    std::error_code ec;
    fs::remove(partialFile(dir_, target_), ec);
  }
}

Status SlotWriter::write(std::string_view chunk) {
  if (done_ || fd_ < 0) return failedPrecondition("the upgrade is over");
  if (chunk.size() > size_ - received_) {
    return outOfRange("the image is longer than the " + std::to_string(size_) + " bytes announced");
  }
  EVP_DigestUpdate(static_cast<EVP_MD_CTX*>(hash_.get()), chunk.data(), chunk.size());
  size_t off = 0;
  while (off < chunk.size()) {
    const ssize_t n = ::write(fd_, chunk.data() + off, chunk.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return internalError("cannot write the new slot: " + std::string(std::strerror(errno)));
    off += static_cast<size_t>(n);
  }
  received_ += chunk.size();
  return Status::ok();
}

Result<std::string> SlotWriter::finish() {
  if (done_ || fd_ < 0) return failedPrecondition("the upgrade is over");
  if (received_ != size_) {
    return invalidArgument("the image ended after " + std::to_string(received_) + " of " + std::to_string(size_) +
                           " bytes");
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(static_cast<EVP_MD_CTX*>(hash_.get()), digest, &len);
  if (std::string(reinterpret_cast<const char*>(digest), len) != sha256_) {
    return invalidArgument("the image's bytes do not hash to the signed SHA-256");
  }
  if (fsync(fd_) != 0) return internalError("cannot sync the new slot: " + std::string(std::strerror(errno)));
  close(fd_);
  fd_ = -1;
  const fs::path partial = partialFile(dir_, target_);
  if (rename(partial.c_str(), slotFile(dir_, target_).c_str()) != 0) {
    return internalError("cannot install the new slot: " + std::string(std::strerror(errno)));
  }
  done_ = true;
  KEEL_RETURN_IF_ERROR(syncDir(dir_));
  KEEL_RETURN_IF_ERROR(writeBootPointer(dir_, target_, booted_, 1));
  return target_;
}

}  // namespace keel::machined
