// The node unit for apid: its identity (where it gets its certificates), its listen address
// and the routes it reads, in its config file.
#include "src/node/node.h"

#include <nlohmann/json.hpp>

#include "src/node/node_detail.h"
#include "src/trust/apid_identity.h"

namespace keel::machined {

namespace {

// "host:port", bracketing an IPv6 address.
std::string hostPort(const std::string& host, int port) {
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

}  // namespace

Result<ApidIdentityRequest> Node::identityRequest(const config::MachineConfig& cfg) const {
  KEEL_ASSIGN_OR_RETURN(const std::string hostname, nodeHostname(cfg));
  ApidIdentityRequest request;
  request.stateDir = paths_.stateDir("apid");
  request.nodeAddress = options_.address;
  request.hostname = hostname;
  request.trustdSocket = paths_.trustdSocket();
  request.apiPort = options_.apiPort;
  request.joinPort = options_.joinPort;
  return request;
}

Status Node::describeApid(const config::MachineConfig& cfg, nlohmann::json& own,
                          std::vector<std::filesystem::path>& owned) {
  KEEL_ASSIGN_OR_RETURN(const ApidIdentityRequest request, identityRequest(cfg));
  // apid gets its certificates itself, from trustd; stale ones are removed first.
  KEEL_ASSIGN_OR_RETURN(const auto written, prepareApidState(cfg, request));
  owned.insert(owned.end(), written.begin(), written.end());
  own["listen"] = hostPort(options_.address, options_.apiPort);
  own["backendsDir"] = paths_.backendsDir().string();
  KEEL_ASSIGN_OR_RETURN(const auto identity, apidIdentityConfig(cfg, request));
  own.update(identity);
  return Status::ok();
}

}  // namespace keel::machined
