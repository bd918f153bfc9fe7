#include "channels.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/channel_arguments.h>

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
  if (!in) return failedPrecondition("cannot read " + p.string() + ": " + std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

Result<std::shared_ptr<grpc::Channel>> BackendChannels::get(const BackendManifest& backend) {
  struct stat st {};
  if (::lstat(backend.socket.c_str(), &st) != 0) {
    return unavailable(fmt::format("backend {} is not running: no socket at {}", backend.name, backend.socket.string()));
  }
  if (!S_ISSOCK(st.st_mode)) {
    return unavailable(fmt::format("backend {}: {} is not a socket", backend.name, backend.socket.string()));
  }
  if (std::find(backend.allowedUids.begin(), backend.allowedUids.end(), st.st_uid) == backend.allowedUids.end()) {
    return unavailable(fmt::format("backend {}: socket {} is owned by uid {}, which its manifest does not allow",
                                   backend.name, backend.socket.string(), st.st_uid));
  }
  std::lock_guard lock(mu_);
  auto& ch = channels_[backend.socket];
  if (!ch) {
    grpc::ChannelArguments args;
    commonArgs(args, maxMessageBytes_, std::chrono::seconds(1));
    ch = grpc::CreateCustomChannel("unix:" + backend.socket.string(), grpc::InsecureChannelCredentials(), args);
  }
  return ch;
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
  auto& ch = channels_[node];
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

}  // namespace keel::apid
