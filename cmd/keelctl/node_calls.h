// How keelctl's commands call nodes and show what they answer, one helper per shape: a
// unary call fanned out to the chosen nodes, its reply printed as one table or as lines
// per node; a server stream printed as it comes; a call to one node only. Each command
// then holds only its request and how it shows one node's entry.
#pragma once

#include <chrono>
#include <istream>
#include <memory>
#include <mutex>
#include <optional>
#include <ostream>
#include <string>
#include <type_traits>
#include <vector>

#include "keel/common/status.h"

#include "machine_client.h"
#include "table.h"

namespace keel::keelctl {

// Lets Ctrl-C end a following stream cleanly: the signal thread calls cancel(), which
// cancels the call in flight, and the command then returns OK. Thread-safe.
class StreamCancel {
 public:
  static StreamCancel& instance();
  void set(grpc::ClientContext* ctx);
  void clear();
  // Cancels the stream in flight; false when there is none (the caller then exits).
  bool cancel();
  bool cancelled() const;

 private:
  mutable std::mutex mu_;
  grpc::ClientContext* ctx_ = nullptr;
  bool cancelled_ = false;
};

// What a command against nodes runs with: the client, the output format, and where it
// prints, reports and asks.
struct MachineCommandEnv {
  MachineClient& client;
  OutputFormat format = OutputFormat::kTable;
  std::ostream& out;
  std::ostream& err;
  std::istream& in;  // confirmations
  bool assumeYes = false;
};

// Tallies the per-node entries of a reply (or the messages of a stream): an entry whose
// metadata carries an error is that node's failure, printed as "<node>: <error>" on
// `err`, and the other nodes' results are still shown. Not thread-safe.
class NodeResults {
 public:
  explicit NodeResults(std::ostream& err) : err_(err) {}
  // True when the entry carries data; false after reporting its node's failure.
  [[nodiscard]] bool accept(const keel::common::v1::Metadata& m);
  // OK when no node failed. Otherwise "N of M nodes failed", with the nodes' code when
  // every node failed with the same one, else UNAVAILABLE.
  Status finish() const;

