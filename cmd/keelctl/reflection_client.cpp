#include "reflection_client.h"

#include <fmt/format.h>

namespace keel::keelctl {

namespace reflection = grpc::reflection::v1alpha;

ReflectionClient::ReflectionClient(const std::shared_ptr<grpc::ChannelInterface>& channel,
                                   std::unique_ptr<grpc::ClientContext> context)
    : context_(std::move(context)), stub_(reflection::ServerReflection::NewStub(channel)) {}

ReflectionClient::~ReflectionClient() {
  if (stream_ && !broken_) {
    stream_->WritesDone();
    Response rest;
    while (stream_->Read(&rest)) {
    }
    (void)stream_->Finish();
  }
}

Result<ReflectionClient::Response> ReflectionClient::ask(const Request& request) {
  const auto broke = [&]() -> Status {
    broken_ = true;
    streamStatus_ = stream_->Finish();
    if (streamStatus_.ok())
      streamStatus_ = grpc::Status(grpc::StatusCode::UNKNOWN, "the reflection stream ended early");
    return {static_cast<StatusCode>(streamStatus_.error_code()), streamStatus_.error_message()};
  };
  if (broken_)
    return Status(static_cast<StatusCode>(streamStatus_.error_code()), streamStatus_.error_message());
  if (!stream_) stream_ = stub_->ServerReflectionInfo(context_.get());
  if (!stream_->Write(request)) return broke();
  Response response;
  if (!stream_->Read(&response)) return broke();
  return response;
}

Result<std::vector<std::string>> ReflectionClient::files(const Request& request, const std::string& what) {
  KEEL_ASSIGN_OR_RETURN(auto response, ask(request));
  if (response.has_error_response()) {
    const auto& e = response.error_response();
    const auto code = e.error_code() == 0 ? StatusCode::kUnknown : static_cast<StatusCode>(e.error_code());
    return Status(code, fmt::format("{}: {}", what, e.error_message()));
  }
  if (!response.has_file_descriptor_response()) {
    return internalError(
        fmt::format("the server answered the question for {} with something else than files", what));
  }
  const auto& found = response.file_descriptor_response().file_descriptor_proto();
  return std::vector<std::string>(found.begin(), found.end());
}

Result<std::vector<std::string>> ReflectionClient::listServices() {
  Request request;
  request.set_list_services("*");
  KEEL_ASSIGN_OR_RETURN(auto response, ask(request));
  if (response.has_error_response()) {
    const auto& e = response.error_response();
    return Status(e.error_code() == 0 ? StatusCode::kUnknown : static_cast<StatusCode>(e.error_code()),
                  "listing services: " + e.error_message());
  }
  std::vector<std::string> names;
  for (const auto& s : response.list_services_response().service()) names.push_back(s.name());
  return names;
}

Result<std::vector<std::string>> ReflectionClient::fileContainingSymbol(const std::string& symbol) {
  Request request;
  request.set_file_containing_symbol(symbol);
  return files(request, symbol);
}

Result<std::vector<std::string>> ReflectionClient::fileByFilename(const std::string& name) {
  Request request;
  request.set_file_by_filename(name);
  return files(request, name);
}

}  // namespace keel::keelctl
