// kexec of a slot's kernel and initramfs (see slot_kernel.h). kexec_file_load takes file
// descriptors; the descriptors given are memfds holding the copies that were hashed, so a
// file changed between the check and the load changes nothing.
#include "slot_kernel.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <memory>
#include <sstream>
#include <vector>

#include <nlohmann/json.hpp>
#include <openssl/evp.h>

#include "init_io.h"

namespace keel::init {

namespace {

constexpr size_t kChunk = 1 << 20;
// A slot's initramfs read whole to compare it with the running one: larger is refused.
constexpr uint64_t kMaxInitramfsBytes = 64ull << 20;

struct MdCtxFree {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};

// Owns a file descriptor.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

bool writeAll(int fd, const char* data, size_t size) {
  while (size > 0) {
    const ssize_t n = write(fd, data, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

// A digest in lowercase hex.
std::string hexOf(const unsigned char* md, unsigned len) {
  char hex[2 * EVP_MAX_MD_SIZE + 1] = {};
  for (unsigned i = 0; i < len && i < EVP_MAX_MD_SIZE; ++i) std::snprintf(hex + 2 * i, 3, "%02x", md[i]);
  return hex;
}

// A memfd holding `path`'s bytes, once they are `digest`'s size and hash to its SHA-256;
// -1 with `error` otherwise. `what` names the part in errors.
int verifiedCopy(const std::string& path, const PartDigest& digest, const std::string& what, std::string& error) {
  Fd in(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  struct stat st {};
  if (in.get() < 0 || fstat(in.get(), &st) != 0) {
    error = "cannot read its " + what + " " + path + ": " + errnoText();
    return -1;
  }
  if (static_cast<uint64_t>(st.st_size) != digest.size) {
    error = "its " + what + " is " + std::to_string(st.st_size) + " bytes, its signed manifest says " +
            std::to_string(digest.size);
    return -1;
  }
  const int copy = static_cast<int>(syscall(SYS_memfd_create, what.c_str(), MFD_CLOEXEC));
  if (copy < 0) {
    error = "cannot hold its " + what + " in memory: " + errnoText();
    return -1;
  }
  std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
  bool ok = ctx && EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) == 1;
  std::vector<char> buf(kChunk);
  uint64_t total = 0;
  while (ok) {
    const ssize_t n = read(in.get(), buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      ok = n == 0;
      if (!ok) error = "cannot read its " + what + " " + path + ": " + errnoText();
      break;
    }
    total += static_cast<uint64_t>(n);
    ok = EVP_DigestUpdate(ctx.get(), buf.data(), static_cast<size_t>(n)) == 1 &&
         writeAll(copy, buf.data(), static_cast<size_t>(n));
    if (!ok) error = "cannot copy its " + what + " to memory: " + errnoText();
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned mdLen = 0;
  if (ok && (EVP_DigestFinal_ex(ctx.get(), md, &mdLen) != 1 || total != digest.size)) {
    ok = false;
    error = "its " + what + " changed size while it was read";
  }
  if (ok) {
    if (digest.sha256 != hexOf(md, mdLen)) {
      ok = false;
      error = "its " + what + " does not match its signed manifest's SHA-256";
    }
  }
  if (!ok) {
    close(copy);
    return -1;
  }
  return copy;
}

std::string sha256Hex(std::string_view bytes) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned mdLen = 0;
  if (EVP_Digest(bytes.data(), bytes.size(), md, &mdLen, EVP_sha256(), nullptr) != 1) return {};
  return hexOf(md, mdLen);
}

bool isSha256Hex(const std::string& s) {
  return s.size() == 64 && s.find_first_not_of("0123456789abcdef") == std::string::npos;
}

// One field of a newc header: 8 hex digits.
bool hexField(std::string_view header, size_t index, uint64_t& value) {
  value = 0;
  for (const char ch : header.substr(6 + 8 * index, 8)) {
    const int digit = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
                    : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10 : -1;
    if (digit < 0) return false;
    value = value * 16 + static_cast<uint64_t>(digit);
  }
  return true;
}

uint64_t alignTo4(uint64_t n) {
  return (n + 3) / 4 * 4;
}

}  // namespace

std::optional<BootIdentity> parseBootIdentity(const std::string& json) {
  const auto j = nlohmann::json::parse(json, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return std::nullopt;
  BootIdentity id;
  const auto text = [&](const char* key) {
    const auto it = j.find(key);
    return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  id.kernelSha256 = text("kernel_sha256");
  id.bootArchiveSha256 = text("boot_archive_sha256");
  const auto size = j.find("boot_archive_size");
  if (size != j.end() && size->is_number_unsigned()) id.bootArchiveSize = size->get<uint64_t>();
  if (!isSha256Hex(id.kernelSha256) || !isSha256Hex(id.bootArchiveSha256) || id.bootArchiveSize == 0) {
    return std::nullopt;
  }
  return id;
}

bool onlyNamesBuild(std::string_view archive) {
  static constexpr std::string_view kAllowed[] = {"etc", "etc/factory-root.json", "etc/initramfs-version",
                                                  "etc/initramfs-boot.json"};
  constexpr size_t kHeader = 110;
  uint64_t at = 0;
  for (;;) {
    if (archive.size() - at < kHeader) return false;
    const std::string_view header = archive.substr(at, kHeader);
    if (header.substr(0, 6) != "070701") return false;
    uint64_t mode = 0, fileSize = 0, nameSize = 0;
    if (!hexField(header, 1, mode) || !hexField(header, 6, fileSize) || !hexField(header, 11, nameSize)) {
      return false;
    }
    if (nameSize == 0 || nameSize > 256 || archive.size() - at - kHeader < nameSize) return false;
    std::string_view name = archive.substr(at + kHeader, nameSize);
    if (name.back() != '\0') return false;
    name.remove_suffix(1);
    at = alignTo4(at + kHeader + nameSize);
    if (name == "TRAILER!!!") break;
    if (name.substr(0, 2) == "./") name.remove_prefix(2);
    const bool allowed = std::find(std::begin(kAllowed), std::end(kAllowed), name) != std::end(kAllowed);
    const bool dirOrFile = (mode & S_IFMT) == S_IFDIR || (mode & S_IFMT) == S_IFREG;
    if (!allowed || !dirOrFile || at > archive.size() || archive.size() - at < fileSize) return false;
    at = alignTo4(at + fileSize);
  }
  return at <= archive.size() && archive.find_first_not_of('\0', at) == std::string_view::npos;
}

std::string differsFromRunning(const std::string& initrdPath, const PartDigest& kernel, const PartDigest& initrd,
                               const BootIdentity& running) {
  if (kernel.sha256 != running.kernelSha256) return "its kernel is another build";
  if (initrd.size > kMaxInitramfsBytes || initrd.size < running.bootArchiveSize) {
    return "its initramfs is another build";
  }
  std::string bytes;
  if (!readSmallFile(initrdPath, bytes, kMaxInitramfsBytes)) {
    return "cannot read its initramfs " + initrdPath + ": " + errnoText();
  }
  if (bytes.size() != initrd.size || sha256Hex(bytes) != initrd.sha256) {
    return "its initramfs does not match its signed manifest's SHA-256";
  }
  const std::string_view all(bytes);
  if (sha256Hex(all.substr(0, running.bootArchiveSize)) != running.bootArchiveSha256 ||
      !onlyNamesBuild(all.substr(running.bootArchiveSize))) {
    return "its initramfs is another build";
  }
  return {};
}

std::string slotCommandLine(const std::string& cmdline, const std::string& slot) {
  std::istringstream words(cmdline);
  std::string word, out;
  while (words >> word) {
    if (word.rfind(kSlotParam, 0) == 0) continue;
    out += (out.empty() ? "" : " ") + word;
  }
  return out + (out.empty() ? "" : " ") + kSlotParam + slot;
}

std::string slotOfCommandLine(const std::string& cmdline) {
  std::istringstream words(cmdline);
  std::string word, slot;
  while (words >> word) {
    if (word.rfind(kSlotParam, 0) == 0) slot = word.substr(std::string(kSlotParam).size());
  }
  return slot == "a" || slot == "b" ? slot : std::string();
}

std::string loadSlotKernel(const std::string& kernelPath, const PartDigest& kernel, const std::string& initrdPath,
                           const PartDigest& initrd, const std::string& cmdline) {
  std::string error;
  const Fd kernelCopy(verifiedCopy(kernelPath, kernel, "kernel", error));
  if (kernelCopy.get() < 0) return error;
  const Fd initrdCopy(verifiedCopy(initrdPath, initrd, "initramfs", error));
  if (initrdCopy.get() < 0) return error;
  // The length counts the terminating zero byte.
  if (syscall(SYS_kexec_file_load, kernelCopy.get(), initrdCopy.get(), cmdline.size() + 1, cmdline.c_str(), 0UL) !=
      0) {
    return "the kernel refused to load its kernel and initramfs (kexec_file_load): " + errnoText();
  }
  return {};
}

}  // namespace keel::init
