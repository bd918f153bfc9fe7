#include "keel/config/client_config.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <nlohmann/json.hpp>

#include "keel/config/json_fields.h"
#include "keel/config/endpoint.h"
#include "keel/pki/pki.h"

namespace keel::config {
namespace {


// Context names appear in file names, prompts and tables: keep them plain.
Status checkContextName(std::string_view path, std::string_view name) {
  const bool ok = !name.empty() && name.size() <= 128 && std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.' || c == '@' || c == ':';
  });
  if (!ok) {
    return fieldError(path, fmt::format("invalid context name '{}': expected 1-128 characters of letters, digits "
                                        "and - _ . @ :",
                                        name));
  }
  return Status::ok();
}

Status checkContext(const std::string& path, const ClientContext& ctx) {
  for (size_t i = 0; i < ctx.endpoints.size(); ++i) {
    if (auto ep = parseEndpoint(ctx.endpoints[i]); !ep.ok()) {
      return fieldError(fmt::format("{}.endpoints[{}]", path, i), ep.status().message());
    }
  }
  for (size_t i = 0; i < ctx.nodes.size(); ++i) {
    if (auto node = parseNodeName(ctx.nodes[i]); !node.ok()) {
      return fieldError(fmt::format("{}.nodes[{}]", path, i), node.status().message());
    }
  }
  auto cas = pki::Certificate::bundleFromPem(ctx.ca);
  if (!cas.ok()) return fieldError(path + ".ca", cas.status().message());
  auto crt = pki::Certificate::fromPem(ctx.crt);
  if (!crt.ok()) return fieldError(path + ".crt", crt.status().message());
  auto key = pki::PrivateKey::fromPem(ctx.key);
  if (!key.ok()) return fieldError(path + ".key", key.status().message());
  if (!crt->matchesKey(*key)) {
    return fieldError(path + ".key", fmt::format("does not match {}.crt: expected the private key of '{}'", path,
                                                 crt->subject().toString()));
  }
  return Status::ok();
}

}  // namespace

ClientConfigEnv ClientConfigEnv::fromProcess() {
  ClientConfigEnv env;
  if (const char* v = std::getenv("KEELCONFIG")) env.keelconfig = v;
  if (const char* v = std::getenv("HOME")) env.home = v;
  return env;
}

Result<std::filesystem::path> resolveClientConfigPath(const std::optional<std::filesystem::path>& explicitPath,
                                                      const ClientConfigEnv& env) {
  if (explicitPath && !explicitPath->empty()) return *explicitPath;
  if (env.keelconfig && !env.keelconfig->empty()) return std::filesystem::path(*env.keelconfig);
  if (env.home && !env.home->empty()) return std::filesystem::path(*env.home) / ".keel" / "config";
  return failedPrecondition("cannot find the keelconfig: expected --keelconfig, $KEELCONFIG or $HOME to be set");
}

std::string serializeClientConfig(const ClientConfig& config) {
  nlohmann::ordered_json contexts = nlohmann::ordered_json::object();
  for (const auto& [name, ctx] : config.contexts) {
    contexts[name] = {{"endpoints", ctx.endpoints}, {"nodes", ctx.nodes}, {"ca", ctx.ca}, {"crt", ctx.crt},
                      {"key", ctx.key}};
  }
  const nlohmann::ordered_json doc = {{"context", config.context}, {"contexts", contexts}};
  return doc.dump(2) + "\n";
}

