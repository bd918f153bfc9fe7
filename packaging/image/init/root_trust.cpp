// Signature and manifest checks of keel_init (see root_trust.h). OpenSSL's libcrypto is
// linked statically; the check is the one machined makes before it accepts an upgrade
// (libs/pki verifyDigestSignature): DER ECDSA P-256 over the SHA-256 of the manifest.
#include "root_trust.h"

#include <memory>

#include <nlohmann/json.hpp>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

namespace keel::init {

namespace {

using Json = nlohmann::json;

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct MdCtxFree {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};

bool isHex(const std::string& s) {
  return s.find_first_not_of("0123456789abcdef") == std::string::npos;
}

// dm-verity takes blocks from 512 bytes to a page.
bool goodBlockSize(uint64_t size) {
  return size >= 512 && size <= 4096 && (size & (size - 1)) == 0;
}

// False, with `error`, unless `signature` verifies over `data` with `key`.
bool signatureVerifies(const SigningKey& key, const std::string& data, const std::string& signature,
                       std::string& error) {
  std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
  const bool ok =
      ctx && EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key.get()) == 1 &&
      EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(signature.data()), signature.size(),
                       reinterpret_cast<const unsigned char*>(data.data()), data.size()) == 1;
  if (!ok) error = "its manifest's signature does not verify with the machine config's image signing key";
  return ok;
}

// The "verity" object of an image manifest, for a root of `rootSize` bytes.
TrustedRoot verityOf(const Json& verity, uint64_t rootSize) {
  TrustedRoot out;
  if (!verity.is_object()) {
    out.error = "no \"verity\" object";
    return out;
  }
  VerityParams p;
  const auto number = [&](const char* key) -> uint64_t {
    const auto it = verity.find(key);
    return it != verity.end() && it->is_number_unsigned() ? it->get<uint64_t>() : 0;
  };
  const auto text = [&](const char* key) -> std::string {
    const auto it = verity.find(key);
    return it != verity.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  const uint64_t dataBlock = number("data_block_size");
  const uint64_t hashBlock = number("hash_block_size");
  p.algorithm = text("hash_algorithm");
  p.rootHash = text("root_hash");
  p.salt = text("salt");
  if (!goodBlockSize(dataBlock) || !goodBlockSize(hashBlock)) {
    out.error = "verity block sizes must be powers of two from 512 to 4096";
  } else if (p.algorithm != "sha256") {
    out.error = "verity hash algorithm must be sha256, found '" + p.algorithm + "'";
  } else if (p.rootHash.size() != 64 || !isHex(p.rootHash)) {
    out.error = "verity root hash must be 64 lowercase hex digits";
  } else if (p.salt.empty() || p.salt.size() > 512 || p.salt.size() % 2 != 0 || !isHex(p.salt)) {
    out.error = "verity salt must be 1 to 256 bytes in lowercase hex";
  } else if (rootSize == 0 || rootSize % dataBlock != 0) {
    out.error =
        "the root's size " + std::to_string(rootSize) + " is not a whole number of verity data blocks";
  } else {
    p.dataBlockSize = static_cast<uint32_t>(dataBlock);
    p.hashBlockSize = static_cast<uint32_t>(hashBlock);
    p.dataBytes = rootSize;
    out.params = p;
  }
  return out;
}

}  // namespace

std::optional<SigningKey> SigningKey::fromPem(const std::string& pem, std::string& error) {
  std::unique_ptr<BIO, BioFree> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  std::shared_ptr<EVP_PKEY> key(bio ? PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr) : nullptr,
                                PkeyFree());
  if (!key) {
    error = "machine.upgrade.publicKey is not a PEM public key";
    return std::nullopt;
  }
  char group[64] = {};
  size_t groupLen = 0;
  if (!EVP_PKEY_is_a(key.get(), "EC") ||
      EVP_PKEY_get_utf8_string_param(key.get(), OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group, &groupLen) !=
          1 ||
      std::string(group) != "prime256v1") {
    error = "machine.upgrade.publicKey is not an ECDSA P-256 key";
    return std::nullopt;
  }
  SigningKey out;
  out.key_ = std::move(key);
  return out;
}

