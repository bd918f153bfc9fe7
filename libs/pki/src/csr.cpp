#include <array>

#include "keel/pki/pki.h"

#include "internal.h"

namespace keel::pki {
namespace internal {

Result<GeneralNamesPtr> requestedSubjectAltNames(X509_REQ* req) {
  ExtensionStackPtr exts(X509_REQ_get_extensions(req));
  if (exts == nullptr) {
    ERR_clear_error();  // no extensionRequest attribute: no SANs requested
    return GeneralNamesPtr();
  }
  int critical = -1;
  GeneralNamesPtr names(
      static_cast<GENERAL_NAMES*>(X509V3_get_d2i(exts.get(), NID_subject_alt_name, &critical, nullptr)));
  if (names == nullptr && critical == -2) {
    return invalidArgument("expected at most one subjectAltName extension in the CSR, found several");
  }
  if (names == nullptr && critical >= 0) {
    return cryptoError(StatusCode::kInvalidArgument, "malformed subjectAltName extension in the CSR");
  }
  return names;
}

}  // namespace internal

namespace {

using namespace internal;

constexpr std::array<std::string_view, 1> kCsrNames = {"CERTIFICATE REQUEST"};

Result<ReqPtr> parseDer(std::span<const uint8_t> der) {
  const unsigned char* p = der.data();
  ReqPtr req(d2i_X509_REQ(nullptr, &p, static_cast<long>(der.size())));
  if (req == nullptr) return cryptoError(StatusCode::kInvalidArgument, "malformed CSR DER");
  if (p != der.data() + der.size()) {
    return invalidArgument("expected CSR DER to end after the request, found " +
                           std::to_string(der.data() + der.size() - p) + " trailing bytes");
  }
  return req;
}

}  // namespace

Result<CertificateRequest> CertificateRequest::create(const PrivateKey& key, const CsrOptions& options) {
  ErrorQueueGuard guard;
  if (options.subject.commonName.empty())
    return invalidArgument("expected a non-empty CN for the CSR, got none");
  KEEL_ASSIGN_OR_RETURN(auto name, buildName(options.subject));
  ReqPtr req(X509_REQ_new());
  KEEL_RELEASE_ASSERT(req != nullptr, "out of memory");
  if (X509_REQ_set_version(req.get(), 0) != 1 || X509_REQ_set_subject_name(req.get(), name.get()) != 1 ||
      X509_REQ_set_pubkey(req.get(), key.raw()) != 1) {
    return cryptoError(StatusCode::kInternal, "cannot fill in the CSR");
  }
  if (!options.subjectAltNames.empty()) {
    KEEL_ASSIGN_OR_RETURN(auto sans, buildSubjectAltNames(options.subjectAltNames));
    ExtensionStackPtr exts(sk_X509_EXTENSION_new_null());
    KEEL_RELEASE_ASSERT(exts != nullptr, "out of memory");
    ExtensionPtr ext(X509V3_EXT_i2d(NID_subject_alt_name, 0, sans.get()));
    if (ext == nullptr) return cryptoError(StatusCode::kInternal, "cannot encode the CSR's subjectAltName");
    KEEL_RELEASE_ASSERT(sk_X509_EXTENSION_push(exts.get(), ext.get()) != 0, "out of memory");
    (void)ext.release();  // owned by the stack
    if (X509_REQ_add_extensions(req.get(), exts.get()) != 1) {
      return cryptoError(StatusCode::kInternal, "cannot add the extension request to the CSR");
    }
  }
  if (X509_REQ_sign(req.get(), key.raw(), signingDigest(key.type())) <= 0) {
    return cryptoError(StatusCode::kInternal, "cannot sign the CSR");
  }
  // Re-parse the encoding so the object matches what a peer will read.
  unsigned char* der = nullptr;
  const int len = i2d_X509_REQ(req.get(), &der);
  if (len <= 0) return cryptoError(StatusCode::kInternal, "cannot encode the CSR");
  OpensslBytes owner(der);
  KEEL_ASSIGN_OR_RETURN(auto parsed, parseDer(std::span<const uint8_t>(der, static_cast<size_t>(len))));
  return CertificateRequest(std::shared_ptr<X509_req_st>(parsed.release(), X509_REQ_free));
}

Result<CertificateRequest> CertificateRequest::fromPem(std::string_view pem) {
  ErrorQueueGuard guard;
  KEEL_ASSIGN_OR_RETURN(auto block, readSinglePemBlock(pem, kCsrNames, "CSR"));
  KEEL_ASSIGN_OR_RETURN(auto req, parseDer(block.der));
  return CertificateRequest(std::shared_ptr<X509_req_st>(req.release(), X509_REQ_free));
}

std::string CertificateRequest::toPem() const {
  ErrorQueueGuard guard;
  auto bio = newMemoryBio();
  KEEL_RELEASE_ASSERT(PEM_write_bio_X509_REQ(bio.get(), req_.get()) == 1, "cannot encode a parsed CSR");
  return bioContents(bio.get());
}

DistinguishedName CertificateRequest::subject() const {
  ErrorQueueGuard guard;
  return readName(X509_REQ_get_subject_name(req_.get()));
}

SubjectAltNames CertificateRequest::subjectAltNames() const {
  ErrorQueueGuard guard;
  auto names = requestedSubjectAltNames(req_.get());
  return names.ok() ? readSubjectAltNames(names->get()) : SubjectAltNames{};
}

Status CertificateRequest::verifySignature() const {
  ErrorQueueGuard guard;
  PkeyPtr key(X509_REQ_get_pubkey(req_.get()));
  if (key == nullptr) return cryptoError(StatusCode::kInvalidArgument, "CSR public key does not decode");
  if (X509_REQ_verify(req_.get(), key.get()) != 1) {
    return cryptoError(
        StatusCode::kInvalidArgument,
        "expected the CSR to be signed by the key it carries, but its signature does not verify");
  }
  return Status::ok();
}

}  // namespace keel::pki
