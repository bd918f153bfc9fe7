// Helpers shared by the PKI sources: RAII owners for OpenSSL/BoringSSL objects, error
// queue handling and key types (internal.cpp), PEM blocks and BIOs (pem.cpp), names and
// SANs (names.cpp), times (asn1_time.cpp). Only the API subset both libraries share is
// used here, so every source compiles against either.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "keel/common/clock.h"
#include "keel/common/status.h"
#include "keel/pki/pki.h"

namespace keel::pki::internal {

template <auto kFree>
struct FreeWith {
  template <typename T>
  void operator()(T* p) const {
    kFree(p);
  }
};

// Some "free" functions are macros in OpenSSL 3 (stacks, OPENSSL_free), so they get
// hand-written deleters.
struct OpensslFree {
  void operator()(void* p) const { OPENSSL_free(p); }
};
struct X509StackFree {
  void operator()(STACK_OF(X509) * s) const { sk_X509_free(s); }  // elements are borrowed
};
struct ExtensionStackFree {
  void operator()(STACK_OF(X509_EXTENSION) * s) const { sk_X509_EXTENSION_pop_free(s, X509_EXTENSION_free); }
};

using BioPtr = std::unique_ptr<BIO, FreeWith<BIO_free>>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, FreeWith<EVP_PKEY_free>>;
using PkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, FreeWith<EVP_PKEY_CTX_free>>;
using X509Ptr = std::unique_ptr<X509, FreeWith<X509_free>>;
using ReqPtr = std::unique_ptr<X509_REQ, FreeWith<X509_REQ_free>>;
using NamePtr = std::unique_ptr<X509_NAME, FreeWith<X509_NAME_free>>;
using ExtensionPtr = std::unique_ptr<X509_EXTENSION, FreeWith<X509_EXTENSION_free>>;
using ExtensionStackPtr = std::unique_ptr<STACK_OF(X509_EXTENSION), ExtensionStackFree>;
using X509StackPtr = std::unique_ptr<STACK_OF(X509), X509StackFree>;
using TimePtr = std::unique_ptr<ASN1_TIME, FreeWith<ASN1_TIME_free>>;
using IntegerPtr = std::unique_ptr<ASN1_INTEGER, FreeWith<ASN1_INTEGER_free>>;
using OctetStringPtr = std::unique_ptr<ASN1_OCTET_STRING, FreeWith<ASN1_OCTET_STRING_free>>;
using BitStringPtr = std::unique_ptr<ASN1_BIT_STRING, FreeWith<ASN1_BIT_STRING_free>>;
using Ia5StringPtr = std::unique_ptr<ASN1_IA5STRING, FreeWith<ASN1_IA5STRING_free>>;
using BignumPtr = std::unique_ptr<BIGNUM, FreeWith<BN_free>>;
using GeneralNamePtr = std::unique_ptr<GENERAL_NAME, FreeWith<GENERAL_NAME_free>>;
using GeneralNamesPtr = std::unique_ptr<GENERAL_NAMES, FreeWith<GENERAL_NAMES_free>>;
using BasicConstraintsPtr = std::unique_ptr<BASIC_CONSTRAINTS, FreeWith<BASIC_CONSTRAINTS_free>>;
using ExtKeyUsagePtr = std::unique_ptr<EXTENDED_KEY_USAGE, FreeWith<EXTENDED_KEY_USAGE_free>>;
using AuthorityKeyIdPtr = std::unique_ptr<AUTHORITY_KEYID, FreeWith<AUTHORITY_KEYID_free>>;
using PubkeyPtr = std::unique_ptr<X509_PUBKEY, FreeWith<X509_PUBKEY_free>>;
using Pkcs8Ptr = std::unique_ptr<PKCS8_PRIV_KEY_INFO, FreeWith<PKCS8_PRIV_KEY_INFO_free>>;
using StorePtr = std::unique_ptr<X509_STORE, FreeWith<X509_STORE_free>>;
using StoreCtxPtr = std::unique_ptr<X509_STORE_CTX, FreeWith<X509_STORE_CTX_free>>;
using OpensslBytes = std::unique_ptr<unsigned char, OpensslFree>;

// Clears the thread's error queue when the scope ends, so no public function leaves
// stale errors behind for the next caller (gRPC reads the same queue).
class ErrorQueueGuard {
 public:
  ErrorQueueGuard() = default;
  ErrorQueueGuard(const ErrorQueueGuard&) = delete;
  ErrorQueueGuard& operator=(const ErrorQueueGuard&) = delete;
  ~ErrorQueueGuard() { ERR_clear_error(); }
};

// Drains the error queue into "; "-joined text; "no further detail" when it is empty.
std::string takeErrors();

// `message` followed by the drained error queue.
Status cryptoError(StatusCode code, std::string message);

// Inputs larger than this are refused before they reach the parsers (their length
// arguments are `int`, and no legitimate Keel PEM comes close).
inline constexpr size_t kMaxPemSize = size_t{16} * 1024 * 1024;

struct PemBlock {
  std::string name;     // "CERTIFICATE", "PRIVATE KEY", ...
  std::string headers;  // RFC 1421 headers; empty for everything Keel accepts
  std::vector<uint8_t> der;
};

// Every PEM block in `pem`, in order. Text outside blocks is skipped, as OpenSSL does;
// a block that starts but does not decode is an error. `what` names the input in errors.
Result<std::vector<PemBlock>> readPemBlocks(std::string_view pem, std::string_view what);

// The single block of `pem`, which must be named one of `names`.
Result<PemBlock> readSinglePemBlock(std::string_view pem, std::span<const std::string_view> names,
                                    std::string_view what);

// Everything written to a memory BIO so far.
std::string bioContents(BIO* bio);
BioPtr newMemoryBio();

std::string toHex(std::span<const uint8_t> bytes);
std::string sha256Hex(std::span<const uint8_t> bytes);

// The key type of `key`, or INVALID_ARGUMENT naming what it is instead.
Result<KeyType> keyTypeOf(EVP_PKEY* key);
// SHA-256 for ECDSA; null for Ed25519, which signs the message itself.
const EVP_MD* signingDigest(KeyType type);

// Times past TimePoint's range (after 2262) are clamped to TimePoint::max().
Result<TimePoint> fromAsn1Time(const ASN1_TIME* time);
Result<TimePtr> toAsn1Time(TimePoint time);

// Validity periods Keel accepts: positive and at most kMaxValidity.
Status checkValidity(std::chrono::seconds validity, std::string_view what);

// Reading and building names and SANs.
DistinguishedName readName(const X509_NAME* name);
// Strict form for names that are about to be signed: exactly one non-empty CN, no NUL
// bytes, every attribute decodable.
Result<DistinguishedName> readNameForIssuing(const X509_NAME* name);
Result<NamePtr> buildName(const DistinguishedName& name);

// Lenient: skips names of other types and malformed addresses.
SubjectAltNames readSubjectAltNames(const GENERAL_NAMES* names);
// Strict: any name that is not a well-formed DNS name or IP address is an error.
Result<SubjectAltNames> readSubjectAltNamesForIssuing(const GENERAL_NAMES* names);
Result<GeneralNamesPtr> buildSubjectAltNames(const SubjectAltNames& sans);

// The subjectAltName extension a CSR requests; null when it requests none. A duplicate
// or undecodable extension is an error.
Result<GeneralNamesPtr> requestedSubjectAltNames(X509_REQ* req);

// "10.0.0.1" -> 4 bytes, "::1" -> 16 bytes; anything else is an error.
Result<std::vector<uint8_t>> parseIpAddress(std::string_view text);
Status checkDnsName(std::string_view name);

}  // namespace keel::pki::internal
