#include "rotate_ca_commands.h"

#include <algorithm>
#include <iostream>
#include <map>
#include <optional>
#include <thread>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "keel/config/ca_rotation.h"
#include "keel/config/client_config.h"
#include "keel/config/file_io.h"
#include "keel/config/secrets.h"
#include "keel/pki/pki.h"

#include "ca_commands.h"
#include "node_calls.h"
#include "table.h"

namespace keel::keelctl {

namespace {

namespace v1 = keel::machine::v1;

constexpr auto kCaCallTimeout = std::chrono::seconds(60);
constexpr size_t kShortFingerprint = 16;
// apid applies a changed trust bundle or certificate file at its next re-read (every 2 s
// by default, `certRefresh`): a step that changed them waits this long before the next
// step relies on them.
constexpr auto kApidSettle = std::chrono::seconds(5);

// Where each node stands, in the order a rotation moves it.
enum class Stage { kOldOnly, kAccepts, kIssues, kReissued, kDone };

std::string_view stageName(Stage s) {
  switch (s) {
    case Stage::kOldOnly: return "old CA only";
    case Stage::kAccepts: return "accepts new";
    case Stage::kIssues: return "issues with new";
    case Stage::kReissued: return "re-issued";
    case Stage::kDone: return "done";
  }
  return "?";
}

struct NodeCas {
  std::string node;
  bool controlPlane = false;
  bool held = false;
  std::string issuing;
  std::vector<std::string> accepted;
  std::string serving;
  std::string impersonator;

  bool accepts(const std::string& fp) const {
    return issuing == fp || std::find(accepted.begin(), accepted.end(), fp) != accepted.end();
  }
};

// What the nodes answered: those that did, and "node: error" for those that did not.
struct Answers {
  std::vector<NodeCas> nodes;
  std::vector<std::string> failed;
  v1::UpdateCertificateAuthoritiesResponse raw;
};

// A rotation under way, as kept in its state file.
struct Rotation {
  std::string kind;
  std::string oldFingerprint;
  std::string crt;  // the new CA
  std::string key;  // its key (secret)
  std::string step;
  int64_t startedUnix = 0;

  std::string newFingerprint() const { return config::caFingerprint(crt).value_or(""); }
};

std::string shortFp(const std::string& fp) { return fp.empty() ? "-" : fp.substr(0, kShortFingerprint); }

Stage stageOf(const NodeCas& n, const Rotation& r, bool os) {
  const std::string next = r.newFingerprint();
  if (!n.accepts(next)) return Stage::kOldOnly;
  if (n.issuing != next) return Stage::kAccepts;
  if (os && (n.serving != next || (n.controlPlane && n.impersonator != next))) return Stage::kIssues;
  if (n.accepts(r.oldFingerprint)) return Stage::kReissued;
  return Stage::kDone;
}

Result<Rotation> readRotation(const std::filesystem::path& path) {
  return config::readPrivateDocument(path, "it holds a CA key", [](std::string_view text) -> Result<Rotation> {
    const auto j = nlohmann::json::parse(text, nullptr, false);
    if (!j.is_object()) return invalidArgument("not a JSON object");
    Rotation r;
    try {
      r.kind = j.at("kind").get<std::string>();
      r.oldFingerprint = j.at("old").get<std::string>();
      r.crt = j.at("crt").get<std::string>();
      r.key = j.at("key").get<std::string>();
      r.step = j.at("step").get<std::string>();
      r.startedUnix = j.at("startedUnix").get<int64_t>();
    } catch (const nlohmann::json::exception& e) {
      return invalidArgument(fmt::format("not a rotation state file: {}", e.what()));
    }
    KEEL_RETURN_IF_ERROR(pki::CertificateAuthority::fromPem(r.crt, r.key).status());
    return r;
  });
}

Status writeRotation(const std::filesystem::path& path, const Rotation& r) {
  const nlohmann::json j{{"kind", r.kind},   {"old", r.oldFingerprint},       {"crt", r.crt},
                         {"key", r.key},     {"step", r.step},                {"startedUnix", r.startedUnix},
                         {"new", r.newFingerprint()}};
  return config::writePrivateFile(path, j.dump(2) + "\n", config::Overwrite::kYes);
}

// The connection, rebuilt whenever the keelconfig's trust or certificate changes.
class Session {
 public:
  Session(MachineTarget target, CommandEnv& env, OutputFormat format) : target_(std::move(target)), env_(env),
                                                                        format_(format) {
    connect();
  }

