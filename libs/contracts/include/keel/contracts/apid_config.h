// apid's configuration file: where it listens, which certificates it serves and accepts,
// where the routing entries are, and the limits that hold under abuse. machined writes it
// into apid's state directory (serializeApidConfig), apid reads it (parseApidConfig);
// tests write it by hand.
#pragma once

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "keel/common/status.h"

namespace keel::contracts {

// A key and certificate pair on disk (PEM files).
struct KeyPairFiles {
  std::filesystem::path key;
  std::filesystem::path cert;

  bool operator==(const KeyPairFiles&) const = default;
};

// Limits of the :50000 listener. The defaults are documented in README.md ("apid").
struct Limits {
  int maxMessageBytes = 16 * 1024 * 1024;
  int maxConcurrentStreams = 100;  // per connection
  int maxTargets = 256;            // nodes one call may fan out to
  std::chrono::milliseconds handshakeTimeout{10'000};
  std::chrono::milliseconds idleTimeout{300'000};       // a connection without calls is closed
  std::chrono::milliseconds minPingInterval{10'000};    // clients pinging more often are cut off
  std::chrono::milliseconds keepaliveTime{60'000};      // apid pings an idle connection this often
  std::chrono::milliseconds keepaliveTimeout{20'000};   // and closes it when no answer comes
  int maxPeers = 256;                                   // channels to other nodes kept at once
  std::chrono::milliseconds peerIdle{300'000};          // a channel to a node unused this long is closed

  bool operator==(const Limits&) const = default;
};

struct AuditSettings {
  std::size_t maxFileBytes = 10 * 1024 * 1024;
  std::size_t maxFiles = 5;  // rotated files kept besides the current one

  bool operator==(const AuditSettings&) const = default;
};

// Where apid gets its certificates (see identity.h). Exactly one source.
struct IdentityConfig {
  std::filesystem::path trustdSocket;       // a control plane: this node's trustd
  std::vector<std::string> joinEndpoints;   // a worker: control planes' join listeners ("host:50001")
  std::string joinToken;                    // secret
  std::vector<std::string> sans;            // the serving certificate's SANs

  bool operator==(const IdentityConfig&) const = default;
};

// The join listener (control planes): TLS server-auth only, a node's join and renewal only.
struct JoinListenerConfig {
  std::string listen;                 // "host:port"
  std::filesystem::path trustdSocket;

  bool operator==(const JoinListenerConfig&) const = default;
};

struct ApidConfig {
  // What machined writes into every service's config: apid's service name, its own
  // socket and machined's (unused by apid; kept so the file reads back whole).
  std::string name;
  std::string socket;
  std::string machinedSocket;
  std::string nodeAddress;                 // this node's address (names it in fan-out replies)
  std::optional<std::string> hostname;     // another name the node answers to
  std::filesystem::path stateDir;          // audit log lives here
  std::string listen;                      // "host:port" of the mTLS API
  std::filesystem::path backendsDir;       // backend manifests (*.json)
  KeyPairFiles tls;                        // serving key and certificate
  std::filesystem::path acceptedCas;       // PEM bundle of the OS CAs clients must chain to
  std::optional<KeyPairFiles> impersonator;  // absent: this node never forwards
  // Absent: the tls and impersonator files are provisioned by someone else and only read.
  std::optional<IdentityConfig> identity;
  std::optional<JoinListenerConfig> join;
  int peerPort = 0;                        // other nodes' apid port; 0: the port of `listen`
  std::chrono::milliseconds forwardTimeout{30'000};  // per node of a fan-out
  std::chrono::seconds certRefresh{2};     // how often certificate files are re-read
  // How often the revocation list is fetched (from where `identity` gets certificates).
  std::chrono::milliseconds revocationRefresh{10'000};
  // Threads serving calls, each with its own completion queue. One is fastest at low
  // concurrency on a small node (no wake-ups across threads inside gRPC's poller).
  int threads = 1;
  Limits limits;
  AuditSettings audit;

  bool operator==(const ApidConfig&) const = default;
};

// Parses the JSON config. Unknown fields are refused by name; errors (INVALID_ARGUMENT)
// start with the JSON path of the field.
Result<ApidConfig> parseApidConfig(std::string_view text);
Result<ApidConfig> readApidConfigFile(const std::filesystem::path& path);
// The file's text: every field, defaults included; parseApidConfig reads it back as `config`.
std::string serializeApidConfig(const ApidConfig& config);

// The port part of a "host:port" listen address.
Result<int> listenPort(std::string_view listen);

}  // namespace keel::contracts
