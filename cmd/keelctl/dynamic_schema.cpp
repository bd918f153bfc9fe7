#include "dynamic_schema.h"

#include <map>
#include <set>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <google/protobuf/descriptor.pb.h>
#include <google/protobuf/util/json_util.h>

namespace keel::keelctl {

namespace gp = google::protobuf;

namespace {

bool isIdentifier(std::string_view part) {
  if (part.empty()) return false;
  const auto letter = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; };
  if (!letter(part.front())) return false;
  for (const char c : part) {
    if (!letter(c) && !(c >= '0' && c <= '9')) return false;
  }
  return true;
}

bool isDottedName(std::string_view name) {
  for (;;) {
    const auto dot = name.find('.');
    if (!isIdentifier(name.substr(0, dot))) return false;
    if (dot == std::string_view::npos) return true;
    name.remove_prefix(dot + 1);
  }
}

Status badName(std::string_view text) {
  return invalidArgument(
      fmt::format("'{}' is not a method name: expected package.Service/Method (or /package.Service/Method, "
                  "package.Service.Method), or a service's full name package.Service",
                  text));
}

// Collects what the pool says of a file that does not build.
class Errors final : public gp::DescriptorPool::ErrorCollector {
 public:
  void AddError(const std::string& /*filename*/, const std::string& element,
                const gp::Message* /*descriptor*/, ErrorLocation /*location*/,
                const std::string& message) override {
    text += (text.empty() ? "" : "; ") + (element.empty() ? message : element + ": " + message);
  }
  std::string text;
};

}  // namespace

Result<std::vector<MethodName>> parseMethodName(std::string_view text) {
  std::string_view name = text;
  if (name.starts_with('/')) name.remove_prefix(1);
  if (const auto slash = name.find('/'); slash != std::string_view::npos) {
    const auto service = name.substr(0, slash);
    const auto method = name.substr(slash + 1);
    if (!isDottedName(service) || !isIdentifier(method)) return badName(text);
    return std::vector<MethodName>{{std::string(service), std::string(method)}};
  }
  if (name.size() != text.size() || !isDottedName(name)) return badName(text);
  const auto dot = name.rfind('.');
  if (dot == std::string_view::npos) return std::vector<MethodName>{{std::string(name), ""}};
  const MethodName asService{std::string(name), ""};
  const MethodName asMethod{std::string(name.substr(0, dot)), std::string(name.substr(dot + 1))};
  const auto parentDot = name.rfind('.', dot - 1);
  const char parentFirst = name[parentDot == std::string_view::npos ? 0 : parentDot + 1];
  if (parentFirst >= 'A' && parentFirst <= 'Z') return std::vector<MethodName>{asMethod, asService};
  return std::vector<MethodName>{asService, asMethod};
}

DynamicSchema::DynamicSchema()
    : pool_(std::make_unique<gp::DescriptorPool>()),
      factory_(std::make_unique<gp::DynamicMessageFactory>(pool_.get())) {}

const gp::ServiceDescriptor* DynamicSchema::findService(const std::string& fullName) const {
  return pool_->FindServiceByName(fullName);
}

std::unique_ptr<gp::Message> DynamicSchema::newMessage(const gp::Descriptor& type) {
  KEEL_RELEASE_ASSERT(type.file()->pool() == pool_.get(), "a message type from another pool");
  return std::unique_ptr<gp::Message>(factory_->GetPrototype(&type)->New());
}

