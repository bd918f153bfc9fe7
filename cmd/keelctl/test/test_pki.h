// Certificates for keelctl's tests over mutual TLS: a CA, and leaves it issues for a
// server (with an IP SAN) or for a client (os:admin).
#pragma once

#include <chrono>
#include <string>

#include <catch2/catch_test_macros.hpp>

#include "keel/common/clock.h"
#include "keel/pki/pki.h"

namespace keel::keelctl::testpki {

inline pki::CertificateAuthority makeCa(const std::string& name, const Clock& clock) {
  auto ca = pki::createSelfSignedCa({.subject = {.commonName = name, .organizations = {}}}, clock);
  REQUIRE(ca.ok());
  return *ca;
}

struct Leaf {
  pki::PrivateKey key;
  pki::Certificate cert;
};

inline Leaf makeLeaf(const pki::CertificateAuthority& ca, const std::string& cn, pki::ExtendedKeyUsage usage,
                     std::chrono::seconds ttl, const Clock& clock, const std::string& ipSan = "127.0.0.1") {
  auto key = pki::PrivateKey::generate(pki::KeyType::kEcdsaP256);
  REQUIRE(key.ok());
  pki::CsrOptions csr;
  csr.subject.commonName = cn;
  if (usage == pki::ExtendedKeyUsage::kServerAuth) csr.subjectAltNames.ipAddresses = {ipSan};
  auto req = pki::CertificateRequest::create(*key, csr);
  REQUIRE(req.ok());
  pki::IssuePolicy policy;
  policy.extendedKeyUsages = {usage};
  policy.allowAnySubjectAltName = true;
  policy.ttl = ttl;
  if (usage == pki::ExtendedKeyUsage::kClientAuth) {
    policy.organizationPolicy = pki::IssuePolicy::Organizations::kSet;
    policy.organizations = {"os:admin"};
  }
  auto cert = pki::issueCertificate(ca, *req, policy, clock);
  REQUIRE(cert.ok());
  return {*key, *cert};
}

}  // namespace keel::keelctl::testpki
