#include "machine_client.h"

#include <google/protobuf/util/json_util.h>

#include <ctime>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>
#include <yaml-cpp/yaml.h>

namespace keel::keelctl {

Result<OutputFormat> parseOutputFormat(std::string_view name) {
  if (name == "table") return OutputFormat::kTable;
  if (name == "json") return OutputFormat::kJson;
  if (name == "yaml") return OutputFormat::kYaml;
  return invalidArgument(fmt::format("unknown output format '{}': expected table, json or yaml", name));
}

std::filesystem::path machinedSocketUnder(const std::filesystem::path& root) {
  return root / "run/keel/machined.sock";
}

MachineClient::MachineClient(MachineTarget target) : target_(std::move(target)) { connect(); }

bool MachineClient::failOver(const grpc::Status& status, std::ostream& err) {
  if (!target_.viaApid() || target_.fallbackEndpoints.empty()) return false;
  if (status.error_code() != grpc::StatusCode::UNAVAILABLE || !isConnectionFailure(status.error_message())) {
    return false;
  }
  const std::string next = target_.fallbackEndpoints.front();
  target_.fallbackEndpoints.erase(target_.fallbackEndpoints.begin());
  err << fmt::format("keelctl: cannot reach apid at {} ({}); trying {}\n", target_.endpoint, status.error_message(),
                     next);
  target_.endpoint = next;
  connect();
  return true;
}

void MachineClient::connect() {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 * 1024 * 1024);
  if (target_.viaApid()) {
    grpc::SslCredentialsOptions tls;
    tls.pem_root_certs = target_.tls.ca;
    tls.pem_cert_chain = target_.tls.crt;
    tls.pem_private_key = target_.tls.key;
    channel_ = grpc::CreateCustomChannel(target_.endpoint, grpc::SslCredentials(tls), args);
  } else {
    channel_ = grpc::CreateCustomChannel("unix:" + target_.socket.string(), grpc::InsecureChannelCredentials(), args);
  }
  stub_ = keel::machine::v1::MachineService::NewStub(channel_);
  security_ = keel::security::v1::SecurityService::NewStub(channel_);
}

Result<std::vector<std::string>> oneNodeTarget(const MachineTarget& target, std::string_view why) {
  if (!target.nodesFromFlag) return std::vector<std::string>{};
  if (target.nodes.size() > 1) {
    return invalidArgument(fmt::format("{}: expected at most one node with -n, found {} ({})", why,
                                       target.nodes.size(), fmt::join(target.nodes, ", ")));
  }
  return target.nodes;
}

std::unique_ptr<grpc::ClientContext> MachineClient::context(std::chrono::seconds timeout) const {
  return contextFor(target_.nodes, timeout);
}

std::unique_ptr<grpc::ClientContext> MachineClient::contextFor(const std::vector<std::string>& nodes,
                                                               std::chrono::seconds timeout) const {
  auto ctx = std::make_unique<grpc::ClientContext>();
  if (target_.viaApid()) {
    // apid takes the roles from the client certificate; it only needs the targets.
    for (const auto& [key, value] : nodeTargetMetadata(nodes)) ctx->AddMetadata(key, value);
  } else {
    ctx->AddMetadata("keel-roles", target_.roles);
  }
  if (timeout.count() > 0) ctx->set_deadline(std::chrono::system_clock::now() + timeout);
  return ctx;
}

Status fromGrpc(const grpc::Status& status, const MachineTarget& target) {
  if (status.ok()) return Status::ok();
  const auto code = static_cast<StatusCode>(status.error_code());
  if (code == StatusCode::kUnavailable && target.viaApid() && isConnectionFailure(status.error_message())) {
    SystemClock systemClock;
    return diagnoseUnavailable(target.endpoint, target.tls, status.error_message(),
                               target.clock != nullptr ? *target.clock : systemClock);
  }
  if (code == StatusCode::kUnavailable) {
    return {code, fmt::format("cannot reach machined at {}: {} (is the node running? start one with "
                              "'machined --root DIR --config controlplane.json --address 127.0.1.1')",
                              target.socket.string(), status.error_message())};
  }
  return {code, status.error_message()};
}

namespace {

std::string toJson(const google::protobuf::Message& message, bool pretty) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = pretty;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  std::string out;
  const auto st = google::protobuf::util::MessageToJsonString(message, &out, options);
  KEEL_RELEASE_ASSERT(st.ok(), "a reply could not be converted to JSON");
  return out;
}

YAML::Node toYaml(const nlohmann::json& j) {
  if (j.is_object()) {
    YAML::Node n(YAML::NodeType::Map);
    for (const auto& [k, v] : j.items()) n[k] = toYaml(v);
    return n;
  }
  if (j.is_array()) {
    YAML::Node n(YAML::NodeType::Sequence);
    for (const auto& v : j) n.push_back(toYaml(v));
    return n;
  }
  if (j.is_string()) return YAML::Node(j.get<std::string>());
  if (j.is_boolean()) return YAML::Node(j.get<bool>());
  if (j.is_number_integer()) return YAML::Node(j.get<int64_t>());
  if (j.is_number_unsigned()) return YAML::Node(j.get<uint64_t>());
  if (j.is_number_float()) return YAML::Node(j.get<double>());
  return YAML::Node();
}

std::string yamlOf(const google::protobuf::Message& message) {
  YAML::Emitter emitter;
  emitter << toYaml(nlohmann::json::parse(toJson(message, false)));
  return emitter.c_str();
}

}  // namespace

void printMessage(const google::protobuf::Message& message, OutputFormat format, std::ostream& out) {
  if (format == OutputFormat::kYaml) {
    out << yamlOf(message) << '\n';
  } else {
    out << toJson(message, true);
    if (format == OutputFormat::kJson) out << '\n';
  }
}

void printStreamMessage(const google::protobuf::Message& message, OutputFormat format, std::ostream& out) {
  if (format == OutputFormat::kYaml) {
    out << "---\n" << yamlOf(message) << '\n';
  } else {
    out << toJson(message, false) << '\n';
  }
  out.flush();
}

std::string humanBytes(uint64_t bytes) {
  constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  double v = static_cast<double>(bytes);
  size_t unit = 0;
  while (v >= 1024 && unit + 1 < std::size(kUnits)) {
    v /= 1024;
    ++unit;
  }
  return unit == 0 ? fmt::format("{} B", bytes) : fmt::format("{:.1f} {}", v, kUnits[unit]);
}

std::string humanTime(int64_t unixNanos) {
  if (unixNanos <= 0) return "-";
  const std::time_t secs = static_cast<std::time_t>(unixNanos / 1'000'000'000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  const size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return std::string(buf, n);
}

}  // namespace keel::keelctl