Status DynamicSchema::addFiles(const std::vector<std::string>& serializedFiles, const FileFetcher& fetch) {
  // Files waiting to be built, by name.
  std::map<std::string, gp::FileDescriptorProto> pending;
  const auto take = [&](const std::vector<std::string>& files) -> Status {
    for (const auto& bytes : files) {
      gp::FileDescriptorProto file;
      if (!file.ParseFromString(bytes)) {
        return invalidArgument(
            "the server sent a file descriptor that does not parse as a FileDescriptorProto");
      }
      if (pool_->FindFileByName(file.name()) == nullptr) pending.try_emplace(file.name(), std::move(file));
    }
    return Status::ok();
  };
  KEEL_RETURN_IF_ERROR(take(serializedFiles));

  // An import nobody sent: the server's own copy, else the one keelctl was built with.
  const auto findMissing = [&](const std::string& name, const std::string& importer) -> Status {
    std::string fetchError;
    if (fetch) {
      auto files = fetch(name);
      if (files.ok()) {
        KEEL_RETURN_IF_ERROR(take(*files));
        if (pending.contains(name)) return Status::ok();
      } else {
        fetchError = fmt::format(" ({})", files.status().message());
      }
    }
    if (const auto* known = gp::DescriptorPool::generated_pool()->FindFileByName(name)) {
      gp::FileDescriptorProto file;
      known->CopyTo(&file);
      pending.try_emplace(name, std::move(file));
      return Status::ok();
    }
    return notFound(
        fmt::format("{} imports {}, which the server did not describe{}", importer, name, fetchError));
  };

  std::set<std::string> building;
  std::function<Status(const std::string&, const std::string&)> build =
      [&](const std::string& name, const std::string& importer) -> Status {
    if (pool_->FindFileByName(name) != nullptr) return Status::ok();
    if (!pending.contains(name)) KEEL_RETURN_IF_ERROR(findMissing(name, importer));
    if (!building.insert(name).second)
      return invalidArgument(fmt::format("{} imports itself through {}", name, importer));
    const gp::FileDescriptorProto file = pending.at(name);
    for (const auto& dependency : file.dependency()) KEEL_RETURN_IF_ERROR(build(dependency, name));
    Errors errors;
    if (pool_->BuildFileCollectingErrors(file, &errors) == nullptr) {
      return invalidArgument(
          fmt::format("the server's description of {} does not build: {}", name, errors.text));
    }
    building.erase(name);
    return Status::ok();
  };
  std::vector<std::string> names;
  for (const auto& [name, file] : pending) names.push_back(name);
  for (const auto& name : names) KEEL_RETURN_IF_ERROR(build(name, ""));
  return Status::ok();
}

Status messageFromJson(std::string_view json, gp::Message& message) {
  gp::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  const auto st = gp::util::JsonStringToMessage(gp::StringPiece(json.data(), json.size()), &message, options);
  if (st.ok()) return Status::ok();
  const gp::Descriptor* type = message.GetDescriptor();
  std::string why(st.message().data(), st.message().size());
  // Protobuf names the field at fault ("(a.b) c: Cannot find field."); for the request's
  // own fields, say which there are.
  if (why.find("Cannot find field") != std::string::npos && !why.starts_with("(")) {
    std::vector<std::string> fields;
    for (int i = 0; i < type->field_count(); ++i) fields.push_back(type->field(i)->name());
    why += fields.empty() ? fmt::format(" ({} has no fields: pass {{}})", type->full_name())
                          : fmt::format(" ({} has {})", type->full_name(), fmt::join(fields, ", "));
  }
  return invalidArgument(fmt::format("the request is not a valid {} in JSON: {}", type->full_name(), why));
}

Result<std::string> messageToJson(const gp::Message& message, bool pretty) {
  gp::util::JsonPrintOptions options;
  options.add_whitespace = pretty;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  std::string out;
  const auto st = gp::util::MessageToJsonString(message, &out, options);
  if (!st.ok()) {
    return internalError(fmt::format("a {} reply cannot be shown as JSON: {}",
                                     message.GetDescriptor()->full_name(),
                                     std::string(st.message().data(), st.message().size())));
  }
  if (pretty && out.ends_with('\n')) out.pop_back();
  return out;
}

std::string describeMethod(const gp::MethodDescriptor& method) {
  return fmt::format("rpc {}({}{}) returns ({}{})", method.name(), method.client_streaming() ? "stream " : "",
                     method.input_type()->full_name(), method.server_streaming() ? "stream " : "",
                     method.output_type()->full_name());
}

}  // namespace keel::keelctl
