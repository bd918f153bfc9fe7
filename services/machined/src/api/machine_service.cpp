// The machine API: construction, the node's version and host name.
#include "src/api/machine_service.h"

#include <sys/utsname.h>

#include "src/state/config_store.h"
#include "keel/common/version.h"
#include "keel/facts/system_facts.h"
#include "keel/transport/grpc_status.h"
#include "src/api/api_detail.h"

namespace keel::machined {

using transport::toGrpc;

MachineServiceImpl::MachineServiceImpl(MachineServiceDeps deps) : deps_(std::move(deps)) {
  if (utsname u{}; uname(&u) == 0) kernel_ = std::string(u.release) + " " + u.version;
}


grpc::Status MachineServiceImpl::Version(grpc::ServerContext* ctx, const Empty*, v1::VersionResponse* resp) {
  KEEL_AUTHORIZE(ctx);
  const auto& info = buildInfo();
  auto* m = resp->add_messages();
  KEEL_META(m);
  m->set_version(std::string(info.version));
  m->set_git_commit(std::string(info.gitCommit));
  m->set_build_date(std::string(info.buildDate));
  m->set_arch(std::string(info.arch));
  if (const auto running = runningImage()) {
    m->set_image_version(running->version.toString());
    m->set_image_build_id(running->buildId);
  }
  if (!deps_.bootDir.empty()) m->set_boot_slot(deps_.bootedSlot);
  m->set_kernel(kernel_);
  m->set_initramfs(deps_.initramfs);
  return grpc::Status::OK;
}

grpc::Status MachineServiceImpl::Hostname(grpc::ServerContext* ctx, const Empty*, v1::HostnameResponse* resp) {
  KEEL_AUTHORIZE(ctx);
  std::string name;
  if (const auto configured = deps_.config->current().hostname) {
    name = *configured;
  } else {
    auto h = deps_.facts->hostname();
    if (!h.ok()) return toGrpc(h.status());
    name = *h;
  }
  auto* m = resp->add_messages();
  KEEL_META(m);
  m->set_hostname(name);
  return grpc::Status::OK;
}

}  // namespace keel::machined
