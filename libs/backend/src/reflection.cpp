// keel_backend_reflection: gRPC server reflection for a daemon on the SDK. Linked whole
// (keel_backend() does it), this file's initializer hands gRPC's reflection plugin to the
// SDK, which starts it when DaemonSpec::reflection is set. It is a library of its own so
// that a daemon serving no reflection does not load gRPC's reflection library, whose own
// initializer would add the plugin to every server of the process.
#include <grpcpp/ext/proto_server_reflection_plugin.h>

#include "keel/backend/daemon.h"

namespace {

const bool kReflectionRegistered = [] {
  keel::backend::registerReflectionPlugin(&grpc::reflection::InitProtoReflectionServerBuilderPlugin);
  return true;
}();

}  // namespace