 private:
  std::ostream& err_;
  std::vector<std::string> nodes_;
  std::vector<std::string> failed_;
  std::optional<StatusCode> firstCode_;
  bool sameCode_ = true;
};

// The node an entry comes from: its metadata's name, or "local" on the local socket.
const std::string& nodeOf(const keel::common::v1::Metadata& m);

using TableRows = std::vector<std::vector<std::string>>;

template <typename Req, typename Resp>
using MachineUnary = grpc::Status (keel::machine::v1::MachineService::Stub::*)(grpc::ClientContext*,
                                                                               const Req&, Resp*);

// Calls a unary machine method on the chosen nodes with a fresh context, moving to the
// next endpoint when apid cannot be reached; the error names what failed.
template <typename Req, typename Resp>
Result<Resp> callNodes(MachineCommandEnv& env, MachineUnary<Req, Resp> method,
                       const std::type_identity_t<Req>& req) {
  for (;;) {
    auto ctx = env.client.context();
    Resp resp;
    const auto st = (env.client.stub().*method)(ctx.get(), req, &resp);
    if (st.ok()) return resp;
    if (!env.client.failOver(st, env.err)) return fromGrpc(st, env.client.target());
  }
}

// callNodes for a service other than the machine API (an extension's), on the same
// connection: `Service` is the generated service class.
template <typename Service, typename Req, typename Resp>
Result<Resp> callServiceNodes(MachineCommandEnv& env,
                              grpc::Status (Service::Stub::*method)(grpc::ClientContext*, const Req&, Resp*),
                              const std::type_identity_t<Req>& req) {
  for (;;) {
    auto stub = Service::NewStub(env.client.channel());
    auto ctx = env.client.context();
    Resp resp;
    const auto st = ((*stub).*method)(ctx.get(), req, &resp);
    if (st.ok()) return resp;
    if (!env.client.failOver(st, env.err)) return fromGrpc(st, env.client.target());
  }
}

// Calls a unary method of `stub` on one node (no fan-out, no other endpoint), with a
// deadline of `timeout`: `node` when it names one (oneNodeTarget), else the node behind
// the endpoint.
template <typename Stub, typename Req, typename Resp>
Result<Resp> callOneNode(MachineCommandEnv& env, Stub& stub,
                         grpc::Status (Stub::*method)(grpc::ClientContext*, const Req&, Resp*),
                         const std::type_identity_t<Req>& req, const std::vector<std::string>& node,
                         std::chrono::seconds timeout) {
  const auto ctx = env.client.contextFor(node, timeout);
  Resp resp;
  const auto st = (stub.*method)(ctx.get(), req, &resp);
  if (!st.ok()) return fromGrpc(st, env.client.target());
  return resp;
}

// Lines per node: hands each entry of a fanned-out reply that carries data to
// `each(node, entry)`, which writes to env.out. JSON and YAML print the whole reply as it
// is instead. Either way a node's failure is reported on env.err and makes the result
// "N of M nodes failed".
template <typename Resp, typename Each>
Status printPerNode(MachineCommandEnv& env, const Resp& resp, Each each) {
  const bool table = env.format == OutputFormat::kTable;
  if (!table) printMessage(resp, env.format, env.out);
  NodeResults results(env.err);
  for (const auto& m : resp.messages()) {
    if (results.accept(m.metadata()) && table) each(nodeOf(m.metadata()), m);
  }
  return results.finish();
}

// One table for all nodes: `rowsOf(node, entry, rows)` adds an entry's rows, which
// start with the node's name under `header`'s NODE. JSON and YAML as printPerNode.
template <typename Resp, typename RowsOf>
Status printNodeTable(MachineCommandEnv& env, const Resp& resp, const std::vector<std::string>& header,
                      RowsOf rowsOf) {
  TableRows rows;
  const Status status =
      printPerNode(env, resp, [&](const std::string& node, const auto& m) { rowsOf(node, m, rows); });
  if (env.format == OutputFormat::kTable) printTable(env.out, header, rows);
  return status;
}

// Reads a server stream to its end, handing each message to `each`. A stream the user
// ended with Ctrl-C counts as success. A stream that never got going is repeated on the
// next endpoint.
// Messages that carry a node's failure are reported on env.err and not handed to `each`
// (except in JSON/YAML, which pass every message through); the stream fails at its end
// when any node did.
template <typename Msg, typename Req, typename Method, typename Each>
Status readStream(MachineCommandEnv& env, Method method, const Req& req, bool follow, Each each) {
  NodeResults results(env.err);
  grpc::Status st;
  for (;;) {
    auto ctx = env.client.context(follow ? std::chrono::seconds(0) : std::chrono::seconds(60));
    StreamCancel::instance().set(ctx.get());
    auto reader = (env.client.stub().*method)(ctx.get(), req);
    bool received = false;
    Msg msg;
    while (reader->Read(&msg)) {
      received = true;
      const bool data = results.accept(msg.metadata());
      if (data || env.format != OutputFormat::kTable) each(msg);
    }
    st = reader->Finish();
    StreamCancel::instance().clear();
    if (received || !env.client.failOver(st, env.err)) break;
  }
  if (st.error_code() == grpc::StatusCode::CANCELLED && StreamCancel::instance().cancelled())
    return results.finish();
  KEEL_RETURN_IF_ERROR(fromGrpc(st, env.client.target()));
  return results.finish();
}

// A stream printed as it comes: `show(msg)` writes a message that carries data in the
// table format; JSON prints each message as a line, YAML as a document.
template <typename Msg, typename Req, typename Method, typename Show>
Status printStream(MachineCommandEnv& env, Method method, const Req& req, bool follow, Show show) {
  return readStream<Msg>(env, method, req, follow, [&](const Msg& msg) {
    if (env.format == OutputFormat::kTable) {
      show(msg);
    } else {
      printStreamMessage(msg, env.format, env.out);
    }
  });
}

}  // namespace keel::keelctl
