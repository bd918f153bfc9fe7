#include "src/backends/backend_resources.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include <fmt/format.h>
#include <google/protobuf/descriptor.h>
#include <sys/stat.h>

#include "keel/authz/proto_rules.h"
#include "keel/apis/builtin.h"

namespace keel::machined {

namespace fs = std::filesystem;

Result<BackendResources> loadBackendResources(const BackendManifest& m) {
  struct stat st {};
  if (::stat(m.binary.c_str(), &st) != 0) {
    const int error = errno;
    const std::string message = fmt::format("binary {}: {}", m.binary.string(), errnoText(error));
    return error == ENOENT ? notFound(message) : failedPrecondition(message);
  }
  if (!S_ISREG(st.st_mode) || ::access(m.binary.c_str(), X_OK) != 0) {
    return failedPrecondition(fmt::format("binary {}: expected an executable file", m.binary.string()));
  }

  BackendResources out;
  KEEL_ASSIGN_OR_RETURN(const std::string descriptors,
                        readBackendFile(m.descriptorSet, kMaxDescriptorSetBytes, "descriptor set"));
  auto pool = authz::poolFromDescriptorSet(descriptors);
  if (!pool.ok()) return pool.status().withContext("descriptor set " + m.descriptorSet.string());
  for (const auto& service : m.services) {
    if ((*pool)->FindServiceByName(service) == nullptr) {
      return invalidArgument(fmt::format("descriptor set {}: expected service {}, found no such service",
                                         m.descriptorSet.string(), service));
    }
  }
  auto rules = authz::rulesFromPool(**pool, m.services);
  if (!rules.ok()) return rules.status().withContext("descriptor set " + m.descriptorSet.string());
  if (const Status ruled = rules->requireRuleForEveryMethod(); !ruled.isOk()) {
    return invalidArgument(fmt::format("descriptor set {}: {} (a method without a rule could never be called)",
                                       m.descriptorSet.string(), ruled.message()));
  }
  out.rules = rules->rules();

  KEEL_ASSIGN_OR_RETURN(const std::string profile,
                        readBackendFile(m.sandbox, kMaxSeccompProfileBytes, "seccomp profile"));
  auto policy = sandbox::parsePolicy(profile);
  if (!policy.ok()) return policy.status().withContext("seccomp profile " + m.sandbox.string());
  const bool execve = std::any_of(policy->rules.begin(), policy->rules.end(),
                                  [](const sandbox::SyscallRule& r) { return r.name == "execve"; });
  if (!execve) {
    return invalidArgument(
        fmt::format("seccomp profile {}: expected execve to be allowed (machined loads the "
                    "profile before it executes {}), found no execve rule",
                    m.sandbox.string(), m.binary.string()));
  }
  // Appended after the profile's own lines, so errors keep their line numbers; parsed again
  // so that the policy and the text the spawner gets are the same rules.
  out.profileText = profile;
  if (!out.profileText.empty() && out.profileText.back() != '\n') out.profileText += '\n';
  out.profileText += kChildSetupRules;
  auto full = sandbox::parsePolicy(out.profileText);
  if (!full.ok()) return full.status().withContext("seccomp profile " + m.sandbox.string());
  out.policy = std::move(full).value();
  return out;
}

BackendClaims::BackendClaims(const std::vector<std::string>& extensions) {
  for (const auto& s : builtinServices()) services_.emplace(s, "a built-in service");
  for (const char* daemon : {"machined", "apid", "trustd"}) {
    sockets_.emplace(std::string(daemon) + ".sock", std::string("built-in ") + daemon);
  }
  // The routing manifests' directory lives beside the sockets.
  sockets_.emplace("backends.d", "apid's routing manifests");
  for (const auto& e : extensions) sockets_.emplace(e + ".sock", "extension " + e);
}

const std::vector<std::string>& BackendClaims::builtinServices() { return apis::builtinServiceNames(); }

Status BackendClaims::check(const BackendManifest& m) const {
  for (const auto& s : m.services) {
    if (const auto it = services_.find(s); it != services_.end()) {
      return alreadyExists(fmt::format("service {} is already served by {}", s, it->second));
    }
  }
  if (const auto it = sockets_.find(m.socket); it != sockets_.end()) {
    return alreadyExists(fmt::format("socket {} is already used by {}", m.socket, it->second));
  }
  return Status::ok();
}

void BackendClaims::add(const BackendManifest& m) {
  for (const auto& s : m.services) services_.emplace(s, "backend " + m.name);
  sockets_.emplace(m.socket, "backend " + m.name);
}

}  // namespace keel::machined
