#include "fixture.h"

#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <thread>

#include <fmt/format.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "keel/config/file_io.h"
#include "keel/config/generate.h"
#include "keel/config/random.h"
#include "keel/pki/pki.h"
#include "keel/common/status.h"

namespace keel::bench {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

Result<TempDir> TempDir::create(const std::string& prefix) {
  const char* base = std::getenv("TMPDIR");
  std::string templ = std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/" + prefix + "XXXXXX";
  if (mkdtemp(templ.data()) == nullptr)
    return internalError("mkdtemp " + templ + ": " + errnoText(errno));
  return TempDir(templ);
}

TempDir::~TempDir() {
  if (path_.empty()) return;
  std::error_code ec;
  fs::remove_all(path_, ec);
}

Result<config::SecretsBundle> makeSecrets() {
  SystemClock clock;
  config::SystemRandom random;
  return config::generateSecrets(config::SecretsOptions{}, clock, random);
}

Result<TlsFiles> makeAdminClient(const config::SecretsBundle& secrets) {
  SystemClock clock;
  config::ClientCertOptions options;
  options.commonName = "keel-bench";
  options.roles = {"os:admin"};
  options.ttl = std::chrono::hours(24);
  KEEL_ASSIGN_OR_RETURN(auto ctx, config::generateClientContext(secrets, options, clock));
  return TlsFiles{ctx.ca, ctx.crt, ctx.key};
}

Result<TlsFiles> makeServingCert(const config::SecretsBundle& secrets, const std::string& ip) {
  SystemClock clock;
  KEEL_ASSIGN_OR_RETURN(auto key, pki::PrivateKey::generate(pki::KeyType::kEcdsaP256));
  pki::CsrOptions csr;
  csr.subject.commonName = "keel-bench-nginx";
  csr.subjectAltNames.dnsNames = {"localhost"};
  csr.subjectAltNames.ipAddresses = {ip};
  KEEL_ASSIGN_OR_RETURN(auto request, pki::CertificateRequest::create(key, csr));
  pki::IssuePolicy policy;
  policy.extendedKeyUsages = {pki::ExtendedKeyUsage::kServerAuth};
  policy.keyUsage = pki::kDigitalSignature;
  policy.allowAnySubjectAltName = true;
  policy.ttl = std::chrono::hours(24);
  policy.notBeforeSkew = std::chrono::minutes(5);
  KEEL_ASSIGN_OR_RETURN(auto cert, pki::issueCertificate(secrets.osCa, request, policy, clock));
  // The same chain apid presents (machined writes apid's serving file so): the
  // certificate, then the OS CA's.
  return TlsFiles{secrets.osCa.certificate.toPem(), cert.toPem() + secrets.osCa.certificate.toPem(), key.toPem()};
}

std::shared_ptr<grpc::ChannelCredentials> mtlsCredentials(const TlsFiles& client) {
  grpc::SslCredentialsOptions options;
  options.pem_root_certs = client.ca;
  options.pem_cert_chain = client.crt;
  options.pem_private_key = client.key;
  return grpc::SslCredentials(options);
}

Result<std::unique_ptr<Node>> Node::start(const fs::path& dir, const config::SecretsBundle& secrets,
                                          const Options& options) {
  config::MachineConfigOptions mco;
  mco.clusterName = "keel-bench";
  mco.endpoint.host = options.address;
  mco.endpoint.port = options.apiPort.value_or(config::kDefaultApiPort);
  KEEL_ASSIGN_OR_RETURN(auto configs, config::generateMachineConfigs(secrets, mco));
  // No backend daemons: nothing measured needs one, and a node config without
  // machine.backends is one older machined builds read too (bench/compare.sh).
  configs.controlPlane.backends.clear();
  const fs::path configPath = dir / "controlplane.json";
  KEEL_RETURN_IF_ERROR(config::writePrivateFile(
      configPath, config::serializeMachineConfig(configs.controlPlane), config::Overwrite::kYes));
  const fs::path root = dir / "root";
  std::vector<std::string> argv = {options.machined.string(),   "--root",      root.string(),   "--config",
                                   configPath.string(),         "--address",   options.address, "--libexec",
                                   options.libexecDir.string(), "--log-level", "warn"};
  if (options.apiPort) {
    argv.emplace_back("--api-port");
    argv.push_back(std::to_string(*options.apiPort));
  }
  if (options.joinPort) {
    argv.emplace_back("--join-port");
    argv.push_back(std::to_string(*options.joinPort));
  }
  KEEL_ASSIGN_OR_RETURN(auto process, ChildProcess::start(argv, dir / "machined.log"));
  std::unique_ptr<Node> node(new Node(root, std::move(process)));
  const Target direct = node->directTarget();
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  Status last = unavailable("machined.sock did not appear");
  while (std::chrono::steady_clock::now() < deadline) {
    if (!node->process_.running()) {
      return unavailable("machined exited during startup; its log:\n" + node->process_.logTail());
    }
    if (fs::exists(node->socket())) {
      last = callVersionOnce(direct, 1000ms);
      if (last.isOk()) return node;
    }
    std::this_thread::sleep_for(50ms);
  }
  return unavailable("machined did not answer Version on " + node->socket().string() + " within 20 s (" +
                     last.toString() + "); its log:\n" + node->process_.logTail());
}

Node::~Node() {
  stop();
}

Target Node::directTarget() const {
  return Target{
      "unix:" + socket().string(), grpc::InsecureChannelCredentials(), {{"keel-roles", "os:admin"}}};
}

bool binaryAcceptsFlag(const fs::path& binary, const std::string& flag, const fs::path& scratchDir) {
  const fs::path log = scratchDir / ("help-" + binary.filename().string() + ".txt");
  auto p = ChildProcess::start({binary.string(), "--help"}, log);
  if (!p.ok()) return false;
  p->waitExit(5s);
  return readTextFile(log).find(flag) != std::string::npos;
}

std::optional<fs::path> findNginx() {
  std::vector<fs::path> candidates = {"/usr/sbin/nginx"};
  if (const char* path = std::getenv("PATH")) {
    std::string p = path;
    size_t start = 0;
    while (start <= p.size()) {
      const size_t end = std::min(p.find(':', start), p.size());
      if (end > start) candidates.push_back(fs::path(p.substr(start, end - start)) / "nginx");
      start = end + 1;
    }
  }
  for (const auto& c : candidates) {
    if (access(c.c_str(), X_OK) == 0) return c;
  }
  return std::nullopt;
}

std::string nginxConfig(const fs::path& dir, const Nginx::Options& options, bool runAsRoot) {
  const std::string d = dir.string();
  // As root nginx would switch its workers to `nobody`, which machined's peer check
  // refuses; the invoking uid is the one machined allows in --root mode.
  const std::string user = runAsRoot ? "user root;\n" : "";
  const std::string accessLog =
      options.accessLog ? fmt::format("access_log {}/access.log;", d) : "access_log off;";
  return fmt::format(R"(# Generated by keel_bench: nginx as a reference mTLS gRPC proxy.
{user}daemon off;
master_process on;
worker_processes {workers};
pid {d}/nginx.pid;
error_log {d}/error.log warn;

events {{
  worker_connections 4096;
}}

http {{
  {accessLog}
  client_body_temp_path {d}/tmp/body;
  proxy_temp_path {d}/tmp/proxy;
  fastcgi_temp_path {d}/tmp/fastcgi;
  uwsgi_temp_path {d}/tmp/uwsgi;
  scgi_temp_path {d}/tmp/scgi;

  upstream backend {{
    server unix:{socket};
    keepalive 32;
    keepalive_requests 1000000;
  }}

  server {{
    listen {address}:{port} ssl http2;
    ssl_protocols TLSv1.3;
    ssl_certificate {d}/server.crt;
    ssl_certificate_key {d}/server.key;
    ssl_client_certificate {d}/ca.crt;
    ssl_verify_client on;
    # Also caps the requests of an HTTP/2 connection: nginx 1.22 treats
    # http2_max_requests as obsolete and warns about it.
    keepalive_requests 1000000;

    location / {{
      grpc_pass grpc://backend;
    }}
  }}
}}
)",
                     fmt::arg("user", user), fmt::arg("workers", options.workers), fmt::arg("d", d),
                     fmt::arg("accessLog", accessLog), fmt::arg("socket", options.backendSocket.string()),
                     fmt::arg("address", options.address), fmt::arg("port", options.port));
}

