// keelctl's client configuration ("keelconfig"), like a kubeconfig: named contexts, each
// with the endpoints to dial, the default target nodes, the OS CA to trust and the
// client certificate and key to present.
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "keel/common/status.h"
#include "keel/config/file_io.h"

namespace keel::config {

struct ClientContext {
  std::vector<std::string> endpoints;  // canonical "host:port" (see parseEndpoint)
  std::vector<std::string> nodes;      // addresses or host names, no port
  std::string ca;                      // OS CA certificate, PEM
  std::string crt;                     // client certificate, PEM
  std::string key;                     // client private key, PEM (secret)
  bool operator==(const ClientContext&) const = default;
};

struct ClientConfig {
  std::string context;  // current context; names an entry of `contexts` unless both are empty
  std::map<std::string, ClientContext> contexts;
  bool operator==(const ClientConfig&) const = default;
};

// The environment keelctl looks the config up in, passed in so tests need not touch
// the real one.
struct ClientConfigEnv {
  std::optional<std::string> keelconfig;  // $KEELCONFIG
  std::optional<std::string> home;        // $HOME
  static ClientConfigEnv fromProcess();
};

// The config path: `explicitPath` (--keelconfig) if given, else $KEELCONFIG if set and
// not empty, else $HOME/.keel/config. Errors: FAILED_PRECONDITION when none applies.
Result<std::filesystem::path> resolveClientConfigPath(const std::optional<std::filesystem::path>& explicitPath,
                                                      const ClientConfigEnv& env);

std::string serializeClientConfig(const ClientConfig& config);

// Validates every field: context names, endpoints, nodes, that ca/crt/key parse and the
// key matches crt, that the current context exists. Unknown fields are refused by name.
// Errors (INVALID_ARGUMENT) start with the JSON path ("contexts.prod.key: …").
Result<ClientConfig> parseClientConfig(std::string_view text);

// Writes with mode 0600, atomically, creating missing parent directories with mode 0700.
Status writeClientConfigFile(const std::filesystem::path& path, const ClientConfig& config, Overwrite overwrite);
// Errors start with the path; NOT_FOUND when the file does not exist.
Result<ClientConfig> readClientConfigFile(const std::filesystem::path& path);

// The current context. Errors: FAILED_PRECONDITION when there is none.
Result<ClientContext*> currentContext(ClientConfig& config);

// Makes `name` the current context. Errors: NOT_FOUND naming the known contexts.
Status useContext(ClientConfig& config, std::string_view name);

// Replaces the endpoints of the current context (at least one, each validated and
// stored in canonical form).
Status setEndpoints(ClientConfig& config, const std::vector<std::string>& endpoints);
// Replaces the nodes of the current context (none clears them).
Status setNodes(ClientConfig& config, const std::vector<std::string>& nodes);

struct MergeReport {
  // (name in the merged file, name it was added under), for every context renamed
  // because its name was taken.
  std::vector<std::pair<std::string, std::string>> renamed;
  std::string currentContext;  // the current context afterwards
};

// Adds every context of `from` to `into`; a name already taken becomes name-1, name-2, …
// The current context of `from` (under its possibly new name) becomes current.
MergeReport mergeClientConfig(ClientConfig& into, const ClientConfig& from);

}  // namespace keel::config
