#include "routes.h"

#include <sys/stat.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <google/protobuf/descriptor.h>
#include <spdlog/spdlog.h>

#include "keel/authz/proto_rules.h"
#include "keel/apis/builtin.h"

namespace keel::apid {

namespace pb = google::protobuf;
namespace fs = std::filesystem;

namespace {

constexpr std::string_view kMetadataType = "keel.common.v1.Metadata";
constexpr std::uintmax_t kMaxManifestBytes = 64 * 1024;
constexpr std::uintmax_t kMaxDescriptorSetBytes = 16 * 1024 * 1024;

bool startsWithMetadata(const pb::Descriptor& message) {
  const auto* f = message.FindFieldByNumber(1);
  return f != nullptr && !f->is_repeated() && f->type() == pb::FieldDescriptor::TYPE_MESSAGE &&
         f->message_type()->full_name() == kMetadataType;
}

// Keel's per-node reply shape: a stream of messages starting with metadata, or a unary
// reply `{ repeated Entry messages = 1; }` of such entries.
bool hasPerNodeShape(const pb::MethodDescriptor& method) {
  const auto& out = *method.output_type();
  if (method.server_streaming()) return startsWithMetadata(out);
  const auto* f = out.FindFieldByNumber(1);
  return f != nullptr && f->is_repeated() && f->type() == pb::FieldDescriptor::TYPE_MESSAGE &&
         startsWithMetadata(*f->message_type());
}

Result<std::string> readSmallFile(const fs::path& path, std::uintmax_t max) {
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  if (ec) return notFound(path.string() + ": " + ec.message());
  if (size > max) return failedPrecondition(fmt::format("{} is {} bytes, more than the {} allowed", path.string(), size, max));
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  if (!in) return internalError("cannot read " + path.string());
  return ss.str();
}

}  // namespace


std::string Routes::fingerprintDir(const fs::path& dir) {
  std::vector<std::string> parts;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    struct stat st {};
    if (::stat(e.path().c_str(), &st) != 0) continue;
    parts.push_back(fmt::format("{}:{}:{}.{}", e.path().filename().string(), st.st_size, st.st_mtim.tv_sec,
                                st.st_mtim.tv_nsec));
  }
  std::sort(parts.begin(), parts.end());
  std::string out;
  for (const auto& p : parts) out += p + ";";
  return out;
}

std::shared_ptr<const Routes> Routes::load(const fs::path& dir, std::vector<contracts::RouteEntry> served) {
  auto routes = std::shared_ptr<Routes>(new Routes());
  routes->fingerprint_ = fingerprintDir(dir);
  for (auto& manifest : served) {
    std::string name = manifest.name;
    if (auto st = routes->add(std::move(manifest)); !st.isOk()) routes->problems_.push_back({name, st.withContext(name)});
  }
  std::vector<fs::path> files;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    if (e.path().extension() == ".json") files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  for (const auto& file : files) {
    auto text = readSmallFile(file, kMaxManifestBytes);
    Status st = text.status();
    if (st.isOk()) {
      auto manifest = contracts::parseRouteEntry(*text);
      st = manifest.ok() ? routes->add(std::move(manifest).value()) : manifest.status();
    }
    if (!st.isOk()) routes->problems_.push_back({file, st.withContext(file.string())});
  }
  return routes;
}

std::shared_ptr<const Routes> Routes::fromManifests(std::vector<contracts::RouteEntry> manifests) {
  auto routes = std::shared_ptr<Routes>(new Routes());
  for (auto& manifest : manifests) {
    std::string name = manifest.name;
    if (auto st = routes->add(std::move(manifest)); !st.isOk()) routes->problems_.push_back({name, st.withContext(name)});
  }
  return routes;
}

Status Routes::add(contracts::RouteEntry manifest) {
  const pb::DescriptorPool* pool = pb::DescriptorPool::generated_pool();
  std::unique_ptr<pb::DescriptorPool> own;
  for (const auto& s : manifest.services) {
    if (const auto it = services_.find(s); it != services_.end()) {
      return alreadyExists("service " + s + " is already served by backend " + it->second->name);
    }
  }
  if (manifest.servedByApid) {
    // Compiled into apid: the generated pool has them.
  } else if (manifest.rules == "builtin") {
    const auto builtin = apis::builtinServiceDescriptors();
    for (const auto& s : manifest.services) {
      if (std::none_of(builtin.begin(), builtin.end(), [&](const auto* d) { return d->full_name() == s; })) {
        return notFound("service " + s + " is not built into apid; give its descriptor set as \"rules\"");
      }
    }
  } else {
    KEEL_ASSIGN_OR_RETURN(const std::string set, readSmallFile(manifest.rules, kMaxDescriptorSetBytes));
    KEEL_ASSIGN_OR_RETURN(own, authz::poolFromDescriptorSet(set));
    pool = own.get();
  }
  KEEL_ASSIGN_OR_RETURN(auto rules, authz::rulesFromPool(*pool, manifest.services));
  if (const Status ruled = rules.requireRuleForEveryMethod(); !ruled.isOk()) {
    return failedPrecondition(ruled.message() + "; every method of a routed service needs one");
  }
  for (const auto& [method, roles] : rules.rules()) {
    (void)roles;
    if (rules_.knows(method)) return alreadyExists("method " + method + " is already served by another backend");
  }
  auto backend = std::make_shared<const contracts::RouteEntry>(std::move(manifest));
  std::map<std::string, MethodInfo, std::less<>> methods;
  for (const auto& s : backend->services) {
    const auto* service = pool->FindServiceByName(s);
    for (int i = 0; i < service->method_count(); ++i) {
      const auto* m = service->method(i);
      MethodInfo info;
      info.backend = backend;
      info.clientStreaming = m->client_streaming();
      info.serverStreaming = m->server_streaming();
      info.fanOut = !m->client_streaming() && hasPerNodeShape(*m);
      methods.emplace("/" + s + "/" + m->name(), info);
    }
  }
  KEEL_RETURN_IF_ERROR(rules_.merge(rules));
  methods_.merge(methods);
  for (const auto& s : backend->services) services_.emplace(s, backend);
  backends_.push_back(std::move(backend));
  if (own) {
    pools_.push_back(std::move(own));
  } else {
    usesGeneratedPool_ = true;
  }
  return Status::ok();
}

std::shared_ptr<const contracts::RouteEntry> Routes::backendOf(std::string_view service) const {
  const auto it = services_.find(service);
  return it == services_.end() ? nullptr : it->second;
}

std::vector<const pb::DescriptorPool*> Routes::pools() const {
  std::vector<const pb::DescriptorPool*> out;
  if (usesGeneratedPool_) out.push_back(pb::DescriptorPool::generated_pool());
  for (const auto& p : pools_) out.push_back(p.get());
  return out;
}

const MethodInfo* Routes::find(std::string_view method) const {
  const auto it = methods_.find(method);
  return it == methods_.end() ? nullptr : &it->second;
}

}  // namespace keel::apid
