// What every PKI source needs: the error queue as Status, hex digests and the key
// types Keel accepts.
#include <array>

#include "internal.h"

#ifndef OPENSSL_IS_BORINGSSL
#include <openssl/core_names.h>
#endif

namespace keel::pki::internal {

std::string takeErrors() {
  std::string out;
  while (const unsigned long err = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(err, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out.empty() ? "no further detail" : out;
}

Status cryptoError(StatusCode code, std::string message) {
  message += " (";
  message += takeErrors();
  message += ")";
  return {code, std::move(message)};
}

std::string toHex(std::span<const uint8_t> bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (const uint8_t b : bytes) {
    out += kDigits[b >> 4];
    out += kDigits[b & 0xf];
  }
  return out;
}

std::string sha256Hex(std::span<const uint8_t> bytes) {
  std::array<uint8_t, EVP_MAX_MD_SIZE> md{};
  unsigned int len = 0;
  const int ok = EVP_Digest(bytes.data(), bytes.size(), md.data(), &len, EVP_sha256(), nullptr);
  KEEL_RELEASE_ASSERT(ok == 1, "SHA-256 failed");
  return toHex(std::span<const uint8_t>(md.data(), len));
}

Result<KeyType> keyTypeOf(EVP_PKEY* key) {
  const int id = EVP_PKEY_id(key);
  if (id == EVP_PKEY_ED25519) return KeyType::kEd25519;
  if (id != EVP_PKEY_EC) {
    const char* name = OBJ_nid2sn(id);
    return invalidArgument(std::string("unsupported key type: expected ecdsa-p256 or ed25519, got ") +
                           (name != nullptr ? name : "unknown") + " (" + std::to_string(EVP_PKEY_bits(key)) +
                           " bits)");
  }
#ifndef OPENSSL_IS_BORINGSSL
  // OpenSSL 3 names the curve and its encoding without encoding the key again.
  std::array<char, 64> text{};
  size_t length = 0;
  if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_EC_ENCODING, text.data(), text.size(), &length) == 1 &&
      std::string_view(text.data(), length) == OSSL_PKEY_EC_ENCODING_GROUP &&
      EVP_PKEY_get_group_name(key, text.data(), text.size(), &length) == 1) {
    const int named = OBJ_sn2nid(std::string(text.data(), length).c_str());
    if (named == NID_X9_62_prime256v1) return KeyType::kEcdsaP256;
  }
  ERR_clear_error();
#endif
  // The curve is read from the SubjectPublicKeyInfo parameters: the EC_KEY accessors are
  // deprecated in OpenSSL 3 and the group-name accessors do not exist in BoringSSL. (Also
  // OpenSSL 3's way for every key that is not a named P-256, so the errors are the same.)
  X509_PUBKEY* rawPub = nullptr;
  if (X509_PUBKEY_set(&rawPub, key) != 1)
    return cryptoError(StatusCode::kInvalidArgument, "unreadable EC key");
  PubkeyPtr pub(rawPub);
  X509_ALGOR* alg = nullptr;
  if (X509_PUBKEY_get0_param(nullptr, nullptr, nullptr, &alg, pub.get()) != 1 || alg == nullptr) {
    return cryptoError(StatusCode::kInvalidArgument, "unreadable EC key parameters");
  }
  const ASN1_OBJECT* algObj = nullptr;
  int paramType = 0;
  const void* param = nullptr;
  X509_ALGOR_get0(&algObj, &paramType, &param, alg);
  if (paramType != V_ASN1_OBJECT || param == nullptr) {
    return invalidArgument(
        "unsupported EC key: expected the named curve P-256, got explicit curve parameters");
  }
  const int curve = OBJ_obj2nid(static_cast<const ASN1_OBJECT*>(param));
  if (curve != NID_X9_62_prime256v1) {
    const char* name = OBJ_nid2sn(curve);
    return invalidArgument(std::string("unsupported EC curve: expected P-256 (prime256v1), got ") +
                           (name != nullptr ? name : "unknown"));
  }
  return KeyType::kEcdsaP256;
}

const EVP_MD* signingDigest(KeyType type) {
  return type == KeyType::kEd25519 ? nullptr : EVP_sha256();
}

}  // namespace keel::pki::internal
