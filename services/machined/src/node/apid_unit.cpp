// The node unit for apid: its config file (libs/contracts): its identity (where it gets its
// certificates), its listen address and the routes it reads.
#include "src/node/node.h"

#include "keel/contracts/apid_config.h"

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

Result<std::string> Node::apidConfigFile(const config::MachineConfig& cfg, std::vector<std::filesystem::path>& owned) {
  KEEL_ASSIGN_OR_RETURN(const ApidIdentityRequest request, identityRequest(cfg));
  // apid gets its certificates itself, from trustd; stale ones are removed first.
  KEEL_ASSIGN_OR_RETURN(const auto written, prepareApidState(cfg, request));
  owned.insert(owned.end(), written.begin(), written.end());
  contracts::ApidConfig apid;
  apid.name = "apid";
  apid.socket = paths_.socket("apid").string();
  apid.machinedSocket = paths_.socket("machined").string();
  apid.nodeAddress = options_.address;
  apid.stateDir = paths_.stateDir("apid");
  apid.listen = hostPort(options_.address, options_.apiPort);
  apid.peerPort = options_.apiPort;  // a cluster's apids listen on one port
  apid.backendsDir = paths_.backendsDir();
  KEEL_RETURN_IF_ERROR(apidIdentityConfig(cfg, request, apid));
  return contracts::serializeApidConfig(apid);
}

}  // namespace keel::machined
