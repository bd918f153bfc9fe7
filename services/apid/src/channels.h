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

#include <grpcpp/channel.h>

#include "apid_config.h"
#include "keel/common/status.h"
#include "routes.h"

namespace keel::apid {

class BackendChannels {
 public:
  explicit BackendChannels(int maxMessageBytes) : maxMessageBytes_(maxMessageBytes) {}

  // The channel to `backend`'s socket. UNAVAILABLE when the socket is missing, or owned
  // by a uid the manifest does not allow (someone else's socket in its place).
  Result<std::shared_ptr<grpc::Channel>> get(const BackendManifest& backend);

 private:
  int maxMessageBytes_;
  std::mutex mu_;
  std::map<std::filesystem::path, std::shared_ptr<grpc::Channel>> channels_;
};

class PeerChannels {
 public:
  // `files` is the impersonator identity; `ca` the OS CAs peers' serving certificates
  // chain to. Files are re-read when they change (checked at most every `refresh`).
  PeerChannels(KeyPairFiles files, std::filesystem::path ca, int port, int maxMessageBytes,
               std::chrono::seconds refresh)
      : files_(std::move(files)), ca_(std::move(ca)), port_(port), maxMessageBytes_(maxMessageBytes), refresh_(refresh) {}

  // The channel to `node`'s apid. Errors: FAILED_PRECONDITION when the identity files
  // cannot be read.
  Result<std::shared_ptr<grpc::Channel>> get(const std::string& node);

 private:
  Status reloadIfChanged();

  KeyPairFiles files_;
  std::filesystem::path ca_;
  int port_;
  int maxMessageBytes_;
  std::chrono::seconds refresh_;
  std::mutex mu_;
  std::string stamp_;  // identity of the files the channels were made with
  std::chrono::steady_clock::time_point checked_{};
  std::string key_, cert_, caPem_;
  std::map<std::string, std::shared_ptr<grpc::Channel>> channels_;
};

}  // namespace keel::apid
