// Calls a method known only from a DynamicSchema: the request and replies are dynamic
// messages, sent as bytes with grpc::GenericStub, so any API a node routes can be called
// without keelctl being built with it.
#pragma once

#include <functional>
#include <memory>

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>
#include <grpcpp/grpcpp.h>

#include "dynamic_schema.h"

namespace keel::keelctl {

// "/package.Service/Method", the path of a method on the wire.
std::string wirePath(const google::protobuf::MethodDescriptor& method);

// OK for a unary or server-streaming method; INVALID_ARGUMENT saying why a client- or
// bidirectional-streaming one cannot be called this way.
Status checkCallable(const google::protobuf::MethodDescriptor& method);

// Calls `method` (of `schema`) with `request` under `context` (metadata, deadline) and
// hands each reply to `onReply` as it arrives: one for a unary method, any number for a
// server stream. Blocks until the call ends; returns its gRPC status, or INTERNAL when a
// reply does not parse as the method's output type (the call is then cancelled). The
// method must pass checkCallable.
grpc::Status invokeMethod(const std::shared_ptr<grpc::ChannelInterface>& channel,
                          grpc::ClientContext& context, const google::protobuf::MethodDescriptor& method,
                          const google::protobuf::Message& request, DynamicSchema& schema,
                          const std::function<void(const google::protobuf::Message&)>& onReply);

}  // namespace keel::keelctl
