// Field readers shared by the secrets bundle and the machine config, so both validate
// tokens, secrets and CAs the same way and name the offending field the same way.
#pragma once

#include <string>
#include <string_view>

#include "keel/config/ca_rotation.h"
#include "keel/config/json_fields.h"
#include "keel/config/machine_config.h"
#include "keel/common/status.h"
#include "keel/pki/pki.h"

namespace keel::config::detail {

// A required token "[a-z0-9]{6}.[a-z0-9]{16}".
Result<std::string> readToken(ObjectReader& obj, std::string_view key);
Status checkToken(std::string_view path, std::string_view token);

// A required base64 string of exactly kSecretSize bytes.
Result<std::string> readSecret(ObjectReader& obj, std::string_view key);
Status checkSecret(std::string_view path, std::string_view value);

// A CA certificate (must be a CA) and, unless `keyPem` is empty, its key (must match).
Status checkCaPem(std::string_view crtPem, std::string_view keyPem, std::string_view crtPath,
                  std::string_view keyPath);
Result<pki::CertificateAuthority> parseCaPem(std::string_view crtPem, std::string_view keyPem,
                                             std::string_view crtPath, std::string_view keyPath);

// The CAs accepted besides the issuing one (`path`.accepted): each a CA certificate,
// none the issuing one or another's repeat, at most kMaxAcceptedCas.
Status checkAcceptedCas(const CaPem& ca, std::string_view path);

// One rotation step on one CA (see changeCertificateAuthorities).
Result<CaPem> changeCa(const CaPem& current, CaKind kind, const CaChange& change, bool controlPlane);

// The subject of the secrets bundle's CA of `kind` (a rotation adds the time to its CN).
pki::DistinguishedName caSubject(CaKind kind);

}  // namespace keel::config::detail
