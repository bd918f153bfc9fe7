// trustd_bench: how many node CSRs trustd signs per second on one core, and its memory.
// Starts the real trustd binary pinned to one CPU, drives SignNodeCertificate over its
// Unix socket from client threads pinned elsewhere (CSRs are made before the clock
// starts), and prints throughput, trustd's CPU time per CSR and its RSS. Also prints
// the signing path alone, in process, for comparison; --json writes the same figures for
// scripts (bench/compare.sh). Never asserts on speed.
#include <sched.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <thread>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <grpcpp/grpcpp.h>
#include <nlohmann/json.hpp>
#include <sys/stat.h>

#include "keel/common/clock.h"
#include "keel/pki/pki.h"
#include "keel/security/v1/security.grpc.pb.h"

#include "src/process.h"

namespace {

namespace fs = std::filesystem;
namespace sec = keel::security::v1;
using namespace std::chrono_literals;

constexpr const char* kToken = "bench0.0123456789abcdef";

void pinTo(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  sched_setaffinity(0, sizeof set, &set);
}

// How long trustd gets without calls before its idle RSS is read.
constexpr auto kIdleSettle = 3s;

long rssKib(pid_t pid) {
  std::ifstream in(fmt::format("/proc/{}/status", pid));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return 0;
}

std::vector<std::string> makeCsrs(int n) {
  std::vector<std::string> out;
  for (int i = 0; i < n; ++i) {
    auto key = keel::pki::PrivateKey::generate(keel::pki::KeyType::kEcdsaP256).value();
    keel::pki::CsrOptions o;
    o.subject.commonName = "127.0.1.5";
    o.subjectAltNames.ipAddresses = {"127.0.1.5"};
    out.push_back(keel::pki::CertificateRequest::create(key, o).value().toPem());
  }
  return out;
}

}  // namespace

namespace {

std::shared_ptr<grpc::Channel> trustdChannel(const fs::path& socket) {
  grpc::ChannelArguments args;
  args.SetInt("grpc.use_local_subchannel_pool", 1);  // a connection per client thread
  return grpc::CreateCustomChannel("unix:" + socket.string(), grpc::InsecureChannelCredentials(), args);
}

// One SignNodeCertificate call as a joining node at 127.0.0.1 makes it through apid.
grpc::Status signOne(sec::SecurityService::Stub& stub, const std::string& csr) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + 10s);
  ctx.AddMetadata("keel-peer", "ipv4:127.0.0.1:1");
  sec::SignNodeCertificateRequest req;
  req.set_csr(csr);
  req.set_token(kToken);
  sec::SignNodeCertificateResponse resp;
  return stub.SignNodeCertificate(&ctx, req, &resp);
}

// Waits until trustd signs, then warms it up; false (with trustd's log) when it does not.
bool waitUntilSigning(keel::bench::ChildProcess& process, const fs::path& socket, const std::vector<std::string>& csrs) {
  // A fresh channel each attempt: a channel that failed to connect backs off for seconds.
  bool up = false;
  std::string lastError;
  for (int i = 0; i < 100 && !up && process.running(); ++i) {
    auto probe = sec::SecurityService::NewStub(trustdChannel(socket));
    const grpc::Status s = signOne(*probe, csrs[0]);
    up = s.ok();
    if (!up) {
      lastError = s.error_message();
      std::this_thread::sleep_for(50ms);
    }
  }
  if (!up) {
    std::fprintf(stderr, "trustd_bench: trustd did not answer (%s; %s):\n%s\n", lastError.c_str(),
                 process.running() ? "still running" : "exited", process.logTail().c_str());
    return false;
  }
  auto stub = sec::SecurityService::NewStub(trustdChannel(socket));
  for (int i = 0; i < 50; ++i) (void)signOne(*stub, csrs[i % csrs.size()]);
  return true;
}