Result<ClientConfig> parseClientConfig(std::string_view text) {
  KEEL_ASSIGN_OR_RETURN(const auto json, parseJson(text));
  KEEL_ASSIGN_OR_RETURN(auto root, ObjectReader::open(json, ""));
  ClientConfig config;
  KEEL_ASSIGN_OR_RETURN(config.context, root.requiredString("context"));
  KEEL_ASSIGN_OR_RETURN(auto contexts, root.requiredObject("contexts"));
  for (const auto& name : contexts.allKeys()) {
    const std::string path = contexts.pathOf(name);
    KEEL_RETURN_IF_ERROR(checkContextName(path, name));
    KEEL_ASSIGN_OR_RETURN(auto obj, ObjectReader::open(contexts.raw().at(name), path));
    ClientContext ctx;
    KEEL_ASSIGN_OR_RETURN(ctx.endpoints, obj.stringArray("endpoints"));
    KEEL_ASSIGN_OR_RETURN(ctx.nodes, obj.stringArray("nodes"));
    KEEL_ASSIGN_OR_RETURN(ctx.ca, obj.requiredString("ca"));
    KEEL_ASSIGN_OR_RETURN(ctx.crt, obj.requiredString("crt"));
    KEEL_ASSIGN_OR_RETURN(ctx.key, obj.requiredString("key"));
    KEEL_RETURN_IF_ERROR(obj.finish());
    KEEL_RETURN_IF_ERROR(checkContext(path, ctx));
    config.contexts.emplace(name, std::move(ctx));
  }
  KEEL_RETURN_IF_ERROR(root.finish());
  if (!(config.context.empty() && config.contexts.empty()) && config.contexts.count(config.context) == 0) {
    std::vector<std::string> names;
    for (const auto& [name, ctx] : config.contexts) names.push_back(name);
    return fieldError("context", fmt::format("expected one of the contexts ({}), found '{}'",
                                             names.empty() ? "none defined" : fmt::format("{}", fmt::join(names, ", ")),
                                             config.context));
  }
  return config;
}

Status writeClientConfigFile(const std::filesystem::path& path, const ClientConfig& config, Overwrite overwrite) {
  const auto dir = path.parent_path();
  if (!dir.empty()) {
    std::error_code ec;
    if (!std::filesystem::exists(dir, ec)) {
      std::filesystem::create_directories(dir, ec);
      if (ec) return internalError(fmt::format("cannot create directory {}: {}", dir.string(), ec.message()));
      // Only the new, innermost directory is tightened; existing ones are not ours to change.
      std::filesystem::permissions(dir, std::filesystem::perms::owner_all, ec);
    }
  }
  return writePrivateFile(path, serializeClientConfig(config), overwrite);
}

Result<ClientConfig> readClientConfigFile(const std::filesystem::path& path) {
  return readPrivateDocument(path, "it holds a client key", parseClientConfig);
}

Result<ClientContext*> currentContext(ClientConfig& config) {
  if (config.context.empty()) return failedPrecondition("no current context: expected one set with 'keelctl config use-context'");
  const auto it = config.contexts.find(config.context);
  if (it == config.contexts.end()) {
    return failedPrecondition(fmt::format("current context '{}' is not defined", config.context));
  }
  return &it->second;
}

Status useContext(ClientConfig& config, std::string_view name) {
  if (config.contexts.find(std::string(name)) == config.contexts.end()) {
    std::vector<std::string> names;
    for (const auto& [n, ctx] : config.contexts) names.push_back(n);
    return notFound(fmt::format("context '{}' not found: expected one of: {}", name,
                                names.empty() ? "(none)" : fmt::format("{}", fmt::join(names, ", "))));
  }
  config.context = std::string(name);
  return Status::ok();
}

Status setEndpoints(ClientConfig& config, const std::vector<std::string>& endpoints) {
  KEEL_ASSIGN_OR_RETURN(ClientContext * ctx, currentContext(config));
  if (endpoints.empty()) return invalidArgument("expected at least one endpoint, found none");
  std::vector<std::string> canonical;
  for (const auto& e : endpoints) {
    KEEL_ASSIGN_OR_RETURN(const Endpoint ep, parseEndpoint(e));
    canonical.push_back(ep.hostPort());
  }
  ctx->endpoints = std::move(canonical);
  return Status::ok();
}

Status setNodes(ClientConfig& config, const std::vector<std::string>& nodes) {
  KEEL_ASSIGN_OR_RETURN(ClientContext * ctx, currentContext(config));
  std::vector<std::string> canonical;
  for (const auto& n : nodes) {
    KEEL_ASSIGN_OR_RETURN(std::string node, parseNodeName(n));
    canonical.push_back(std::move(node));
  }
  ctx->nodes = std::move(canonical);
  return Status::ok();
}

MergeReport mergeClientConfig(ClientConfig& into, const ClientConfig& from) {
  MergeReport report;
  std::string newCurrent;
  for (const auto& [name, ctx] : from.contexts) {
    std::string target = name;
    for (int i = 1; into.contexts.count(target) != 0; ++i) target = fmt::format("{}-{}", name, i);
    if (target != name) report.renamed.emplace_back(name, target);
    into.contexts.emplace(target, ctx);
    if (name == from.context) newCurrent = target;
  }
  if (!newCurrent.empty()) into.context = newCurrent;
  report.currentContext = into.context;
  return report;
}

}  // namespace keel::config
