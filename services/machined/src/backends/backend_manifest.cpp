#include "src/backends/backend_manifest.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include <fmt/format.h>
#include <sys/stat.h>

#include "keel/config/json_fields.h"

namespace keel::machined {

namespace fs = std::filesystem;

namespace {

using config::ObjectReader;

// A file name inside a directory: no separator, not a dot entry.
bool isPlainFileName(std::string_view name) {
  return !name.empty() && name.find('/') == std::string_view::npos && name != "." && name != "..";
}

// pkg.v1.Service: dot-separated identifiers, at least a package and a service.
bool isFullServiceName(std::string_view name) {
  if (name.empty() || name.size() > 255) return false;
  size_t parts = 0;
  size_t start = 0;
  while (start <= name.size()) {
    const size_t dot = std::min(name.find('.', start), name.size());
    const std::string_view part = name.substr(start, dot - start);
    if (part.empty()) return false;
    const auto identStart = [](char c) {
      return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    };
    if (!identStart(part.front())) return false;
    for (const char c : part) {
      if (!identStart(c) && !(c >= '0' && c <= '9')) return false;
    }
    ++parts;
    start = dot + 1;
  }
  return parts >= 2;
}

// A path of the manifest: absolute as given, else relative to the manifest's directory.
fs::path resolveBeside(const fs::path& manifestDir, const std::string& value) {
  const fs::path p(value);
  return (p.is_absolute() ? p : fs::absolute(manifestDir) / p).lexically_normal();
}

// name: a valid service name, not a built-in one, the file's base name.
Status checkName(const std::string& name, std::string_view expectedName) {
  if (!config::isValidServiceName(name)) {
    return config::fieldError("name",
                              fmt::format("expected 1-63 characters of a-z, 0-9, '.', '_', '-' starting "
                                          "with a letter or digit, found '{}'",
                                          name));
  }
  if (config::isBuiltinServiceName(name)) {
    return config::fieldError("name", fmt::format("'{}' is a built-in service", name));
  }
  if (name != expectedName) {
    return config::fieldError(
        "name", fmt::format("expected '{}' (the file's base name), found '{}'", expectedName, name));
  }

  return Status::ok();
}

// version: 1-64 printable ASCII characters.
Status checkVersion(const std::string& version) {
  const bool printable =
      std::all_of(version.begin(), version.end(), [](char c) { return c >= 0x20 && c < 0x7f; });
  if (version.empty() || version.size() > 64 || !printable) {
    return config::fieldError(
        "version", fmt::format("expected 1-64 printable ASCII characters, found {} bytes{}", version.size(),
                               printable ? "" : " with unprintable ones"));
  }

  return Status::ok();
}

// binary: a plain name looked up in --libexec, or an absolute path.
Result<fs::path> resolveBinary(const std::string& binary, const fs::path& libexecDir) {
  if (isPlainFileName(binary)) {
    if (libexecDir.empty()) {
      return config::fieldError("binary",
                                fmt::format("'{}' is a plain name but machined has no --libexec", binary));
    }
    return (fs::absolute(libexecDir) / binary).lexically_normal();
  } else if (fs::path(binary).is_absolute()) {
    return fs::path(binary).lexically_normal();
  } else {
    return config::fieldError("binary",
                              fmt::format("expected a file name (looked up in --libexec) or an absolute "
                                          "path, found '{}'",
                                          binary));
  }

}

// socket: a plain file name of at most 64 characters, not hidden.
Status checkSocket(const std::string& socket) {
  if (!isPlainFileName(socket) || socket.front() == '.' || socket.size() > 64) {
    return config::fieldError("socket",
                              fmt::format("expected a file name of at most 64 characters, not starting "
                                          "with '.' and without '/', found '{}'",
                                          socket));
  }

  return Status::ok();
}

// services: at least one, each fully qualified, each once.
Status checkServices(const std::vector<std::string>& services) {
  if (services.empty()) {
    return config::fieldError("services", "expected at least one gRPC service name, found none");
  }
  for (size_t i = 0; i < services.size(); ++i) {
    const auto& s = services[i];
    const std::string path = fmt::format("services[{}]", i);
    if (!isFullServiceName(s)) {
      return config::fieldError(path, fmt::format("expected a fully-qualified gRPC service name like "
                                                  "keel.time.v1.TimeService, found '{}'",
                                                  s));
    }
    if (std::find(services.begin(), services.begin() + static_cast<std::ptrdiff_t>(i), s) !=
        services.begin() + static_cast<std::ptrdiff_t>(i)) {
      return config::fieldError(path, fmt::format("'{}' is listed twice", s));
    }
  }

  return Status::ok();
}

// allowedPeerUids: optional, each a uid other than (uid_t)-1.
Result<std::vector<uid_t>> readAllowedPeerUids(ObjectReader& r) {
  std::vector<uid_t> out;
  if (const nlohmann::json* uids = r.field("allowedPeerUids")) {
    if (!uids->is_array()) return config::fieldError("allowedPeerUids", "expected an array of uids");
    for (size_t i = 0; i < uids->size(); ++i) {
      const auto& v = (*uids)[i];
      // (uid_t)-1 means "no change" to the system calls that take a uid: never a peer.
      if (!v.is_number_unsigned() || v.get<uint64_t>() > 0xfffffffeu) {
        return config::fieldError(
            fmt::format("allowedPeerUids[{}]", i),
            fmt::format("expected a uid (an integer 0..4294967294), found {}", v.dump()));
      }
      out.push_back(static_cast<uid_t>(v.get<uint64_t>()));
    }
  }

  return out;
}

// nodeTypes: one or both of controlplane and worker, each once.
Result<std::set<config::MachineType>> readNodeTypes(ObjectReader& r) {
  std::set<config::MachineType> out;
  KEEL_ASSIGN_OR_RETURN(const auto nodeTypes, r.stringArray("nodeTypes"));
  if (nodeTypes.empty()) {
    return config::fieldError("nodeTypes", "expected one or both of 'controlplane' and 'worker', found none");
  }
  for (size_t i = 0; i < nodeTypes.size(); ++i) {
    const std::string path = fmt::format("nodeTypes[{}]", i);
    config::MachineType type;
    if (nodeTypes[i] == "controlplane") {
      type = config::MachineType::kControlPlane;
    } else if (nodeTypes[i] == "worker") {
      type = config::MachineType::kWorker;
    } else {
      return config::fieldError(path,
                                fmt::format("expected 'controlplane' or 'worker', found '{}'", nodeTypes[i]));
    }
    if (!out.insert(type).second) {
      return config::fieldError(path, fmt::format("'{}' is listed twice", nodeTypes[i]));
    }
  }

  return out;
}

Result<BackendManifest> parseFields(std::string_view text, const fs::path& file,
                                    std::string_view expectedName, const fs::path& libexecDir) {
  KEEL_ASSIGN_OR_RETURN(const auto json, config::parseJson(text));
  KEEL_ASSIGN_OR_RETURN(auto r, ObjectReader::open(json, ""));
  BackendManifest m;
  const fs::path dir = file.parent_path();

  KEEL_ASSIGN_OR_RETURN(m.name, r.requiredString("name"));
  KEEL_RETURN_IF_ERROR(checkName(m.name, expectedName));

  KEEL_ASSIGN_OR_RETURN(m.version, r.requiredString("version"));
  KEEL_RETURN_IF_ERROR(checkVersion(m.version));

  KEEL_ASSIGN_OR_RETURN(const std::string binary, r.requiredString("binary"));
  KEEL_ASSIGN_OR_RETURN(m.binary, resolveBinary(binary, libexecDir));

  KEEL_ASSIGN_OR_RETURN(m.args, r.stringArray("args"));

  KEEL_ASSIGN_OR_RETURN(const auto socket, r.optionalString("socket"));
  m.socket = socket.value_or(m.name + ".sock");
  KEEL_RETURN_IF_ERROR(checkSocket(m.socket));

  KEEL_ASSIGN_OR_RETURN(m.services, r.stringArray("services"));
  KEEL_RETURN_IF_ERROR(checkServices(m.services));

  KEEL_ASSIGN_OR_RETURN(const std::string descriptorSet, r.requiredString("descriptorSet"));
  if (descriptorSet.empty())
    return config::fieldError("descriptorSet", "expected a path, found an empty string");
  m.descriptorSet = resolveBeside(dir, descriptorSet);

  KEEL_ASSIGN_OR_RETURN(m.allowedPeerUids, readAllowedPeerUids(r));

  KEEL_ASSIGN_OR_RETURN(const std::string profile, r.requiredString("sandbox"));
  if (profile.empty())
    return config::fieldError("sandbox", "expected the path of a seccomp profile, found an empty string");
  m.sandbox = resolveBeside(dir, profile);

  KEEL_ASSIGN_OR_RETURN(m.nodeTypes, readNodeTypes(r));

  KEEL_RETURN_IF_ERROR(r.finish());
  return m;
}

}  // namespace

Result<BackendManifest> parseBackendManifest(std::string_view text, const fs::path& file,
                                             std::string_view expectedName, const fs::path& libexecDir) {
  auto parsed = parseFields(text, file, expectedName, libexecDir);
  if (!parsed.ok()) return parsed.status().withContext(file.string());
  return parsed;
}

Result<BackendManifest> readBackendManifest(const fs::path& dir, const std::string& name,
                                            const fs::path& libexecDir) {
  const fs::path file = (fs::absolute(dir) / (name + ".json")).lexically_normal();
  KEEL_ASSIGN_OR_RETURN(const std::string text,
                        readBackendFile(file, kMaxBackendManifestBytes, "backend manifest"));
  return parseBackendManifest(text, file, name, libexecDir);
}

bool runsOn(const BackendManifest& manifest, config::MachineType type) {
  return manifest.nodeTypes.count(type) != 0;
}

Result<std::string> readBackendFile(const fs::path& path, size_t max, std::string_view what) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    const int error = errno;
    const std::string message =
        fmt::format("{} {}: cannot be read: {}", what, path.string(), errnoText(error));
    return error == ENOENT ? notFound(message) : failedPrecondition(message);
  }
  std::string out;
  struct stat st {};
  Status status = Status::ok();
  if (::fstat(fd, &st) != 0) {
    status =
        failedPrecondition(fmt::format("{} {}: cannot be read: {}", what, path.string(), errnoText(errno)));
  } else if (!S_ISREG(st.st_mode)) {
    status = failedPrecondition(fmt::format("{} {}: expected a regular file", what, path.string()));
  } else if (static_cast<size_t>(st.st_size) > max) {
    status = failedPrecondition(
        fmt::format("{} {}: expected at most {} bytes, found {}", what, path.string(), max, st.st_size));
  } else {
    out.resize(max + 1);
    size_t got = 0;
    while (got < out.size()) {
      const ssize_t n = ::read(fd, out.data() + got, out.size() - got);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        status = failedPrecondition(
            fmt::format("{} {}: cannot be read: {}", what, path.string(), errnoText(errno)));
        break;
      }
      if (n == 0) break;
      got += static_cast<size_t>(n);
    }
    // The file may have grown since fstat.
    if (status.isOk() && got > max) {
      status = failedPrecondition(fmt::format("{} {}: expected at most {} bytes", what, path.string(), max));
    }
    out.resize(got);
  }
  ::close(fd);
  if (!status.isOk()) return status;
  return out;
}

}  // namespace keel::machined