Result<std::unique_ptr<Nginx>> Nginx::start(const fs::path& dir, const Options& options) {
  std::error_code ec;
  fs::create_directories(dir / "tmp", ec);
  if (ec) return internalError("cannot create " + (dir / "tmp").string() + ": " + ec.message());
  KEEL_RETURN_IF_ERROR(
      config::writePrivateFile(dir / "server.key", options.serving.key, config::Overwrite::kYes));
  KEEL_RETURN_IF_ERROR(
      config::writePrivateFile(dir / "server.crt", options.serving.crt, config::Overwrite::kYes));
  KEEL_RETURN_IF_ERROR(config::writePrivateFile(dir / "ca.crt", options.serving.ca, config::Overwrite::kYes));
  const fs::path conf = dir / "nginx.conf";
  KEEL_RETURN_IF_ERROR(
      config::writePrivateFile(conf, nginxConfig(dir, options, geteuid() == 0), config::Overwrite::kYes));
  // -e: nginx opens its default error log before it reads the config unless told otherwise.
  const std::vector<std::string> base = {
      options.binary.string(), "-p", dir.string(), "-c", conf.string(), "-e", (dir / "error.log").string()};
  {
    auto check = base;
    check.emplace_back("-t");
    KEEL_ASSIGN_OR_RETURN(auto p, ChildProcess::start(check, dir / "nginx-t.log"));
    const int status = p.waitExit(10s);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      return invalidArgument("nginx -t refused the generated config:\n" + p.logTail());
    }
  }
  KEEL_ASSIGN_OR_RETURN(auto process, ChildProcess::start(base, dir / "nginx.out"));
  std::unique_ptr<Nginx> nginx(new Nginx(dir, std::move(process)));
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (std::chrono::steady_clock::now() < deadline) {
    if (!nginx->process_.running()) {
      return unavailable("nginx exited during startup; error.log:\n" + readTextFile(dir / "error.log") +
                         nginx->process_.logTail());
    }
    if (tcpPortAccepts(options.address, options.port) && !childrenOf(nginx->process_.pid()).empty())
      return nginx;
    std::this_thread::sleep_for(20ms);
  }
  return unavailable(fmt::format("nginx did not accept connections on {}:{} within 10 s; error.log:\n{}",
                                 options.address, options.port, readTextFile(dir / "error.log")));
}

Nginx::~Nginx() {
  stop();
}

std::vector<pid_t> Nginx::pids() const {
  std::vector<pid_t> all = {process_.pid()};
  for (const pid_t c : childrenOf(process_.pid())) all.push_back(c);
  return all;
}

}  // namespace keel::bench
