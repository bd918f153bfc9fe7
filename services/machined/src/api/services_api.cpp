// The machine API: the supervised services (list, start, stop, restart).
#include "src/api/machine_service.h"

#include "keel/supervisor/supervisor.h"
#include "keel/transport/grpc_status.h"
#include "src/api/api_detail.h"

namespace keel::machined {

using namespace api_detail;
using transport::toGrpc;

namespace {

void fillService(const supervisor::ServiceStatus& s, const std::map<std::string, std::string>& versions,
                 v1::ServiceInfo* out) {
  out->set_id(s.id);
  if (const auto it = versions.find(s.id); it != versions.end()) out->set_version(it->second);
  out->set_state(std::string(supervisor::serviceStateName(s.state)));
  out->set_pid(s.pid);
  out->set_restarts(s.restarts);
  out->set_last_exit_code(s.lastExitCode.value_or(-1));
  out->set_last_exit_signal(s.lastSignal);
  out->set_since_unix_nanos(unixNanos(s.since));
  for (const auto& e : s.recentEvents) {
    auto* ev = out->add_events();
    ev->set_state(std::string(eventState(e.type)));
    ev->set_message(e.message);
    ev->set_unix_nanos(unixNanos(e.time));
  }
}

}  // namespace

grpc::Status MachineServiceImpl::ServiceList(grpc::ServerContext* ctx, const Empty*, v1::ServiceListResponse* resp) {
  KEEL_AUTHORIZE(ctx);
  auto* m = resp->add_messages();
  KEEL_META(m);
  for (const auto& s : deps_.supervisor->statuses()) fillService(s, deps_.serviceVersions, m->add_services());
  return grpc::Status::OK;
}

grpc::Status MachineServiceImpl::ServiceStart(grpc::ServerContext* ctx, const v1::ServiceRequest* req,
                                              v1::ServiceActionResponse* resp) {
  KEEL_AUTHORIZE(ctx);
  const Status st = deps_.supervisor->start(req->id());
  if (!st.isOk()) return toGrpc(st);
  auto* m = resp->add_messages();
  KEEL_META(m);
  m->set_response("service " + req->id() + " starting");
  return grpc::Status::OK;
}

grpc::Status MachineServiceImpl::ServiceStop(grpc::ServerContext* ctx, const v1::ServiceRequest* req,
                                             v1::ServiceActionResponse* resp) {
  KEEL_AUTHORIZE(ctx);
  const Status st = deps_.supervisor->stop(req->id());
  if (!st.isOk()) return toGrpc(st);
  auto* m = resp->add_messages();
  KEEL_META(m);
  m->set_response("service " + req->id() + " stopping");
  return grpc::Status::OK;
}

grpc::Status MachineServiceImpl::ServiceRestart(grpc::ServerContext* ctx, const v1::ServiceRequest* req,
                                                v1::ServiceActionResponse* resp) {
  KEEL_AUTHORIZE(ctx);
  const Status st = deps_.supervisor->restart(req->id());
  if (!st.isOk()) return toGrpc(st);
  auto* m = resp->add_messages();
  KEEL_META(m);
  m->set_response("service " + req->id() + " restarting");
  return grpc::Status::OK;
}

}  // namespace keel::machined
