#include "local_services.h"

#include <algorithm>
#include <set>
#include <string>

#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor.pb.h>
#include <grpcpp/support/proto_buffer_reader.h>
#include <grpcpp/support/proto_buffer_writer.h>
#include <spdlog/spdlog.h>

#include "keel/common/assert.h"

namespace keel::apid {

namespace pb = google::protobuf;
namespace health = grpc::health::v1;
namespace refl = grpc::reflection::v1alpha;

namespace {

constexpr std::string_view kHealthCheck = "/grpc.health.v1.Health/Check";
constexpr std::string_view kReflectionInfo = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo";

// Reads a message from a request's bytes (which stay usable: the buffer is copied).
template <class Message>
bool parse(const grpc::ByteBuffer& bytes, Message* out) {
  grpc::ByteBuffer copy(bytes);
  return grpc::SerializationTraits<Message>::Deserialize(&copy, out).ok();
}

template <class Message>
grpc::ByteBuffer serialize(const Message& message) {
  grpc::ByteBuffer out;
  bool ownBuffer = false;
  KEEL_RELEASE_ASSERT(grpc::SerializationTraits<Message>::Serialize(message, &out, &ownBuffer).ok(),
                      "a message apid built does not serialize");
  return out;
}

}  // namespace

contracts::RouteEntry localServicesManifest() {
  contracts::RouteEntry m;
  m.name = "apid";
  m.services = {health::Health::service_full_name(), refl::ServerReflection::service_full_name()};
  m.rules = "builtin";
  m.servedByApid = true;
  return m;
}

HealthPlan planHealthCheck(const Routes& routes, const std::string& service) {
  HealthPlan plan;
  if (service.empty()) {
    plan.answer = health::HealthCheckResponse::SERVING;
    return plan;
  }
  auto backend = routes.backendOf(service);
  if (!backend) {
    plan.refusal = grpc::Status(grpc::StatusCode::NOT_FOUND, "service " + service + " is not served on this node");
  } else if (backend->servedByApid) {
    plan.answer = health::HealthCheckResponse::SERVING;
  } else {
    plan.backend = std::move(backend);
  }
  return plan;
}

grpc::Status healthFromBackend(const grpc::Status& st, const std::string& backend,
                               health::HealthCheckResponse* response, bool* retire) {
  *retire = false;
  if (st.ok()) return st;
  if (st.error_code() == grpc::StatusCode::UNAVAILABLE || st.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
    *retire = true;
    response->set_status(health::HealthCheckResponse::NOT_SERVING);
    return grpc::Status::OK;
  }
  if (st.error_code() == grpc::StatusCode::UNIMPLEMENTED) {
    return {grpc::StatusCode::UNIMPLEMENTED, "backend " + backend + " does not serve grpc.health.v1"};
  }
  return {st.error_code(), "backend " + backend + " answered the health check with code " +
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

refl::ServerReflectionResponse reflectionAnswer(const Routes& routes, const refl::ServerReflectionRequest& r) {
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


LocalServicesForwarder::LocalServicesForwarder(ServerCall& call, std::shared_ptr<const Routes> routes,
                                               Upstreams& upstreams, std::chrono::milliseconds healthTimeout)
    : call_(call), routes_(std::move(routes)), upstreams_(upstreams), healthTimeout_(healthTimeout) {}

void LocalServicesForwarder::start() {
  const auto& method = call_.context().method();
  if (method == kHealthCheck) {
    call_.started();
    call_.stream().Read(&req_, &healthRequestOp_);
  } else if (method == kReflectionInfo) {
    call_.started();
    call_.stream().Read(&req_, &reflectionRequestOp_);
  } else {
    call_.finish(grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "apid does not serve " + method));
  }
}

void LocalServicesForwarder::cancel() {
  if (upstreamStarted_) cctx_.TryCancel();
}

void LocalServicesForwarder::reply(const health::HealthCheckResponse& response) {
  const auto bytes = serialize(response);
  call_.trace().addOut(bytes.Length());
  call_.finishWith(bytes, grpc::Status::OK);
}

void LocalServicesForwarder::onHealthRequest(bool ok) {
  call_.completed();
  if (!ok) {
    call_.finishWithoutRequest();
    call_.settle();
    return;
  }
  call_.trace().addIn(req_.Length());
  health::HealthCheckRequest request;
  if (!parse(req_, &request)) {
    call_.finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "expected a grpc.health.v1.HealthCheckRequest"));
  } else {
    const auto plan = planHealthCheck(*routes_, request.service());
    health::HealthCheckResponse response;
    if (plan.refusal) {
      call_.finish(*plan.refusal);
    } else if (plan.answer) {
      response.set_status(*plan.answer);
      reply(response);
    } else if (auto channel = upstreams_.backend(*plan.backend); !channel.ok()) {
      spdlog::info("apid: health of {}: backend {} is not reachable: {}", request.service(), plan.backend->name,
                   channel.status().message());
      response.set_status(health::HealthCheckResponse::NOT_SERVING);
      reply(response);
    } else {
      // The backend's own answer, asked on this call's queue like any forwarded call.
      backendName_ = plan.backend->name;
      channel_ = std::move(channel).value();
      stub_ = std::make_unique<grpc::GenericStub>(channel_);
      auto deadline = std::chrono::system_clock::now() + healthTimeout_;
      if (hasDeadline(call_.context().deadline())) deadline = std::min(deadline, call_.context().deadline());
      cctx_.set_deadline(deadline);
      upstreamStarted_ = true;
      unary_ = stub_->PrepareUnaryCall(&cctx_, std::string(kHealthCheck), req_, call_.queue());
      unary_->StartCall();
      call_.started();
      unary_->Finish(&resp_, &upStatus_, &healthUpstreamOp_);
    }
  }
  call_.settle();
}

void LocalServicesForwarder::onHealthUpstream(bool /*ok*/) {
  call_.completed();
  health::HealthCheckResponse response;
  bool retire = false;
  const auto st = healthFromBackend(upStatus_, backendName_, &response, &retire);
  if (retire) upstreams_.retire(channel_);
  if (call_.clientGone()) {
    call_.recordOutcome(st);
  } else if (!st.ok()) {
    call_.finish(st);
  } else if (upStatus_.ok()) {
    call_.trace().addOut(resp_.Length());
    call_.finishWith(resp_, st);
  } else {
    reply(response);
  }
  call_.settle();
}

void LocalServicesForwarder::onReflectionRequest(bool ok) {
  call_.completed();
  if (!ok) {
    // The client half-closed: every request was answered.
    call_.finish(grpc::Status::OK);
    call_.settle();
    return;
  }
  call_.trace().addIn(req_.Length());
  refl::ServerReflectionRequest request;
  if (!parse(req_, &request)) {
    call_.finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                              "expected a grpc.reflection.v1alpha.ServerReflectionRequest"));
  } else {
    resp_ = serialize(reflectionAnswer(*routes_, request));
    call_.trace().addOut(resp_.Length());
    call_.started();
    call_.stream().Write(resp_, &reflectionWriteOp_);
  }
  call_.settle();
}

void LocalServicesForwarder::onReflectionWrite(bool ok) {
  call_.completed();
  if (!ok) {
    call_.abandon();
  } else {
    call_.started();
    call_.stream().Read(&req_, &reflectionRequestOp_);
  }
  call_.settle();
}

}  // namespace keel::apid