  void reconnect(const config::ClientContext& ctx) {
    target_.tls.ca = ctx.ca;
    target_.tls.crt = ctx.crt;
    target_.tls.key = ctx.key;
    connect();
  }

  MachineCommandEnv& env() { return *menv_; }
  const MachineTarget& target() const { return target_; }

  // `req` on `nodes` (the target's own when absent).
  Result<Answers> update(const v1::UpdateCertificateAuthoritiesRequest& req,
                         const std::optional<std::vector<std::string>>& nodes = std::nullopt) {
    Answers out;
    const auto ctx = client_->contextFor(nodes.value_or(target_.nodes), kCaCallTimeout);
    const auto st = client_->stub().UpdateCertificateAuthorities(ctx.get(), req, &out.raw);
    if (!st.ok()) return fromGrpc(st, target_);
    for (const auto& m : out.raw.messages()) {
      const std::string& node = nodeOf(m.metadata());
      if (!m.metadata().error().empty()) {
        out.failed.push_back(fmt::format("{}: {}", node, m.metadata().error()));
        continue;
      }
      out.nodes.push_back({node, m.type() == "controlplane", m.held(), m.issuing(),
                           {m.accepted().begin(), m.accepted().end()}, m.serving_issuer(), m.impersonator_issuer()});
    }
    return out;
  }

 private:
  void connect() {
    menv_.reset();
    client_ = std::make_unique<MachineClient>(target_);
    menv_.emplace(MachineCommandEnv{*client_, format_, env_.out, std::cerr, std::cin, true});
  }

  MachineTarget target_;
  CommandEnv& env_;
  OutputFormat format_;
  std::unique_ptr<MachineClient> client_;
  std::optional<MachineCommandEnv> menv_;
};

// One rotation run against the target's nodes.
class Rotator {
 public:
  Rotator(Session& session, CommandEnv& env, config::CaKind kind, std::filesystem::path keelconfig,
          const RotateCaArgs& args)
      : session_(session), env_(env), kind_(kind), keelconfig_(std::move(keelconfig)), args_(args),
        statePath_(rotationStatePath(keelconfig_, config::caKindName(kind))) {}

  Status status() {
    KEEL_ASSIGN_OR_RETURN(const auto answers, query());
    std::optional<Rotation> rotation;
    if (std::filesystem::exists(statePath_)) {
      KEEL_ASSIGN_OR_RETURN(rotation, readRotation(statePath_));
    }
    if (session_.env().format != OutputFormat::kTable) {
      printMessage(answers.raw, session_.env().format, env_.out);
      return Status::ok();
    }
    TableRows rows;
    for (const auto& n : answers.nodes) {
      if (!n.held) {
        rows.push_back({n.node, n.controlPlane ? "controlplane" : "worker", "-", "-", "-", "-", "holds none"});
        continue;
      }
      std::vector<std::string> accepted;
      for (const auto& a : n.accepted) accepted.push_back(shortFp(a));
      rows.push_back({n.node, n.controlPlane ? "controlplane" : "worker", shortFp(n.issuing),
                      accepted.empty() ? "-" : fmt::format("{}", fmt::join(accepted, ",")),
                      isOs() ? shortFp(n.serving) : "-", isOs() && n.controlPlane ? shortFp(n.impersonator) : "-",
                      rotation ? std::string(stageName(stageOf(n, *rotation, isOs()))) : "-"});
    }
    printTable(env_.out, {"NODE", "TYPE", "ISSUING", "ALSO ACCEPTED", "APID SERVING", "IMPERSONATOR", "STAGE"}, rows);
    for (const auto& f : answers.failed) env_.out << "not answering: " << f << '\n';
    if (!rotation) {
      env_.out << fmt::format("no rotation of the {} CA under way (none was started from {})\n", kindName(),
                              keelconfig_.string());
      return Status::ok();
    }
    const auto behind = nodesBehind(answers, *rotation, Stage::kDone);
    env_.out << fmt::format(
        "rotation of the {} CA from {} to {}, started {}: last step reached '{}'; {}\n", kindName(),
        shortFp(rotation->oldFingerprint), shortFp(rotation->newFingerprint()),
        formatTime(TimePoint(std::chrono::seconds(rotation->startedUnix))), rotation->step,
        behind.empty() ? "every node is done: run 'keelctl rotate-ca' to finish"
                       : fmt::format("not caught up: {} (run 'keelctl rotate-ca{}' to go on)", fmt::join(behind, ", "),
                                     isOs() ? "" : " --kind " + kindName()));
    return Status::ok();
  }

