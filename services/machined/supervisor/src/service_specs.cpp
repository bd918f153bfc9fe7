#include "service_specs.h"

#include <algorithm>
#include <chrono>
#include <set>
#include <string>

#include <fmt/format.h>

namespace keel::supervisor {

namespace {

bool isPositiveOrZero(std::chrono::milliseconds d) {
  return d.count() >= 0;
}

}  // namespace

Status validateSpec(const ServiceSpec& spec) {
  const std::string id = spec.id;
  if (!isValidId(id)) {
    return invalidArgument(
        fmt::format("service id: expected [a-z0-9][a-z0-9._-]* of at most 63 bytes, found '{}'", id));
  }
  if (id == Supervisor::kMachinedLogId) {
    return invalidArgument(fmt::format("service id: '{}' is reserved for machined's own log", id));
  }
  if (spec.argv.empty() || spec.argv[0].empty() || spec.argv[0][0] != '/') {
    return invalidArgument(fmt::format("service '{}': expected argv[0] to be an absolute path, found '{}'",
                                       id, spec.argv.empty() ? std::string() : spec.argv[0]));
  }
  for (const auto& e : spec.env) {
    const size_t eq = e.find('=');
    if (eq == std::string::npos || eq == 0) {
      return invalidArgument(fmt::format("service '{}': expected env entries KEY=value, found '{}'", id, e));
    }
  }
  if (!spec.stateDir.is_absolute()) {
    return invalidArgument(
        fmt::format("service '{}': expected an absolute stateDir, found '{}'", id, spec.stateDir.string()));
  }
  if (!spec.configFile.empty() && !spec.configFile.is_absolute()) {
    return invalidArgument(fmt::format("service '{}': expected an absolute configFile, found '{}'", id,
                                       spec.configFile.string()));
  }
  const RestartPolicy& r = spec.restart;
  if (!isPositiveOrZero(r.initialBackoff) || r.maxBackoff < r.initialBackoff || r.maxRestarts < 0 ||
      r.window.count() <= 0) {
    return invalidArgument(
        fmt::format("service '{}': expected 0 <= initialBackoff <= maxBackoff, maxRestarts >= 0, window > 0; "
                    "found {}ms, {}ms, {}, {}ms",
                    id, r.initialBackoff.count(), r.maxBackoff.count(), r.maxRestarts, r.window.count()));
  }
  if (!isPositiveOrZero(spec.settleTime) || !isPositiveOrZero(spec.stopGracePeriod)) {
    return invalidArgument(
        fmt::format("service '{}': expected settleTime and stopGracePeriod >= 0, found {}ms, {}ms", id,
                    spec.settleTime.count(), spec.stopGracePeriod.count()));
  }
  return Status::ok();
}

// Orders specs so that each comes after its dependencies, keeping declaration order
// where the dependencies allow it.
Result<std::vector<ServiceSpec>> sortByDependencies(std::vector<ServiceSpec> specs) {
  std::set<std::string, std::less<>> ids;
  for (const auto& spec : specs) {
    KEEL_RETURN_IF_ERROR(validateSpec(spec));
    if (!ids.insert(spec.id).second) {
      return invalidArgument(fmt::format("service '{}': expected unique ids, found it twice", spec.id));
    }
  }
  for (const auto& spec : specs) {
    for (const auto& dep : spec.dependsOn) {
      if (ids.count(dep) == 0) {
        return invalidArgument(fmt::format(
            "service '{}' depends on '{}': expected a declared service, found none", spec.id, dep));
      }
    }
  }
  std::vector<ServiceSpec> sorted;
  std::set<std::string, std::less<>> placed;
  std::vector<bool> done(specs.size(), false);
  while (sorted.size() < specs.size()) {
    bool progress = false;
    for (size_t i = 0; i < specs.size(); ++i) {
      if (done[i]) continue;
      const bool ready = std::all_of(specs[i].dependsOn.begin(), specs[i].dependsOn.end(),
                                     [&](const std::string& d) { return placed.count(d) != 0; });
      if (!ready) continue;
      placed.insert(specs[i].id);
      sorted.push_back(std::move(specs[i]));
      done[i] = true;
      progress = true;
      break;  // restart the scan so declaration order wins among ready services
    }
    if (!progress) {
      std::string cycle;
      for (size_t i = 0; i < specs.size(); ++i) {
        if (!done[i]) cycle += fmt::format("{}'{}'", cycle.empty() ? "" : ", ", specs[i].id);
      }
      return invalidArgument(fmt::format("dependencies: expected no cycle, found one among {}", cycle));
    }
  }
  return sorted;
}

}  // namespace keel::supervisor
