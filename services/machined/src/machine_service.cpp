#include "machine_service.h"

#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "config_store.h"
#include "event_journal.h"
#include "file_roots.h"
#include "keel/authz/authz.h"
#include "keel/authz/proto_rules.h"
#include "keel/common/version.h"
#include "apid_identity.h"
#include "keel/config/ca_rotation.h"
#include "keel/config/join_tokens.h"
#include "keel/config/machine_config.h"
#include "keel/facts/system_facts.h"
#include "keel/supervisor/supervisor.h"
#include "keel/backend/authorize.h"
#include "keel/transport/grpc_status.h"
#include "kmsg.h"
#include "slot_writer.h"

namespace keel::machined {

namespace {

using transport::toGrpc;

constexpr std::string_view kServicePrefix = "/keel.machine.v1.MachineService/";
// How often a following stream wakes up to notice a cancelled call.
constexpr auto kFollowPoll = std::chrono::milliseconds(200);


int64_t unixNanos(TimePoint t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

// A queue between a subscription callback (any thread) and the handler thread that
// writes the stream. Bounded: a follower too slow to keep up loses the oldest items and
// is told so, instead of growing machined's memory.
template <typename T>
class FollowQueue {
 public:
  explicit FollowQueue(size_t capacity) : capacity_(capacity) {}
  void push(T item) {
    std::lock_guard lock(mu_);
    if (items_.size() >= capacity_) {
      items_.pop_front();
      ++dropped_;
    }
    items_.push_back(std::move(item));
    cv_.notify_one();
  }
  // Waits up to `timeout` for items; returns them all (and how many were dropped).
  std::deque<T> take(std::chrono::milliseconds timeout, size_t& dropped) {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, timeout, [&] { return !items_.empty(); });
    dropped = std::exchange(dropped_, 0);
    return std::exchange(items_, {});
  }

 private:
  size_t capacity_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<T> items_;
  size_t dropped_ = 0;
};

std::string_view eventState(supervisor::EventType t) { return supervisor::eventTypeName(t); }

}  // namespace

MachineServiceImpl::MachineServiceImpl(MachineServiceDeps deps) : deps_(std::move(deps)) {}

#define KEEL_META(entry) entry->mutable_metadata()->set_node(deps_.nodeName)

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

grpc::Status MachineServiceImpl::Logs(grpc::ServerContext* ctx, const v1::LogsRequest* req,
                                      grpc::ServerWriter<v1::LogLine>* writer) {
  KEEL_AUTHORIZE(ctx);
  const size_t tail = req->tail_lines() <= 0 ? std::numeric_limits<size_t>::max()
                                             : static_cast<size_t>(req->tail_lines());
  // Subscribe before reading the tail, so no line falls between the two; a line that
  // arrives in between may be shown twice, which is better than lost.
  FollowQueue<std::string> queue(10000);
  supervisor::Subscription sub;
  if (req->follow()) {
    auto s = deps_.supervisor->followLogs(req->service(), [&queue](const std::string& l) { queue.push(l); });
    if (!s.ok()) return toGrpc(s.status());
    sub = std::move(*s);
  }
  auto lines = deps_.supervisor->logs(req->service(), tail);
  if (!lines.ok()) return toGrpc(lines.status());
  v1::LogLine out;
  KEEL_META((&out));
  for (const auto& l : *lines) {
    out.set_line(l);
    if (!writer->Write(out)) return grpc::Status::CANCELLED;
  }
  if (!req->follow()) return grpc::Status::OK;
  while (!ctx->IsCancelled()) {
    size_t dropped = 0;
    auto batch = queue.take(kFollowPoll, dropped);
    if (dropped > 0) {
      out.set_line("[" + std::to_string(dropped) + " lines dropped: the reader fell behind]");
      if (!writer->Write(out)) return grpc::Status::CANCELLED;
    }
    for (auto& l : batch) {
      out.set_line(std::move(l));
      if (!writer->Write(out)) return grpc::Status::CANCELLED;
    }
  }
  return grpc::Status::CANCELLED;
}

grpc::Status MachineServiceImpl::Dmesg(grpc::ServerContext* ctx, const v1::DmesgRequest* req,
                                       grpc::ServerWriter<v1::LogLine>* writer) {
  KEEL_AUTHORIZE(ctx);
  auto log = KernelLog::open(deps_.kmsgPath);
  if (!log.ok()) return toGrpc(log.status());
  auto lines = log->readAvailable();
  if (!lines.ok()) return toGrpc(lines.status());
  size_t start = 0;
  if (req->tail_lines() > 0 && lines->size() > static_cast<size_t>(req->tail_lines())) {
    start = lines->size() - static_cast<size_t>(req->tail_lines());
  }
  v1::LogLine out;
  KEEL_META((&out));
  for (size_t i = start; i < lines->size(); ++i) {
    out.set_line((*lines)[i]);
    if (!writer->Write(out)) return grpc::Status::CANCELLED;
  }
  if (!req->follow()) return grpc::Status::OK;
  while (!ctx->IsCancelled()) {
    if (!log->waitReadable(static_cast<int>(kFollowPoll.count()))) continue;
    auto more = log->readAvailable();
    if (!more.ok()) return toGrpc(more.status());
    if (more->empty()) {
      // A regular file (tests) is always "readable"; do not spin on it.
      std::this_thread::sleep_for(kFollowPoll);
      continue;
    }
    for (auto& l : *more) {
      out.set_line(std::move(l));
      if (!writer->Write(out)) return grpc::Status::CANCELLED;
    }
  }
  return grpc::Status::CANCELLED;
}

grpc::Status MachineServiceImpl::Events(grpc::ServerContext* ctx, const v1::EventsRequest* req,
                                        grpc::ServerWriter<v1::Event>* writer) {
  KEEL_AUTHORIZE(ctx);
  FollowQueue<NodeEvent> queue(10000);
  supervisor::Subscription sub;
  // tail_events > 0: the last N; 0: none; < 0: every event kept.
  const size_t tail = req->tail_events() < 0 ? 0 : static_cast<size_t>(req->tail_events());
  auto initial = deps_.events->tailAndFollow(tail, [&queue](const NodeEvent& e) { queue.push(e); }, sub);
  if (req->tail_events() == 0) initial.clear();
  if (!req->follow()) sub.reset();
  v1::Event out;
  KEEL_META((&out));
  auto send = [&](const NodeEvent& e) {
    out.set_unix_nanos(unixNanos(e.time));
    out.set_kind(e.kind);
    out.set_subject(e.subject);
    out.set_state(e.state);
    out.set_message(e.message);
    return writer->Write(out);
  };
  for (const auto& e : initial) {
    if (!send(e)) return grpc::Status::CANCELLED;
  }
  if (!req->follow()) return grpc::Status::OK;
  while (!ctx->IsCancelled()) {
    size_t dropped = 0;
    for (const auto& e : queue.take(kFollowPoll, dropped)) {
      if (!send(e)) return grpc::Status::CANCELLED;
    }
  }
  return grpc::Status::CANCELLED;
}

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

grpc::Status MachineServiceImpl::List(grpc::ServerContext* ctx, const v1::ListRequest* req,
                                      grpc::ServerWriter<v1::FileInfo>* writer) {
  KEEL_AUTHORIZE(ctx);
  std::vector<files::EntryType> types;
  for (int t : req->types()) {
    switch (t) {
      case v1::ListRequest::REGULAR: types.push_back(files::EntryType::kRegular); break;
      case v1::ListRequest::DIRECTORY: types.push_back(files::EntryType::kDirectory); break;
      case v1::ListRequest::SYMLINK: types.push_back(files::EntryType::kSymlink); break;
      default: break;
    }
  }
  auto listing = deps_.files->list(req->root(), req->recursion_depth(), types);
  if (!listing.ok()) return toGrpc(listing.status());
  v1::FileInfo out;
  for (const auto& e : listing->entries) {
    out.Clear();
    KEEL_META((&out));
    out.set_name(e.name);
    out.set_relative_name(e.relativeName);
    out.set_size(e.size);
    out.set_mode(e.mode);
    out.set_modified_unix(e.modifiedUnix);
    out.set_is_dir(e.isDir);
    out.set_link(e.link);
    out.set_error(e.error);
    if (!writer->Write(out)) return grpc::Status::CANCELLED;
  }
  if (listing->truncated) {
    out.Clear();
    KEEL_META((&out));
    out.set_name(req->root());
    out.set_error("truncated: more entries exist than one call lists");
    if (!writer->Write(out)) return grpc::Status::CANCELLED;
  }
  return grpc::Status::OK;
}

grpc::Status MachineServiceImpl::Read(grpc::ServerContext* ctx, const v1::ReadRequest* req,
                                      grpc::ServerWriter<v1::DataChunk>* writer) {
  KEEL_AUTHORIZE(ctx);
  auto reader = deps_.files->openForRead(req->path());
  if (!reader.ok()) return toGrpc(reader.status());
  v1::DataChunk out;
  KEEL_META((&out));
  for (;;) {
    if (ctx->IsCancelled()) return grpc::Status::CANCELLED;
    auto chunk = reader->next();
    if (!chunk.ok()) return toGrpc(chunk.status());
    if (chunk->empty()) break;
    out.set_bytes(std::move(*chunk));
    if (!writer->Write(out)) return grpc::Status::CANCELLED;
  }
  return grpc::Status::OK;
}

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

namespace {

// An image file larger than the format allows is refused from the call's header, before
// its signature is even checked.
constexpr uint64_t kMaxImageBytes = image::kHeaderSize + image::kMaxManifestBytes + image::kMaxPayloadBytes;

Status checkBootsFromSlots(const MachineServiceDeps& deps) {
  if (deps.bootDir.empty()) {
    return failedPrecondition(
        "this node does not boot from root slots: machined runs as a process on a host, not as the Keel OS "
        "image's PID 1, so there is no root to upgrade or roll back");
  }
  return Status::ok();
}

// The image's bytes after the header, into `writer`.
Status streamImage(grpc::ServerContext* ctx, grpc::ServerReader<v1::UpgradeRequest>* reader, SlotWriter& writer) {
  v1::UpgradeRequest req;
  while (reader->Read(&req)) {
    if (req.part_case() != v1::UpgradeRequest::kChunk) {
      return invalidArgument("expected the image's bytes after the header, found a second header");
    }
    KEEL_RETURN_IF_ERROR(writer.write(req.chunk()));
  }
  if (ctx->IsCancelled()) return {StatusCode::kCancelled, "the upgrade was cancelled; nothing changed"};
  return Status::ok();
}

std::string describe(const std::optional<RunningImage>& image) {
  if (!image) return "an image of unknown version";
  return fmt::format("{} (build {})", image->version.toString(), image->buildId);
}

}  // namespace

std::optional<RunningImage> MachineServiceImpl::runningImage() const {
  std::call_once(runningOnce_, [this] {
    auto running = readRunningImage(deps_.bootDir, deps_.bootedSlot, deps_.rootDir);
    if (running.ok()) {
      running_ = *running;
    } else {
      spdlog::warn("machined: the running image's version is unknown: {}", running.status().message());
    }
  });
  return running_;
}

grpc::Status MachineServiceImpl::refuseUpgrade(const Status& why, bool downgrade) {
  if (why.code() != StatusCode::kCancelled) {
    spdlog::warn("upgrade refused: {}", why.message());
    deps_.events->record("machine", "upgrade", downgrade ? "downgrade-refused" : "refused", why.message());
  }
  return toGrpc(why);
}

grpc::Status MachineServiceImpl::Upgrade(grpc::ServerContext* ctx, grpc::ServerReader<v1::UpgradeRequest>* reader,
                                         v1::UpgradeResponse* resp) {
  KEEL_AUTHORIZE(ctx);
  if (const Status s = checkBootsFromSlots(deps_); !s.isOk()) return toGrpc(s);
  const auto key = deps_.config->current().imageSigningKey;
  if (!key) {
    return toGrpc(failedPrecondition(
        "the machine config has no machine.upgrade.publicKey, so no image can be trusted: apply a config that "
        "names the public key your images are signed with ('keelctl gen image-key' makes a pair)"));
  }
  std::unique_lock lock(upgradeMu_, std::try_to_lock);
  if (!lock.owns_lock()) return toGrpc({StatusCode::kAborted, "another upgrade or rollback is in progress"});
  if (const Status s = checkUpgradeAllowed(deps_.bootDir, deps_.bootedSlot); !s.isOk()) return toGrpc(s);
  v1::UpgradeRequest req;
  if (!reader->Read(&req) || req.part_case() != v1::UpgradeRequest::kHeader) {
    return toGrpc(invalidArgument("expected the upgrade's header (size, sha256, signature) as its first message"));
  }
  const v1::UpgradeHeader header = req.header();
  if (header.size() > kMaxImageBytes) {
    return toGrpc(invalidArgument(
        fmt::format("the image is {} bytes; at most {} are accepted", header.size(), kMaxImageBytes)));
  }
  const std::optional<RunningImage> running = runningImage();
  bool downgradeRefused = false;
  const ManifestCheck versionPolicy = [&](const image::Manifest& m) {
    Status s = checkImageVersion(running, m, header.allow_downgrade());
    downgradeRefused = !s.isOk();
    return s;
  };
  auto writer = SlotWriter::begin(deps_.bootDir, deps_.bootedSlot, header.sha256(), header.signature(), *key,
                                  header.size(), versionPolicy);
  if (!writer.ok()) return refuseUpgrade(writer.status(), false);
  if (const Status s = streamImage(ctx, reader, **writer); !s.isOk()) return refuseUpgrade(s, downgradeRefused);
  auto slot = (*writer)->finish();
  if (!slot.ok()) return refuseUpgrade(slot.status(), false);
  const image::Manifest& manifest = *(*writer)->manifest();
  const bool downgrade = !running || manifest.version < running->version;
  const std::string message = fmt::format(
      "installed image {} (build {}) into slot {}{}; the next boot tries it, falling back to slot {} ({})",
      manifest.version.toString(), manifest.buildId, *slot,
      downgrade ? ", allowed as a downgrade by the request" : "", deps_.bootedSlot, describe(running));
  spdlog::info("{}", message);
  deps_.events->record("machine", "upgrade", downgrade ? "downgraded" : "installed", message);
  auto* m = resp->add_messages();
  KEEL_META(m);
  m->set_slot(*slot);
  m->set_previous(deps_.bootedSlot);
  m->set_bytes(header.size());
  m->set_rebooting(!header.no_reboot());
  m->set_version(manifest.version.toString());
  if (running) m->set_previous_version(running->version.toString());
  if (!header.no_reboot()) deps_.power(PowerAction::kReboot);
  return grpc::Status::OK;
}

grpc::Status MachineServiceImpl::Rollback(grpc::ServerContext* ctx, const Empty*, v1::RollbackResponse* resp) {
  KEEL_AUTHORIZE(ctx);
  if (const Status s = checkBootsFromSlots(deps_); !s.isOk()) return toGrpc(s);
  std::unique_lock lock(upgradeMu_, std::try_to_lock);
  if (!lock.owns_lock()) return toGrpc({StatusCode::kAborted, "another upgrade or rollback is in progress"});
  const std::string& booted = deps_.bootedSlot;
  auto rolledBack = rollBack(deps_.bootDir, booted);
  if (!rolledBack.ok()) return toGrpc(rolledBack.status());
  const std::string target = *rolledBack;
  const std::string message = fmt::format("rolling back from slot {} to slot {}", booted, target);
  spdlog::info("{}", message);
  deps_.events->record("machine", "rollback", "requested", message);
  auto* m = resp->add_messages();
  KEEL_META(m);
  m->set_slot(target);
  m->set_previous(booted);
  deps_.power(PowerAction::kReboot);
  return grpc::Status::OK;
}

}  // namespace keel::machined