  Status run() {
    const auto started = std::chrono::steady_clock::now();
    KEEL_ASSIGN_OR_RETURN(const auto answers, query());
    KEEL_RETURN_IF_ERROR(requireControlPlane(answers));
    KEEL_ASSIGN_OR_RETURN(Rotation r, startOrResume(answers));
    const std::string next = r.newFingerprint();
    env_.out << fmt::format("rotating the {} CA from {} to {} ({} nodes; state in {})\n", kindName(),
                            shortFp(r.oldFingerprint), shortFp(next), answers.nodes.size() + answers.failed.size(),
                            statePath_.string());

    // 1. Every node accepts the new CA, and so does the keelconfig.
    v1::UpdateCertificateAuthoritiesRequest accept;
    accept.set_kind(kindName());
    accept.set_accept(r.crt);
    KEEL_RETURN_IF_ERROR(step(r, "accept", accept, accept, {.accept = r.crt, .issueCrt = "", .issueKey = "", .drop = ""}));
    if (isOs()) {
      KEEL_RETURN_IF_ERROR(setKeelconfigTrust(r.oldFingerprint, r.crt, /*keepOld=*/true));
      settle("every apid to trust the new CA");
    }

    // 2. Every node issues with it: control planes first, as a worker's apid asks one
    // of them for its certificates and re-issues as soon as its node issues with the
    // new CA.
    v1::UpdateCertificateAuthoritiesRequest issueCp;
    issueCp.set_kind(kindName());
    issueCp.set_issue_certificate(r.crt);
    issueCp.set_issue_key(r.key);
    v1::UpdateCertificateAuthoritiesRequest issueWorker = issueCp;
    issueWorker.clear_issue_key();
    KEEL_RETURN_IF_ERROR(step(r, "issue", issueCp, issueWorker, {.accept = "", .issueCrt = r.crt, .issueKey = r.key, .drop = ""}));

    // 3. What the old CA signed is re-issued under the new one.
    if (isOs()) {
      KEEL_RETURN_IF_ERROR(waitForReissue(r));
      KEEL_RETURN_IF_ERROR(renewOwnCertificate(r));
    } else {
      env_.out << fmt::format(
          "  re-issue: the machine configs now name the new {} CA as issuing ({}); components deployed on top "
          "re-issue their certificates from it while the old one is still accepted\n",
          kindName(), config::caFieldPath(kind_));
    }
    r.step = "reissue";
    KEEL_RETURN_IF_ERROR(writeRotation(statePath_, r));

    // 4. The old CA is dropped everywhere: only once every node has caught up.
    KEEL_ASSIGN_OR_RETURN(const auto before, query());
    auto behind = nodesBehind(before, r, Stage::kReissued);
    if (!behind.empty()) {
      return failedPrecondition(fmt::format(
          "not dropping the old {} CA {}: {} not caught up. Run 'keelctl rotate-ca' again once they answer; it "
          "resumes where it stopped ('--status' shows where each node stands)",
          kindName(), shortFp(r.oldFingerprint), fmt::join(behind, ", ")));
    }
    v1::UpdateCertificateAuthoritiesRequest drop;
    drop.set_kind(kindName());
    drop.set_drop(r.oldFingerprint);
    KEEL_RETURN_IF_ERROR(step(r, "drop", drop, drop, {.accept = "", .issueCrt = "", .issueKey = "", .drop = r.oldFingerprint}));
    if (isOs()) KEEL_RETURN_IF_ERROR(setKeelconfigTrust(r.oldFingerprint, r.crt, /*keepOld=*/false));
    std::error_code ec;
    std::filesystem::remove(statePath_, ec);
    const auto took = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    env_.out << fmt::format("rotated the {} CA from {} to {} on {} nodes in {:.1f} s; the old CA is accepted nowhere\n",
                            kindName(), shortFp(r.oldFingerprint), shortFp(next), before.nodes.size(), took);
    return Status::ok();
  }