// trustd's config in `dir`: its socket there, the CA, one join token, no rate limit.
void writeConfig(const fs::path& dir, const keel::pki::CertificateAuthority& ca) {
  const nlohmann::json config = {
      {"socket", (dir / "trustd.sock").string()},
      {"nodeAddress", "127.0.1.1"},
      {"clusterName", "bench"},
      {"apiEndpoint", "127.0.1.1:50000"},
      {"ca", {{"crt", ca.certificate.toPem()}, {"key", ca.key.toPem()}}},
      {"joinTokens", {kToken}},
      {"allowedUids", {getuid()}},
      // Every request comes from one address here: no rate limit in the way.
      {"join", {{"burst", 10000}, {"ratePerMinute", 600000}, {"extraSans", {"127.0.1.0/24"}}}}};
  {
    std::ofstream out(dir / "config.json");
    out << config.dump();
  }
  chmod((dir / "config.json").c_str(), 0600);
}

// CSRs per second signed in this process by libs/pki alone, for `seconds`.
double signInProcess(const keel::pki::CertificateAuthority& ca, const std::vector<std::string>& csrs, double seconds,
                     const keel::Clock& clock) {
  const auto inStart = std::chrono::steady_clock::now();
  long inProcess = 0;
  keel::pki::IssuePolicy policy;
  policy.extendedKeyUsages = {keel::pki::ExtendedKeyUsage::kServerAuth};
  policy.allowedSubjectAltNames.ipAddresses = {"127.0.1.5"};
  while (std::chrono::steady_clock::now() - inStart < std::chrono::duration<double>(seconds)) {
    auto csr =
        keel::pki::CertificateRequest::fromPem(csrs[static_cast<size_t>(inProcess) % csrs.size()]).value();
    (void)keel::pki::issueCertificate(ca, csr, policy, clock).value();
    ++inProcess;
  }
  const double inElapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - inStart).count();
  return static_cast<double>(inProcess) / inElapsed;
}

struct Figures {
  std::string trustd;
  int clients = 0;
  double elapsed = 0;
  long signedCount = 0;
  long failed = 0;
  double cpuSeconds = 0;
  long rss = 0;
  long idleRss = 0;
  double inProcessRate = 0;
};

