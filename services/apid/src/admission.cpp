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

Admission admitCall(const CallRequest& request, const Routes& routes, const AdmissionOptions& options) {
  Admission d;
  d.requestId = options.newRequestId;
  MetadataList passOn;

  // 1. Reserved keys never pass, whoever sent them. A forwarding apid's values are
  // remembered here and used below only if the peer turns out to be one.
  std::vector<std::string_view> hopRoles;
  std::vector<std::string_view> hopIdentity;
  std::vector<std::string_view> hopRequestId;
  std::vector<std::string> targetValues;
  for (const auto& [key, value] : request.metadata) {
    if (authz::isReservedKey(key)) {
      if (equalsIgnoreCase(key, authz::kRolesKey)) hopRoles.push_back(value);
      if (equalsIgnoreCase(key, authz::kIdentityKey)) hopIdentity.push_back(value);
      if (equalsIgnoreCase(key, authz::kRequestIdKey)) hopRequestId.push_back(value);
      continue;
    }
    if (equalsIgnoreCase(key, kNodesKey) || equalsIgnoreCase(key, kNodeKey)) {
      splitTargets(value, targetValues);
      continue;
    }
    passOn.emplace_back(key, value);
  }

  // 2. Authentication: the handshake verified the chain and validity; the usage is
  // checked here again so that no certificate acts as a client without clientAuth.
  if (request.peer == nullptr) {
    d.status = request.identityError.isOk() ? unauthenticated("no verified client certificate") : request.identityError;
    return d;
  }
  const PeerIdentity& peer = *request.peer;
  d.identity = peer.commonName;
  if (!peer.mayActAsClient()) {
    d.status = unauthenticated(fmt::format("certificate '{}' is not a client certificate (no clientAuth usage)",
                                           peer.commonName));
    return d;
  }
  if (options.revocations != nullptr && options.revocations->isRevoked(peer.serialHex)) {
    d.status = unauthenticated(fmt::format("certificate '{}' (serial {}) is revoked", peer.commonName, peer.serialHex));
    return d;
  }

  // 3. Roles: the certificate's own, or for another node's apid, the previous hop's.
  if (peer.impersonator()) {
    d.forwarded = true;
    if (hopRoles.size() > 1) {
      d.status = permissionDenied("a forwarded call must carry keel-roles exactly once, found " +
                                  std::to_string(hopRoles.size()));
      return d;
    }
    if (hopRoles.size() == 1) {
      d.roles = authz::parseRoles(hopRoles.front());
      // The previous hop's impersonation right is not the caller's to pass on.
      std::erase(d.roles, std::string(authz::kRoleImpersonator));
    }
    const std::string who = hopIdentity.size() == 1 ? std::string(hopIdentity.front()) : std::string("unknown");
    d.identity = fmt::format("{} via {}", who.substr(0, 256), peer.commonName);
    if (hopRequestId.size() == 1 && isValidRequestId(hopRequestId.front())) d.requestId = hopRequestId.front();
  } else {
    d.roles = peer.roles;
  }

  // 4. Targets.
  for (const auto& raw : targetValues) {
    auto name = config::parseNodeName(raw);
    if (!name.ok()) {
      d.status = invalidArgument(fmt::format("target node '{}': {}", raw, name.status().message()));
      return d;
    }
    if (std::find(d.targets.begin(), d.targets.end(), *name) == d.targets.end()) d.targets.push_back(*name);
  }
  if (d.targets.size() > options.maxTargets) {
    d.status = invalidArgument(fmt::format("a call may target at most {} nodes (apid's limits.maxTargets), found {}",
                                           options.maxTargets, d.targets.size()));
    return d;
  }
  const auto isSelf = [&](const std::string& node) {
    return std::find(options.selfNames.begin(), options.selfNames.end(), node) != options.selfNames.end();
  };
  const bool remoteTargets = std::any_of(d.targets.begin(), d.targets.end(), [&](const auto& t) { return !isSelf(t); });

  // 5. The rule, before anything is forwarded.
  const auto& rules = routes.rules();
  if (d.roles.empty()) {
    d.status = permissionDenied(fmt::format("{} holds no role (os:admin, os:operator or os:reader)", d.identity));
    if (auto st = rules.check(request.method, {}); st.code() == StatusCode::kUnimplemented) d.status = st;
    return d;
  }
  d.status = rules.check(request.method, d.roles);
  if (!d.status.isOk()) return d;
  const MethodInfo* info = routes.find(request.method);
  if (info == nullptr) {
    d.status = Status(StatusCode::kUnimplemented, fmt::format("unknown method {}", request.method));
    return d;
  }

  // 6. Forwarding.
  if (d.forwarded && !d.targets.empty()) {
    d.status = permissionDenied("a call forwarded by another node's apid is never forwarded again");
    return d;
  }
  if (remoteTargets && !options.mayForward) {
    d.status = permissionDenied("this node holds no impersonator certificate and does not forward calls to other nodes");
    return d;
  }
  if (d.targets.size() > 1 && !info->fanOut) {
    d.status = invalidArgument(fmt::format("{} cannot be sent to several nodes at once; target one node", request.method));
    return d;
  }

  // 7. The route.
  d.backend = info->backend;
  d.shape = info->clientStreaming   ? CallShape::kClientStream
            : info->serverStreaming ? CallShape::kServerStream
                                    : CallShape::kUnary;
  d.fanOut = !d.targets.empty() && info->fanOut;
  if (d.targets.empty()) {
    d.upstreams.push_back({"", true});
  } else {
    for (const auto& t : d.targets) d.upstreams.push_back({t, isSelf(t)});
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
  return d;
}

}  // namespace keel::apid
