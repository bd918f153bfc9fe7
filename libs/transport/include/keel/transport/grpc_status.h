// Keel's Status as the grpc::Status a gRPC handler returns. The codes are the same
// numbers (keel::StatusCode follows gRPC's), so the conversion keeps code and message.
#pragma once

#include <grpcpp/support/status.h>

#include "keel/common/status.h"

namespace keel::transport {

inline grpc::Status toGrpc(const Status& status) {
  if (status.isOk()) return grpc::Status::OK;
  return {static_cast<grpc::StatusCode>(status.code()), status.message()};
}

}  // namespace keel::transport
