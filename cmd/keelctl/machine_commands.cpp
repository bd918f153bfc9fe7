#include "machine_commands.h"

#include <set>

#include <fstream>
#include <initializer_list>
#include <iostream>
#include <optional>
#include <sstream>
#include <string_view>
#include <utility>

#include <fmt/format.h>

#include "gen_commands.h"
#include "keel/image/image_file.h"
#include "table.h"

namespace keel::keelctl {

namespace v1 = keel::machine::v1;
using keel::common::v1::Empty;

namespace {

// What `word` stands for among `choices`; nullopt for a word none of them is.
template <typename T>
std::optional<T> choose(std::string_view word,
                        std::initializer_list<std::pair<std::string_view, T>> choices) {
  for (const auto& [name, value] : choices) {
    if (name == word) return value;
  }
  return std::nullopt;
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

Status printVersions(MachineCommandEnv& env, const v1::VersionResponse& resp) {
  // The kernel's release (its build, the rest of `kernel`, is in -o json/yaml).
  const auto release = [](const std::string& kernel) {
    return kernel.empty() ? std::string("-") : kernel.substr(0, kernel.find(' '));
  };
  return printNodeTable(env, resp, {"NODE", "VERSION", "COMMIT", "BUILT", "ARCH", "IMAGE", "SLOT", "KERNEL"},
                        [&](const std::string& node, const v1::Version& m, TableRows& rows) {
                          rows.push_back({node, m.version(), m.git_commit(), m.build_date(), m.arch(),
                                          m.image_version().empty() ? "-" : m.image_version(),
                                          m.boot_slot().empty() ? "-" : m.boot_slot(), release(m.kernel())});
                        });
}

Status printServices(MachineCommandEnv& env, const v1::ServiceListResponse& resp) {
  return printNodeTable(
      env, resp, {"NODE", "SERVICE", "VERSION", "STATE", "PID", "RESTARTS", "SINCE", "LAST EXIT"},
      [](const std::string& node, const v1::ServiceList& m, TableRows& rows) {
        for (const auto& s : m.services()) {
          std::string lastExit = "-";
          if (s.last_exit_signal() != 0) {
            lastExit = fmt::format("signal {}", s.last_exit_signal());
          } else if (s.last_exit_code() >= 0) {
            lastExit = fmt::format("code {}", s.last_exit_code());
          }
          rows.push_back({node, s.id(), s.version().empty() ? "-" : s.version(), s.state(),
                          s.pid() > 0 ? std::to_string(s.pid()) : "-",
                          std::to_string(s.restarts()), humanTime(s.since_unix_nanos()), lastExit});
        }
      });
}

Status cmdVersion(MachineCommandEnv& env) {
  KEEL_ASSIGN_OR_RETURN(auto resp, callNodes(env, &v1::MachineService::Stub::Version, Empty{}));
  return printVersions(env, resp);
}

Status cmdServices(MachineCommandEnv& env) {
  KEEL_ASSIGN_OR_RETURN(auto resp, callNodes(env, &v1::MachineService::Stub::ServiceList, Empty{}));
  return printServices(env, resp);
}

Status cmdServiceNames(MachineCommandEnv& env) {
  KEEL_ASSIGN_OR_RETURN(auto resp, callNodes(env, &v1::MachineService::Stub::ServiceList, Empty{}));
  std::set<std::string> ids{"machined"};
  for (const auto& m : resp.messages()) {
    for (const auto& s : m.services()) ids.insert(s.id());
  }
  for (const auto& id : ids) env.out << id << '\n';
  return Status::ok();
}

Status cmdService(MachineCommandEnv& env, const std::string& id, const std::string& action) {
  v1::ServiceRequest req;
  req.set_id(id);
  if (action == "status") {
    KEEL_ASSIGN_OR_RETURN(auto resp, callNodes(env, &v1::MachineService::Stub::ServiceList, Empty{}));
    NodeResults results(env.err);
    for (const auto& m : resp.messages()) {
      if (!results.accept(m.metadata())) continue;
      for (const auto& s : m.services()) {
        if (s.id() != id) continue;
        if (env.format != OutputFormat::kTable) {
          printMessage(s, env.format, env.out);
          return results.finish();
        }
        env.out << fmt::format("NODE       {}\nSERVICE    {}\n", nodeOf(m.metadata()), s.id());
        if (!s.version().empty()) env.out << fmt::format("VERSION    {}\n", s.version());
        env.out << fmt::format("STATE      {}\nPID        {}\nRESTARTS   {}\nSINCE      {}\n", s.state(),
                               s.pid() > 0 ? std::to_string(s.pid()) : "-", s.restarts(),
                               humanTime(s.since_unix_nanos()));
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
  const auto method = choose<MachineUnary<v1::ServiceRequest, v1::ServiceActionResponse>>(
      action, {{"start", &v1::MachineService::Stub::ServiceStart},
               {"stop", &v1::MachineService::Stub::ServiceStop},
               {"restart", &v1::MachineService::Stub::ServiceRestart}});
  if (!method) {
    return invalidArgument(fmt::format("unknown service action '{}': expected start, stop, restart or status", action));
  }
  KEEL_ASSIGN_OR_RETURN(auto resp, callNodes(env, *method, req));
  return printPerNode(env, resp, [&](const std::string& node, const v1::ServiceAction& m) {
    env.out << node << ": " << m.response() << '\n';
  });
}

namespace {

// logs and dmesg: a stream of lines, printed as they come (or as JSON/YAML messages).
template <typename Req, typename Method>
Status streamLines(MachineCommandEnv& env, Method method, const Req& req, bool follow) {
  return printStream<v1::LogLine>(env, method, req, follow, [&](const v1::LogLine& l) {
    env.out << l.line() << '\n';
    env.out.flush();
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
  return printStream<v1::Event>(env, &v1::MachineService::Stub::Events, req, follow, [&](const v1::Event& e) {
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
  KEEL_ASSIGN_OR_RETURN(auto resp, callNodes(env, &v1::MachineService::Stub::Memory, Empty{}));
  return printNodeTable(
      env, resp, {"NODE", "TOTAL", "USED", "FREE", "AVAILABLE", "BUFFERS", "CACHED", "SWAP", "SWAP FREE"},
      [](const std::string& node, const v1::Memory& m, TableRows& rows) {
        const auto& i = m.meminfo();
        const auto kb = [](uint64_t v) { return humanBytes(v * 1024); };
        const uint64_t used = i.total_kb() > i.available_kb() ? i.total_kb() - i.available_kb() : 0;
        rows.push_back({node, kb(i.total_kb()), kb(used), kb(i.free_kb()), kb(i.available_kb()),
                        kb(i.buffers_kb()), kb(i.cached_kb()), kb(i.swap_total_kb()), kb(i.swap_free_kb())});
      });
}

Status cmdProcesses(MachineCommandEnv& env) {
  KEEL_ASSIGN_OR_RETURN(auto resp, callNodes(env, &v1::MachineService::Stub::Processes, Empty{}));
  return printNodeTable(
      env, resp, {"NODE", "PID", "PPID", "STATE", "THREADS", "CPU", "RES", "COMMAND", "ARGS"},
      [](const std::string& node, const v1::Processes& m, TableRows& rows) {
        for (const auto& p : m.processes()) {
          std::string args = p.args().empty() ? "[" + p.command() + "]" : p.args();
          if (args.size() > 100) args = args.substr(0, 97) + "...";
          rows.push_back({node, std::to_string(p.pid()), std::to_string(p.ppid()), p.state(),
                          std::to_string(p.threads()), fmt::format("{:.2f}s", p.cpu_seconds()),
                          humanBytes(p.resident_bytes()), p.command(), args});
        }
      });
}

Status cmdMounts(MachineCommandEnv& env) {
  KEEL_ASSIGN_OR_RETURN(auto resp, callNodes(env, &v1::MachineService::Stub::Mounts, Empty{}));
  return printNodeTable(env, resp, {"NODE", "SOURCE", "MOUNTED ON", "TYPE", "SIZE", "AVAILABLE"},
                        [](const std::string& node, const v1::Mounts& m, TableRows& rows) {
                          for (const auto& mt : m.mounts()) {
                            const bool sized = mt.size_bytes() > 0;
                            rows.push_back({node, mt.source(), mt.target(), mt.filesystem(),
                                            sized ? humanBytes(mt.size_bytes()) : "-",
                                            sized ? humanBytes(mt.available_bytes()) : "-"});
                          }
                        });
}

Status cmdUsage(MachineCommandEnv& env, const std::string& path, int depth) {
  v1::DiskUsageRequest req;
  req.set_path(path);
  req.set_depth(depth);
  KEEL_ASSIGN_OR_RETURN(auto resp, callNodes(env, &v1::MachineService::Stub::DiskUsage, req));
  return printNodeTable(env, resp, {"NODE", "SIZE", "PATH"},
                        [](const std::string& node, const v1::DiskUsage& m, TableRows& rows) {
                          for (const auto& e : m.entries()) {
                            rows.push_back({node, humanBytes(e.size_bytes()),
                                            e.path() + (e.error().empty() ? "" : "  (" + e.error() + ")")});
                          }
                        });
}

Status cmdList(MachineCommandEnv& env, const std::string& path, int depth, const std::vector<std::string>& types) {
  v1::ListRequest req;
  req.set_root(path);
  req.set_recursion_depth(depth);
  for (const auto& t : types) {
    const auto type = choose<v1::ListRequest::Type>(t, {{"f", v1::ListRequest::REGULAR},
                                                        {"d", v1::ListRequest::DIRECTORY},
                                                        {"l", v1::ListRequest::SYMLINK}});
    if (!type) return invalidArgument(fmt::format("unknown file type '{}': expected f, d or l", t));
    req.add_types(*type);
  }
  // One table at the end, so that its columns fit every file.
  TableRows rows;
  const auto addRow = [&](const v1::FileInfo& f) {
    std::string name = f.name();
    if (!f.link().empty()) name += " -> " + f.link();
    if (!f.error().empty()) name += "  (" + f.error() + ")";
    rows.push_back({nodeOf(f.metadata()), fmt::format("{:o}", f.mode() & 07777),
                    f.is_dir() ? "-" : humanBytes(f.size()), humanTime(f.modified_unix() * 1'000'000'000), name});
  };
  KEEL_RETURN_IF_ERROR(printStream<v1::FileInfo>(env, &v1::MachineService::Stub::List, req, false, addRow));
  if (env.format == OutputFormat::kTable) printTable(env.out, {"NODE", "MODE", "SIZE", "MODIFIED", "NAME"}, rows);
  return Status::ok();
}

Status cmdRead(MachineCommandEnv& env, const std::string& path) {
  v1::ReadRequest req;
  req.set_path(path);
  return readStream<v1::DataChunk>(env, &v1::MachineService::Stub::Read, req, false, [&](const v1::DataChunk& c) {
    env.out.write(c.bytes().data(), static_cast<std::streamsize>(c.bytes().size()));
  });
}

Status cmdGetConfig(MachineCommandEnv& env) {
  KEEL_ASSIGN_OR_RETURN(auto resp, callNodes(env, &v1::MachineService::Stub::GetConfiguration, Empty{}));
  if (env.format == OutputFormat::kYaml) {
    printMessage(resp, env.format, env.out);
    return Status::ok();
  }
  // The config is JSON already: JSON output is the config itself, as in the table format.
  MachineCommandEnv asText = env;
  asText.format = OutputFormat::kTable;
  return printPerNode(asText, resp,
                      [&](const std::string&, const v1::GetConfiguration& m) { env.out << m.data(); });
}

Status cmdApplyConfig(MachineCommandEnv& env, const std::string& file, const std::string& mode,
                      std::chrono::seconds tryTimeout) {
  using Request = v1::ApplyConfigurationRequest;
  const auto applyMode = choose<Request::Mode>(mode, {{"auto", Request::AUTO},
                                                      {"no-reboot", Request::NO_REBOOT},
                                                      {"reboot", Request::REBOOT},
                                                      {"try", Request::TRY}});
  if (!applyMode) {
    return invalidArgument(fmt::format("unknown mode '{}': expected auto, no-reboot, reboot or try", mode));
  }
  Request req;
  req.set_mode(*applyMode);
  std::ifstream in(file, std::ios::binary);
  if (!in) return notFound(fmt::format("cannot read {}", file));
  std::ostringstream data;
  data << in.rdbuf();
  req.set_data(data.str());
  req.set_try_timeout_seconds(static_cast<int32_t>(tryTimeout.count()));
  KEEL_ASSIGN_OR_RETURN(auto resp, callNodes(env, &v1::MachineService::Stub::ApplyConfiguration, req));
  return printPerNode(env, resp, [&](const std::string& node, const v1::ApplyConfiguration& m) {
    env.out << fmt::format("{}: {} ({})\n", node, m.summary(), m.mode());
    for (const auto& w : m.warnings()) env.out << "  warning: " << w << '\n';
    if (m.mode() == "try") env.out << "  confirm with 'keelctl confirm-config' to keep it\n";
  });
}

Status cmdConfirmConfig(MachineCommandEnv& env) {
  KEEL_ASSIGN_OR_RETURN(auto resp, callNodes(env, &v1::MachineService::Stub::ConfirmConfiguration, Empty{}));
  return printPerNode(env, resp, [&](const std::string& node, const v1::ConfirmConfiguration& m) {
    env.out << node << ": " << m.summary() << '\n';
  });
}

Status cmdPower(MachineCommandEnv& env, const std::string& action) {
  struct Power {
    MachineUnary<Empty, v1::PowerResponse> method;
    std::string what;  // for the confirmation
  };
  const auto power = choose<Power>(
      action,
      {{"reboot",
        {&v1::MachineService::Stub::Reboot, "reboot the node (every service stops and starts again)"}},
       {"shutdown",
        {&v1::MachineService::Stub::Shutdown,
         "shut the node down (it stays down until started by other means)"}},
       {"reset",
        {&v1::MachineService::Stub::Reset,
         "wipe the node's state directories and reboot it (its machine config is kept)"}}});
  if (!power) return invalidArgument(fmt::format("unknown power action '{}'", action));
  if (!confirmed(env, power->what)) {
    return {StatusCode::kAborted, "not confirmed; nothing was done (pass --yes to skip the question)"};
  }
  KEEL_ASSIGN_OR_RETURN(auto resp, callNodes(env, power->method, Empty{}));
  return printPerNode(env, resp, [&](const std::string& node, const v1::Power& m) {
    env.out << node << ": " << m.action() << " requested\n";
  });
}

namespace {

constexpr size_t kUpgradeChunk = size_t{1} << 20;

std::string mib(uint64_t bytes) { return fmt::format("{:.1f} MiB", static_cast<double>(bytes) / (1 << 20)); }

}  // namespace

Status cmdUpgrade(MachineCommandEnv& env, const UpgradeArgs& args) {
  const auto& target = env.client.target();
  if (target.nodes.size() > 1) {
    // Which node to reboot into a new root is never guessed from a context's list.
    return invalidArgument(
        target.nodesFromFlag
            ? fmt::format("an upgrade streams to one node; {} were named (-n): upgrade them one by one",
                          target.nodes.size())
            : fmt::format("an upgrade streams to one node, but the context names {}: name the one to upgrade "
                          "with -n",
                          target.nodes.size()));
  }
  const std::filesystem::path sigPath =
      args.signature.empty() ? std::filesystem::path(args.image.string() + ".sig") : args.signature;
  // The file is checked here as the node will check it, so a wrong file fails before the
  // question; the node trusts nothing of this.
  KEEL_ASSIGN_OR_RETURN(const auto head, image::readImageHead(args.image));
  const uint64_t size = head.fileSize;
  std::ifstream sigIn(sigPath, std::ios::binary);
  if (!sigIn) {
    return failedPrecondition(fmt::format(
        "no signature {}: a node installs only images signed with its machine.upgrade.publicKey; sign this one "
        "with 'keelctl sign-image --key image-signing.key {}'",
        sigPath.string(), args.image.string()));
  }
  const std::string signature((std::istreambuf_iterator<char>(sigIn)), std::istreambuf_iterator<char>());
  const std::string digest = image::sha256(head.manifestBytes);
  const std::string node = target.nodes.empty() ? (target.viaApid() ? target.endpoint : "the local node")
                                                : target.nodes.front();
  if (!confirmed(env, fmt::format("install {} (image {}, build {}, {}) as {}'s next system{}{}", args.image.string(),
                                  head.manifest.version.toString(), head.manifest.buildId, mib(size), node,
                                  args.noReboot ? "" : " and reboot it into it",
                                  args.allowDowngrade ? ", even if it is older than the running one" : ""))) {
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
  header->set_allow_downgrade(args.allowDowngrade);
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
  return printPerNode(env, resp, [&](const std::string& installedOn, const v1::Upgrade& m) {
    const std::string replacing = m.previous_version().empty() ? "" : ", replacing " + m.previous_version();
    env.out << fmt::format("{}: installed image {} ({}{}) into slot {}", installedOn, m.version(), mib(m.bytes()),
                           replacing, m.slot());
    if (m.rebooting()) {
      env.out << fmt::format("; rebooting into it. It stays on trial until its API answers, else the node goes "
                             "back to slot {} by itself.\n",
                             m.previous());
    } else {
      env.out << fmt::format("; the next boot tries it (falling back to slot {}).\n", m.previous());
    }
  });
}

Status cmdRollback(MachineCommandEnv& env) {
  if (!confirmed(env, "reboot the node into the root slot it booted before the current one")) {
    return {StatusCode::kAborted, "not confirmed; nothing was done (pass --yes to skip the question)"};
  }
  KEEL_ASSIGN_OR_RETURN(auto resp, callNodes(env, &v1::MachineService::Stub::Rollback, Empty{}));
  return printPerNode(env, resp, [&](const std::string& node, const v1::Rollback& m) {
    env.out << fmt::format("{}: rolling back from slot {} to slot {}; rebooting\n", node, m.previous(),
                           m.slot());
  });
}

}  // namespace keel::keelctl