 private:
  bool isOs() const { return kind_ == config::CaKind::kOs; }
  std::string kindName() const { return std::string(config::caKindName(kind_)); }

  Result<Answers> query() {
    v1::UpdateCertificateAuthoritiesRequest req;
    req.set_kind(kindName());
    return session_.update(req);
  }

  static Status requireControlPlane(const Answers& a) {
    if (std::any_of(a.nodes.begin(), a.nodes.end(), [](const NodeCas& n) { return n.controlPlane; })) {
      return Status::ok();
    }
    return failedPrecondition(fmt::format(
        "none of the nodes that answered is a control plane{}, and control planes hold the CA keys: name the "
        "cluster's nodes with -n, or use a context that names them",
        a.failed.empty() ? "" : fmt::format(" ({} did not answer)", a.failed.size())));
  }

  // The rotation in the state file, or a new one from the CA every node issues with now.
  Result<Rotation> startOrResume(const Answers& a) {
    if (std::filesystem::exists(statePath_)) {
      KEEL_ASSIGN_OR_RETURN(auto r, readRotation(statePath_));
      if (r.kind != kindName()) {
        return failedPrecondition(fmt::format("{} is the state of a rotation of the {} CA, not the {} CA",
                                              statePath_.string(), r.kind, kindName()));
      }
      env_.out << fmt::format("resuming the rotation started {} (last step reached: {})\n",
                              formatTime(TimePoint(std::chrono::seconds(r.startedUnix))), r.step);
      return r;
    }
    std::map<std::string, std::vector<std::string>> issuers;
    for (const auto& n : a.nodes) {
      if (n.held) issuers[n.issuing].push_back(n.node);
    }
    if (issuers.size() != 1) {
      std::vector<std::string> parts;
      for (const auto& [fp, nodes] : issuers) parts.push_back(fmt::format("{} on {}", shortFp(fp), fmt::join(nodes, ",")));
      return failedPrecondition(fmt::format(
          "the nodes do not issue with one {} CA ({}), and no rotation state is at {}: these are not one "
          "cluster, or a rotation was started from another keelconfig",
          kindName(), parts.empty() ? "none holds one" : fmt::format("{}", fmt::join(parts, "; ")),
          statePath_.string()));
    }
    KEEL_ASSIGN_OR_RETURN(const auto ca, config::generateRotationCa(kind_, env_.clock));
    Rotation r{.kind = kindName(),
               .oldFingerprint = issuers.begin()->first,
               .crt = ca.certificate.toPem(),
               .key = ca.key.toPem(),
               .step = "started",
               .startedUnix = std::chrono::duration_cast<std::chrono::seconds>(env_.clock.now().time_since_epoch())
                                  .count()};
    // Before any node hears of the new CA: without its key, a rotation could not go on.
    KEEL_RETURN_IF_ERROR(writeRotation(statePath_, r));
    return r;
  }

