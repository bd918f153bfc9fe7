// The client half of the standard gRPC reflection protocol (grpc.reflection.v1alpha), as
// `keelctl call` uses it to learn the schema of an API it was not built with: which
// services a node serves, and the files that define them.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "keel/common/status.h"

#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"

namespace keel::keelctl {

// One reflection stream, opened on the first question and used for every later one.
// Not thread-safe.
class ReflectionClient {
 public:
  // `context` carries the stream's metadata and deadline.
  ReflectionClient(const std::shared_ptr<grpc::ChannelInterface>& channel,
                   std::unique_ptr<grpc::ClientContext> context);
  ~ReflectionClient();
  ReflectionClient(const ReflectionClient&) = delete;
  ReflectionClient& operator=(const ReflectionClient&) = delete;

  // The full names of the services the server has.
  Result<std::vector<std::string>> listServices();
  // The serialized FileDescriptorProtos of the file that defines `symbol` (a service,
  // method or message) and, usually, of the files it imports. NOT_FOUND when the server
  // does not know the symbol.
  Result<std::vector<std::string>> fileContainingSymbol(const std::string& symbol);
  // The same for the file called `name`.
  Result<std::vector<std::string>> fileByFilename(const std::string& name);

  // After a question failed: the stream's own status when the stream itself broke (the
  // connection, or the server refusing reflection), else OK (the server answered with
  // an error for that question only).
  const grpc::Status& streamStatus() const { return streamStatus_; }

 private:
  using Request = grpc::reflection::v1alpha::ServerReflectionRequest;
  using Response = grpc::reflection::v1alpha::ServerReflectionResponse;

  Result<Response> ask(const Request& request);
  Result<std::vector<std::string>> files(const Request& request, const std::string& what);

  std::unique_ptr<grpc::ClientContext> context_;
  std::unique_ptr<grpc::reflection::v1alpha::ServerReflection::Stub> stub_;
  std::unique_ptr<grpc::ClientReaderWriter<Request, Response>> stream_;
  grpc::Status streamStatus_;
  bool broken_ = false;
};

}  // namespace keel::keelctl
