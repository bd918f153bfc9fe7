// The machine API: the machine configuration, its live changes (join tokens, CAs) and the try mode.
#include "src/api/machine_service.h"

#include <chrono>

#include "src/state/config_store.h"
#include "src/trust/apid_identity.h"
#include "keel/config/ca_rotation.h"
#include "keel/config/join_tokens.h"
#include "keel/config/machine_config.h"
#include "keel/transport/grpc_status.h"
#include "src/api/api_detail.h"

namespace keel::machined {

using transport::toGrpc;

grpc::Status MachineServiceImpl::GetConfiguration(grpc::ServerContext* ctx, const Empty*,
                                                  v1::GetConfigurationResponse* resp) {
  KEEL_AUTHORIZE(ctx);
  const auto redacted = config::redactMachineConfig(deps_.config->current());
  auto* m = resp->add_messages();
  KEEL_META(m);
  m->set_data(config::serializeMachineConfig(redacted));
  return grpc::Status::OK;
}

grpc::Status MachineServiceImpl::ApplyConfiguration(grpc::ServerContext* ctx, const v1::ApplyConfigurationRequest* req,
                                                    v1::ApplyConfigurationResponse* resp) {
  KEEL_AUTHORIZE(ctx);
  ApplyMode mode = ApplyMode::kAuto;
  switch (req->mode()) {
    case v1::ApplyConfigurationRequest::NO_REBOOT: mode = ApplyMode::kNoReboot; break;
    case v1::ApplyConfigurationRequest::REBOOT: mode = ApplyMode::kReboot; break;
    case v1::ApplyConfigurationRequest::TRY: mode = ApplyMode::kTry; break;
    default: mode = ApplyMode::kAuto; break;
  }
  const auto timeout = std::chrono::seconds(req->try_timeout_seconds() > 0 ? req->try_timeout_seconds() : 60);
  auto outcome = deps_.config->apply(req->data(), mode, timeout);
  if (!outcome.ok()) return toGrpc(outcome.status());
  auto* m = resp->add_messages();
  KEEL_META(m);
  m->set_mode(std::string(applyModeName(outcome->mode)));
  for (const auto& w : outcome->warnings) m->add_warnings(w);
  std::string summary = outcome->summary;
  if (!outcome->changedFields.empty()) {
    summary += " (changed:";
    for (const auto& f : outcome->changedFields) summary += " " + f;
    summary += ")";
  }
  m->set_summary(summary);
  if (outcome->rebootRequired) deps_.power(PowerAction::kReboot);
  return grpc::Status::OK;
}

Result<bool> MachineServiceImpl::applyLive(const config::MachineConfig& current, const config::MachineConfig& next) {
  if (next == current) return false;
  // The same path as ApplyConfiguration: the previous config kept, the change applied live
  // onto the config it was computed from (else ABORTED).
  auto outcome = deps_.config->apply(config::serializeMachineConfig(next), ApplyMode::kNoReboot,
                                     std::chrono::seconds(60), &current);
  if (!outcome.ok()) return outcome.status();
  return true;
}

grpc::Status MachineServiceImpl::UpdateJoinTokens(grpc::ServerContext* ctx, const v1::UpdateJoinTokensRequest* req,
                                                  v1::UpdateJoinTokensResponse* resp) {
  KEEL_AUTHORIZE(ctx);
  const auto current = deps_.config->current();
  auto next = config::changeJoinTokens(current, {req->accept(), req->drop(), req->present()});
  if (!next.ok()) return toGrpc(next.status());
  const auto changed = applyLive(current, *next);
  if (!changed.ok()) return toGrpc(changed.status());
  auto* m = resp->add_messages();
  KEEL_META(m);
  m->set_type(std::string(config::machineTypeName(next->type)));
  if (next->type == config::MachineType::kControlPlane) {
    for (const auto& t : config::acceptedJoinTokens(*next)) m->add_accepted(config::tokenFingerprint(t));
  } else {
    m->set_presented(config::tokenFingerprint(next->token));
  }
  m->set_changed(*changed);
  return grpc::Status::OK;
}

namespace {

void describeCas(const config::MachineConfig& cfg, config::CaKind kind, const std::filesystem::path& apidStateDir,
                 v1::UpdateCertificateAuthorities* m) {
  m->set_type(std::string(config::machineTypeName(cfg.type)));
  m->set_kind(std::string(config::caKindName(kind)));
  const config::CaPem* ca = config::caOf(cfg, kind);
  m->set_held(ca != nullptr);
  if (ca == nullptr) return;
  m->set_issuing(config::caFingerprint(ca->crt).value_or(""));
  for (const auto& a : ca->accepted) m->add_accepted(config::caFingerprint(a).value_or(""));
  if (kind != config::CaKind::kOs || apidStateDir.empty()) return;
  m->set_serving_issuer(issuerFingerprint(apidStateDir / kApidServerCertFile, *ca));
  if (cfg.type == config::MachineType::kControlPlane) {
    m->set_impersonator_issuer(issuerFingerprint(apidStateDir / kApidImpersonatorCertFile, *ca));
  }
}

}  // namespace

grpc::Status MachineServiceImpl::UpdateCertificateAuthorities(grpc::ServerContext* ctx,
                                                              const v1::UpdateCertificateAuthoritiesRequest* req,
                                                              v1::UpdateCertificateAuthoritiesResponse* resp) {
  KEEL_AUTHORIZE(ctx);
  auto kind = config::parseCaKind(req->kind().empty() ? "os" : req->kind());
  if (!kind.ok()) return toGrpc(kind.status());
  const auto current = deps_.config->current();
  const config::CaChange change{
      .accept = req->accept(), .issueCrt = req->issue_certificate(), .issueKey = req->issue_key(), .drop = req->drop()};
  auto next = config::changeCertificateAuthorities(current, *kind, change);
  if (!next.ok()) return toGrpc(next.status());
  const auto changed = applyLive(current, *next);
  if (!changed.ok()) return toGrpc(changed.status());
  auto* m = resp->add_messages();
  KEEL_META(m);
  describeCas(*next, *kind, deps_.apidStateDir, m);
  m->set_changed(*changed);
  return grpc::Status::OK;
}

grpc::Status MachineServiceImpl::ConfirmConfiguration(grpc::ServerContext* ctx, const Empty*,
                                                      v1::ConfirmConfigurationResponse* resp) {
  KEEL_AUTHORIZE(ctx);
  auto r = deps_.config->confirm();
  if (!r.ok()) return toGrpc(r.status());
  auto* m = resp->add_messages();
  KEEL_META(m);
  m->set_summary(*r);
  return grpc::Status::OK;
}

}  // namespace keel::machined
