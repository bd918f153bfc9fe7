// ImageStreamVerifier: an image checked as it arrives (image_file.h).
#include <fmt/format.h>
#include <openssl/evp.h>

#include "keel/image/image_file.h"

namespace keel::image {

namespace {

EVP_MD_CTX* ctx(void* p) {
  return static_cast<EVP_MD_CTX*>(p);
}

}  // namespace

ImageStreamVerifier::ImageStreamVerifier(std::string signedManifestSha256, uint64_t fileSize,
                                         Callbacks callbacks)
    : signedSha256_(std::move(signedManifestSha256)), fileSize_(fileSize), callbacks_(std::move(callbacks)) {}

ImageStreamVerifier::~ImageStreamVerifier() {
  EVP_MD_CTX_free(ctx(hash_));
}

Status ImageStreamVerifier::fail(Status s) {
  error_ = s;
  return s;
}

// Header and manifest: collected whole (at most kHeaderSize + kMaxManifestBytes), then
// checked against the signed hash before anything is parsed.
Status ImageStreamVerifier::feedHead(std::string_view& bytes) {
  if (manifestSize_ == 0) {
    const size_t take = std::min(bytes.size(), kHeaderSize - head_.size());
    head_.append(bytes.substr(0, take));
    bytes.remove_prefix(take);
    if (head_.size() < kHeaderSize) return Status::ok();
    KEEL_ASSIGN_OR_RETURN(manifestSize_, parseHeader(head_));
  }
  const size_t take = std::min(bytes.size(), kHeaderSize + manifestSize_ - head_.size());
  head_.append(bytes.substr(0, take));
  bytes.remove_prefix(take);
  if (head_.size() < kHeaderSize + manifestSize_) return Status::ok();
  const std::string_view manifestBytes = std::string_view(head_).substr(kHeaderSize);
  if (sha256(manifestBytes) != signedSha256_) {
    return permissionDenied(fmt::format("the image's manifest (sha256 {}) is not the one signed (sha256 {})",
                                        toHex(sha256(manifestBytes)), toHex(signedSha256_)));
  }
  KEEL_ASSIGN_OR_RETURN(auto manifest, parseManifest(manifestBytes));
  const uint64_t total = kHeaderSize + manifestSize_ + manifest.payloadSize();
  if (total != fileSize_) {
    return invalidArgument(
        fmt::format("the image was announced as {} bytes, but its manifest describes {}", fileSize_, total));
  }
  manifest_ = std::move(manifest);
  if (callbacks_.manifest) KEEL_RETURN_IF_ERROR(callbacks_.manifest(*manifest_, manifestBytes));
  hash_ = EVP_MD_CTX_new();
  if (hash_ == nullptr || EVP_DigestInit_ex(ctx(hash_), EVP_sha256(), nullptr) != 1) {
    return internalError("cannot start a SHA-256");
  }
  return Status::ok();
}

Status ImageStreamVerifier::feedParts(std::string_view bytes) {
  while (!bytes.empty()) {
    if (partIndex_ >= manifest_->parts.size()) {
      return outOfRange(
          fmt::format("the image is longer than the {} bytes its manifest describes", fileSize_));
    }
    const Part& part = manifest_->parts[partIndex_];
    const auto take = static_cast<size_t>(std::min<uint64_t>(bytes.size(), part.size - partReceived_));
    EVP_DigestUpdate(ctx(hash_), bytes.data(), take);
    KEEL_RETURN_IF_ERROR(callbacks_.part(part, bytes.substr(0, take)));
    bytes.remove_prefix(take);
    partReceived_ += take;
    if (partReceived_ < part.size) continue;
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_DigestFinal_ex(ctx(hash_), digest, &len);
    const std::string got = toHex(std::string_view(reinterpret_cast<const char*>(digest), len));
    if (got != part.sha256) {
      return invalidArgument(
          fmt::format("the image's {} does not hash to its manifest's SHA-256: expected {}, got {}",
                      part.name, part.sha256, got));
    }
    EVP_DigestInit_ex(ctx(hash_), EVP_sha256(), nullptr);
    ++partIndex_;
    partReceived_ = 0;
  }
  return Status::ok();
}

Status ImageStreamVerifier::feed(std::string_view bytes) {
  if (!error_.isOk()) return error_;
  if (bytes.size() > fileSize_ - received_) {
    return fail(outOfRange(fmt::format("the image is longer than the {} bytes announced", fileSize_)));
  }
  received_ += bytes.size();
  if (!manifest_) {
    if (const Status s = feedHead(bytes); !s.isOk()) return fail(s);
  }
  if (manifest_ && !bytes.empty()) {
    if (const Status s = feedParts(bytes); !s.isOk()) return fail(s);
  }
  return Status::ok();
}

Status ImageStreamVerifier::finish() {
  if (!error_.isOk()) return error_;
  if (!manifest_ || partIndex_ != manifest_->parts.size()) {
    return fail(invalidArgument(fmt::format("the image ended after {} of {} bytes", received_, fileSize_)));
  }
  return Status::ok();
}

}  // namespace keel::image