  // Sends `cp` to the control planes, then `worker` to the workers, each group's nodes
  // that are not at `stage` yet; every node must answer. Then the secrets bundle and the
  // state file record the step.
  Status step(Rotation& r, std::string_view name, const v1::UpdateCertificateAuthoritiesRequest& cp,
              const v1::UpdateCertificateAuthoritiesRequest& worker, const config::CaChange& change) {
    KEEL_ASSIGN_OR_RETURN(const auto now, query());
    if (!now.failed.empty()) {
      return unavailable(fmt::format(
          "step '{}' of the {} CA rotation needs every node, and {} did not answer: run 'keelctl rotate-ca' again "
          "once they do; it resumes here",
          name, kindName(), fmt::join(now.failed, "; ")));
    }
    for (const bool controlPlanes : {true, false}) {
      std::vector<std::string> group;
      for (const auto& n : now.nodes) {
        if (n.held && n.controlPlane == controlPlanes) group.push_back(n.node);
      }
      if (group.empty()) continue;
      KEEL_ASSIGN_OR_RETURN(const auto done,
                            session_.update(controlPlanes ? cp : worker,
                                            session_.target().nodes.empty() ? std::vector<std::string>{} : group));
      if (!done.failed.empty()) {
        return unavailable(fmt::format("step '{}' of the {} CA rotation failed on {}; run 'keelctl rotate-ca' again "
                                       "to resume",
                                       name, kindName(), fmt::join(done.failed, "; ")));
      }
      size_t changed = 0;
      for (const auto& m : done.raw.messages()) changed += m.changed() ? 1 : 0;
      env_.out << fmt::format("  {}: {} {} ({} changed)\n", name, group.size(),
                              controlPlanes ? "control planes" : "workers", changed);
    }
    if (!args_.secrets.empty()) KEEL_RETURN_IF_ERROR(updateSecrets(change));
    r.step = std::string(name);
    return writeRotation(statePath_, r);
  }

  Status updateSecrets(const config::CaChange& change) {
    KEEL_ASSIGN_OR_RETURN(const auto bundle, config::readSecretsFile(args_.secrets));
    KEEL_ASSIGN_OR_RETURN(const auto next, config::changeSecretsCa(bundle, kind_, change));
    return config::writeSecretsFile(args_.secrets, next, config::Overwrite::kYes);
  }

  // The current context trusts the old and the new CA (keepOld), or the new one only;
  // the keelconfig is rewritten atomically, and the connection follows.
  Status setKeelconfigTrust(const std::string& oldFp, const std::string& newCrt, bool keepOld) {
    KEEL_ASSIGN_OR_RETURN(auto cfg, config::readClientConfigFile(keelconfig_));
    KEEL_ASSIGN_OR_RETURN(config::ClientContext* const ctx, config::currentContext(cfg));
    KEEL_ASSIGN_OR_RETURN(const auto trusted, pki::Certificate::bundleFromPem(ctx->ca));
    const std::string newFp = config::caFingerprint(newCrt).value_or("");
    std::string oldPem;
    bool trustsNew = false;
    for (const auto& c : trusted) {
      const std::string pem = c.toPem();
      const std::string fp = config::caFingerprint(pem).value_or("");
      if (fp == oldFp) oldPem = pem;
      trustsNew = trustsNew || fp == newFp;
    }
    // A context that trusts the new CA only has been through the last step already.
    if (keepOld && oldPem.empty() && !trustsNew) {
      return failedPrecondition(fmt::format(
          "the current context of {} does not trust the {} CA the cluster issues with ({}): this keelconfig is "
          "not for this cluster",
          keelconfig_.string(), kindName(), shortFp(oldFp)));
    }
    std::string ca = keepOld ? oldPem : "";
    ca += newCrt;
    if (ctx->ca != ca) {
      ctx->ca = ca;
      KEEL_RETURN_IF_ERROR(config::writeClientConfigFile(keelconfig_, cfg, config::Overwrite::kYes));
      env_.out << fmt::format("  keelconfig {}: context '{}' trusts {}\n", keelconfig_.string(), cfg.context,
                              keepOld ? "the old and the new CA" : "the new CA only");
    }
    session_.reconnect(*ctx);
    return Status::ok();
  }

  void settle(std::string_view what) {
    env_.out << fmt::format("  waiting {} s for {}\n", kApidSettle.count(), what) << std::flush;
    std::this_thread::sleep_for(kApidSettle);
  }

