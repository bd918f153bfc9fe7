// keelctl's connection to a node's machine API and the output formats its commands
// share. The connection is apid over mutual TLS (the client config's current context),
// or machined's Unix socket of a local node (--root DIR / --socket), where the invoking
// user is on machined's allow-list.
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "apid_target.h"
#include "keel/common/clock.h"
#include "keel/common/status.h"
#include "keel/machine/v1/machine.grpc.pb.h"
#include "keel/security/v1/security.grpc.pb.h"

namespace google::protobuf {
class Message;
}

namespace keel::keelctl {

enum class OutputFormat { kTable, kJson, kYaml };
Result<OutputFormat> parseOutputFormat(std::string_view name);

struct MachineTarget {
  // Local path: machined.sock. Empty on the network path.
  std::filesystem::path socket;
  // Roles claimed on the local socket, where machined trusts the allow-listed uid.
  std::string roles = "os:admin";

  // Network path: apid's "host:port", the context's TLS identity and the target nodes
  // (none: the node apid runs on).
  std::string endpoint;
  // Tried in order when `endpoint` cannot be reached (see MachineClient::failOver).
  std::vector<std::string> fallbackEndpoints;
  TlsIdentity tls;
  std::vector<std::string> nodes;
  // True when `nodes` come from -n/--nodes, false when from the context.
  bool nodesFromFlag = false;
  // For judging certificates when a connection fails; outlives the target.
  const Clock* clock = nullptr;

  bool viaApid() const { return !endpoint.empty(); }
};

// The target of a command that talks to exactly one node: the node -n names, else none
// (the node behind the endpoint), whatever the context names, since a context such as
// 'cluster create' writes names every node. Errors: INVALID_ARGUMENT saying `why` when -n
// names several.
Result<std::vector<std::string>> oneNodeTarget(const MachineTarget& target, std::string_view why);

// Where the machine socket of a node started with `machined --root DIR` is.
std::filesystem::path machinedSocketUnder(const std::filesystem::path& root);

class MachineClient {
 public:
  explicit MachineClient(MachineTarget target);

  keel::machine::v1::MachineService::Stub& stub() { return *stub_; }
  // The certificate authority (trustd) of the node behind the endpoint, on the same connection.
  keel::security::v1::SecurityService::Stub& security() { return *security_; }
  // A context carrying the roles (local socket) or the target nodes (apid); `timeout`
  // zero means no deadline (streams that follow).
  std::unique_ptr<grpc::ClientContext> context(std::chrono::seconds timeout = std::chrono::seconds(30)) const;
  // The same for the given target nodes instead of the target's own.
  std::unique_ptr<grpc::ClientContext> contextFor(const std::vector<std::string>& nodes,
                                                  std::chrono::seconds timeout) const;
  // The connection itself, for stubs of other services (extensions, reflection); it
  // changes after failOver.
  const std::shared_ptr<grpc::Channel>& channel() const { return channel_; }
  const MachineTarget& target() const { return target_; }

  // After a call that failed with `status`: when it is a connection failure to apid and
  // a fallback endpoint is left, says so on `err`, switches to that endpoint and returns
  // true (the caller repeats the call, which never reached a server). Not thread-safe.
  bool failOver(const grpc::Status& status, std::ostream& err);

 private:
  void connect();

  MachineTarget target_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<keel::machine::v1::MachineService::Stub> stub_;
  std::unique_ptr<keel::security::v1::SecurityService::Stub> security_;
};

// A failed call as a Status a person can act on: UNAVAILABLE names the socket, or, when
// the connection to apid failed, says what is wrong with it (see diagnoseUnavailable).
// Other failures, PERMISSION_DENIED among them, keep the server's message unchanged.
Status fromGrpc(const grpc::Status& status, const MachineTarget& target);

// One message as pretty JSON (kJson) or YAML (kYaml).
void printMessage(const google::protobuf::Message& message, OutputFormat format, std::ostream& out);
// One message of a stream: a JSON line (kJson) or a YAML document (kYaml).
void printStreamMessage(const google::protobuf::Message& message, OutputFormat format, std::ostream& out);

// Human-readable sizes and times for tables.
std::string humanBytes(uint64_t bytes);
std::string humanTime(int64_t unixNanos);

}  // namespace keel::keelctl
