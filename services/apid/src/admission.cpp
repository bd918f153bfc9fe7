#include "admission.h"

#include <algorithm>

#include <fmt/format.h>

#include "keel/config/endpoint.h"
#include "keel/pki/pki.h"

namespace keel::apid {

namespace {

bool equalsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

void splitTargets(std::string_view value, std::vector<std::string>& out) {
  size_t start = 0;
  while (start <= value.size()) {
    const size_t comma = value.find(',', start);
    const size_t end = comma == std::string_view::npos ? value.size() : comma;
    std::string_view item = value.substr(start, end - start);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    out.emplace_back(item);
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
}

}  // namespace

bool PeerIdentity::impersonator() const {
  return std::find(roles.begin(), roles.end(), authz::kRoleImpersonator) != roles.end();
}

Result<PeerIdentity> identityFromPem(std::string_view pem) {
  auto cert = pki::Certificate::fromPem(pem);
  if (!cert.ok()) return unauthenticated("the client certificate cannot be read: " + cert.status().message());
  PeerIdentity id;
  const auto subject = cert->subject();
  id.commonName = subject.commonName;
  id.roles = authz::rolesFromOrganizations(subject.organizations);
  const auto ekus = cert->extendedKeyUsages();
  id.clientAuth = std::find(ekus.begin(), ekus.end(), pki::ExtendedKeyUsage::kClientAuth) != ekus.end();
  id.isCa = cert->isCa();
  id.validity = {cert->notBefore(), cert->notAfter()};
  id.serialHex = cert->serialHex();
  return id;
}

Result<std::shared_ptr<const PeerIdentity>> IdentityCache::lookup(std::string_view pem) {
  {
    std::lock_guard lock(mu_);
    if (auto it = entries_.find(std::string(pem)); it != entries_.end()) return it->second;
  }
  KEEL_ASSIGN_OR_RETURN(auto id, identityFromPem(pem));
  auto shared = std::make_shared<const PeerIdentity>(std::move(id));
  std::lock_guard lock(mu_);
  if (entries_.size() >= capacity_ && !order_.empty()) {
    entries_.erase(order_.front());
    order_.pop_front();
  }
  if (entries_.emplace(std::string(pem), shared).second) order_.emplace_back(pem);
  return shared;
}

bool isValidRequestId(std::string_view id) {
  if (id.empty() || id.size() > 64) return false;
  return std::all_of(id.begin(), id.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '-'; });
}

namespace {

// What step 1 finds in the call's metadata.
struct SortedMetadata {
  MetadataList passOn;  // neither reserved nor a target
  // A forwarding apid's values, used only if the peer turns out to be one.
  std::vector<std::string_view> hopRoles;
  std::vector<std::string_view> hopIdentity;
  std::vector<std::string_view> hopRequestId;
  std::vector<std::string> targetValues;
};

// 1. Reserved keys never pass, whoever sent them.
SortedMetadata sortMetadata(const CallRequest& request) {
  SortedMetadata m;
  for (const auto& [key, value] : request.metadata) {
    if (authz::isReservedKey(key)) {
      if (equalsIgnoreCase(key, authz::kRolesKey)) m.hopRoles.push_back(value);
      if (equalsIgnoreCase(key, authz::kIdentityKey)) m.hopIdentity.push_back(value);
      if (equalsIgnoreCase(key, authz::kRequestIdKey)) m.hopRequestId.push_back(value);
      continue;
    }
    if (equalsIgnoreCase(key, kNodesKey) || equalsIgnoreCase(key, kNodeKey)) {
      splitTargets(value, m.targetValues);
      continue;
    }
    m.passOn.emplace_back(key, value);
  }
  return m;
}

// 2. Authentication: the handshake verified the chain and validity; the usage is checked
// here again so that no certificate acts as a client without clientAuth. The peer, or
// nullptr with d.status set.
const PeerIdentity* authenticate(const CallRequest& request, const AdmissionOptions& options, Admission& d) {
  if (request.peer == nullptr) {
    d.status = request.identityError.isOk() ? unauthenticated("no verified client certificate") : request.identityError;
    return nullptr;
  }
  const PeerIdentity& peer = *request.peer;
  d.identity = peer.commonName;
  if (!peer.mayActAsClient()) {
    d.status = unauthenticated(fmt::format("certificate '{}' is not a client certificate (no clientAuth usage)",
                                           peer.commonName));
    return nullptr;
  }
  if (options.revocations != nullptr && options.revocations->isRevoked(peer.serialHex)) {
    d.status = unauthenticated(fmt::format("certificate '{}' (serial {}) is revoked", peer.commonName, peer.serialHex));
    return nullptr;
  }
  return &peer;
}

// 3. Roles: the certificate's own, or for another node's apid, the previous hop's.
Status takeRoles(const PeerIdentity& peer, const SortedMetadata& m, Admission& d) {
  if (!peer.impersonator()) {
    d.roles = peer.roles;
    return Status::ok();
  }
  d.forwarded = true;
  if (m.hopRoles.size() > 1) {
    return permissionDenied("a forwarded call must carry keel-roles exactly once, found " +
                            std::to_string(m.hopRoles.size()));
  }
  if (m.hopRoles.size() == 1) {
    d.roles = authz::parseRoles(m.hopRoles.front());
    // The previous hop's impersonation right is not the caller's to pass on.
    std::erase(d.roles, std::string(authz::kRoleImpersonator));
  }
  const std::string who = m.hopIdentity.size() == 1 ? std::string(m.hopIdentity.front()) : std::string("unknown");
  d.identity = fmt::format("{} via {}", who.substr(0, 256), peer.commonName);
  if (m.hopRequestId.size() == 1 && isValidRequestId(m.hopRequestId.front())) d.requestId = m.hopRequestId.front();
  return Status::ok();
}

// 4. Targets: each a node name, each once, at most options.maxTargets.
Status takeTargets(const SortedMetadata& m, const AdmissionOptions& options, Admission& d) {
  for (const auto& raw : m.targetValues) {
    auto name = config::parseNodeName(raw);
    if (!name.ok()) return invalidArgument(fmt::format("target node '{}': {}", raw, name.status().message()));
    if (std::find(d.targets.begin(), d.targets.end(), *name) == d.targets.end()) d.targets.push_back(*name);
  }
  if (d.targets.size() > options.maxTargets) {
    return invalidArgument(fmt::format("a call may target at most {} nodes (apid's limits.maxTargets), found {}",
                                       options.maxTargets, d.targets.size()));
  }
  return Status::ok();
}

// 5. The rule, before anything is forwarded; then 6., whether it may be forwarded. The
// method, or nullptr with d.status set.
const MethodInfo* checkRuleAndForwarding(const CallRequest& request, const Routes& routes, bool remoteTargets,
                                         const AdmissionOptions& options, Admission& d) {
  const auto& rules = routes.rules();
  if (d.roles.empty()) {
    d.status = permissionDenied(fmt::format("{} holds no role (os:admin, os:operator or os:reader)", d.identity));
    if (auto st = rules.check(request.method, {}); st.code() == StatusCode::kUnimplemented) d.status = st;
    return nullptr;
  }
  d.status = rules.check(request.method, d.roles);
  if (!d.status.isOk()) return nullptr;
  const MethodInfo* info = routes.find(request.method);
  if (info == nullptr) {
    d.status = Status(StatusCode::kUnimplemented, fmt::format("unknown method {}", request.method));
    return nullptr;
  }
  if (d.forwarded && !d.targets.empty()) {
    d.status = permissionDenied("a call forwarded by another node's apid is never forwarded again");
    return nullptr;
  }
  if (remoteTargets && !options.mayForward) {
    d.status = permissionDenied("this node holds no impersonator certificate and does not forward calls to other nodes");
    return nullptr;
  }
  if (d.targets.size() > 1 && !info->fanOut) {
    d.status = invalidArgument(fmt::format("{} cannot be sent to several nodes at once; target one node", request.method));
    return nullptr;
  }
  return info;
}

bool isSelf(const AdmissionOptions& options, const std::string& node) {
  return std::find(options.selfNames.begin(), options.selfNames.end(), node) != options.selfNames.end();
}

// 7. The route, and the metadata each side gets.
void route(const CallRequest& request, const PeerIdentity& peer, const MethodInfo& info, MetadataList passOn,
           const AdmissionOptions& options, Admission& d) {
  d.backend = info.backend;
  d.shape = info.clientStreaming   ? CallShape::kClientStream
            : info.serverStreaming ? CallShape::kServerStream
                                   : CallShape::kUnary;
  d.fanOut = !d.targets.empty() && info.fanOut;
  if (d.targets.empty()) {
    d.upstreams.push_back({"", true});
  } else {
    for (const auto& t : d.targets) d.upstreams.push_back({t, isSelf(options, t)});
  }
  d.forward = std::move(passOn);
  d.forward.emplace_back(authz::kRolesKey, authz::formatRoles(d.roles));
  d.forward.emplace_back(authz::kIdentityKey, d.identity);
  d.forward.emplace_back(authz::kRequestIdKey, d.requestId);
  d.forwardToBackend.emplace_back(authz::kPeerKey, request.peerAddress);
  // Only of a certificate this apid verified itself: for a forwarded call it would be the
  // forwarding apid's, and the previous hop's word is never taken for it.
  if (!d.forwarded) {
    d.forwardToBackend.emplace_back(authz::kCertValidityKey, authz::formatCertValidity(peer.validity));
  }
}

}  // namespace

Admission admitCall(const CallRequest& request, const Routes& routes, const AdmissionOptions& options) {
  Admission d;
  d.requestId = options.newRequestId;
  SortedMetadata m = sortMetadata(request);
  const PeerIdentity* peer = authenticate(request, options, d);
  if (peer == nullptr) return d;
  if (d.status = takeRoles(*peer, m, d); !d.status.isOk()) return d;
  if (d.status = takeTargets(m, options, d); !d.status.isOk()) return d;
  const bool remoteTargets =
      std::any_of(d.targets.begin(), d.targets.end(), [&](const auto& t) { return !isSelf(options, t); });
  const MethodInfo* info = checkRuleAndForwarding(request, routes, remoteTargets, options, d);
  if (info == nullptr) return d;
  route(request, *peer, *info, std::move(m.passOn), options, d);
  return d;
}

}  // namespace keel::apid
