// Proof that the holder of a certificate's key asks for its renewal: a signature by that
// key over a fixed context and the new CSR's DER.
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "internal.h"
#include "keel/pki/pki.h"

namespace keel::pki {

namespace {

using namespace internal;

using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, FreeWith<EVP_MD_CTX_free>>;

// The context keeps this signature from meaning anything else the key signs (TLS
// handshakes sign their own context strings, never a CSR's bytes).
constexpr std::string_view kContext = "keel node certificate renewal v1";

std::string possessionMessage(const CertificateRequest& csr) {
  unsigned char* der = nullptr;
  const int len = i2d_X509_REQ(csr.raw(), &der);
  KEEL_RELEASE_ASSERT(len > 0, "cannot encode a parsed CSR");
  OpensslBytes owner(der);
  std::string message(kContext);
  message.push_back('\0');
  message.append(reinterpret_cast<const char*>(der), static_cast<size_t>(len));
  return message;
}

// SHA-256 with ECDSA; Ed25519 hashes by itself. A key of another type fails to sign or verify.
const EVP_MD* digestFor(EVP_PKEY* key) {
  const auto type = keyTypeOf(key);
  return signingDigest(type.ok() ? *type : KeyType::kEcdsaP256);
}

}  // namespace

Result<std::string> signPossession(const PrivateKey& key, const CertificateRequest& csr) {
  ErrorQueueGuard guard;
  const std::string message = possessionMessage(csr);
  MdCtxPtr ctx(EVP_MD_CTX_new());
  size_t len = 0;
  const auto* data = reinterpret_cast<const unsigned char*>(message.data());
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, digestFor(key.raw()), nullptr, key.raw()) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &len, data, message.size()) != 1) {
    return cryptoError(StatusCode::kInternal, "cannot sign the proof of possession");
  }
  std::string signature(len, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(signature.data()), &len, data, message.size()) !=
      1) {
    return cryptoError(StatusCode::kInternal, "cannot sign the proof of possession");
  }
  signature.resize(len);
  return signature;
}

Status verifyPossession(const Certificate& current, const CertificateRequest& csr, std::string_view proof) {
  ErrorQueueGuard guard;
  const PkeyPtr owned(X509_get_pubkey(current.raw()));
  EVP_PKEY* key = owned.get();
  if (key == nullptr) return cryptoError(StatusCode::kInvalidArgument, "the certificate's public key does not decode");
  const std::string message = possessionMessage(csr);
  MdCtxPtr ctx(EVP_MD_CTX_new());
  const bool ok = ctx && EVP_DigestVerifyInit(ctx.get(), nullptr, digestFor(key), nullptr, key) == 1 &&
                  EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(proof.data()), proof.size(),
                                   reinterpret_cast<const unsigned char*>(message.data()), message.size()) == 1;
  if (!ok) {
    return permissionDenied("expected a proof signed by the key of the certificate '" + current.subject().toString() +
                            "' (serial " + current.serialHex() + ") over the new CSR, but it does not verify");
  }
  return Status::ok();
}

}  // namespace keel::pki