// The figures on stdout, and in `jsonPath` when given; false when that cannot be written.
bool report(const Figures& f, const std::string& jsonPath) {
  std::printf("trustd_bench: %d client thread(s), trustd pinned to CPU 0, %.1f s\n", f.clients, f.elapsed);
  std::printf("  %-44s %10.0f /s\n", "SignNodeCertificate through trustd.sock", static_cast<double>(f.signedCount) / f.elapsed);
  std::printf("  %-44s %10.0f us\n", "trustd CPU time per CSR",
              f.cpuSeconds * 1e6 / std::max(1L, f.signedCount));
  std::printf("  %-44s %10.1f MiB\n", "trustd RSS after the run", f.rss / 1024.0);
  std::printf("  %-44s %10.1f MiB\n", "trustd RSS idle, 3 s after the run", f.idleRss / 1024.0);
  std::printf("  %-44s %10.0f /s\n", "signing path alone, in process, one core", f.inProcessRate);
  std::printf("  %-44s %10ld\n", "failed calls", f.failed);
  if (!jsonPath.empty()) {
    // in_process: measured with this binary's own libs/pki, whichever trustd was given.
    const auto row = [](const char* label, const char* better, double value, bool inProcessRow) {
      return nlohmann::json{
          {"label", label}, {"better", better}, {"value", value}, {"in_process", inProcessRow}};
    };
    const double perCsrUs = f.cpuSeconds * 1e6 / static_cast<double>(std::max(1L, f.signedCount));
    const nlohmann::json out = {
        {"tool", "trustd_bench"},
        {"run", {{"trustd", f.trustd}, {"seconds", f.elapsed}, {"clients", f.clients}}},
        {"failed_calls", f.failed},
        {"rows",
         {row("trustd SignNodeCertificate (CSRs/s)", "higher",
              static_cast<double>(f.signedCount) / f.elapsed, false),
          row("trustd CPU/CSR (us)", "lower", perCsrUs, false),
          row("trustd RSS (MiB)", "lower", static_cast<double>(f.rss) / 1024.0, false),
          row("trustd RSS idle (MiB)", "lower", static_cast<double>(f.idleRss) / 1024.0, false),
          row("in-process signing (CSRs/s)", "higher", f.inProcessRate, true)}}};
    std::ofstream file(jsonPath, std::ios::trunc);
    file << out.dump(2) << "\n";
    if (!file.flush()) {
      std::fprintf(stderr, "trustd_bench: cannot write %s\n", jsonPath.c_str());
      return false;
    }
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"trustd_bench: node CSRs signed per second by trustd on one core, and trustd's RSS"};
  std::string trustd;
  double seconds = 5;
  int clients = 4;
  std::string jsonPath;
  app.add_option("--trustd", trustd, "The trustd binary")->required();
  app.add_option("--seconds", seconds, "How long to sign")->capture_default_str();
  app.add_option("--clients", clients, "Concurrent client threads")->capture_default_str();
  app.add_option("--json", jsonPath, "Also write the figures to this JSON file");
  CLI11_PARSE(app, argc, argv);
  const int cpus = static_cast<int>(std::thread::hardware_concurrency());

  char tmpl[] = "/tmp/trustd-bench-XXXXXX";
  const fs::path dir = mkdtemp(tmpl);
  keel::SystemClock clock;
  keel::pki::CaOptions caOptions;
  caOptions.subject.commonName = "keel-os";
  auto ca = keel::pki::createSelfSignedCa(caOptions, clock).value();
  writeConfig(dir, ca);

  const auto csrs = makeCsrs(256);
  // trustd inherits CPU 0 only; the clients then move to the other CPUs.
  pinTo(0);
  auto process = keel::bench::ChildProcess::start(
      {trustd, "--config", (dir / "config.json").string(), "--log-level", "warn"}, dir / "trustd.log");
  if (!process.ok()) {
    std::fprintf(stderr, "trustd_bench: %s\n", process.status().toString().c_str());
    return 1;
  }
  if (cpus > 1) {
    cpu_set_t set;
    CPU_ZERO(&set);
    for (int c = 1; c < cpus; ++c) CPU_SET(c, &set);
    sched_setaffinity(0, sizeof set, &set);
  }
  const auto channel = [&dir] { return trustdChannel(dir / "trustd.sock"); };
  if (!waitUntilSigning(*process, dir / "trustd.sock", csrs)) return 1;

  std::atomic<bool> stop{false};
  std::atomic<long> signedCount{0};
  std::atomic<long> failed{0};
  const uint64_t ticksBefore = keel::bench::processCpuTicks(process->pid());
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (int t = 0; t < clients; ++t) {
    threads.emplace_back([&, t] {
      auto stub = sec::SecurityService::NewStub(channel());
      for (size_t i = static_cast<size_t>(t); !stop; i += static_cast<size_t>(clients)) {
        if (signOne(*stub, csrs[i % csrs.size()]).ok()) {
          ++signedCount;
        } else {
          ++failed;
        }
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  for (auto& t : threads) t.join();
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const double cpuSeconds = static_cast<double>(keel::bench::processCpuTicks(process->pid()) - ticksBefore) /
                            static_cast<double>(sysconf(_SC_CLK_TCK));
  const long rss = rssKib(process->pid());
  // Idle: trustd hands its free heap back to the kernel once it has been quiet for a
  // second after work (keel/common/heap.h).
  std::this_thread::sleep_for(kIdleSettle);
  const long idleRss = rssKib(process->pid());
  process->stop(2s);

  // The signing path alone: parse and verify the CSR, apply the policy, sign.
  pinTo(0);
  const double inProcessRate = signInProcess(ca, csrs, std::min(seconds, 2.0), clock);
  fs::remove_all(dir);

  const Figures figures{.trustd = trustd,
                        .clients = clients,
                        .elapsed = elapsed,
                        .signedCount = signedCount.load(),
                        .failed = failed.load(),
                        .cpuSeconds = cpuSeconds,
                        .rss = rss,
                        .idleRss = idleRss,
                        .inProcessRate = inProcessRate};
  if (!report(figures, jsonPath)) return 1;
  return failed > 0 || signedCount == 0 ? 1 : 0;
}
