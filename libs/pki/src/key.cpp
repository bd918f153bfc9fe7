#include <array>
#include <span>
#include <vector>

#include "keel/pki/pki.h"

#include "internal.h"

// internal.h includes OpenSSL's headers, which say which library this is.
#ifndef OPENSSL_IS_BORINGSSL
#include <openssl/decoder.h>
#endif

namespace keel::pki {
namespace {

using namespace internal;

constexpr std::string_view kEcdsaP256Name = "ecdsa-p256";
constexpr std::string_view kEd25519Name = "ed25519";

// The key a PKCS#8 structure holds; `der` is that structure's encoding.
PkeyPtr pkcs8Key(PKCS8_PRIV_KEY_INFO* p8, std::span<const unsigned char> der) {
#ifdef OPENSSL_IS_BORINGSSL
  static_cast<void>(der);
  return PkeyPtr(EVP_PKCS82PKEY(p8));
#else
  // OpenSSL 3.0's EVP_PKCS82PKEY builds a chain of every key decoder on each call. Naming
  // the key type from the PKCS#8 algorithm builds a short one: the same decoding at a
  // third of the cost (natively 1.7 rather than 5 million instructions a key), which a
  // node's boot pays for every key of its config, in emulation under TCG.
  const ASN1_OBJECT* algorithm = nullptr;
  if (PKCS8_pkey_get0(&algorithm, nullptr, nullptr, nullptr, p8) != 1) return nullptr;
  const char* type = nullptr;
  switch (OBJ_obj2nid(algorithm)) {
    case NID_X9_62_id_ecPublicKey: type = "EC"; break;
    case NID_ED25519: type = "ED25519"; break;
    default: return PkeyPtr(EVP_PKCS82PKEY(p8));
  }
  EVP_PKEY* raw = nullptr;
  std::unique_ptr<OSSL_DECODER_CTX, FreeWith<OSSL_DECODER_CTX_free>> decoder(OSSL_DECODER_CTX_new_for_pkey(
      &raw, "DER", "PrivateKeyInfo", type, EVP_PKEY_KEYPAIR, nullptr, nullptr));
  const unsigned char* in = der.data();
  size_t left = der.size();
  if (decoder == nullptr || OSSL_DECODER_from_data(decoder.get(), &in, &left) != 1 || left != 0) {
    EVP_PKEY_free(raw);
    return nullptr;
  }
  return PkeyPtr(raw);
#endif
}

Result<PkeyPtr> decodePrivateKey(const PemBlock& block) {
  const unsigned char* p = block.der.data();
  const auto len = static_cast<long>(block.der.size());
  PkeyPtr key;
  if (block.name == "PRIVATE KEY") {
    Pkcs8Ptr p8(d2i_PKCS8_PRIV_KEY_INFO(nullptr, &p, len));
    if (p8 == nullptr) return cryptoError(StatusCode::kInvalidArgument, "malformed PKCS#8 private key");
    key = pkcs8Key(p8.get(), std::span<const unsigned char>(block.der.data(), p));
  } else {
    key.reset(d2i_PrivateKey(EVP_PKEY_EC, nullptr, &p, len));
  }
  if (key == nullptr) return cryptoError(StatusCode::kInvalidArgument, "malformed " + block.name);
  if (p != block.der.data() + block.der.size()) {
    return invalidArgument("expected " + block.name + " DER to end after the key, found " +
                           std::to_string(block.der.data() + block.der.size() - p) + " trailing bytes");
  }
  return key;
}

// A parsed key whose stored public half does not belong to its private half would sign
// CSRs and certificates that never verify; OpenSSL 3 does not check this when parsing.
Status checkKeyConsistency(EVP_PKEY* key, KeyType type) {
  static constexpr std::string_view kMessage = "keel key consistency check";
  const auto* message = reinterpret_cast<const unsigned char*>(kMessage.data());
  std::unique_ptr<EVP_MD_CTX, FreeWith<EVP_MD_CTX_free>> ctx(EVP_MD_CTX_new());
  KEEL_RELEASE_ASSERT(ctx != nullptr, "out of memory");
  std::vector<unsigned char> signature(static_cast<size_t>(EVP_PKEY_size(key)));
  size_t signatureLen = signature.size();
  if (EVP_DigestSignInit(ctx.get(), nullptr, signingDigest(type), nullptr, key) != 1 ||
      EVP_DigestSign(ctx.get(), signature.data(), &signatureLen, message, kMessage.size()) != 1) {
    return cryptoError(StatusCode::kInvalidArgument, "private key cannot sign");
  }
  ctx.reset(EVP_MD_CTX_new());
  KEEL_RELEASE_ASSERT(ctx != nullptr, "out of memory");
  if (EVP_DigestVerifyInit(ctx.get(), nullptr, signingDigest(type), nullptr, key) != 1 ||
      EVP_DigestVerify(ctx.get(), signature.data(), signatureLen, message, kMessage.size()) != 1) {
    return cryptoError(StatusCode::kInvalidArgument,
                       "expected the key's public half to match its private half, but they do not");
  }
  return Status::ok();
}

}  // namespace

std::string_view keyTypeName(KeyType type) {
  switch (type) {
    case KeyType::kEcdsaP256: return kEcdsaP256Name;
    case KeyType::kEd25519: return kEd25519Name;
  }
  return "unknown";
}

Result<KeyType> parseKeyType(std::string_view name) {
  if (name == kEcdsaP256Name) return KeyType::kEcdsaP256;
  if (name == kEd25519Name) return KeyType::kEd25519;
  return invalidArgument("expected key type ecdsa-p256 or ed25519, got '" + std::string(name) + "'");
}

Result<PrivateKey> PrivateKey::generate(KeyType type) {
  ErrorQueueGuard guard;
  PkeyCtxPtr ctx(EVP_PKEY_CTX_new_id(type == KeyType::kEd25519 ? EVP_PKEY_ED25519 : EVP_PKEY_EC, nullptr));
  if (ctx == nullptr || EVP_PKEY_keygen_init(ctx.get()) != 1) {
    return cryptoError(StatusCode::kInternal,
                       "cannot start " + std::string(keyTypeName(type)) + " key generation");
  }
  if (type == KeyType::kEcdsaP256 &&
      EVP_PKEY_CTX_set_ec_paramgen_curve_nid(ctx.get(), NID_X9_62_prime256v1) != 1) {
    return cryptoError(StatusCode::kInternal, "cannot select curve P-256");
  }
  EVP_PKEY* raw = nullptr;
  if (EVP_PKEY_keygen(ctx.get(), &raw) != 1) {
    return cryptoError(StatusCode::kInternal, "cannot generate " + std::string(keyTypeName(type)) + " key");
  }
  return PrivateKey(std::shared_ptr<evp_pkey_st>(raw, EVP_PKEY_free), type);
}

Result<PrivateKey> PrivateKey::fromPem(std::string_view pem) {
  ErrorQueueGuard guard;
  KEEL_ASSIGN_OR_RETURN(auto blocks, readPemBlocks(pem, "private key"));
  if (blocks.size() == 1 && blocks.front().name == "ENCRYPTED PRIVATE KEY") {
    return invalidArgument("expected an unencrypted PRIVATE KEY, found an ENCRYPTED PRIVATE KEY");
  }
  static constexpr std::array<std::string_view, 2> kNames = {"PRIVATE KEY", "EC PRIVATE KEY"};
  KEEL_ASSIGN_OR_RETURN(auto block, readSinglePemBlock(pem, kNames, "private key"));
  KEEL_ASSIGN_OR_RETURN(auto key, decodePrivateKey(block));
  KEEL_ASSIGN_OR_RETURN(const KeyType type, keyTypeOf(key.get()));
  KEEL_RETURN_IF_ERROR(checkKeyConsistency(key.get(), type));
  return PrivateKey(std::shared_ptr<evp_pkey_st>(key.release(), EVP_PKEY_free), type);
}

std::string PrivateKey::toPem() const {
  ErrorQueueGuard guard;
  auto bio = newMemoryBio();
  KEEL_RELEASE_ASSERT(
      PEM_write_bio_PKCS8PrivateKey(bio.get(), key_.get(), nullptr, nullptr, 0, nullptr, nullptr) == 1,
      "cannot encode a generated or parsed private key");
  return bioContents(bio.get());
}

std::string PrivateKey::publicKeyPem() const {
  ErrorQueueGuard guard;
  auto bio = newMemoryBio();
  KEEL_RELEASE_ASSERT(PEM_write_bio_PUBKEY(bio.get(), key_.get()) == 1, "cannot encode a public key");
  return bioContents(bio.get());
}

std::string PrivateKey::publicKeyFingerprint() const {
  ErrorQueueGuard guard;
  unsigned char* der = nullptr;
  const int len = i2d_PUBKEY(key_.get(), &der);
  KEEL_RELEASE_ASSERT(len > 0, "cannot encode a public key");
  OpensslBytes owner(der);
  return sha256Hex(std::span<const uint8_t>(der, static_cast<size_t>(len)));
}

}  // namespace keel::pki
