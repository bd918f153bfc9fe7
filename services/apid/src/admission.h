// apid's admission step: every trust decision about one call, as plain C++. Who the peer
// is (from its certificate), which of the client's metadata survives, which roles the call
// carries, which nodes it targets, whether the rules let it through, and where and how it
// is forwarded. No gRPC types, so every rule and every refusal is unit-tested directly.
#pragma once

#include <cstddef>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "keel/authz/authz.h"
#include "keel/common/status.h"
#include "revocation_list.h"
#include "routes.h"

namespace keel::apid {

// Metadata keys a client uses to target other nodes (docs/architecture.md, "How a call flows").
inline constexpr std::string_view kNodesKey = "nodes";
inline constexpr std::string_view kNodeKey = "node";
// The most nodes one call may target, unless apid's config says otherwise (limits.maxTargets).
inline constexpr std::size_t kDefaultMaxTargets = 256;

// What apid knows about a client from its verified leaf certificate.
struct PeerIdentity {
  std::string commonName;
  std::vector<std::string> roles;  // known roles among the O= entries
  bool clientAuth = false;         // extended key usage clientAuth present
  bool isCa = false;               // basicConstraints CA:TRUE
  authz::CertValidity validity;    // notBefore and notAfter, as issued
  std::string serialHex;           // as trustd's revocation list names it
  bool impersonator() const;
  // The one rule for who may act as a client, used in the handshake and again per call:
  // clientAuth usage, and not a CA.
  bool mayActAsClient() const { return clientAuth && !isCa; }
};

// Reads the identity from the leaf certificate's PEM. Errors: UNAUTHENTICATED.
Result<PeerIdentity> identityFromPem(std::string_view pem);

// Parsing a certificate per call would cost more than the rest of the call: identities
// are remembered by the certificate's PEM text. Thread-safe; bounded.
class IdentityCache {
 public:
  explicit IdentityCache(std::size_t capacity = 4096) : capacity_(capacity) {}
  Result<std::shared_ptr<const PeerIdentity>> lookup(std::string_view pem);

 private:
  std::mutex mu_;
  std::size_t capacity_;
  std::unordered_map<std::string, std::shared_ptr<const PeerIdentity>> entries_;
  std::list<std::string> order_;  // insertion order, for eviction
};

using MetadataList = std::vector<std::pair<std::string, std::string>>;

// What a call presents when it arrives.
struct CallRequest {
  std::string_view method;        // "/pkg.Service/Method"
  std::string_view peerAddress;   // as gRPC reports it ("ipv4:127.0.0.1:4711")
  const PeerIdentity* peer = nullptr;  // null: no verified client certificate
  Status identityError;           // why `peer` is null, when a certificate was there but unreadable
  MetadataList metadata;          // every key/value the client sent, in order
};

struct AdmissionOptions {
  bool mayForward = false;              // this node holds an impersonator certificate
  std::vector<std::string> selfNames;   // names of this node: targets that stay local
  std::string newRequestId;             // used unless a forwarding apid passed one
  std::size_t maxTargets = kDefaultMaxTargets;
  const RevocationList* revocations = nullptr;  // null: nothing is revoked
};

// Where an admitted call goes: this node's backend, or another node's apid.
struct Upstream {
  std::string node;  // the target as named; empty: no target was named
  bool local = true;  // served by this node's backend (no target, or one of selfNames)
};

// How the call is proxied.
enum class CallShape {
  kUnary,         // one request, one reply
  kServerStream,  // one request, a stream of replies
  kClientStream,  // a stream of requests (client or bidirectional streaming); one node only
};

struct Admission {
  Status status;                        // OK: forward the call; otherwise the exact refusal
  std::vector<std::string> roles;       // roles the call carries on
  std::string identity;                 // who asked (CN, or "<CN> via <apid CN>")
  std::string requestId;
  bool forwarded = false;               // arrived from another node's apid
  std::vector<std::string> targets;     // explicit target nodes, as the audit names them; empty: this node

  // Set when allowed.
  std::shared_ptr<const contracts::RouteEntry> backend;  // who serves the method on this node
  CallShape shape = CallShape::kUnary;
  // The replies are gathered per node and stamped with the node's name (Keel's per-node
  // reply shape, wire_stamp.h), even for one target. False: one upstream, replies as they come.
  bool fanOut = false;
  std::vector<Upstream> upstreams;      // one entry unless fanOut
  // The metadata every upstream call carries: the client's own keys that are neither
  // reserved nor target keys, then keel-roles, keel-identity and keel-request-id.
  MetadataList forward;
  // Added for a local backend only: keel-peer, the client's address, and for a caller that
  // presented its own certificate here (not another node's apid), keel-cert-validity.
  MetadataList forwardToBackend;
};

// Applies the trust steps of docs/architecture.md to one call, before anything is touched:
// 1. every `keel-*` key is dropped, whatever the peer's roles;
// 2. no verified certificate, no clientAuth usage, or a certificate on the revocation
//    list: UNAUTHENTICATED (with the reason a certificate could not be read, when that is
//    why; "revoked" for a listed one);
// 3. a peer holding os:impersonator carries the roles the previous hop put in exactly one
//    `keel-roles` value (none: no role), and its call may not target nodes again;
// 4. target nodes from `nodes` / `node`, each an address or host name, at most maxTargets;
// 5. the rule table decides (UNIMPLEMENTED for a method no backend serves,
//    PERMISSION_DENIED naming the needed roles);
// 6. targeting another node needs `mayForward`; several targets need a method with the
//    per-node reply shape (INVALID_ARGUMENT otherwise);
// 7. the route: the backend, the call's shape, one upstream or a fan-out, and the
//    metadata each upstream gets; a local backend also learns the client's address and,
//    unless the call was forwarded, its certificate's validity (trustd renews by it).
Admission admitCall(const CallRequest& request, const Routes& routes, const AdmissionOptions& options);

// True for a request id a forwarding apid may pass on: 1-64 of [A-Za-z0-9-].
bool isValidRequestId(std::string_view id);

}  // namespace keel::apid
