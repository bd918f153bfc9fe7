// The machine API: facts about the machine (memory, load, CPUs, processes, mounts, disks, network, uptime).
#include "src/api/machine_service.h"

#include "src/state/file_roots.h"
#include "keel/facts/system_facts.h"
#include "keel/transport/grpc_status.h"
#include "src/api/api_detail.h"

namespace keel::machined {

using transport::toGrpc;

grpc::Status MachineServiceImpl::Memory(grpc::ServerContext* ctx, const Empty*, v1::MemoryResponse* resp) {
  KEEL_AUTHORIZE(ctx);
  auto mem = deps_.facts->memory();
  if (!mem.ok()) return toGrpc(mem.status());
  auto* m = resp->add_messages();
  KEEL_META(m);
  auto* i = m->mutable_meminfo();
  i->set_total_kb(mem->totalKb);
  i->set_free_kb(mem->freeKb);
  i->set_available_kb(mem->availableKb);
  i->set_buffers_kb(mem->buffersKb);
  i->set_cached_kb(mem->cachedKb);
  i->set_swap_total_kb(mem->swapTotalKb);
  i->set_swap_free_kb(mem->swapFreeKb);
  return grpc::Status::OK;
}

grpc::Status MachineServiceImpl::LoadAvg(grpc::ServerContext* ctx, const Empty*, v1::LoadAvgResponse* resp) {
  KEEL_AUTHORIZE(ctx);
  auto l = deps_.facts->loadAvg();
  if (!l.ok()) return toGrpc(l.status());
  auto* m = resp->add_messages();
  KEEL_META(m);
  m->set_load1(l->load1);
  m->set_load5(l->load5);
  m->set_load15(l->load15);
  return grpc::Status::OK;
}

grpc::Status MachineServiceImpl::CPUInfo(grpc::ServerContext* ctx, const Empty*, v1::CPUInfoResponse* resp) {
  KEEL_AUTHORIZE(ctx);
  auto cpus = deps_.facts->cpuInfo();
  if (!cpus.ok()) return toGrpc(cpus.status());
  auto* m = resp->add_messages();
  KEEL_META(m);
  for (const auto& c : *cpus) {
    auto* o = m->add_cpus();
    o->set_processor(c.processor);
    o->set_vendor_id(c.vendorId);
    o->set_model_name(c.modelName);
    o->set_cpu_mhz(c.mhz);
    o->set_core_id(c.coreId);
    o->set_cpu_cores(c.cpuCores);
    for (const auto& f : c.flags) o->add_flags(f);
  }
  return grpc::Status::OK;
}

grpc::Status MachineServiceImpl::Processes(grpc::ServerContext* ctx, const Empty*, v1::ProcessesResponse* resp) {
  KEEL_AUTHORIZE(ctx);
  auto procs = deps_.facts->processes();
  if (!procs.ok()) return toGrpc(procs.status());
  auto* m = resp->add_messages();
  KEEL_META(m);
  for (const auto& p : *procs) {
    auto* o = m->add_processes();
    o->set_pid(p.pid);
    o->set_ppid(p.ppid);
    o->set_state(p.state);
    o->set_threads(p.threads);
    o->set_cpu_seconds(p.cpuSeconds);
    o->set_resident_bytes(p.residentBytes);
    o->set_virtual_bytes(p.virtualBytes);
    o->set_command(p.command);
    o->set_args(p.args);
  }
  return grpc::Status::OK;
}

grpc::Status MachineServiceImpl::Mounts(grpc::ServerContext* ctx, const Empty*, v1::MountsResponse* resp) {
  KEEL_AUTHORIZE(ctx);
  auto mounts = deps_.facts->mounts();
  if (!mounts.ok()) return toGrpc(mounts.status());
  auto* m = resp->add_messages();
  KEEL_META(m);
  for (const auto& mt : *mounts) {
    auto* o = m->add_mounts();
    o->set_source(mt.source);
    o->set_target(mt.target);
    o->set_filesystem(mt.filesystem);
    o->set_options(mt.options);
    o->set_size_bytes(mt.sizeBytes.value_or(0));
    o->set_available_bytes(mt.availableBytes.value_or(0));
  }
  return grpc::Status::OK;
}

grpc::Status MachineServiceImpl::DiskUsage(grpc::ServerContext* ctx, const v1::DiskUsageRequest* req,
                                           v1::DiskUsageResponse* resp) {
  KEEL_AUTHORIZE(ctx);
  // Measured only inside the allowed file roots: directory names are information too.
  auto path = deps_.files->confine(req->path());
  if (!path.ok()) return toGrpc(path.status());
  auto usage = deps_.facts->diskUsage(*path, req->depth());
  if (!usage.ok()) return toGrpc(usage.status());
  auto* m = resp->add_messages();
  KEEL_META(m);
  for (const auto& e : usage->entries) {
    auto* o = m->add_entries();
    o->set_path(deps_.files->toNodePath(e.path));
    o->set_size_bytes(e.sizeBytes);
    o->set_error(e.error);
  }
  if (usage->truncated) {
    auto* o = m->add_entries();
    o->set_path(req->path());
    o->set_error("truncated: the tree is larger than one call measures; sizes are lower bounds");
  }
  return grpc::Status::OK;
}

grpc::Status MachineServiceImpl::NetworkDeviceStats(grpc::ServerContext* ctx, const Empty*,
                                                    v1::NetworkDeviceStatsResponse* resp) {
  KEEL_AUTHORIZE(ctx);
  auto devs = deps_.facts->networkDeviceStats();
  if (!devs.ok()) return toGrpc(devs.status());
  auto* m = resp->add_messages();
  KEEL_META(m);
  for (const auto& d : *devs) {
    auto* o = m->add_devices();
    o->set_name(d.name);
    o->set_rx_bytes(d.rxBytes);
    o->set_rx_packets(d.rxPackets);
    o->set_rx_errors(d.rxErrors);
    o->set_rx_dropped(d.rxDropped);
    o->set_tx_bytes(d.txBytes);
    o->set_tx_packets(d.txPackets);
    o->set_tx_errors(d.txErrors);
    o->set_tx_dropped(d.txDropped);
  }
  return grpc::Status::OK;
}

grpc::Status MachineServiceImpl::SystemStat(grpc::ServerContext* ctx, const Empty*, v1::SystemStatResponse* resp) {
  KEEL_AUTHORIZE(ctx);
  auto st = deps_.facts->systemStat();
  if (!st.ok()) return toGrpc(st.status());
  auto* m = resp->add_messages();
  KEEL_META(m);
  m->set_boot_time(st->bootTime);
  for (const auto& c : st->cpus) {
    auto* o = m->add_cpus();
    o->set_name(c.name);
    o->set_user(c.user);
    o->set_nice(c.nice);
    o->set_system(c.system);
    o->set_idle(c.idle);
    o->set_iowait(c.iowait);
    o->set_irq(c.irq);
    o->set_softirq(c.softirq);
    o->set_steal(c.steal);
  }
  m->set_context_switches(st->contextSwitches);
  m->set_processes_created(st->processesCreated);
  m->set_processes_running(st->processesRunning);
  m->set_processes_blocked(st->processesBlocked);
  return grpc::Status::OK;
}

grpc::Status MachineServiceImpl::Uptime(grpc::ServerContext* ctx, const Empty*, v1::UptimeResponse* resp) {
  KEEL_AUTHORIZE(ctx);
  auto up = deps_.facts->uptime();
  if (!up.ok()) return toGrpc(up.status());
  auto* m = resp->add_messages();
  KEEL_META(m);
  m->set_uptime_seconds(up->uptimeSeconds);
  m->set_idle_seconds(up->idleSeconds);
  return grpc::Status::OK;
}

}  // namespace keel::machined
