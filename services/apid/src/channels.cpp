#include "channels.h"

#include "keel/common/assert.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/create_channel_posix.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/channel_arguments.h>
#include "keel/common/status.h"

namespace keel::apid {

namespace {

// `connectTimeout`: how long one connection attempt (with its handshake) may take.
void commonArgs(grpc::ChannelArguments& args, int maxMessageBytes, std::chrono::milliseconds connectTimeout) {
  args.SetMaxReceiveMessageSize(maxMessageBytes);
  args.SetMaxSendMessageSize(maxMessageBytes);
  // A backend or node that restarts is found again within a second, not after gRPC's
  // default backoff of up to two minutes.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  args.SetInt(GRPC_ARG_ENABLE_CHANNELZ, 0);
  // The client decides whether to retry; apid forwards each call once. This also keeps
  // gRPC's retry machinery (which buffers every outgoing message) off the forwarding path.
  args.SetInt(GRPC_ARG_ENABLE_RETRIES, 0);
  // gRPC takes its connection-attempt timeout from this argument.
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, static_cast<int>(connectTimeout.count()));
  // Channels are shared by every call, so several are kept distinct per target.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
}

std::string fileStamp(const std::filesystem::path& p) {
  struct stat st {};
  if (::stat(p.c_str(), &st) != 0) return "missing";
  return fmt::format("{}:{}:{}.{}", st.st_ino, st.st_size, st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
}

Result<std::string> slurp(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) return failedPrecondition("cannot read " + p.string() + ": " + errnoText(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

bool BackendChannels::Connection::alive() const {
  pollfd p{watch.get(), POLLRDHUP, 0};
  const int n = ::poll(&p, 1, 0);
  return n == 0 || (n < 0 && errno == EINTR);
}

bool BackendChannels::allowed(const contracts::RouteEntry& backend, uid_t uid) {
  return std::find(backend.allowedUids.begin(), backend.allowedUids.end(), uid) != backend.allowedUids.end();
}

Result<std::shared_ptr<grpc::Channel>> BackendChannels::get(const contracts::RouteEntry& backend) {
  std::lock_guard lock(mu_);
  auto& conn = channels_[backend.socket];
  if (conn.channel && conn.alive()) return conn.channel;
  conn = {};
  struct stat st {};
  if (::lstat(backend.socket.c_str(), &st) != 0) {
    return unavailable(fmt::format("backend {} is not running: no socket at {}", backend.name, backend.socket.string()));
  }
  if (!S_ISSOCK(st.st_mode)) {
    return unavailable(fmt::format("backend {}: {} is not a socket", backend.name, backend.socket.string()));
  }
  if (!allowed(backend, st.st_uid)) {
    return unavailable(fmt::format("backend {}: socket {} is owned by uid {}, which its manifest does not allow",
                                   backend.name, backend.socket.string(), st.st_uid));
  }
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  const std::string path = backend.socket.string();
  if (path.size() >= sizeof(addr.sun_path)) {
    return unavailable(fmt::format("backend {}: socket path {} is too long", backend.name, path));
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) return unavailable(fmt::format("backend {}: no socket: {}", backend.name, errnoText(errno)));
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
    const bool down = errno == ECONNREFUSED || errno == ENOENT;
    return unavailable(fmt::format("backend {}{}: cannot connect to {}: {}", backend.name, down ? " is not running" : "",
                                   path, errnoText(errno)));
  }
  ucred peer{};
  socklen_t len = sizeof(peer);
  if (::getsockopt(fd.get(), SOL_SOCKET, SO_PEERCRED, &peer, &len) != 0 || !allowed(backend, peer.uid)) {
    return unavailable(fmt::format("backend {}: the process serving {} runs as uid {}, which its manifest does not allow",
                                   backend.name, path, peer.uid));
  }
  UniqueFd watch(::fcntl(fd.get(), F_DUPFD_CLOEXEC, 0));
  if (!watch) return unavailable(fmt::format("backend {}: {}", backend.name, errnoText(errno)));
  grpc::ChannelArguments args;
  commonArgs(args, maxMessageBytes_, std::chrono::seconds(1));
  conn.channel = grpc::CreateCustomInsecureChannelFromFd("localhost", fd.release(), args);
  conn.watch = std::move(watch);
  return conn.channel;
}

void BackendChannels::retire(const std::shared_ptr<grpc::Channel>& channel) {
  std::lock_guard lock(mu_);
  for (auto& [socket, conn] : channels_) {
    if (conn.channel == channel) conn = {};
  }
}

Status PeerChannels::reloadIfChanged() {
  const auto now = std::chrono::steady_clock::now();
  if (!stamp_.empty() && now - checked_ < refresh_) return Status::ok();
  checked_ = now;
  const std::string stamp = fileStamp(files_.key) + "|" + fileStamp(files_.cert) + "|" + fileStamp(ca_);
  if (stamp == stamp_) return Status::ok();
  KEEL_ASSIGN_OR_RETURN(std::string key, slurp(files_.key));
  KEEL_ASSIGN_OR_RETURN(std::string cert, slurp(files_.cert));
  KEEL_ASSIGN_OR_RETURN(std::string ca, slurp(ca_));
  key_ = std::move(key);
  cert_ = std::move(cert);
  caPem_ = std::move(ca);
  stamp_ = stamp;
  // New connections use the new identity; calls on the old channels finish on them.
  channels_.clear();
  return Status::ok();
}

Result<std::shared_ptr<grpc::Channel>> PeerChannels::get(const std::string& node) {
  std::lock_guard lock(mu_);
  if (Status st = reloadIfChanged(); !st.isOk()) {
    return failedPrecondition("this node's impersonator identity cannot be read: " + st.message());
  }
  const TimePoint now = clock_.now();
  evict(now);
  auto found = channels_.find(node);
  if (found == channels_.end()) {
    if (channels_.size() >= limits_.maxPeers) {
      // Full: the least recently used goes (calls still on it finish on it).
      channels_.erase(std::min_element(channels_.begin(), channels_.end(), [](const auto& a, const auto& b) {
        return a.second.lastUsed < b.second.lastUsed;
      }));
    }
    found = channels_.emplace(node, Peer{nullptr, now}).first;
  }
  found->second.lastUsed = now;
  auto& ch = found->second.channel;
  if (!ch) {
    grpc::SslCredentialsOptions tls;
    tls.pem_root_certs = caPem_;
    tls.pem_private_key = key_;
    tls.pem_cert_chain = cert_;
    grpc::ChannelArguments args;
    commonArgs(args, maxMessageBytes_, std::chrono::seconds(5));
    const std::string target = node.find(':') != std::string::npos ? fmt::format("[{}]:{}", node, port_)
                                                                    : fmt::format("{}:{}", node, port_);
    ch = grpc::CreateCustomChannel(target, grpc::SslCredentials(tls), args);
  }
  return ch;
}

void PeerChannels::evict(TimePoint now) {
  std::erase_if(channels_, [&](const auto& entry) { return now - entry.second.lastUsed >= limits_.idle; });
}

void PeerChannels::retire(const std::shared_ptr<grpc::Channel>& channel) {
  std::lock_guard lock(mu_);
  std::erase_if(channels_, [&](const auto& entry) { return entry.second.channel == channel; });
}

std::size_t PeerChannels::size() {
  std::lock_guard lock(mu_);
  return channels_.size();
}

Result<std::shared_ptr<grpc::Channel>> ChannelRouter::node(const std::string& node) {
  // The admission step refuses other nodes when this one does not forward.
  KEEL_RELEASE_ASSERT(peers_ != nullptr, "a call to another node admitted on a node that does not forward");
  return peers_->get(node);
}

}  // namespace keel::apid
