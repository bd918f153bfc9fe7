#include "token_commands.h"

#include <algorithm>
#include <istream>
#include <string>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "keel/config/join_tokens.h"
#include "keel/config/random.h"  // generateToken

namespace keel::keelctl {

namespace {

namespace v1 = keel::machine::v1;

constexpr auto kTokenCallTimeout = std::chrono::seconds(30);

struct NodeTokens {
  std::string node;
  bool controlPlane = false;
  std::vector<std::string> accepted;  // fingerprints
  std::string presented;              // fingerprint
};

// `req` on `nodes` (the target's own when absent); every node must answer.
Result<std::vector<NodeTokens>> updateTokens(MachineCommandEnv& env, const v1::UpdateJoinTokensRequest& req,
                                             const std::optional<std::vector<std::string>>& nodes = std::nullopt) {
  v1::UpdateJoinTokensResponse resp;
  if (!nodes) {
    KEEL_ASSIGN_OR_RETURN(resp, callNodes(env, &v1::MachineService::Stub::UpdateJoinTokens, req));
  } else {
    const auto ctx = env.client.contextFor(*nodes, kTokenCallTimeout);
    const auto st = env.client.stub().UpdateJoinTokens(ctx.get(), req, &resp);
    if (!st.ok()) return fromGrpc(st, env.client.target());
  }
  NodeResults results(env.err);
  std::vector<NodeTokens> out;
  for (const auto& m : resp.messages()) {
    if (!results.accept(m.metadata())) continue;
    out.push_back({nodeOf(m.metadata()), m.type() == "controlplane", {m.accepted().begin(), m.accepted().end()},
                   m.presented()});
  }
  KEEL_RETURN_IF_ERROR(results.finish());
  return out;
}

// The `nodes:` to send a call to some of the nodes: none when the target names none (the
// node behind the endpoint answered alone).
std::vector<std::string> addresses(const MachineCommandEnv& env, const std::vector<NodeTokens>& nodes) {
  std::vector<std::string> out;
  if (env.client.target().nodes.empty()) return out;
  for (const auto& n : nodes) out.push_back(n.node);
  return out;
}

void printNode(MachineCommandEnv& env, const NodeTokens& n) {
  if (n.controlPlane) {
    env.out << fmt::format("{} (controlplane): accepts {}\n", n.node, fmt::join(n.accepted, ", "));
  } else {
    env.out << fmt::format("{} (worker): presents {}\n", n.node, n.presented);
  }
}

// Sends `req` to the control planes or the workers among `all` and prints what they hold now.
Status updateGroup(MachineCommandEnv& env, const std::vector<NodeTokens>& all, bool controlPlanes,
                   const v1::UpdateJoinTokensRequest& req) {
  std::vector<NodeTokens> group;
  std::copy_if(all.begin(), all.end(), std::back_inserter(group),
               [&](const NodeTokens& n) { return n.controlPlane == controlPlanes; });
  if (group.empty()) return Status::ok();
  KEEL_ASSIGN_OR_RETURN(const auto updated, updateTokens(env, req, addresses(env, group)));
  for (const auto& n : updated) printNode(env, n);
  return Status::ok();
}

Status addToken(MachineCommandEnv& env, const std::vector<NodeTokens>& nodes) {
  config::SystemRandom random;
  const std::string token = config::generateToken(random);
  // Control planes first: a worker never presents a token no control plane accepts.
  v1::UpdateJoinTokensRequest accept;
  accept.set_accept(token);
  KEEL_RETURN_IF_ERROR(updateGroup(env, nodes, true, accept));
  v1::UpdateJoinTokensRequest present;
  present.set_present(token);
  KEEL_RETURN_IF_ERROR(updateGroup(env, nodes, false, present));
  env.out << fmt::format(
      "new join token (fingerprint {}), a secret: a machine that presents it may join. Once every worker presents "
      "it, drop the old one with 'keelctl rotate-token --drop OLD'.\n{}\n",
      config::tokenFingerprint(token), token);
  return Status::ok();
}

Status dropToken(MachineCommandEnv& env, const std::vector<NodeTokens>& nodes, const RotateTokenArgs& args) {
  const std::string fingerprint = config::tokenFingerprint(args.drop);
  std::vector<std::string> presenting;
  for (const auto& n : nodes) {
    if (!n.controlPlane && n.presented == fingerprint) presenting.push_back(n.node);
    if (n.controlPlane && n.accepted == std::vector<std::string>{fingerprint}) {
      return failedPrecondition(fmt::format(
          "{} accepts no join token but {}, and the last one is never dropped: run 'keelctl rotate-token' first",
          n.node, fingerprint));
    }
  }
  if (!presenting.empty() && !args.force) {
    return failedPrecondition(fmt::format(
        "the machine config of {} still presents the token {}: run 'keelctl rotate-token' to move them to a new "
        "token first, or pass --force to drop it anyway (they keep working and renewing with their certificates, "
        "but cannot join again until their machine.token is a token the cluster accepts)",
        fmt::join(presenting, ", "), fingerprint));
  }
  v1::UpdateJoinTokensRequest drop;
  drop.set_drop(args.drop);
  KEEL_RETURN_IF_ERROR(updateGroup(env, nodes, true, drop));
  env.out << fmt::format("dropped the join token {}: a join that presents it is refused\n", fingerprint);
  return Status::ok();
}

}  // namespace

Status cmdRotateToken(MachineCommandEnv& env, const RotateTokenArgs& given) {
  RotateTokenArgs args = given;
  // "-": the token comes on stdin, out of the process list and the shell's history.
  if (args.drop == "-" && !std::getline(env.in, args.drop)) {
    return invalidArgument("--drop -: expected the token on stdin, found nothing");
  }
  if (!args.drop.empty()) KEEL_RETURN_IF_ERROR(config::checkJoinToken("--drop", args.drop));
  // First ask every node what it holds, so a refusal changes nothing anywhere.
  KEEL_ASSIGN_OR_RETURN(const auto nodes, updateTokens(env, v1::UpdateJoinTokensRequest{}));
  if (std::none_of(nodes.begin(), nodes.end(), [](const NodeTokens& n) { return n.controlPlane; })) {
    return failedPrecondition(
        "none of the nodes is a control plane, and control planes hold the accepted tokens: name the cluster's "
        "control planes and workers with -n, or use a context that names them");
  }
  return args.drop.empty() ? addToken(env, nodes) : dropToken(env, nodes, args);
}

}  // namespace keel::keelctl
