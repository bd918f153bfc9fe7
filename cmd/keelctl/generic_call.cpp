#include "generic_call.h"

#include <fmt/format.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/support/byte_buffer.h>

namespace keel::keelctl {

namespace gp = google::protobuf;

std::string wirePath(const gp::MethodDescriptor& method) {
  return fmt::format("/{}/{}", method.service()->full_name(), method.name());
}

Status checkCallable(const gp::MethodDescriptor& method) {
  if (!method.client_streaming()) return Status::ok();
  return invalidArgument(
      fmt::format("{} takes a stream of {} ({}): 'keelctl call' sends one request, so it calls unary and "
                  "server-streaming "
                  "methods only",
                  wirePath(method), method.input_type()->full_name(),
                  method.server_streaming() ? "bidirectional streaming" : "client streaming"));
}

grpc::Status invokeMethod(const std::shared_ptr<grpc::ChannelInterface>& channel,
                          grpc::ClientContext& context, const gp::MethodDescriptor& method,
                          const gp::Message& request, DynamicSchema& schema,
                          const std::function<void(const gp::Message&)>& onReply) {
  KEEL_RELEASE_ASSERT(checkCallable(method).isOk(), "invokeMethod on a client-streaming method");
  std::string bytes;
  if (!request.SerializeToString(&bytes))
    return {grpc::StatusCode::INTERNAL, "the request does not serialize"};
  grpc::Slice slice(bytes);
  grpc::ByteBuffer requestBuffer(&slice, 1);

  // A unary call is a stream of one message each way on the wire, so one path serves both
  // shapes: start, send the request and half-close, read until the server ends, finish.
  grpc::GenericStub stub(channel);
  grpc::CompletionQueue queue;
  auto call = stub.PrepareCall(&context, wirePath(method), &queue);
  const auto wait = [&queue] {
    void* tag = nullptr;
    bool ok = false;
    KEEL_RELEASE_ASSERT(queue.Next(&tag, &ok), "the completion queue shut down during a call");
    return ok;
  };
  int tag = 0;
  call->StartCall(&tag);
  bool open = wait();
  if (open) {
    call->Write(requestBuffer, grpc::WriteOptions().set_last_message(), &tag);
    open = wait();
  }
  grpc::Status decodeError;
  while (open) {
    grpc::ByteBuffer replyBuffer;
    call->Read(&replyBuffer, &tag);
    if (!wait()) break;
    std::vector<grpc::Slice> slices;
    std::string replyBytes;
    if (replyBuffer.Dump(&slices).ok()) {
      for (const auto& s : slices) replyBytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
    }
    auto reply = schema.newMessage(*method.output_type());
    if (!reply->ParseFromString(replyBytes)) {
      decodeError = {grpc::StatusCode::INTERNAL,
                     fmt::format("a reply of {} does not parse as {}", wirePath(method),
                                 method.output_type()->full_name())};
      context.TryCancel();
      break;
    }
    onReply(*reply);
  }
  grpc::Status status;
  call->Finish(&status, &tag);
  wait();
  queue.Shutdown();
  void* ignoredTag = nullptr;
  bool ignoredOk = false;
  while (queue.Next(&ignoredTag, &ignoredOk)) {
  }
  return decodeError.ok() ? status : decodeError;
}

}  // namespace keel::keelctl
