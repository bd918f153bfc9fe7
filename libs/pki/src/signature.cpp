// Detached ECDSA P-256 signatures over a SHA-256 digest (signed node images).
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "internal.h"
#include "keel/pki/pki.h"

namespace keel::pki {

namespace {

using namespace internal;

constexpr size_t kSha256Size = 32;

Result<PkeyPtr> readSigningKey(std::string_view publicKeyPem) {
  static constexpr std::string_view kNames[] = {"PUBLIC KEY"};
  KEEL_ASSIGN_OR_RETURN(const auto block, readSinglePemBlock(publicKeyPem, kNames, "the image signing key"));
  const unsigned char* p = block.der.data();
  PkeyPtr key(d2i_PUBKEY(nullptr, &p, static_cast<long>(block.der.size())));
  if (!key) return cryptoError(StatusCode::kInvalidArgument, "the image signing key is not a public key");
  if (p != block.der.data() + block.der.size()) {
    return invalidArgument("the image signing key has trailing bytes after its DER");
  }
  auto type = keyTypeOf(key.get());
  if (!type.ok() || *type != KeyType::kEcdsaP256) {
    return invalidArgument("the image signing key must be ECDSA P-256" +
                           (type.ok() ? std::string(", found ") + std::string(keyTypeName(*type))
                                      : ": " + type.status().message()));
  }
  return key;
}

}  // namespace

using internal::ErrorQueueGuard;
using internal::PkeyCtxPtr;
using internal::cryptoError;

Result<std::string> signDigest(const PrivateKey& key, std::string_view sha256) {
  ErrorQueueGuard guard;
  if (key.type() != KeyType::kEcdsaP256) return invalidArgument("an image signing key must be ECDSA P-256");
  if (sha256.size() != kSha256Size) return invalidArgument("expected a 32-byte SHA-256 digest");
  PkeyCtxPtr ctx(EVP_PKEY_CTX_new(key.raw(), nullptr));
  size_t len = 0;
  if (!ctx || EVP_PKEY_sign_init(ctx.get()) != 1 || EVP_PKEY_CTX_set_signature_md(ctx.get(), EVP_sha256()) != 1 ||
      EVP_PKEY_sign(ctx.get(), nullptr, &len, reinterpret_cast<const unsigned char*>(sha256.data()), sha256.size()) !=
          1) {
    return cryptoError(StatusCode::kInternal, "cannot sign the digest");
  }
  std::string signature(len, '\0');
  if (EVP_PKEY_sign(ctx.get(), reinterpret_cast<unsigned char*>(signature.data()), &len,
                    reinterpret_cast<const unsigned char*>(sha256.data()), sha256.size()) != 1) {
    return cryptoError(StatusCode::kInternal, "cannot sign the digest");
  }
  signature.resize(len);
  return signature;
}

Status checkDigestSigningKey(std::string_view publicKeyPem) {
  ErrorQueueGuard guard;
  return readSigningKey(publicKeyPem).status();
}

Status verifyDigestSignature(std::string_view publicKeyPem, std::string_view sha256, std::string_view signature) {
  ErrorQueueGuard guard;
  KEEL_ASSIGN_OR_RETURN(const auto key, readSigningKey(publicKeyPem));
  if (sha256.size() != kSha256Size) return invalidArgument("expected a 32-byte SHA-256 digest");
  PkeyCtxPtr ctx(EVP_PKEY_CTX_new(key.get(), nullptr));
  const bool ok =
      ctx && EVP_PKEY_verify_init(ctx.get()) == 1 && EVP_PKEY_CTX_set_signature_md(ctx.get(), EVP_sha256()) == 1 &&
      EVP_PKEY_verify(ctx.get(), reinterpret_cast<const unsigned char*>(signature.data()), signature.size(),
                      reinterpret_cast<const unsigned char*>(sha256.data()), sha256.size()) == 1;
  if (!ok) return permissionDenied("the image's signature does not verify with the machine config's signing key");
  return Status::ok();
}

}  // namespace keel::pki
