// What a backend's manifest points to, checked before machined runs it: its binary, the
// descriptor set that carries its methods' rules, its seccomp profile; and the services and
// socket names taken on this node, so two backends never claim the same.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "keel/common/status.h"
#include "keel/sandbox/policy.h"

#include "src/backends/backend_manifest.h"

namespace keel::machined {

// Largest files read for a backend besides its manifest.
inline constexpr size_t kMaxDescriptorSetBytes = 8 * 1024 * 1024;
inline constexpr size_t kMaxSeccompProfileBytes = 32 * 1024;

// A sanitizer runtime (ASan builds, for tests) makes a call of its own in the child
// after the filter is loaded; release builds add nothing.
#if defined(__SANITIZE_ADDRESS__)
#define KEEL_SANITIZER_CHILD_RULES "sigaltstack  # the sanitizer runtime of this test build\n"
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define KEEL_SANITIZER_CHILD_RULES "sigaltstack  # the sanitizer runtime of this test build\n"
#endif
#endif
#ifndef KEEL_SANITIZER_CHILD_RULES
#define KEEL_SANITIZER_CHILD_RULES ""
#endif

// The calls machined's child setup makes between loading a service's filter and exec'ing
// it (the death signal, and the spawner's check that machined is still the parent), added
// to every backend profile. Nothing else is added: execve must be in the profile itself.
inline constexpr std::string_view kChildSetupRules =
    "# Added by machined for its child setup after the filter is loaded:\n"
    "prctl: arg0 == 1  # PR_SET_PDEATHSIG\n"
    "getppid\n" KEEL_SANITIZER_CHILD_RULES;

// What a manifest points to, checked: the binary is an executable regular file, every
// listed service is in the descriptor set and every method of it has a non-empty
// allowed_roles rule, and the profile parses and allows execve (machined loads it before
// exec'ing the binary).
struct BackendResources {
  // The profile as read, then kChildSetupRules: the spawner parses this text on its side.
  std::string profileText;
  sandbox::Policy policy;                                 // profileText, parsed
  std::map<std::string, std::vector<std::string>> rules;  // "/pkg.Service/Method" -> roles
};

// Errors name the file at fault: NOT_FOUND or FAILED_PRECONDITION for a file that cannot
// be read or run, INVALID_ARGUMENT for bad content ("method /x.v1.S/M has no
// keel.common.v1.allowed_roles rule").
Result<BackendResources> loadBackendResources(const BackendManifest& manifest);

// The gRPC services and socket file names taken so far on this node: the built-in ones to
// begin with, then those of each backend accepted. Not thread-safe.
class BackendClaims {
 public:
  // `extensions`: names of the node's extensions, whose sockets are <name>.sock.
  explicit BackendClaims(const std::vector<std::string>& extensions = {});

  // ALREADY_EXISTS naming a service or the socket of `manifest` and who holds it.
  Status check(const BackendManifest& manifest) const;
  // Takes the services and the socket of `manifest` (after check()).
  void add(const BackendManifest& manifest);

  // The gRPC services machined, trustd and apid serve themselves.
  static const std::vector<std::string>& builtinServices();

 private:
  std::map<std::string, std::string> services_;  // service -> holder
  std::map<std::string, std::string> sockets_;   // socket file name -> holder
};

}  // namespace keel::machined
