// Signatures over whole documents by a CA's own key (trustd's revocation list).
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "internal.h"
#include "keel/pki/pki.h"

namespace keel::pki {

namespace {

using namespace internal;

using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, FreeWith<EVP_MD_CTX_free>>;

// SHA-256 for ECDSA; Ed25519 hashes the document itself and takes no digest.
const EVP_MD* digestFor(const EVP_PKEY* key) { return EVP_PKEY_id(key) == EVP_PKEY_ED25519 ? nullptr : EVP_sha256(); }

const unsigned char* bytes(std::string_view s) { return reinterpret_cast<const unsigned char*>(s.data()); }

}  // namespace

Result<std::string> signDocument(const PrivateKey& key, std::string_view document) {
  ErrorQueueGuard guard;
  MdCtxPtr ctx(EVP_MD_CTX_new());
  size_t len = 0;
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, digestFor(key.raw()), nullptr, key.raw()) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &len, bytes(document), document.size()) != 1) {
    return cryptoError(StatusCode::kInternal, "cannot sign the document");
  }
  std::string signature(len, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(signature.data()), &len, bytes(document),
                     document.size()) != 1) {
    return cryptoError(StatusCode::kInternal, "cannot sign the document");
  }
  signature.resize(len);
  return signature;
}

Status verifyDocumentSignature(const Certificate& signer, std::string_view document, std::string_view signature) {
  ErrorQueueGuard guard;
  const PkeyPtr owned(X509_get_pubkey(signer.raw()));
  EVP_PKEY* key = owned.get();
  if (key == nullptr) return cryptoError(StatusCode::kInvalidArgument, "the signer's certificate has no usable key");
  MdCtxPtr ctx(EVP_MD_CTX_new());
  const bool ok = ctx && EVP_DigestVerifyInit(ctx.get(), nullptr, digestFor(key), nullptr, key) == 1 &&
                  EVP_DigestVerify(ctx.get(), bytes(signature), signature.size(), bytes(document), document.size()) == 1;
  if (!ok) return permissionDenied("the signature does not verify with " + signer.subject().toString());
  return Status::ok();
}

}  // namespace keel::pki
