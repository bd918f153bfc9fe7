// The machine API: reboot, shutdown and reset.
#include "src/api/machine_service.h"

#include "keel/transport/grpc_status.h"
#include "src/api/api_detail.h"

namespace keel::machined {


namespace {

grpc::Status power(const MachineServiceDeps& deps, PowerAction action, const char* name, v1::PowerResponse* resp) {
  auto* m = resp->add_messages();
  m->mutable_metadata()->set_node(deps.nodeName);
  m->set_action(name);
  deps.power(action);
  return grpc::Status::OK;
}

}  // namespace

grpc::Status MachineServiceImpl::Reboot(grpc::ServerContext* ctx, const Empty*, v1::PowerResponse* resp) {
  KEEL_AUTHORIZE(ctx);
  return power(deps_, PowerAction::kReboot, "reboot", resp);
}

grpc::Status MachineServiceImpl::Shutdown(grpc::ServerContext* ctx, const Empty*, v1::PowerResponse* resp) {
  KEEL_AUTHORIZE(ctx);
  return power(deps_, PowerAction::kShutdown, "shutdown", resp);
}

grpc::Status MachineServiceImpl::Reset(grpc::ServerContext* ctx, const Empty*, v1::PowerResponse* resp) {
  KEEL_AUTHORIZE(ctx);
  return power(deps_, PowerAction::kReset, "reset", resp);
}

}  // namespace keel::machined