std::optional<std::string> imageSigningKey(const std::string& configJson, std::string& error) {
  // A config disk holds the JSON followed by zero bytes up to its size.
  const Json config = Json::parse(configJson.c_str(), nullptr, /*allow_exceptions=*/false);
  if (config.is_discarded() || !config.is_object()) {
    error = "the machine config is not JSON";
    return std::nullopt;
  }
  const Json* node = &config;
  for (const char* key : {"machine", "upgrade", "publicKey"}) {
    const auto it = node->is_object() ? node->find(key) : node->end();
    if (!node->is_object() || it == node->end()) {
      error = "the machine config has no machine.upgrade.publicKey";
      return std::nullopt;
    }
    node = &*it;
  }
  if (!node->is_string()) {
    error = "machine.upgrade.publicKey is not a string";
    return std::nullopt;
  }
  return node->get<std::string>();
}

TrustedRoot trustSlotManifest(const std::string& manifest, const std::string& signature, const SigningKey& key) {
  TrustedRoot out;
  if (!signatureVerifies(key, manifest, signature, out.error)) return out;
  // Signed by the key the machine config names: from here on the bytes are the image
  // owner's, and only their shape can still be wrong.
  const Json m = Json::parse(manifest, nullptr, /*allow_exceptions=*/false);
  if (m.is_discarded() || !m.is_object() || m.value("format", Json()) != 1) {
    out.error = "its manifest is not a format 1 image manifest";
    return out;
  }
  uint64_t rootSize = 0;
  PartDigest kernel, initramfs;
  if (const auto parts = m.find("parts"); parts != m.end() && parts->is_array()) {
    for (const auto& part : *parts) {
      if (!part.is_object() || !part.value("size", Json()).is_number_unsigned()) continue;
      const auto size = part["size"].get<uint64_t>();
      const auto name = part.value("name", Json());
      if (name == "root") rootSize = size;
      PartDigest* digest = name == "kernel" ? &kernel : name == "initramfs" ? &initramfs : nullptr;
      const auto sha = part.value("sha256", Json());
      if (digest != nullptr && sha.is_string() && sha.get<std::string>().size() == 64 && isHex(sha.get<std::string>())) {
        *digest = PartDigest{size, sha.get<std::string>()};
      }
    }
  }
  if (kernel.size == 0 || initramfs.size == 0) {
    out.error = "its manifest names no kernel or no initramfs with a size and a SHA-256";
    return out;
  }
  const auto verity = m.find("verity");
  out = verityOf(verity != m.end() ? *verity : Json(), rootSize);
  if (!out.params) {
    out.error = "its manifest: " + out.error;
    return out;
  }
  out.kernel = kernel;
  out.initramfs = initramfs;
  return out;
}

TrustedRoot factoryRoot(const std::string& json) {
  const Json f = Json::parse(json, nullptr, /*allow_exceptions=*/false);
  TrustedRoot out;
  if (f.is_discarded() || !f.is_object() || !f.value("root_size", Json()).is_number_unsigned()) {
    out.error = "the factory root's verity parameters are not JSON with a root_size";
    return out;
  }
  const uint64_t rootSize = f["root_size"].get<uint64_t>();
  const auto verity = f.find("verity");
  out = verityOf(verity != f.end() ? *verity : Json(), rootSize);
  if (out.params && rootSize % out.params->hashBlockSize != 0) {
    out.params.reset();
    out.error = "the factory root's size is not a whole number of hash blocks";
  }
  if (out.params) out.params->hashStartBlock = rootSize / out.params->hashBlockSize;
  return out;
}

}  // namespace keel::init
