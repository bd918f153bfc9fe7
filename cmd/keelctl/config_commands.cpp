#include "config_commands.h"

#include "expiry.h"

#include <algorithm>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "gen_commands.h"
#include "keel/config/client_config.h"
#include "keel/config/duration.h"
#include "keel/config/endpoint.h"
#include "keel/config/generate.h"
#include "keel/config/secrets.h"
#include "keel/pki/pki.h"
#include "table.h"

namespace keel::keelctl {
namespace {

constexpr std::string_view kMissingConfigHint =
    "create one with 'keelctl gen config' or 'keelctl config new', or point --keelconfig or $KEELCONFIG at one";

struct LoadedConfig {
  std::filesystem::path path;
  config::ClientConfig config;
};

Result<std::filesystem::path> configPath(const CommandEnv& env) {
  return config::resolveClientConfigPath(env.keelconfigFlag, env.env);
}

Result<LoadedConfig> load(const CommandEnv& env) {
  KEEL_ASSIGN_OR_RETURN(auto path, configPath(env));
  auto cfg = config::readClientConfigFile(path);
  if (!cfg.ok()) return withHint(cfg.status(), kMissingConfigHint);
  return LoadedConfig{.path = std::move(path), .config = std::move(cfg).value()};
}

Status save(const LoadedConfig& loaded) {
  return config::writeClientConfigFile(loaded.path, loaded.config, config::Overwrite::kYes);
}

std::string joinOrNone(const std::vector<std::string>& items) {
  return items.empty() ? "(none)" : fmt::format("{}", fmt::join(items, ", "));
}

// "in 364d 23h" / "3h ago", coarse on purpose: it is read by a person.
std::string relative(TimePoint when, TimePoint now) {
  const auto secs = std::chrono::duration_cast<std::chrono::seconds>(when - now).count();
  const int64_t a = secs < 0 ? -secs : secs;
  std::string text;
  if (a >= 86400) {
    text = fmt::format("{}d {}h", a / 86400, (a % 86400) / 3600);
  } else if (a >= 3600) {
    text = fmt::format("{}h {}m", a / 3600, (a % 3600) / 60);
  } else {
    text = fmt::format("{}m {}s", a / 60, a % 60);
  }
  return secs < 0 ? text + " ago" : "in " + text;
}

}  // namespace

Status configContexts(CommandEnv& env) {
  KEEL_ASSIGN_OR_RETURN(const auto loaded, load(env));
  std::vector<std::vector<std::string>> rows;
  for (const auto& [name, ctx] : loaded.config.contexts) {
    rows.push_back({name == loaded.config.context ? "*" : "", name, joinOrNone(ctx.endpoints), joinOrNone(ctx.nodes)});
  }
  printTable(env.out, {"CURRENT", "NAME", "ENDPOINTS", "NODES"}, rows);
  return Status::ok();
}

Status configUseContext(const std::string& name, CommandEnv& env) {
  KEEL_ASSIGN_OR_RETURN(auto loaded, load(env));
  KEEL_RETURN_IF_ERROR(config::useContext(loaded.config, name));
  KEEL_RETURN_IF_ERROR(save(loaded));
  env.out << fmt::format("current context is now '{}'\n", name);
  return Status::ok();
}

namespace {

using ListSetter = Status (*)(config::ClientConfig&, const std::vector<std::string>&);

// Replaces one list of the current context with `set`, saves the file and shows the
// list as the setter normalised it.
Status setContextList(CommandEnv& env, const std::vector<std::string>& items, ListSetter set,
                      std::string_view label, std::vector<std::string> config::ClientContext::*list) {
  KEEL_ASSIGN_OR_RETURN(auto loaded, load(env));
  KEEL_RETURN_IF_ERROR(set(loaded.config, items));
  KEEL_RETURN_IF_ERROR(save(loaded));
  env.out << fmt::format("{} of context '{}': {}\n", label, loaded.config.context,
                         joinOrNone(loaded.config.contexts.at(loaded.config.context).*list));
  return Status::ok();
}

}  // namespace

Status configEndpoint(const std::vector<std::string>& endpoints, CommandEnv& env) {
  return setContextList(env, endpoints, config::setEndpoints, "endpoints", &config::ClientContext::endpoints);
}

Status configNode(const std::vector<std::string>& nodes, CommandEnv& env) {
  return setContextList(env, nodes, config::setNodes, "nodes", &config::ClientContext::nodes);
}

Status configMerge(const std::filesystem::path& file, CommandEnv& env) {
  auto from = config::readClientConfigFile(file);
  if (!from.ok()) return from.status();
  KEEL_ASSIGN_OR_RETURN(auto path, configPath(env));
  LoadedConfig target{.path = path, .config = {}};
  auto existing = config::readClientConfigFile(path);
  if (existing.ok()) {
    target.config = std::move(existing).value();
  } else if (existing.status().code() != StatusCode::kNotFound) {
    return existing.status();
  }
  const auto report = config::mergeClientConfig(target.config, *from);
  KEEL_RETURN_IF_ERROR(save(target));
  for (const auto& [original, renamed] : report.renamed) {
    env.out << fmt::format("context '{}' already exists: added as '{}'\n", original, renamed);
  }
  env.out << fmt::format("merged {} context(s) from {} into {}; current context is '{}'\n", from->contexts.size(),
                         file.string(), path.string(), report.currentContext);
  return Status::ok();
}

Status configNodeNames(CommandEnv& env) {
  KEEL_ASSIGN_OR_RETURN(auto loaded, load(env));
  KEEL_ASSIGN_OR_RETURN(const config::ClientContext* ctx, config::currentContext(loaded.config));
  std::vector<std::string> names = ctx->nodes;
  for (const auto& e : ctx->endpoints) {
    auto parsed = config::parseEndpoint(e);
    if (parsed.ok() && std::find(names.begin(), names.end(), parsed->host) == names.end()) names.push_back(parsed->host);
  }
  for (const auto& n : names) env.out << n << '\n';
  return Status::ok();
}

Status configInfo(CommandEnv& env) {
  KEEL_ASSIGN_OR_RETURN(auto loaded, load(env));
  KEEL_ASSIGN_OR_RETURN(const config::ClientContext* ctx, config::currentContext(loaded.config));
  // The file was validated on load, so these parse; a failure here is still reported, not assumed away.
  KEEL_ASSIGN_OR_RETURN(const auto crt, pki::Certificate::fromPem(ctx->crt));
  KEEL_ASSIGN_OR_RETURN(const auto cas, pki::Certificate::bundleFromPem(ctx->ca));
  const TimePoint now = env.clock.now();
  std::string expiry = fmt::format("{} ({})", formatTime(crt.notAfter()), relative(crt.notAfter(), now));
  if (crt.notAfter() < now) expiry += " EXPIRED";
  if (expiresSoon(crt, now)) expiry += " RENEW SOON: 'keelctl config renew'";
  if (crt.notBefore() > now) expiry += fmt::format(" NOT YET VALID (from {})", formatTime(crt.notBefore()));
  std::vector<std::string> fingerprints;
  for (const auto& ca : cas) fingerprints.push_back("sha256:" + ca.fingerprintSha256());
  std::vector<std::string> known;
  std::vector<std::string> unknown;
  for (const auto& o : crt.subject().organizations) {
    const bool isKnown = std::find(config::kKnownRoles.begin(), config::kKnownRoles.end(), o) != config::kKnownRoles.end();
    (isKnown ? known : unknown).push_back(o);
  }
  std::string roles = joinOrNone(known);
  if (!unknown.empty()) roles += fmt::format(" (ignored by apid: {})", fmt::join(unknown, ", "));

  const std::vector<std::pair<std::string, std::string>> lines = {
      {"Config", loaded.path.string()},
      {"Current context", loaded.config.context},
      {"Endpoints", joinOrNone(ctx->endpoints)},
      {"Nodes", joinOrNone(ctx->nodes)},
      {"Roles", roles},
      {"Certificate subject", crt.subject().toString()},
      {"Certificate issuer", crt.issuer().toString()},
      {"Certificate expires", expiry},
      {"CA fingerprint", fmt::format("{}", fmt::join(fingerprints, ", "))},
  };
  for (const auto& [k, v] : lines) env.out << fmt::format("{:<21}{}\n", k + ":", v);
  return Status::ok();
}

Status configNew(const ConfigNewOptions& options, CommandEnv& env) {
  // Cheap checks first, so a typo does not cost a key generation and a bundle read.
  KEEL_ASSIGN_OR_RETURN(auto roles, config::validateRoles(options.roles));
  auto ttl = config::parseDuration(options.crtTtl, pki::kMaxValidity);
  if (!ttl.ok()) return ttl.status().withContext("--crt-ttl");
  if (options.identity.empty()) return invalidArgument("--identity: expected a name for the certificate's CN, found ''");

  auto secrets = config::readSecretsFile(options.from);
  if (!secrets.ok()) return withHint(secrets.status(), kMissingSecretsHint);
  KEEL_ASSIGN_OR_RETURN(auto context, config::generateClientContext(
                                          *secrets, {.commonName = options.identity, .roles = roles, .ttl = *ttl},
                                          env.clock));
  config::ClientConfig client{.context = options.contextName, .contexts = {{options.contextName, context}}};
  if (!options.endpoints.empty()) KEEL_RETURN_IF_ERROR(config::setEndpoints(client, options.endpoints));
  KEEL_RETURN_IF_ERROR(config::setNodes(client, options.nodes));
  // Round-trip through the parser so the context name and everything else obey its rules.
  KEEL_RETURN_IF_ERROR(config::parseClientConfig(config::serializeClientConfig(client)).status());
  KEEL_RETURN_IF_ERROR(withHint(config::writeClientConfigFile(
                                    options.output, client, options.force ? config::Overwrite::kYes : config::Overwrite::kNo),
                                ""));
  env.out << fmt::format("wrote {} (mode 0600): context '{}', roles {}, CN={}, valid until {}\n",
                         options.output.string(), options.contextName, fmt::join(roles, ","), options.identity,
                         formatTime(env.clock.now() + *ttl));
  return Status::ok();
}

}  // namespace keel::keelctl
