// What `keelctl call` knows of an API it was not built with: the method a user names on
// the command line, the schema a server describes through reflection (serialized
// FileDescriptorProtos), and requests and replies of that schema as JSON.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <google/protobuf/descriptor.h>
#include <google/protobuf/dynamic_message.h>
#include <google/protobuf/message.h>

#include "keel/common/status.h"

namespace keel::keelctl {

// One reading of a name typed on the command line.
struct MethodName {
  std::string service;  // full name: "keel.time.v1.TimeService"
  std::string method;   // "Now"; empty when the name is the service's own

  bool operator==(const MethodName&) const = default;
};

// The readings of `text`, the likelier first. "pkg.Service/Method" and
// "/pkg.Service/Method" have one. A dotted name has two, since "a.b.C" is service a.b.C or
// method C of service a.b: the method reading comes first when the part before the last
// dot starts with a capital letter (services do, packages do not). INVALID_ARGUMENT,
// saying what is expected, for anything that is not a dotted protobuf name.
Result<std::vector<MethodName>> parseMethodName(std::string_view text);

// A descriptor pool of its own (never the generated one, so that files keelctl was built
// with can come again from a server), filled from serialized FileDescriptorProtos, and
// the messages of its types. Not thread-safe.
class DynamicSchema {
 public:
  // Returns the serialized FileDescriptorProtos of the file `name` (and possibly its
  // imports), for an import a server left out.
  using FileFetcher = std::function<Result<std::vector<std::string>>(const std::string& name)>;

  DynamicSchema();
  DynamicSchema(const DynamicSchema&) = delete;
  DynamicSchema& operator=(const DynamicSchema&) = delete;

  // Adds the files, in any order: each file's imports are built before it. An import that
  // is neither among them nor in the schema yet is asked of `fetch` (when given), then
  // taken from the files keelctl was built with. Files the schema has already are
  // skipped. Errors: INVALID_ARGUMENT for a file that does not parse or build, naming it
  // and why; NOT_FOUND for an import nobody has, naming the file that imports it.
  Status addFiles(const std::vector<std::string>& serializedFiles, const FileFetcher& fetch = {});

  const google::protobuf::DescriptorPool& pool() const { return *pool_; }
  const google::protobuf::ServiceDescriptor* findService(const std::string& fullName) const;

  // A new empty message of `type`, which must come from this schema's pool. The
  // schema outlives it.
  std::unique_ptr<google::protobuf::Message> newMessage(const google::protobuf::Descriptor& type);

 private:
  std::unique_ptr<google::protobuf::DescriptorPool> pool_;
  std::unique_ptr<google::protobuf::DynamicMessageFactory> factory_;
};

// Parses a JSON object (the proto3 JSON mapping; field names as in the .proto or in
// lowerCamelCase) into `message`. INVALID_ARGUMENT naming the message type, the field at
// fault and, for a field the type does not have, the fields it has.
Status messageFromJson(std::string_view json, google::protobuf::Message& message);

// `message` as JSON with proto field names and every field (defaults too): indented, or
// on one line. INTERNAL when it cannot be written (an Any of a type the schema lacks).
Result<std::string> messageToJson(const google::protobuf::Message& message, bool pretty);

// "rpc Now(keel.time.v1.NowRequest) returns (keel.time.v1.NowResponse)", with "stream"
// where the method streams.
std::string describeMethod(const google::protobuf::MethodDescriptor& method);

}  // namespace keel::keelctl
