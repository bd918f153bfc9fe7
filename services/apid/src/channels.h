// The connections apid forwards over: one channel per backend socket and one mTLS
// channel per other node's apid (presenting this node's impersonator certificate),
// created on first use and reused by every later call. Thread-safe.
#pragma once

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include <sys/types.h>

#include <grpcpp/channel.h>

#include "keel/contracts/apid_config.h"
#include "forwarders.h"
#include "keel/common/clock.h"
#include "keel/common/fd_io.h"
#include "keel/common/status.h"
#include "routes.h"

namespace keel::apid {

class BackendChannels {
 public:
  explicit BackendChannels(int maxMessageBytes) : maxMessageBytes_(maxMessageBytes) {}

  // The channel to `backend`'s socket, connected on first use and again after the
  // backend closed the connection. UNAVAILABLE when nothing listens on the socket, or
  // when the socket's owner or the process serving it runs as a uid the manifest does
  // not allow (someone else's socket in its place).
  Result<std::shared_ptr<grpc::Channel>> get(const contracts::RouteEntry& backend);

  // A call on `channel` ended UNAVAILABLE: the connection may no longer take new calls
  // while it stays open (the backend sent GOAWAY to drain it, say). The next call
  // connects again; calls still open on the old connection finish on it.
  void retire(const std::shared_ptr<grpc::Channel>& channel);

 private:
  // One HTTP/2 connection, made by apid and handed to gRPC as it is: no name resolution,
  // load balancing or reconnection machinery sits between a call and the socket.
  // `watch` is a second descriptor on the same socket, never read: once the backend
  // closes its end (it exited, or shut the connection down), it polls as hung up, and
  // the next call connects again.
  struct Connection {
    std::shared_ptr<grpc::Channel> channel;
    UniqueFd watch;
    bool alive() const;
  };
  static bool allowed(const contracts::RouteEntry& backend, uid_t uid);

  int maxMessageBytes_;
  std::mutex mu_;
  std::map<std::filesystem::path, Connection> channels_;
};

// How many channels to other nodes apid keeps, and for how long: node names come from
// callers, so what apid remembers of them is bounded.
struct PeerLimits {
  std::size_t maxPeers = 256;                  // beyond this, the least recently used goes
  std::chrono::milliseconds idle{300'000};     // a channel unused this long goes
};

class PeerChannels {
 public:
  // `files` is the impersonator identity; `ca` the OS CAs peers' serving certificates
  // chain to. Files are re-read when they change (checked at most every `refresh`).
  PeerChannels(contracts::KeyPairFiles files, std::filesystem::path ca, int port, int maxMessageBytes,
               std::chrono::seconds refresh, PeerLimits limits, const Clock& clock)
      : files_(std::move(files)),
        ca_(std::move(ca)),
        port_(port),
        maxMessageBytes_(maxMessageBytes),
        refresh_(refresh),
        limits_(limits),
        clock_(clock) {}

  // The channel to `node`'s apid. Errors: FAILED_PRECONDITION when the identity files
  // cannot be read.
  Result<std::shared_ptr<grpc::Channel>> get(const std::string& node);
  // A call on `channel` ended UNAVAILABLE (the name does not resolve, or the node is
  // down): it is forgotten, and a later call to that node starts afresh.
  void retire(const std::shared_ptr<grpc::Channel>& channel);
  // Channels kept now (for tests).
  std::size_t size();

 private:
  struct Peer {
    std::shared_ptr<grpc::Channel> channel;
    TimePoint lastUsed;
  };
  Status reloadIfChanged();
  void evict(TimePoint now);

  contracts::KeyPairFiles files_;
  std::filesystem::path ca_;
  int port_;
  int maxMessageBytes_;
  std::chrono::seconds refresh_;
  std::mutex mu_;
  std::string stamp_;  // identity of the files the channels were made with
  std::chrono::steady_clock::time_point checked_{};
  std::string key_, cert_, caPem_;
  PeerLimits limits_;
  const Clock& clock_;
  std::map<std::string, Peer> channels_;
};

// The Upstreams of a running apid: its backends' sockets and, when it may forward, the
// other nodes' apid.
class ChannelRouter final : public Upstreams {
 public:
  // `peers` null: this node does not forward.
  ChannelRouter(BackendChannels& backends, PeerChannels* peers) : backends_(backends), peers_(peers) {}
  // apid's own services have no channel: the gateway answers them (local_services.h).
  Result<std::shared_ptr<grpc::Channel>> backend(const contracts::RouteEntry& backend) override {
    if (backend.servedByApid) return unavailable("apid's own services are answered by apid, not forwarded");
    return backends_.get(backend);
  }
  Result<std::shared_ptr<grpc::Channel>> node(const std::string& node) override;
  void retire(const std::shared_ptr<grpc::Channel>& channel) override {
    backends_.retire(channel);
    if (peers_ != nullptr) peers_->retire(channel);
  }

 private:
  BackendChannels& backends_;
  PeerChannels* peers_;
};

}  // namespace keel::apid
