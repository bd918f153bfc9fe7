// apid's routing table, built from backend manifests (`backendsDir/*.json`): which Unix
// socket serves each gRPC service, who may own that socket, and the authorization rules
// of every method. Adding a backend is dropping a manifest in place (schema in
// keel/contracts/route_entry.h). A manifest's "rules": "builtin" means the rules compiled into apid; otherwise a FileDescriptorSet (protoc
// --include_imports --descriptor_set_out) whose methods carry `allowed_roles` options.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "keel/contracts/route_entry.h"
#include "keel/authz/authz.h"
#include "keel/common/status.h"

namespace google::protobuf {
class DescriptorPool;
}

namespace keel::apid {


// What apid needs to know about one method without deserializing its messages.
struct MethodInfo {
  std::shared_ptr<const contracts::RouteEntry> backend;
  bool clientStreaming = false;
  bool serverStreaming = false;
  // The reply follows Keel's per-node shape (see wire_stamp.h), so the call may be sent
  // to several nodes.
  bool fanOut = false;
};

class Routes {
 public:
  struct Problem {
    std::filesystem::path file;
    Status status;
  };

  // Reads every *.json of `dir`, after `served` (apid's own services, which no manifest
  // may claim). A manifest that cannot be used is skipped and listed in problems() (one
  // bad extension must not lock the node out); a missing dir is empty.
  static std::shared_ptr<const Routes> load(const std::filesystem::path& dir,
                                            std::vector<contracts::RouteEntry> served = {});
  // The same from manifests already parsed; a problem's `file` is the manifest's name.
  static std::shared_ptr<const Routes> fromManifests(std::vector<contracts::RouteEntry> manifests);

  // Null for a method no backend serves.
  const MethodInfo* find(std::string_view method) const;
  const authz::RuleTable& rules() const { return rules_; }
  const std::vector<std::shared_ptr<const contracts::RouteEntry>>& backends() const { return backends_; }
  const std::vector<Problem>& problems() const { return problems_; }
  // The backend serving `service` (a full service name); null when none does.
  std::shared_ptr<const contracts::RouteEntry> backendOf(std::string_view service) const;
  // The descriptors of every routed service, one pool per source (the generated pool
  // for apid's built-in rules, one per descriptor set), for reflection.
  std::vector<const google::protobuf::DescriptorPool*> pools() const;
  // A summary of the files the table was built from (names, sizes, mtimes), to notice changes.
  const std::string& fingerprint() const { return fingerprint_; }

  static std::string fingerprintDir(const std::filesystem::path& dir);

 private:
  Status add(contracts::RouteEntry manifest);

  std::vector<std::shared_ptr<const contracts::RouteEntry>> backends_;
  std::vector<std::unique_ptr<google::protobuf::DescriptorPool>> pools_;
  std::map<std::string, MethodInfo, std::less<>> methods_;
  std::map<std::string, std::shared_ptr<const contracts::RouteEntry>, std::less<>> services_;
  bool usesGeneratedPool_ = false;
  authz::RuleTable rules_;
  std::vector<Problem> problems_;
  std::string fingerprint_;
};

}  // namespace keel::apid
