#include "ca_commands.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <fstream>
#include <sstream>

#include "keel/common/clock.h"
#include "keel/pki/pki.h"
#include "keel/pki/serial.h"

#include "table.h"

namespace keel::keelctl {

namespace v1 = keel::security::v1;

namespace {

// Certificates come from one control plane's certificate authority: they are never
// fanned out.
constexpr auto kCaTimeout = std::chrono::seconds(30);

Result<std::vector<std::string>> caNode(const MachineCommandEnv& env) {
  return oneNodeTarget(
      env.client.target(),
      "client certificates come from the certificate authority of one control plane, the node "
      "behind the endpoint");
}

std::string unixTime(int64_t seconds) {
  return formatTime(TimePoint(std::chrono::seconds(seconds)));
}

}  // namespace

Status cmdConfigGenerate(MachineCommandEnv& env, const ConfigGenerateOptions& o) {
  KEEL_ASSIGN_OR_RETURN(const auto node, caNode(env));
  if (!env.client.target().viaApid()) {
    return invalidArgument(
        "'config generate' asks a control plane's certificate authority through apid; it does "
        "not work with --root or --socket");
  }
  if (!o.force && std::filesystem::exists(o.output)) {
    return Status(StatusCode::kAlreadyExists,
                  fmt::format("{} already exists; pass --force to replace it", o.output.string()));
  }
  v1::GenerateClientConfigurationRequest req;
  for (const auto& r : o.roles) req.add_roles(r);
  req.set_ttl_seconds(o.ttl.count());
  req.set_identity(o.identity);
  KEEL_ASSIGN_OR_RETURN(const auto resp, callOneNode(env, env.client.security(),
                                                     &v1::SecurityService::Stub::GenerateClientConfiguration,
                                                     req, node, kCaTimeout));
  auto generated = config::parseClientConfig(resp.keelconfig());
  if (!generated.ok()) return generated.status().withContext("the client config trustd returned");
  KEEL_RETURN_IF_ERROR(config::writeClientConfigFile(
      o.output, *generated, o.force ? config::Overwrite::kYes : config::Overwrite::kNo));
  env.out << fmt::format("wrote {}: context '{}', roles {}, certificate serial {} valid until {}\n",
                         o.output.string(), generated->context, fmt::join(o.roles, ","), resp.serial(),
                         unixTime(resp.not_after_unix()));
  return Status::ok();
}

Status cmdConfigRenew(MachineCommandEnv& env, const std::filesystem::path& path, config::ClientConfig cfg,
                      std::chrono::seconds ttl) {
  KEEL_ASSIGN_OR_RETURN(const auto node, caNode(env));
  KEEL_ASSIGN_OR_RETURN(config::ClientContext* const ctx, config::currentContext(cfg));
  KEEL_ASSIGN_OR_RETURN(const auto current, pki::Certificate::fromPem(ctx->crt));
  // A new key: a renewal also retires the old key, which may have been around for long.
  KEEL_ASSIGN_OR_RETURN(const auto key, pki::PrivateKey::generate(pki::KeyType::kEcdsaP256));
  pki::CsrOptions options;
  options.subject.commonName = current.subject().commonName;
  KEEL_ASSIGN_OR_RETURN(const auto csr, pki::CertificateRequest::create(key, options));
  v1::RenewClientCertificateRequest req;
  req.set_csr(csr.toPem());
  req.set_ttl_seconds(ttl.count());
  KEEL_ASSIGN_OR_RETURN(const auto resp, callOneNode(env, env.client.security(),
                                                     &v1::SecurityService::Stub::RenewClientCertificate, req,
                                                     node, kCaTimeout));
  auto renewed = pki::Certificate::fromPem(resp.certificate());
  if (!renewed.ok()) return renewed.status().withContext("the certificate trustd returned");
  if (!renewed->matchesKey(key))
    return internalError("the certificate trustd returned is not for the key sent");
  ctx->crt = resp.certificate();
  ctx->key = key.toPem();
  KEEL_RETURN_IF_ERROR(config::writeClientConfigFile(path, cfg, config::Overwrite::kYes));
  env.out << fmt::format("renewed the client certificate of context '{}' ({}): valid until {} (was {})\n",
                         cfg.context, renewed->subject().toString(), formatTime(renewed->notAfter()),
                         formatTime(current.notAfter()));
  return Status::ok();
}

Status cmdConfigRevoke(MachineCommandEnv& env, const RevokeOptions& o) {
  KEEL_ASSIGN_OR_RETURN(const auto node, caNode(env));
  if (o.certFile.empty() == o.serial.empty()) return invalidArgument("expected exactly one of --cert FILE and --serial HEX");
  v1::RevokeCertificateRequest req;
  std::string serial = o.serial;
  if (!o.certFile.empty()) {
    std::ifstream in(o.certFile);
    if (!in) return notFound(fmt::format("cannot read {}", o.certFile.string()));
    std::stringstream text;
    text << in.rdbuf();
    auto cert = pki::Certificate::fromPem(text.str());
    if (!cert.ok()) return cert.status().withContext(o.certFile.string());
    serial = cert->serialHex();
    req.set_certificate(text.str());
  } else {
    req.set_serial(o.serial);
  }
  // A serial that does not read as one is left for trustd to refuse.
  const auto typed = pki::normalizeSerial(serial);
  if (!o.self && !o.ownSerial.empty() && typed.ok() && *typed == o.ownSerial) {
    return failedPrecondition(fmt::format(
        "serial {} is the certificate this keelconfig calls with: once revoked, this keelconfig is locked out. "
        "Revoke it from another admin keelconfig, or pass --self if that is what you want",
        serial));
  }
  KEEL_ASSIGN_OR_RETURN(const auto resp, callOneNode(env, env.client.security(),
                                                     &v1::SecurityService::Stub::RevokeCertificate, req, node,
                                                     kCaTimeout));
  if (env.format != OutputFormat::kTable) {
    printMessage(resp, env.format, env.out);
    return Status::ok();
  }
  env.out << fmt::format("{} serial {}: every apid refuses it within 30 s; listed until {} (list sequence {})\n",
                         resp.already_revoked() ? "already revoked:" : "revoked", resp.serial(),
                         unixTime(resp.not_after_unix()), resp.list_sequence());
  return Status::ok();
}

Status cmdConfigRevoked(MachineCommandEnv& env) {
  KEEL_ASSIGN_OR_RETURN(const auto node, caNode(env));
  KEEL_ASSIGN_OR_RETURN(const auto resp, callOneNode(env, env.client.security(),
                                                     &v1::SecurityService::Stub::ListRevokedCertificates,
                                                     keel::common::v1::Empty(), node, kCaTimeout));
  if (env.format != OutputFormat::kTable) {
    printMessage(resp, env.format, env.out);
    return Status::ok();
  }
  std::vector<std::vector<std::string>> rows;
  for (const auto& c : resp.certificates()) {
    rows.push_back({c.serial(), c.identity().empty() ? "-" : c.identity(), unixTime(c.revoked_at_unix()),
                    c.revoked_by().empty() ? "-" : c.revoked_by(), unixTime(c.not_after_unix())});
  }
  printTable(env.out, {"SERIAL", "IDENTITY", "REVOKED", "BY", "LISTED UNTIL"}, rows);
  return Status::ok();
}

}  // namespace keel::keelctl
