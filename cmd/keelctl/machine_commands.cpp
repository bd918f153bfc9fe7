#include "machine_commands.h"

#include <algorithm>
#include <fstream>
#include <iostream>
#include <sstream>

#include <fmt/format.h>

#include "gen_commands.h"
#include "table.h"

namespace keel::keelctl {

namespace v1 = keel::machine::v1;
using keel::common::v1::Empty;

StreamCancel& StreamCancel::instance() {
  static StreamCancel s;
  return s;
}

void StreamCancel::set(grpc::ClientContext* ctx) {
  std::lock_guard lock(mu_);
  ctx_ = ctx;
  if (cancelled_ && ctx_ != nullptr) ctx_->TryCancel();
}

void StreamCancel::clear() {
  std::lock_guard lock(mu_);
  ctx_ = nullptr;
}

bool StreamCancel::cancel() {
  std::lock_guard lock(mu_);
  cancelled_ = true;
  if (ctx_ == nullptr) return false;
  ctx_->TryCancel();
  return true;
}

bool StreamCancel::cancelled() const {
  std::lock_guard lock(mu_);
  return cancelled_;
}

namespace {

// Calls a unary method with a fresh context; the error names what failed.
template <typename Resp, typename Req, typename Method>
Result<Resp> call(MachineCommandEnv& env, Method method, const Req& req) {
  for (;;) {
    auto ctx = env.client.context();
    Resp resp;
    const auto st = (env.client.stub().*method)(ctx.get(), req, &resp);
    if (st.ok()) return resp;
    if (!env.client.failOver(st, env.err)) return fromGrpc(st, env.client.target());
  }
}

// Reads a server stream to its end, handing each message to `each`. A stream the user
// ended with Ctrl-C counts as success.
// Messages that carry a node's failure are reported on env.err and not handed to `each`
// (except in JSON/YAML, which pass every message through); the stream fails at its end
// when any node did.
template <typename Msg, typename Req, typename Method, typename Each>
Status stream(MachineCommandEnv& env, Method method, const Req& req, bool follow, Each each) {
  NodeResults results(env.err);
  grpc::Status st;
  for (;;) {
    auto ctx = env.client.context(follow ? std::chrono::seconds(0) : std::chrono::seconds(60));
    StreamCancel::instance().set(ctx.get());
    auto reader = (env.client.stub().*method)(ctx.get(), req);
    bool received = false;
    Msg msg;
    while (reader->Read(&msg)) {
      received = true;
      const bool data = results.accept(msg.metadata());
      if (data || env.format != OutputFormat::kTable) each(msg);
    }
    st = reader->Finish();
    StreamCancel::instance().clear();
    // Only a stream that never got going is repeated elsewhere.
    if (received || !env.client.failOver(st, env.err)) break;
  }
  if (st.error_code() == grpc::StatusCode::CANCELLED && StreamCancel::instance().cancelled()) return results.finish();
  KEEL_RETURN_IF_ERROR(fromGrpc(st, env.client.target()));
  return results.finish();
}

const std::string& nodeOf(const keel::common::v1::Metadata& m) {
  static const std::string kLocal = "local";
  return m.node().empty() ? kLocal : m.node();
}

// JSON and YAML print the whole reply as it is; the exit status still reflects the
// nodes that failed.
template <typename Resp>
bool printed(MachineCommandEnv& env, const Resp& resp, Status& status) {
  if (env.format == OutputFormat::kTable) return false;
  printMessage(resp, env.format, env.out);
  NodeResults results(env.err);
  for (const auto& m : resp.messages()) (void)results.accept(m.metadata());
  status = results.finish();
  return true;
}

// Asks on env.err whether to go on (unless --yes); true for "y" or "yes".
bool confirmed(MachineCommandEnv& env, const std::string& what) {
  if (env.assumeYes) return true;
  env.err << "This will " << what << ". Continue? [y/N] ";
  env.err.flush();
  std::string answer;
  std::getline(env.in, answer);
  return answer == "y" || answer == "Y" || answer == "yes";
}

}  // namespace

bool NodeResults::accept(const keel::common::v1::Metadata& m) {
  const std::string& node = nodeOf(m);
  if (std::find(nodes_.begin(), nodes_.end(), node) == nodes_.end()) nodes_.push_back(node);
  if (m.error().empty()) return true;
  err_ << node << ": " << m.error() << '\n';
  err_.flush();
  const auto code = static_cast<StatusCode>(m.code() == 0 ? static_cast<int>(StatusCode::kUnknown) : m.code());
  if (std::find(failed_.begin(), failed_.end(), node) == failed_.end()) failed_.push_back(node);
  if (!firstCode_) firstCode_ = code;
  sameCode_ = sameCode_ && *firstCode_ == code;
  return false;
}

Status NodeResults::finish() const {
  if (failed_.empty()) return Status::ok();
  const std::string message = fmt::format("{} of {} nodes failed", failed_.size(), nodes_.size());
  // Every node failed the same way: that is the command's failure.
  if (failed_.size() == nodes_.size() && sameCode_) return {*firstCode_, message};
  return unavailable(message);
}

Status printVersions(MachineCommandEnv& env, const v1::VersionResponse& resp) {
  Status status;
  if (printed(env, resp, status)) return status;
  NodeResults results(env.err);
  std::vector<std::vector<std::string>> rows;
  for (const auto& m : resp.messages()) {
    if (!results.accept(m.metadata())) continue;
    rows.push_back({nodeOf(m.metadata()), m.version(), m.git_commit(), m.build_date(), m.arch()});
  }
  printTable(env.out, {"NODE", "VERSION", "COMMIT", "BUILT", "ARCH"}, rows);
  return results.finish();
}

Status printServices(MachineCommandEnv& env, const v1::ServiceListResponse& resp) {
  Status status;
  if (printed(env, resp, status)) return status;
  NodeResults results(env.err);
  std::vector<std::vector<std::string>> rows;
  for (const auto& m : resp.messages()) {
    if (!results.accept(m.metadata())) continue;
    for (const auto& s : m.services()) {
      std::string lastExit = "-";
      if (s.last_exit_signal() != 0) {
        lastExit = fmt::format("signal {}", s.last_exit_signal());
      } else if (s.last_exit_code() >= 0) {
        lastExit = fmt::format("code {}", s.last_exit_code());
      }
      rows.push_back({nodeOf(m.metadata()), s.id(), s.state(), s.pid() > 0 ? std::to_string(s.pid()) : "-",
                      std::to_string(s.restarts()), humanTime(s.since_unix_nanos()), lastExit});
    }
  }
  printTable(env.out, {"NODE", "SERVICE", "STATE", "PID", "RESTARTS", "SINCE", "LAST EXIT"}, rows);
  return results.finish();
}

Status cmdVersion(MachineCommandEnv& env) {
  KEEL_ASSIGN_OR_RETURN(auto resp, (call<v1::VersionResponse>(env, &v1::MachineService::Stub::Version, Empty{})));
  return printVersions(env, resp);
}

Status cmdServices(MachineCommandEnv& env) {
  KEEL_ASSIGN_OR_RETURN(auto resp,
                        (call<v1::ServiceListResponse>(env, &v1::MachineService::Stub::ServiceList, Empty{})));
  return printServices(env, resp);
}

Status cmdService(MachineCommandEnv& env, const std::string& id, const std::string& action) {
  v1::ServiceRequest req;
  req.set_id(id);
  if (action == "status") {
    KEEL_ASSIGN_OR_RETURN(auto resp,
                          (call<v1::ServiceListResponse>(env, &v1::MachineService::Stub::ServiceList, Empty{})));
    NodeResults results(env.err);
    for (const auto& m : resp.messages()) {
      if (!results.accept(m.metadata())) continue;
      for (const auto& s : m.services()) {
        if (s.id() != id) continue;
        if (env.format != OutputFormat::kTable) {
          printMessage(s, env.format, env.out);
          return results.finish();
        }
        env.out << fmt::format("NODE       {}\nSERVICE    {}\nSTATE      {}\nPID        {}\nRESTARTS   {}\nSINCE      {}\n",
                               nodeOf(m.metadata()), s.id(), s.state(), s.pid() > 0 ? std::to_string(s.pid()) : "-",
                               s.restarts(), humanTime(s.since_unix_nanos()));
        env.out << "EVENTS\n";
        std::vector<std::vector<std::string>> rows;
        for (const auto& e : s.events()) rows.push_back({"  " + humanTime(e.unix_nanos()), e.state(), e.message()});
        printTable(env.out, {"  TIME", "STATE", "MESSAGE"}, rows);
        return results.finish();
      }
    }
    KEEL_RETURN_IF_ERROR(results.finish());
    return notFound(fmt::format("no service '{}' on the node (see 'keelctl services')", id));
  }
  using Method = grpc::Status (v1::MachineService::Stub::*)(grpc::ClientContext*, const v1::ServiceRequest&,
                                                            v1::ServiceActionResponse*);
  Method method = nullptr;
  if (action == "start") method = &v1::MachineService::Stub::ServiceStart;
  if (action == "stop") method = &v1::MachineService::Stub::ServiceStop;
  if (action == "restart") method = &v1::MachineService::Stub::ServiceRestart;
  if (method == nullptr) {
    return invalidArgument(fmt::format("unknown service action '{}': expected start, stop, restart or status", action));
  }
  KEEL_ASSIGN_OR_RETURN(auto resp, (call<v1::ServiceActionResponse>(env, method, req)));
  Status status;
  if (printed(env, resp, status)) return status;
  NodeResults results(env.err);
  for (const auto& m : resp.messages()) {
    if (!results.accept(m.metadata())) continue;
    env.out << nodeOf(m.metadata()) << ": " << m.response() << '\n';
  }
  return results.finish();
}

namespace {

// logs and dmesg: a stream of lines, printed as they come (or as JSON/YAML messages).
template <typename Req, typename Method>
Status streamLines(MachineCommandEnv& env, Method method, const Req& req, bool follow) {
  return stream<v1::LogLine>(env, method, req, follow, [&](const v1::LogLine& l) {
    if (env.format == OutputFormat::kTable) {
      env.out << l.line() << '\n';
      env.out.flush();
    } else {
      printStreamMessage(l, env.format, env.out);
    }
  });
}

}  // namespace

Status cmdLogs(MachineCommandEnv& env, const std::string& service, int tail, bool follow) {
  v1::LogsRequest req;
  req.set_service(service);
  req.set_tail_lines(tail);
  req.set_follow(follow);
  return streamLines(env, &v1::MachineService::Stub::Logs, req, follow);
}

Status cmdDmesg(MachineCommandEnv& env, int tail, bool follow) {
  v1::DmesgRequest req;
  req.set_tail_lines(tail);
  req.set_follow(follow);
  return streamLines(env, &v1::MachineService::Stub::Dmesg, req, follow);
}

Status cmdEvents(MachineCommandEnv& env, int tail, bool follow) {
  v1::EventsRequest req;
  req.set_tail_events(tail);
  req.set_follow(follow);
  bool header = false;
  return stream<v1::Event>(env, &v1::MachineService::Stub::Events, req, follow, [&](const v1::Event& e) {
    if (env.format != OutputFormat::kTable) {
      printStreamMessage(e, env.format, env.out);
      return;
    }
    if (!header) {
      env.out << fmt::format("{:<12} {:<20} {:<8} {:<16} {:<12} {}\n", "NODE", "TIME", "KIND", "SUBJECT", "STATE",
                             "MESSAGE");
      header = true;
    }
    env.out << fmt::format("{:<12} {:<20} {:<8} {:<16} {:<12} {}\n", nodeOf(e.metadata()), humanTime(e.unix_nanos()),
                           e.kind(), e.subject(), e.state(), e.message());
    env.out.flush();
  });
}

Status cmdMemory(MachineCommandEnv& env) {
  KEEL_ASSIGN_OR_RETURN(auto resp, (call<v1::MemoryResponse>(env, &v1::MachineService::Stub::Memory, Empty{})));
  Status status;
  if (printed(env, resp, status)) return status;
  NodeResults results(env.err);
  std::vector<std::vector<std::string>> rows;
  for (const auto& m : resp.messages()) {
    if (!results.accept(m.metadata())) continue;
    const auto& i = m.meminfo();
    const auto kb = [](uint64_t v) { return humanBytes(v * 1024); };
    const uint64_t used = i.total_kb() > i.available_kb() ? i.total_kb() - i.available_kb() : 0;
    rows.push_back({nodeOf(m.metadata()), kb(i.total_kb()), kb(used), kb(i.free_kb()), kb(i.available_kb()),
                    kb(i.buffers_kb()), kb(i.cached_kb()), kb(i.swap_total_kb()), kb(i.swap_free_kb())});
  }
  printTable(env.out, {"NODE", "TOTAL", "USED", "FREE", "AVAILABLE", "BUFFERS", "CACHED", "SWAP", "SWAP FREE"}, rows);
  return results.finish();
}

Status cmdProcesses(MachineCommandEnv& env) {
  KEEL_ASSIGN_OR_RETURN(auto resp,
                        (call<v1::ProcessesResponse>(env, &v1::MachineService::Stub::Processes, Empty{})));
  Status status;
  if (printed(env, resp, status)) return status;
  NodeResults results(env.err);
  std::vector<std::vector<std::string>> rows;
  for (const auto& m : resp.messages()) {
    if (!results.accept(m.metadata())) continue;
    for (const auto& p : m.processes()) {
      std::string args = p.args().empty() ? "[" + p.command() + "]" : p.args();
      if (args.size() > 100) args = args.substr(0, 97) + "...";
      rows.push_back({nodeOf(m.metadata()), std::to_string(p.pid()), std::to_string(p.ppid()), p.state(),
                      std::to_string(p.threads()), fmt::format("{:.2f}s", p.cpu_seconds()),
                      humanBytes(p.resident_bytes()), p.command(), args});
    }
  }
  printTable(env.out, {"NODE", "PID", "PPID", "STATE", "THREADS", "CPU", "RES", "COMMAND", "ARGS"}, rows);
  return results.finish();
}

Status cmdMounts(MachineCommandEnv& env) {
  KEEL_ASSIGN_OR_RETURN(auto resp, (call<v1::MountsResponse>(env, &v1::MachineService::Stub::Mounts, Empty{})));
  Status status;
  if (printed(env, resp, status)) return status;
  NodeResults results(env.err);
  std::vector<std::vector<std::string>> rows;
  for (const auto& m : resp.messages()) {
    if (!results.accept(m.metadata())) continue;
    for (const auto& mt : m.mounts()) {
      const bool sized = mt.size_bytes() > 0;
      rows.push_back({nodeOf(m.metadata()), mt.source(), mt.target(), mt.filesystem(),
                      sized ? humanBytes(mt.size_bytes()) : "-", sized ? humanBytes(mt.available_bytes()) : "-"});
    }
  }
  printTable(env.out, {"NODE", "SOURCE", "MOUNTED ON", "TYPE", "SIZE", "AVAILABLE"}, rows);
  return results.finish();
}

Status cmdUsage(MachineCommandEnv& env, const std::string& path, int depth) {
  v1::DiskUsageRequest req;
  req.set_path(path);
  req.set_depth(depth);
  KEEL_ASSIGN_OR_RETURN(auto resp, (call<v1::DiskUsageResponse>(env, &v1::MachineService::Stub::DiskUsage, req)));
  Status status;
  if (printed(env, resp, status)) return status;
  NodeResults results(env.err);
  std::vector<std::vector<std::string>> rows;
  for (const auto& m : resp.messages()) {
    if (!results.accept(m.metadata())) continue;
    for (const auto& e : m.entries()) {
      rows.push_back({nodeOf(m.metadata()), humanBytes(e.size_bytes()), e.path() + (e.error().empty() ? "" : "  (" + e.error() + ")")});
    }
  }
  printTable(env.out, {"NODE", "SIZE", "PATH"}, rows);
  return results.finish();
}

Status cmdList(MachineCommandEnv& env, const std::string& path, int depth, const std::vector<std::string>& types) {
  v1::ListRequest req;
  req.set_root(path);
  req.set_recursion_depth(depth);
  for (const auto& t : types) {
    if (t == "f") {
      req.add_types(v1::ListRequest::REGULAR);
    } else if (t == "d") {
      req.add_types(v1::ListRequest::DIRECTORY);
    } else if (t == "l") {
      req.add_types(v1::ListRequest::SYMLINK);
    } else {
      return invalidArgument(fmt::format("unknown file type '{}': expected f, d or l", t));
    }
  }
  std::vector<std::vector<std::string>> rows;
  const auto st = stream<v1::FileInfo>(env, &v1::MachineService::Stub::List, req, false, [&](const v1::FileInfo& f) {
    if (env.format != OutputFormat::kTable) {
      printStreamMessage(f, env.format, env.out);
      return;
    }
    std::string name = f.name();
    if (!f.link().empty()) name += " -> " + f.link();
    if (!f.error().empty()) name += "  (" + f.error() + ")";
    rows.push_back({nodeOf(f.metadata()), fmt::format("{:o}", f.mode() & 07777), f.is_dir() ? "-" : humanBytes(f.size()),
                    humanTime(f.modified_unix() * 1'000'000'000), name});
  });
  KEEL_RETURN_IF_ERROR(st);
  if (env.format == OutputFormat::kTable) printTable(env.out, {"NODE", "MODE", "SIZE", "MODIFIED", "NAME"}, rows);
  return Status::ok();
}

Status cmdRead(MachineCommandEnv& env, const std::string& path) {
  v1::ReadRequest req;
  req.set_path(path);
  return stream<v1::DataChunk>(env, &v1::MachineService::Stub::Read, req, false, [&](const v1::DataChunk& c) {
    env.out.write(c.bytes().data(), static_cast<std::streamsize>(c.bytes().size()));
  });
}

Status cmdGetConfig(MachineCommandEnv& env) {
  KEEL_ASSIGN_OR_RETURN(auto resp, (call<v1::GetConfigurationResponse>(
                                       env, &v1::MachineService::Stub::GetConfiguration, Empty{})));
  if (env.format == OutputFormat::kYaml) {
    printMessage(resp, env.format, env.out);
    return Status::ok();
  }
  NodeResults results(env.err);
  for (const auto& m : resp.messages()) {
    if (!results.accept(m.metadata())) continue;
    env.out << m.data();
  }
  return results.finish();
}

Status cmdApplyConfig(MachineCommandEnv& env, const std::string& file, const std::string& mode,
                      std::chrono::seconds tryTimeout) {
  v1::ApplyConfigurationRequest req;
  if (mode == "auto") {
    req.set_mode(v1::ApplyConfigurationRequest::AUTO);
  } else if (mode == "no-reboot") {
    req.set_mode(v1::ApplyConfigurationRequest::NO_REBOOT);
  } else if (mode == "reboot") {
    req.set_mode(v1::ApplyConfigurationRequest::REBOOT);
  } else if (mode == "try") {
    req.set_mode(v1::ApplyConfigurationRequest::TRY);
  } else {
    return invalidArgument(fmt::format("unknown mode '{}': expected auto, no-reboot, reboot or try", mode));
  }
  std::ifstream in(file, std::ios::binary);
  if (!in) return notFound(fmt::format("cannot read {}", file));
  std::ostringstream data;
  data << in.rdbuf();
  req.set_data(data.str());
  req.set_try_timeout_seconds(static_cast<int32_t>(tryTimeout.count()));
  KEEL_ASSIGN_OR_RETURN(auto resp, (call<v1::ApplyConfigurationResponse>(
                                       env, &v1::MachineService::Stub::ApplyConfiguration, req)));
  Status status;
  if (printed(env, resp, status)) return status;
  NodeResults results(env.err);
  for (const auto& m : resp.messages()) {
    if (!results.accept(m.metadata())) continue;
    env.out << fmt::format("{}: {} ({})\n", nodeOf(m.metadata()), m.summary(), m.mode());
    for (const auto& w : m.warnings()) env.out << "  warning: " << w << '\n';
    if (m.mode() == "try") env.out << "  confirm with 'keelctl confirm-config' to keep it\n";
  }
  return results.finish();
}

Status cmdConfirmConfig(MachineCommandEnv& env) {
  KEEL_ASSIGN_OR_RETURN(auto resp, (call<v1::ConfirmConfigurationResponse>(
                                       env, &v1::MachineService::Stub::ConfirmConfiguration, Empty{})));
  Status status;
  if (printed(env, resp, status)) return status;
  NodeResults results(env.err);
  for (const auto& m : resp.messages()) {
    if (!results.accept(m.metadata())) continue;
    env.out << nodeOf(m.metadata()) << ": " << m.summary() << '\n';
  }
  return results.finish();
}

Status cmdPower(MachineCommandEnv& env, const std::string& action) {
  using Method = grpc::Status (v1::MachineService::Stub::*)(grpc::ClientContext*, const Empty&, v1::PowerResponse*);
  Method method = nullptr;
  std::string what;
  if (action == "reboot") {
    method = &v1::MachineService::Stub::Reboot;
    what = "reboot the node (every service stops and starts again)";
  } else if (action == "shutdown") {
    method = &v1::MachineService::Stub::Shutdown;
    what = "shut the node down (it stays down until started by other means)";
  } else if (action == "reset") {
    method = &v1::MachineService::Stub::Reset;
    what = "wipe the node's state directories and reboot it (its machine config is kept)";
  } else {
    return invalidArgument(fmt::format("unknown power action '{}'", action));
  }
  if (!confirmed(env, what)) {
    return {StatusCode::kAborted, "not confirmed; nothing was done (pass --yes to skip the question)"};
  }
  KEEL_ASSIGN_OR_RETURN(auto resp, (call<v1::PowerResponse>(env, method, Empty{})));
  Status status;
  if (printed(env, resp, status)) return status;
  NodeResults results(env.err);
  for (const auto& m : resp.messages()) {
    if (!results.accept(m.metadata())) continue;
    env.out << nodeOf(m.metadata()) << ": " << m.action() << " requested\n";
  }
  return results.finish();
}

namespace {

constexpr size_t kUpgradeChunk = size_t{1} << 20;

std::string mib(uint64_t bytes) { return fmt::format("{:.1f} MiB", static_cast<double>(bytes) / (1 << 20)); }

}  // namespace

Status cmdUpgrade(MachineCommandEnv& env, const UpgradeArgs& args) {
  const auto& target = env.client.target();
  if (target.nodes.size() > 1) {
    return invalidArgument(fmt::format("an upgrade streams to one node; {} were named (-n): upgrade them one by one",
                                       target.nodes.size()));
  }
  const std::filesystem::path sigPath =
      args.signature.empty() ? std::filesystem::path(args.image.string() + ".sig") : args.signature;
  std::error_code ec;
  const auto size = std::filesystem::file_size(args.image, ec);
  if (ec) return notFound(fmt::format("image {}: {}", args.image.string(), ec.message()));
  std::ifstream sigIn(sigPath, std::ios::binary);
  if (!sigIn) {
    return failedPrecondition(fmt::format(
        "no signature {}: a node installs only images signed with its machine.upgrade.publicKey; sign this one "
        "with 'keelctl sign-image --key image-signing.key {}'",
        sigPath.string(), args.image.string()));
  }
  const std::string signature((std::istreambuf_iterator<char>(sigIn)), std::istreambuf_iterator<char>());
  KEEL_ASSIGN_OR_RETURN(const auto digest, sha256OfFile(args.image));
  const std::string node = target.nodes.empty() ? (target.viaApid() ? target.endpoint : "the local node")
                                                : target.nodes.front();
  if (!confirmed(env, fmt::format("install {} ({}) as {}'s next root{}", args.image.string(), mib(size), node,
                                  args.noReboot ? "" : " and reboot it into it"))) {
    return {StatusCode::kAborted, "not confirmed; nothing was done (pass --yes to skip the question)"};
  }

  std::ifstream in(args.image, std::ios::binary);
  if (!in) return notFound(fmt::format("image {}: cannot be read", args.image.string()));
  auto ctx = env.client.context(std::chrono::hours(1));
  v1::UpgradeResponse resp;
  auto writer = env.client.stub().Upgrade(ctx.get(), &resp);
  v1::UpgradeRequest req;
  auto* header = req.mutable_header();
  header->set_size(size);
  header->set_sha256(toHex(digest));
  header->set_signature(signature);
  header->set_no_reboot(args.noReboot);
  bool open = writer->Write(req);
  uint64_t sent = 0;
  int shownTenth = 0;
  std::string chunk(kUpgradeChunk, '\0');
  while (open && sent < size) {
    in.read(chunk.data(), static_cast<std::streamsize>(chunk.size()));
    const auto n = static_cast<size_t>(in.gcount());
    if (n == 0) break;
    req.set_chunk(chunk.data(), n);
    open = writer->Write(req);
    sent += n;
    const int tenth = static_cast<int>(sent * 10 / size);
    if (open && tenth > shownTenth) {
      shownTenth = tenth;
      env.err << fmt::format("keelctl: sent {} of {} ({}%)\n", mib(sent), mib(size), tenth * 10);
    }
  }
  if (open) writer->WritesDone();
  const grpc::Status st = writer->Finish();
  if (!st.ok()) return fromGrpc(st, target);
  Status status;
  if (printed(env, resp, status)) return status;
  NodeResults results(env.err);
  for (const auto& m : resp.messages()) {
    if (!results.accept(m.metadata())) continue;
    env.out << fmt::format("{}: installed {} into slot {}", nodeOf(m.metadata()), mib(m.bytes()), m.slot());
    if (m.rebooting()) {
      env.out << fmt::format("; rebooting into it. It stays on trial until its API answers, else the node goes "
                             "back to slot {} by itself.\n",
                             m.previous());
    } else {
      env.out << fmt::format("; the next boot tries it (falling back to slot {}).\n", m.previous());
    }
  }
  return results.finish();
}

Status cmdRollback(MachineCommandEnv& env) {
  if (!confirmed(env, "reboot the node into the root slot it booted before the current one")) {
    return {StatusCode::kAborted, "not confirmed; nothing was done (pass --yes to skip the question)"};
  }
  KEEL_ASSIGN_OR_RETURN(auto resp, (call<v1::RollbackResponse>(env, &v1::MachineService::Stub::Rollback, Empty{})));
  Status status;
  if (printed(env, resp, status)) return status;
  NodeResults results(env.err);
  for (const auto& m : resp.messages()) {
    if (!results.accept(m.metadata())) continue;
    env.out << fmt::format("{}: rolling back from slot {} to slot {}; rebooting\n", nodeOf(m.metadata()),
                           m.previous(), m.slot());
  }
  return results.finish();
}

}  // namespace keel::keelctl
