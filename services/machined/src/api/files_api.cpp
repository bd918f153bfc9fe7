// The machine API: listing and reading files under the allowed roots.
#include "src/api/machine_service.h"

#include "src/state/file_roots.h"
#include "keel/transport/grpc_status.h"
#include "src/api/api_detail.h"

namespace keel::machined {

using transport::toGrpc;

grpc::Status MachineServiceImpl::List(grpc::ServerContext* ctx, const v1::ListRequest* req,
                                      grpc::ServerWriter<v1::FileInfo>* writer) {
  KEEL_AUTHORIZE(ctx);
  std::vector<files::EntryType> types;
  for (int t : req->types()) {
    switch (t) {
      case v1::ListRequest::REGULAR: types.push_back(files::EntryType::kRegular); break;
      case v1::ListRequest::DIRECTORY: types.push_back(files::EntryType::kDirectory); break;
      case v1::ListRequest::SYMLINK: types.push_back(files::EntryType::kSymlink); break;
      default: break;
    }
  }
  auto listing = deps_.files->list(req->root(), req->recursion_depth(), types);
  if (!listing.ok()) return toGrpc(listing.status());
  v1::FileInfo out;
  for (const auto& e : listing->entries) {
    out.Clear();
    KEEL_META((&out));
    out.set_name(e.name);
    out.set_relative_name(e.relativeName);
    out.set_size(e.size);
    out.set_mode(e.mode);
    out.set_modified_unix(e.modifiedUnix);
    out.set_is_dir(e.isDir);
    out.set_link(e.link);
    out.set_error(e.error);
    if (!writer->Write(out)) return grpc::Status::CANCELLED;
  }
  if (listing->truncated) {
    out.Clear();
    KEEL_META((&out));
    out.set_name(req->root());
    out.set_error("truncated: more entries exist than one call lists");
    if (!writer->Write(out)) return grpc::Status::CANCELLED;
  }
  return grpc::Status::OK;
}

grpc::Status MachineServiceImpl::Read(grpc::ServerContext* ctx, const v1::ReadRequest* req,
                                      grpc::ServerWriter<v1::DataChunk>* writer) {
  KEEL_AUTHORIZE(ctx);
  auto reader = deps_.files->openForRead(req->path());
  if (!reader.ok()) return toGrpc(reader.status());
  v1::DataChunk out;
  KEEL_META((&out));
  for (;;) {
    if (ctx->IsCancelled()) return grpc::Status::CANCELLED;
    auto chunk = reader->next();
    if (!chunk.ok()) return toGrpc(chunk.status());
    if (chunk->empty()) break;
    out.set_bytes(std::move(*chunk));
    if (!writer->Write(out)) return grpc::Status::CANCELLED;
  }
  return grpc::Status::OK;
}

}  // namespace keel::machined
