#include "local_services.h"

#include <algorithm>
#include <set>
#include <string>

#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor.pb.h>
#include <grpcpp/client_context.h>
#include <spdlog/spdlog.h>

namespace keel::apid {

namespace pb = google::protobuf;
namespace health = grpc::health::v1;
namespace refl = grpc::reflection::v1alpha;

BackendManifest localServicesManifest() {
  BackendManifest m;
  m.name = "apid";
  m.services = {health::Health::service_full_name(), refl::ServerReflection::service_full_name()};
  m.rules = "builtin";
  m.servedByApid = true;
  return m;
}

grpc::Status HealthService::Check(grpc::ServerContext* context, const health::HealthCheckRequest* request,
                                  health::HealthCheckResponse* response) {
  if (request->service().empty()) {
    response->set_status(health::HealthCheckResponse::SERVING);
    return grpc::Status::OK;
  }
  const auto routes = routes_();
  const auto backend = routes->backendOf(request->service());
  if (!backend) {
    return {grpc::StatusCode::NOT_FOUND, "service " + request->service() + " is not served on this node"};
  }
  if (backend->servedByApid) {
    response->set_status(health::HealthCheckResponse::SERVING);
    return grpc::Status::OK;
  }
  auto channel = upstreams_.backend(*backend);
  if (!channel.ok()) {
    spdlog::info("apid: health of {}: backend {} is not reachable: {}", request->service(), backend->name,
                 channel.status().message());
    response->set_status(health::HealthCheckResponse::NOT_SERVING);
    return grpc::Status::OK;
  }
  grpc::ClientContext upstream;
  auto deadline = std::chrono::system_clock::now() + timeout_;
  upstream.set_deadline(std::min(deadline, context->deadline()));
  const auto st = health::Health::NewStub(*channel)->Check(&upstream, *request, response);
  if (st.ok()) return st;
  if (st.error_code() == grpc::StatusCode::UNAVAILABLE || st.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
    upstreams_.retire(*channel);
    response->set_status(health::HealthCheckResponse::NOT_SERVING);
    return grpc::Status::OK;
  }
  if (st.error_code() == grpc::StatusCode::UNIMPLEMENTED) {
    return {grpc::StatusCode::UNIMPLEMENTED, "backend " + backend->name + " does not serve grpc.health.v1"};
  }
  return {st.error_code(), "backend " + backend->name + " answered the health check with code " +
                               std::to_string(static_cast<int>(st.error_code())) +
                               (st.error_message().empty() ? "" : ": " + st.error_message())};
}

namespace {

// The file and every file it imports, each once, imports first.
void addWithImports(const pb::FileDescriptor* file, std::set<std::string>& seen,
                    refl::FileDescriptorResponse& out) {
  if (!seen.insert(file->name()).second) return;
  for (int i = 0; i < file->dependency_count(); ++i) addWithImports(file->dependency(i), seen, out);
  pb::FileDescriptorProto proto;
  file->CopyTo(&proto);
  proto.SerializeToString(out.add_file_descriptor_proto());
}

const pb::FileDescriptor* findFile(const Routes& routes, const refl::ServerReflectionRequest& r) {
  for (const auto* pool : routes.pools()) {
    const pb::FileDescriptor* file = nullptr;
    switch (r.message_request_case()) {
      case refl::ServerReflectionRequest::kFileByFilename:
        file = pool->FindFileByName(r.file_by_filename());
        break;
      case refl::ServerReflectionRequest::kFileContainingSymbol:
        file = pool->FindFileContainingSymbol(r.file_containing_symbol());
        break;
      case refl::ServerReflectionRequest::kFileContainingExtension: {
        const auto* type = pool->FindMessageTypeByName(r.file_containing_extension().containing_type());
        const auto* ext =
            type ? pool->FindExtensionByNumber(type, r.file_containing_extension().extension_number()) : nullptr;
        file = ext ? ext->file() : nullptr;
        break;
      }
      default:
        break;
    }
    if (file != nullptr) return file;
  }
  return nullptr;
}

void setError(refl::ServerReflectionResponse& out, grpc::StatusCode code, std::string message) {
  out.mutable_error_response()->set_error_code(static_cast<int>(code));
  out.mutable_error_response()->set_error_message(std::move(message));
}

}  // namespace

refl::ServerReflectionResponse ReflectionService::answer(const Routes& routes, const refl::ServerReflectionRequest& r) {
  refl::ServerReflectionResponse out;
  out.set_valid_host(r.host());
  *out.mutable_original_request() = r;
  switch (r.message_request_case()) {
    case refl::ServerReflectionRequest::kListServices: {
      std::set<std::string> names;
      for (const auto& b : routes.backends()) names.insert(b->services.begin(), b->services.end());
      for (const auto& n : names) out.mutable_list_services_response()->add_service()->set_name(n);
      break;
    }
    case refl::ServerReflectionRequest::kFileByFilename:
    case refl::ServerReflectionRequest::kFileContainingSymbol:
    case refl::ServerReflectionRequest::kFileContainingExtension: {
      const auto* file = findFile(routes, r);
      if (file == nullptr) {
        setError(out, grpc::StatusCode::NOT_FOUND, "not found among the APIs this node routes");
        break;
      }
      std::set<std::string> seen;
      // The file asked for comes first, as reflection clients expect; then its imports.
      pb::FileDescriptorProto proto;
      file->CopyTo(&proto);
      proto.SerializeToString(out.mutable_file_descriptor_response()->add_file_descriptor_proto());
      seen.insert(file->name());
      for (int i = 0; i < file->dependency_count(); ++i) {
        addWithImports(file->dependency(i), seen, *out.mutable_file_descriptor_response());
      }
      break;
    }
    case refl::ServerReflectionRequest::kAllExtensionNumbersOfType: {
      for (const auto* pool : routes.pools()) {
        const auto* type = pool->FindMessageTypeByName(r.all_extension_numbers_of_type());
        if (type == nullptr) continue;
        std::vector<const pb::FieldDescriptor*> exts;
        pool->FindAllExtensions(type, &exts);
        auto* numbers = out.mutable_all_extension_numbers_response();
        numbers->set_base_type_name(type->full_name());
        for (const auto* e : exts) numbers->add_extension_number(e->number());
        return out;
      }
      setError(out, grpc::StatusCode::NOT_FOUND, "type " + r.all_extension_numbers_of_type() + " not found");
      break;
    }
    default:
      setError(out, grpc::StatusCode::INVALID_ARGUMENT, "empty or unknown reflection request");
      break;
  }
  return out;
}

grpc::Status ReflectionService::ServerReflectionInfo(
    grpc::ServerContext* /*context*/,
    grpc::ServerReaderWriter<refl::ServerReflectionResponse, refl::ServerReflectionRequest>* stream) {
  refl::ServerReflectionRequest request;
  while (stream->Read(&request)) {
    if (!stream->Write(answer(*routes_(), request))) break;
  }
  return grpc::Status::OK;
}

}  // namespace keel::apid
