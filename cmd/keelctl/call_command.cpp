#include "call_command.h"

#include <algorithm>
#include <fstream>
#include <iterator>
#include <optional>
#include <sstream>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "dynamic_schema.h"
#include "generic_call.h"
#include "reflection_client.h"

namespace keel::keelctl {

namespace gp = google::protobuf;

namespace {

constexpr auto kReflectionTimeout = std::chrono::seconds(30);
constexpr auto kUnaryTimeout = std::chrono::seconds(30);
constexpr std::string_view kReflectionService = "grpc.reflection.v1alpha.ServerReflection";

// The node the schema is asked of, as messages name it.
std::string schemaNode(const MachineTarget& t) {
  if (!t.nodes.empty()) return t.nodes.front();
  if (t.viaApid()) return t.endpoint;
  return t.socket.string();
}

// Reflection on the first target node, on one stream, over the client's connection.
std::unique_ptr<ReflectionClient> openReflection(MachineCommandEnv& env) {
  const auto& nodes = env.client.target().nodes;
  std::vector<std::string> first;
  if (!nodes.empty()) first.push_back(nodes.front());
  return std::make_unique<ReflectionClient>(env.client.channel(),
                                            env.client.contextFor(first, kReflectionTimeout));
}

// A reflection question that failed: the stream's failure made actionable, or the
// server's answer to that question.
Status reflectionError(MachineCommandEnv& env, const ReflectionClient& reflection, const Status& failed) {
  const grpc::Status& stream = reflection.streamStatus();
  if (stream.ok()) return failed;
  if (stream.error_code() == grpc::StatusCode::UNIMPLEMENTED) {
    return {StatusCode::kUnimplemented,
            fmt::format(
                "{} does not serve gRPC reflection ({}), which 'keelctl call' needs to learn its APIs: {}",
                schemaNode(env.client.target()), kReflectionService, stream.error_message())};
  }
  return fromGrpc(stream, env.client.target());
}

// Runs `ask` on a reflection stream, moving to the next endpoint when apid cannot be
// reached. `reflection` is the stream that answered, for later questions.
template <typename T>
Result<T> askWithFailover(MachineCommandEnv& env, std::unique_ptr<ReflectionClient>& reflection,
                          const std::function<Result<T>(ReflectionClient&)>& ask) {
  for (;;) {
    auto answer = ask(*reflection);
    if (answer.ok()) return answer;
    const grpc::Status stream = reflection->streamStatus();
    if (stream.ok() || !env.client.failOver(stream, env.err)) {
      return reflectionError(env, *reflection, answer.status());
    }
    reflection = openReflection(env);
  }
}

Result<std::string> readRequest(MachineCommandEnv& env, const std::string& request) {
  if (request == "-") return std::string(std::istreambuf_iterator<char>(env.in), {});
  if (!request.starts_with('@')) return request;
  const std::string path = request.substr(1);
  std::ifstream in(path, std::ios::binary);
  if (!in) return notFound(fmt::format("cannot read the request file {}: {}", path, errnoText(errno)));
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// The metadata of a node's entry: field 1 of type keel.common.v1.Metadata (the fan-out
// shape of Keel's APIs).
std::optional<keel::common::v1::Metadata> entryMetadata(const gp::Message& m) {
  const gp::FieldDescriptor* field = m.GetDescriptor()->FindFieldByNumber(1);
  if (field == nullptr || field->is_repeated() || field->type() != gp::FieldDescriptor::TYPE_MESSAGE ||
      field->message_type()->full_name() != keel::common::v1::Metadata::descriptor()->full_name()) {
    return std::nullopt;
  }
  keel::common::v1::Metadata metadata;
  if (!metadata.ParseFromString(m.GetReflection()->GetMessage(m, field).SerializeAsString()))
    return std::nullopt;
  return metadata;
}

// Reports the failed nodes of a reply: a fan-out reply's entries (`repeated … messages`),
// or a stream message that is itself an entry.
void acceptEntries(const gp::Message& reply, NodeResults& results) {
  if (auto metadata = entryMetadata(reply)) {
    (void)results.accept(*metadata);
    return;
  }
  const gp::FieldDescriptor* messages = reply.GetDescriptor()->FindFieldByName("messages");
  if (messages == nullptr || !messages->is_repeated() ||
      messages->type() != gp::FieldDescriptor::TYPE_MESSAGE)
    return;
  const gp::Reflection* r = reply.GetReflection();
  for (int i = 0; i < r->FieldSize(reply, messages); ++i) {
    if (auto metadata = entryMetadata(r->GetRepeatedMessage(reply, messages, i)))
      (void)results.accept(*metadata);
  }
}

Status listServices(MachineCommandEnv& env, std::unique_ptr<ReflectionClient>& reflection) {
  KEEL_ASSIGN_OR_RETURN(auto services,
                        askWithFailover<std::vector<std::string>>(
                            env, reflection, [](ReflectionClient& r) { return r.listServices(); }));
  std::sort(services.begin(), services.end());
  for (const auto& s : services) env.out << s << '\n';
  return Status::ok();
}

void listMethods(MachineCommandEnv& env, const gp::ServiceDescriptor& service) {
  env.out << service.full_name() << '\n';
  for (int i = 0; i < service.method_count(); ++i)
    env.out << "  " << describeMethod(*service.method(i)) << '\n';
}

Status callMethod(MachineCommandEnv& env, const CallArgs& args, DynamicSchema& schema,
                  const gp::MethodDescriptor& method) {
  KEEL_RETURN_IF_ERROR(checkCallable(method));
  KEEL_ASSIGN_OR_RETURN(const std::string json, readRequest(env, args.request));
  auto request = schema.newMessage(*method.input_type());
  KEEL_RETURN_IF_ERROR(messageFromJson(json.empty() ? "{}" : json, *request));

  const bool stream = method.server_streaming();
  const auto timeout = args.timeout.value_or(stream ? std::chrono::seconds(0) : kUnaryTimeout);
  auto context = env.client.context(timeout);
  NodeResults results(env.err);
  Status printError;
  if (stream) StreamCancel::instance().set(context.get());
  const grpc::Status status =
      invokeMethod(env.client.channel(), *context, method, *request, schema, [&](const gp::Message& reply) {
        auto text = messageToJson(reply, !args.compact);
        if (!text.ok()) {
          if (printError.isOk()) printError = text.status();
          return;
        }
        env.out << *text << '\n';
        env.out.flush();
        acceptEntries(reply, results);
      });
  if (stream) StreamCancel::instance().clear();
  KEEL_RETURN_IF_ERROR(printError);
  const bool interrupted =
      status.error_code() == grpc::StatusCode::CANCELLED && StreamCancel::instance().cancelled();
  if (!interrupted) KEEL_RETURN_IF_ERROR(fromGrpc(status, env.client.target()));
  return results.finish();
}

}  // namespace

Status cmdCall(MachineCommandEnv& env, const CallArgs& args) {
  auto reflection = openReflection(env);
  if (args.method.empty()) return listServices(env, reflection);
  KEEL_ASSIGN_OR_RETURN(const auto readings, parseMethodName(args.method));

  DynamicSchema schema;
  const DynamicSchema::FileFetcher fetch = [&](const std::string& name) {
    return reflection->fileByFilename(name);
  };
  for (const auto& reading : readings) {
    if (schema.findService(reading.service) == nullptr) {
      auto files = askWithFailover<std::vector<std::string>>(
          env, reflection, [&](ReflectionClient& r) { return r.fileContainingSymbol(reading.service); });
      if (!files.ok() && files.status().code() == StatusCode::kNotFound) continue;
      if (!files.ok()) return files.status();
      KEEL_RETURN_IF_ERROR(schema.addFiles(*files, fetch));
    }
    const gp::ServiceDescriptor* service = schema.findService(reading.service);
    if (service == nullptr) continue;  // the name is a message or an enum
    if (reading.method.empty()) {
      listMethods(env, *service);
      return Status::ok();
    }
    const gp::MethodDescriptor* method = service->FindMethodByName(reading.method);
    if (method == nullptr) {
      std::vector<std::string> names;
      for (int i = 0; i < service->method_count(); ++i) names.push_back(service->method(i)->name());
      if (names.empty()) {
        return notFound(fmt::format("service {} has no method {}: it has no methods", service->full_name(),
                                    reading.method));
      }
      return notFound(
          fmt::format("service {} has no method {}; its methods are {} ('keelctl call {}' shows their "
                      "request and reply types)",
                      service->full_name(), reading.method, fmt::join(names, ", "), service->full_name()));
    }
    reflection.reset();  // the schema is complete: end the stream before the call
    return callMethod(env, args, schema, *method);
  }
  const std::string& name = readings.front().service;
  if (schema.pool().FindMessageTypeByName(name) != nullptr ||
      schema.pool().FindEnumTypeByName(name) != nullptr) {
    return invalidArgument(
        fmt::format("{} is a type, not a service or a method; 'keelctl call --list' shows the "
                    "services",
                    name));
  }
  // A service the server lists but does not describe (gRPC's own health service, in a
  // server built without its descriptor) is not a typo: say what is missing instead.
  if (auto listed = reflection->listServices(); listed.ok()) {
    for (const auto& reading : readings) {
      if (std::find(listed->begin(), listed->end(), reading.service) != listed->end()) {
        return failedPrecondition(
            fmt::format("{} lists service {}, but its reflection does not describe it, so "
                        "'keelctl call' cannot build its requests",
                        schemaNode(env.client.target()), reading.service));
      }
    }
  }
  return notFound(fmt::format("service {} is not served by {} (keelctl call --list shows what is)", name,
                              schemaNode(env.client.target())));
}

}  // namespace keel::keelctl