  // Waits until every apid serves, and impersonates, with certificates of the new CA.
  Status waitForReissue(const Rotation& r) {
    const auto deadline = std::chrono::steady_clock::now() + args_.wait;
    std::vector<std::string> behind;
    for (;;) {
      KEEL_ASSIGN_OR_RETURN(const auto now, query());
      behind = nodesBehind(now, r, Stage::kReissued);
      if (behind.empty()) break;
      if (std::chrono::steady_clock::now() >= deadline) {
        return Status(StatusCode::kDeadlineExceeded,
                      fmt::format("apid on {} still holds certificates of the old CA after {} s; run 'keelctl "
                                  "rotate-ca' again to resume, '--status' shows each node",
                                  fmt::join(behind, ", "), args_.wait.count()));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
    settle("every apid to present its new certificates");
    env_.out << "  reissue: every apid serves with a certificate of the new CA\n";
    return Status::ok();
  }

  // The keelconfig's own client certificate, renewed under the new CA (same identity,
  // roles and lifetime) unless it already is.
  Status renewOwnCertificate(const Rotation& r) {
    KEEL_ASSIGN_OR_RETURN(auto cfg, config::readClientConfigFile(keelconfig_));
    KEEL_ASSIGN_OR_RETURN(config::ClientContext* const ctx, config::currentContext(cfg));
    KEEL_ASSIGN_OR_RETURN(const auto own, pki::Certificate::fromPem(ctx->crt));
    KEEL_ASSIGN_OR_RETURN(const auto next, pki::Certificate::fromPem(r.crt));
    if (!own.isSignedBy(next)) {
      // The node behind the endpoint's certificate authority, whatever nodes -n names.
      MachineTarget one = session_.target();
      one.nodes.clear();
      one.nodesFromFlag = false;
      Session renewal(one, env_, OutputFormat::kTable);
      KEEL_RETURN_IF_ERROR(cmdConfigRenew(renewal.env(), keelconfig_, cfg, std::chrono::seconds(0)));
      KEEL_ASSIGN_OR_RETURN(cfg, config::readClientConfigFile(keelconfig_));
    }
    KEEL_ASSIGN_OR_RETURN(config::ClientContext* const renewed, config::currentContext(cfg));
    session_.reconnect(*renewed);
    return Status::ok();
  }

  std::vector<std::string> nodesBehind(const Answers& a, const Rotation& r, Stage wanted) const {
    std::vector<std::string> out;
    for (const auto& n : a.nodes) {
      if (n.held && stageOf(n, r, isOs()) < wanted) {
        out.push_back(fmt::format("{} ({})", n.node, stageName(stageOf(n, r, isOs()))));
      }
    }
    for (const auto& f : a.failed) out.push_back(f.substr(0, f.find(':')) + " (not answering)");
    return out;
  }

  Session& session_;
  CommandEnv& env_;
  config::CaKind kind_;
  std::filesystem::path keelconfig_;
  const RotateCaArgs& args_;
  std::filesystem::path statePath_;
};

}  // namespace

std::filesystem::path rotationStatePath(const std::filesystem::path& keelconfig, std::string_view kind) {
  return std::filesystem::path(fmt::format("{}.rotate-ca-{}", keelconfig.string(), kind));
}

Status cmdRotateCa(MachineTarget target, CommandEnv& env, OutputFormat format, const RotateCaArgs& args) {
  KEEL_ASSIGN_OR_RETURN(const auto kind, config::parseCaKind(args.kind));
  if (!target.viaApid()) {
    return invalidArgument("'rotate-ca' changes a cluster's trust through apid; it does not work with --root or --socket");
  }
  KEEL_ASSIGN_OR_RETURN(const auto keelconfig, config::resolveClientConfigPath(env.keelconfigFlag, env.env));
  // A bundle that cannot be kept in step is refused before any node changes.
  if (!args.status && !args.secrets.empty()) {
    KEEL_RETURN_IF_ERROR(config::readSecretsFile(args.secrets).status().withContext("--secrets"));
  }
  Session session(std::move(target), env, format);
  Rotator rotator(session, env, kind, keelconfig, args);
  return args.status ? rotator.status() : rotator.run();
}

}  // namespace keel::keelctl
