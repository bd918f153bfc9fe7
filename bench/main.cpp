// keel_bench: measures the machine API's Version call directly on machined.sock, through
// apid and through nginx as a reference mTLS proxy, and prints them side by side.
// Sets up and tears down everything it measures; see bench/README.md.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <map>
#include <optional>
#include <thread>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <sys/stat.h>

#include "src/fixture.h"
#include "src/load.h"
#include "src/process.h"
#include "src/report.h"

namespace {

namespace fs = std::filesystem;
using namespace keel::bench;
using namespace std::chrono_literals;

// ctest's "skipped" code: nginx is missing and --require-nginx was given.
constexpr int kExitSkipped = 77;

// How long the daemons get without calls before their idle RSS is read.
constexpr auto kIdleSettle = 3s;

std::atomic<bool> stopRequested{false};

struct Flags {
  fs::path buildDir;
  std::string duration = "5s";
  std::string warmup = "1s";
  std::string concurrency = "1,32";
  int channels = 1;
  int pollers = 2;
  int handshakeConcurrency = 4;
  int streams = 1000;  // open at once through apid for its memory row
  std::string handshakeDuration;  // default: --duration
  int rounds = 3;
  std::string address = "127.0.1.1";
  std::string nginxBinary;
  bool requireNginx = false;
  bool smoke = false;
  bool nginxAccessLog = true;
  bool noNginx = false;
  std::string jsonPath;  // empty: no JSON
  std::string apidEndpoint;
  std::string apidCa, apidCert, apidKey;
  int apidPid = 0;
};

// One measured path: how to reach it and which processes to charge CPU to.
struct Path {
  std::string name;
  std::optional<Target> target;  // nullopt: skipped
  std::string skipReason;
  std::function<std::vector<pid_t>()> proxyPids;  // empty for direct
  bool backendIsOurMachined = true;
};

struct Measured {
  std::optional<LoadResult> load;
  double proxyCpuUs = 0;
  double machinedCpuUs = 0;
  std::string error;
};


std::string runAndCapture(const std::vector<std::string>& argv, const fs::path& log) {
  auto p = ChildProcess::start(argv, log);
  if (!p.ok()) return "";
  p->waitExit(5s);
  std::string out = readTextFile(log);
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

// Waits for the apid that machined started: its serving certificate and CA on disk and
// its port open. Returns the reason when it does not come up.
keel::Result<Target> waitForNodeApid(const fs::path& root, const std::string& address, uint16_t port,
                                     const TlsFiles& admin) {
  const fs::path dir = root / "var/lib/keel/apid";
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (std::chrono::steady_clock::now() < deadline && !stopRequested) {
    if (fs::exists(dir / "server.crt") && fs::exists(dir / "ca.crt") && tcpPortAccepts(address, port)) {
      TlsFiles files = admin;
      files.ca = readTextFile(dir / "ca.crt");
      Target t{fmt::format("{}:{}", address, port), mtlsCredentials(files), {}};
      const keel::Status s = callVersionOnce(t, 5000ms);
      if (!s.isOk()) return keel::unavailable("Version through apid failed: " + s.toString());
      return t;
    }
    std::this_thread::sleep_for(100ms);
  }
  return keel::unavailable(fmt::format(
      "no {}/server.crt and ca.crt, or nothing listening on {}:{}, after 20 s", dir.string(), address, port));
}

// machined in `dir`, which starts apid (and trustd) from a libexec directory holding
// `apid` and `trustd` when they are given and built, on ports picked now (written to
// `apiPort`): another node on the same address (a local cluster, another keel_bench) may
// hold the defaults.
keel::Result<std::unique_ptr<Node>> startNode(const Flags& flags, const fs::path& dir,
                                              const keel::config::SecretsBundle& secrets,
                                        const fs::path& machined, const fs::path& apid, const fs::path& trustd,
                                        uint16_t& apiPort) {
  const fs::path libexec = dir / "libexec";
  fs::create_directories(libexec);
  const bool haveApid = !apid.empty();
  if (haveApid) fs::create_symlink(apid, libexec / "apid");
  if (access(trustd.c_str(), X_OK) == 0) fs::create_symlink(trustd, libexec / "trustd");
  Node::Options nodeOptions{machined, libexec, flags.address, std::nullopt, std::nullopt};
  for (const auto& [flag, slot] :
       {std::pair{"--api-port", &nodeOptions.apiPort}, std::pair{"--join-port", &nodeOptions.joinPort}}) {
    if (!haveApid || !binaryAcceptsFlag(machined, flag, dir)) continue;
    auto port = pickFreePort(flags.address);
    // The kernel may hand out the port it just gave the API again.
    if (port.ok() && nodeOptions.apiPort == *port) port = pickFreePort(flags.address);
    if (!port.ok()) return port.status();
    *slot = *port;
  }
  if (nodeOptions.apiPort) apiPort = *nodeOptions.apiPort;
  return Node::start(dir, secrets, nodeOptions);
}

// The apid path: an apid given with --apid-endpoint, or the node's own once it answers;
// `missing` says why there is none.
void setUpApid(const Flags& flags, const std::string& missing, const fs::path& nodeRoot, uint16_t apiPort,
               const TlsFiles& admin, pid_t machinedPid, Path& path) {
  if (!flags.apidEndpoint.empty()) {
    TlsFiles files{readTextFile(flags.apidCa), readTextFile(flags.apidCert), readTextFile(flags.apidKey)};
    path.target = Target{flags.apidEndpoint, mtlsCredentials(files), {}};
    const pid_t pid = flags.apidPid;
    path.proxyPids = [pid] { return pid > 0 ? std::vector<pid_t>{pid} : std::vector<pid_t>{}; };
    path.backendIsOurMachined = false;
    return;
  }
  if (!missing.empty()) {
    path.skipReason = missing;
    return;
  }
  auto t = waitForNodeApid(nodeRoot, flags.address, apiPort, admin);
  if (t.ok()) {
    path.target = *t;
    path.proxyPids = [machinedPid] { return descendantsNamed(machinedPid, "apid"); };
  } else {
    path.skipReason = t.status().message();
  }
}

// The nginx path: nginx started with its own config in `dir`/nginx, in front of
// `backendSocket`; `path` gets its target, or why it is skipped. The running nginx, if any.
std::unique_ptr<Nginx> setUpNginx(const Flags& flags, const std::optional<fs::path>& nginxBinary, const fs::path& dir,
                                  const fs::path& backendSocket, const TlsFiles& serving, const TlsFiles& admin,
                                  Path& path) {
  std::unique_ptr<Nginx> nginx;
  if (flags.noNginx) {
    path.skipReason = "skipped (--no-nginx)";
  } else if (!nginxBinary) {
    path.skipReason = "no nginx executable (apt-get install nginx)";
  } else {
    auto port = pickFreePort("127.0.0.1");
    Nginx::Options o;
    o.binary = *nginxBinary;
    o.address = "127.0.0.1";
    o.port = port.ok() ? *port : 0;
    o.backendSocket = backendSocket;
    o.serving = serving;
    o.accessLog = flags.nginxAccessLog;
    fs::create_directories(dir / "nginx");
    auto started =
        port.ok() ? Nginx::start(dir / "nginx", o) : keel::Result<std::unique_ptr<Nginx>>(port.status());
    if (started.ok()) {
      nginx = std::move(started).value();
      Target t{fmt::format("127.0.0.1:{}", o.port), mtlsCredentials(admin), {{"keel-roles", "os:admin"}}};
      const keel::Status s = callVersionOnce(t, 5000ms);
      if (s.isOk()) {
        path.target = t;
        Nginx* n = nginx.get();
        path.proxyPids = [n] { return n->pids(); };
      } else {
        path.skipReason = "Version through nginx failed: " + s.toString();
      }
    } else {
      path.skipReason = started.status().toString();
    }
  }
  return nginx;
}

// Every concurrency level, round after round, on every path: a row per figure, with the
// median over rounds. True when a run failed.
bool measureLoad(const Flags& flags, const std::vector<Path>& paths, const std::vector<int>& concurrencies,
                 std::chrono::microseconds warmup, std::chrono::microseconds duration, pid_t machinedPid,
                 double usPerTick, std::vector<TableRow>& rows) {
  bool failed = false;
  for (const int c : concurrencies) {
    // One slot per round and path; a round that failed leaves its slot empty.
    std::array<std::vector<std::optional<Measured>>, 3> m;
    for (int round = 0; round < flags.rounds && !stopRequested; ++round) {
      for (auto& slots : m) slots.emplace_back();
      for (size_t i = 0; i < paths.size() && !stopRequested; ++i) {
        const Path& p = paths[i];
        if (!p.target) continue;
        LoadOptions lo;
        lo.concurrency = c;
        lo.channels = flags.channels;
        lo.pollers = flags.pollers;
        lo.warmup = warmup;
        lo.duration = duration;
        uint64_t proxy0 = 0, proxy1 = 0, mach0 = 0, mach1 = 0;
        auto start = [&] {
          if (p.proxyPids) proxy0 = processCpuTicks(p.proxyPids());
          mach0 = processCpuTicks(machinedPid);
        };
        auto end = [&] {
          if (p.proxyPids) proxy1 = processCpuTicks(p.proxyPids());
          mach1 = processCpuTicks(machinedPid);
        };
        auto r = runLoad(*p.target, lo, start, end, stopRequested);
        if (!r.ok()) {
          std::printf("%s c=%d: %s\n", p.name.c_str(), c, r.status().toString().c_str());
          failed = true;
          continue;
        }
        Measured one;
        one.load = *r;
        const double calls = static_cast<double>(std::max<uint64_t>(r->calls, 1));
        one.proxyCpuUs = static_cast<double>(proxy1 - proxy0) * usPerTick / calls;
        one.machinedCpuUs = static_cast<double>(mach1 - mach0) * usPerTick / calls;
        if (r->errors > 0) {
          std::printf("%s c=%d: %llu failed calls, first: %s\n", p.name.c_str(), c,
                      static_cast<unsigned long long>(r->errors), r->firstError.c_str());
        }
        if (r->calls == 0) failed = true;
        m[i].back() = std::move(one);
      }
    }
    auto row = [&](std::string label, Better better, bool applies(const Path&), auto get) {
      std::array<std::vector<std::optional<double>>, 3> perRound;
      for (size_t i = 0; i < 3; ++i) {
        if (!applies(paths[i])) continue;
        for (const auto& one : m[i]) perRound[i].push_back(one ? std::optional<double>(get(*one)) : std::nullopt);
      }
      rows.push_back(summarize(std::move(label), better, perRound));
    };
    auto any = [](const Path&) { return true; };
    auto proxied = [](const Path& p) { return static_cast<bool>(p.proxyPids); };
    auto ourMachined = [](const Path& p) { return p.backendIsOurMachined; };
    const std::string pre = fmt::format("c={:<3} ", c);
    row(pre + "requests/s", Better::kHigher, any, [](const Measured& x) { return x.load->requestsPerSecond(); });
    row(pre + "p50 latency (us)", Better::kLower, any, [](const Measured& x) { return double(x.load->p50Us); });
    row(pre + "p99 latency (us)", Better::kLower, any, [](const Measured& x) { return double(x.load->p99Us); });
    row(pre + "proxy CPU/call (us)", Better::kLower, proxied, [](const Measured& x) { return x.proxyCpuUs; });
    row(pre + "machined CPU/call (us)", Better::kLower, ourMachined,
        [](const Measured& x) { return x.machinedCpuUs; });
  }

  return failed;
}

// New mTLS connections per second through each proxy, and the proxy's CPU per handshake.
// True when a path made none.
bool measureHandshakes(const Flags& flags, const std::vector<Path>& paths, std::chrono::microseconds handshakeDuration,
                       double usPerTick, std::vector<TableRow>& rows) {
  bool failed = false;
  std::array<std::vector<std::optional<double>>, 3> hsRates, hsCpus;
  for (int round = 0; round < flags.rounds && !stopRequested; ++round) {
    for (size_t i = 0; i < paths.size(); ++i) {
      hsRates[i].emplace_back();
      hsCpus[i].emplace_back();
    }
    for (size_t i = 1; i < paths.size() && !stopRequested; ++i) {
      const Path& p = paths[i];
      if (!p.target) continue;
      uint64_t proxy0 = 0, proxy1 = 0;
      auto r = runHandshakes(
          *p.target, flags.handshakeConcurrency, handshakeDuration,
          [&] { proxy0 = p.proxyPids ? processCpuTicks(p.proxyPids()) : 0; },
          [&] { proxy1 = p.proxyPids ? processCpuTicks(p.proxyPids()) : 0; }, stopRequested);
      if (r.errors > 0) {
        std::printf("%s handshakes: %llu failed, first: %s\n", p.name.c_str(),
                    static_cast<unsigned long long>(r.errors), r.firstError.c_str());
      }
      if (r.handshakes == 0) {
        failed = true;
        continue;
      }
      hsRates[i].back() = r.perSecond();
      if (p.proxyPids)
        hsCpus[i].back() = static_cast<double>(proxy1 - proxy0) * usPerTick / static_cast<double>(r.handshakes);
    }
  }
  rows.push_back(summarize(fmt::format("handshakes/s (c={})", flags.handshakeConcurrency), Better::kHigher, hsRates));
  rows.push_back(summarize("proxy CPU/handshake (us)", Better::kLower, hsCpus));

  return failed;
}

// Memory: each daemon's resident set when idle, and apid's with many streams open. True
// when apid did not open them all.
bool measureMemory(const Flags& flags, const std::vector<Path>& paths, pid_t machinedPid, std::vector<TableRow>& rows) {
  bool failed = false;
  // Memory: each daemon's resident set when idle, and apid's with many streams open.
  if (paths[1].target && paths[1].proxyPids && !stopRequested) {
    // Idle: no calls for kIdleSettle. A Keel daemon hands its free heap back to the kernel
    // once it has been quiet for a second after work (keel/common/heap.h); read at once,
    // the figure would show the last round's garbage instead.
    const auto settled = std::chrono::steady_clock::now() + kIdleSettle;
    while (std::chrono::steady_clock::now() < settled && !stopRequested) std::this_thread::sleep_for(100ms);
    const auto apidPids = paths[1].proxyPids();
    const pid_t apidPid = apidPids.empty() ? 0 : apidPids.front();
    std::array<std::vector<std::optional<double>>, 3> idle, streaming;
    idle[1].push_back(apidPid > 0 ? std::optional<double>(residentKib(apidPid) / 1024.0) : std::nullopt);
    if (paths[2].target && paths[2].proxyPids) {
      double nginxKib = 0;
      for (const pid_t pid : paths[2].proxyPids()) nginxKib += static_cast<double>(residentKib(pid));
      idle[2].push_back(nginxKib / 1024.0);
    }
    rows.push_back(summarize("proxy RSS idle (MiB)", Better::kLower, idle));
    const auto trustdPids = descendantsNamed(machinedPid, "trustd");
    const pid_t trustdPid = trustdPids.empty() ? 0 : trustdPids.front();
    const auto mib = [](pid_t pid, long (*kib)(pid_t)) {
      return pid > 0 ? static_cast<double>(kib(pid)) / 1024.0 : 0.0;
    };
    std::printf("idle RSS: machined %.1f MiB, trustd %.1f MiB, apid %.1f MiB\n", mib(machinedPid, residentKib),
                mib(trustdPid, residentKib), mib(apidPid, residentKib));
    std::printf("  of which file-backed (executable, shared libraries): machined %.1f, trustd %.1f, apid %.1f MiB\n",
                mib(machinedPid, residentFileKib), mib(trustdPid, residentFileKib), mib(apidPid, residentFileKib));
    const auto held = holdStreams(
        *paths[1].target, flags.streams, 90,
        [&] { streaming[1].push_back(apidPid > 0 ? std::optional<double>(residentKib(apidPid) / 1024.0) : std::nullopt); },
        stopRequested);
    if (held.opened < flags.streams) {
      std::printf("apid streams: %d of %d opened%s%s\n", held.opened, flags.streams,
                  held.firstError.empty() ? "" : ", first error: ", held.firstError.c_str());
      failed = true;
    }
    rows.push_back(summarize(fmt::format("proxy RSS, {} streams (MiB)", flags.streams), Better::kLower, streaming));
  }

  return failed;
}

// What each path is: those that are not available and why, apid's threads, nginx's
// setup, the load generator's.
void describePaths(const Flags& flags, const std::vector<Path>& paths, bool nginx, const fs::path& dir,
                   std::map<std::string, std::string>& runInfo) {
  for (const auto& p : paths) {
    if (!p.target) std::printf("%s not available: %s\n", p.name.c_str(), p.skipReason.c_str());
  }
  if (paths[1].target && paths[1].proxyPids) {
    for (const pid_t pid : paths[1].proxyPids()) {
      std::printf("apid:     pid %d, %d threads\n", pid, threadCount(pid));
      runInfo["apid_threads"] = std::to_string(threadCount(pid));
    }
  }
  if (nginx) {
    std::printf(
        "nginx:    worker_processes 1 (+ master), TLS 1.3 only, ssl_verify_client on, access_log %s, "
        "upstream keepalive 32 to machined.sock\n",
        flags.nginxAccessLog ? (dir / "nginx/access.log").c_str() : "off");
  }
  std::printf("client:   %d channel(s) per target, %d completion-queue threads; handshakes: %d threads, %s\n",
              flags.channels, flags.pollers, flags.handshakeConcurrency,
              (flags.handshakeDuration.empty() ? flags.duration : flags.handshakeDuration).c_str());
  std::fflush(stdout);
}

// The table on stdout, and the JSON form in --json; false when that file cannot be written.
bool report(const Flags& flags, const std::vector<TableRow>& rows, const std::map<std::string, std::string>& runInfo,
            double usPerTick) {
  std::printf("\n%s", formatTable(rows).c_str());
  std::printf(
      "\nCPU: utime+stime deltas from /proc/<pid>/stat over the measured window (tick %.0f us); proxy = "
      "apid, or nginx master+workers. Latency measured at the client. All processes share this "
      "machine's cores.\n",
      usPerTick);
  if (!flags.jsonPath.empty()) {
    std::ofstream out(flags.jsonPath, std::ios::trunc);
    out << formatJson(rows, runInfo);
    if (!out.flush()) {
      std::fprintf(stderr, "keel_bench: cannot write %s\n", flags.jsonPath.c_str());
      return false;
    }
  }
  return true;
}

// The nginx binary to compare with: --nginx, else the one installed; none with --no-nginx
// or when it cannot be run.
std::optional<fs::path> nginxToUse(const Flags& flags) {
  if (flags.noNginx) return std::nullopt;
  std::optional<fs::path> nginxBinary =
      flags.nginxBinary.empty() ? findNginx() : std::optional<fs::path>(flags.nginxBinary);
  if (nginxBinary && access(nginxBinary->c_str(), X_OK) != 0) nginxBinary.reset();
  return nginxBinary;
}

// What is measured, on what machine, with which versions; returns nginx's version line.
std::string printHeader(const Flags& flags, const std::optional<fs::path>& nginxBinary, const fs::path& dir) {
  std::printf("keel_bench: MachineService/Version, unary, %s warmup + %s measured per row and path, "
              "%d round(s), medians shown\n",
              flags.warmup.c_str(), flags.duration.c_str(), flags.rounds);
  std::printf("machine:  %s\n", describeMachine().c_str());
  std::string nginxVersion = flags.noNginx ? "nginx not used (--no-nginx)" : "not installed";
  if (nginxBinary) nginxVersion = runAndCapture({nginxBinary->string(), "-v"}, dir / "nginx-v.txt");
  std::printf("versions: %s; gRPC %s; OpenSSL 3\n", nginxVersion.c_str(), grpc::Version().c_str());
  return nginxVersion;
}

int run(const Flags& flags) {
  auto duration = parseDuration(flags.duration);
  auto warmup = parseDuration(flags.warmup);
  auto concurrencies = parseConcurrencyList(flags.concurrency);
  auto handshakeDuration =
      parseDuration(flags.handshakeDuration.empty() ? flags.duration : flags.handshakeDuration);
  for (const keel::Status& s :
       {duration.status(), warmup.status(), concurrencies.status(), handshakeDuration.status()}) {
    if (!s.isOk()) {
      std::fprintf(stderr, "keel_bench: %s\n", s.toString().c_str());
      return 2;
    }
  }
  // Absolute: the binaries are linked into a scratch directory and started from there.
  const fs::path buildDir = fs::absolute(flags.buildDir);
  const fs::path machined = buildDir / "services/machined/machined";
  const fs::path apid = buildDir / "services/apid/apid";
  const fs::path trustd = buildDir / "services/trustd/trustd";
  if (access(machined.c_str(), X_OK) != 0) {
    std::fprintf(stderr, "keel_bench: no machined executable at %s (set --build-dir)\n", machined.c_str());
    return 2;
  }
  const std::optional<fs::path> nginxBinary = nginxToUse(flags);
  if (!nginxBinary && flags.requireNginx) {
    std::printf("nginx not available: no nginx executable (apt-get install nginx); skipping\n");
    return kExitSkipped;
  }

  auto tmp = TempDir::create("keel-bench-");
  if (!tmp.ok()) {
    std::fprintf(stderr, "keel_bench: %s\n", tmp.status().toString().c_str());
    return 1;
  }
  const fs::path dir = tmp->path();
  // Services machined starts run under their own uids when this runs as root: they
  // must be able to traverse to their state directories.
  chmod(dir.c_str(), 0711);

  const std::string nginxVersion = printHeader(flags, nginxBinary, dir);

  auto secrets = makeSecrets();
  if (!secrets.ok()) {
    std::fprintf(stderr, "keel_bench: secrets: %s\n", secrets.status().toString().c_str());
    return 1;
  }
  auto admin = makeAdminClient(*secrets);
  auto serving = makeServingCert(*secrets, "127.0.0.1");
  if (!admin.ok() || !serving.ok()) {
    std::fprintf(stderr, "keel_bench: certificates: %s %s\n", admin.status().toString().c_str(),
                 serving.status().toString().c_str());
    return 1;
  }

  const bool haveApid = access(apid.c_str(), X_OK) == 0;
  uint16_t apiPort = 50000;
  auto node = startNode(flags, dir, *secrets, machined, haveApid ? apid : fs::path(), trustd, apiPort);
  if (!node.ok()) {
    std::fprintf(stderr, "keel_bench: %s\n", node.status().toString().c_str());
    return 1;
  }
  const pid_t machinedPid = (*node)->pid();
  std::map<std::string, std::string> runInfo = {{"machine", describeMachine()},
                                                {"build_dir", buildDir.string()},
                                                {"duration", flags.duration},
                                                {"warmup", flags.warmup},
                                                {"rounds", std::to_string(flags.rounds)},
                                                {"concurrency", flags.concurrency},
                                                {"grpc", grpc::Version()},
                                                {"nginx", nginxVersion}};

  std::vector<Path> paths(3);
  paths[0].name = "direct";
  paths[0].target = (*node)->directTarget();

  paths[1].name = "apid";
  setUpApid(flags, haveApid ? "" : "no executable at " + apid.string(), (*node)->root(), apiPort, *admin, machinedPid,
            paths[1]);

  paths[2].name = "nginx";
  std::unique_ptr<Nginx> nginx = setUpNginx(flags, nginxBinary, dir, (*node)->socket(), *serving, *admin, paths[2]);
  describePaths(flags, paths, nginx != nullptr, dir, runInfo);

  const double usPerTick = microsecondsPerTick();
  std::vector<TableRow> rows;
  bool failed = false;
  // Each round measures every path once, one after the other, and the table shows the
  // median over rounds: drift on a shared machine then touches every path alike.
  failed = measureLoad(flags, paths, *concurrencies, *warmup, *duration, machinedPid, usPerTick, rows) || failed;
  failed = measureHandshakes(flags, paths, *handshakeDuration, usPerTick, rows) || failed;
  failed = measureMemory(flags, paths, machinedPid, rows) || failed;
  if (stopRequested) {
    std::printf("interrupted: stopping everything keel_bench started\n");
    return 130;
  }
  failed = !report(flags, rows, runInfo, usPerTick) || failed;
  if (nginx) nginx->stop();
  (*node)->stop();
  return failed ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  // SIGINT/SIGTERM are taken by one thread with sigwait; every other thread (gRPC's
  // too) inherits the blocked mask, and the run winds down through the normal path so
  // that nginx, machined and the temporary directory are cleaned up.
  sigset_t stopSignals;
  sigemptyset(&stopSignals);
  sigaddset(&stopSignals, SIGINT);
  sigaddset(&stopSignals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stopSignals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  CLI::App app{
      "keel_bench: MachineService/Version throughput, latency, CPU per call and TLS handshakes — "
      "directly on machined.sock, through apid, and through nginx as a reference mTLS gRPC proxy."};
  Flags flags;
  char self[4096];
  const ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n > 0) {
    self[n] = '\0';
    flags.buildDir = fs::path(self).parent_path().parent_path();
  }
  app.add_option("--build-dir", flags.buildDir, "Build tree holding services/machined/machined (and apid)")
      ->capture_default_str();
  app.add_option("--duration", flags.duration, "Measured time per row (5s, 500ms, 1m)")
      ->capture_default_str();
  app.add_option("--warmup", flags.warmup, "Unmeasured time before each row")->capture_default_str();
  app.add_option("--concurrency", flags.concurrency,
                 "Outstanding calls, comma-separated (one set of rows each)")
      ->capture_default_str();
  app.add_option("--channels", flags.channels, "Channels (connections) per target the calls are spread over")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  app.add_option("--pollers", flags.pollers, "Client threads draining the completion queue")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  app.add_option("--handshake-concurrency", flags.handshakeConcurrency,
                 "Threads opening new mTLS connections")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  app.add_option("--streams", flags.streams, "Server streams held open through apid for its memory row")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  app.add_option("--handshake-duration", flags.handshakeDuration,
                 "Time per handshake row (default: --duration)");
  app.add_option("--address", flags.address, "The node's address on 127.0.0.0/8 (apid binds it)")
      ->capture_default_str();
  app.add_option("--nginx", flags.nginxBinary, "nginx executable (default: /usr/sbin/nginx or PATH)");
  app.add_flag("!--no-nginx-access-log", flags.nginxAccessLog,
               "Turn nginx's access log off (on by default: apid writes an audit line per call)");
  auto* requireNginx = app.add_flag("--require-nginx", flags.requireNginx,
                                    "Exit with 77 (skipped) when nginx is not installed");
  app.add_flag("--no-nginx", flags.noNginx, "Measure direct and apid only; start no nginx")
      ->excludes(requireNginx);
  app.add_option("--json", flags.jsonPath,
                 "Also write every row (each path's median and per-round figures) to this JSON file");
  app.add_option("--rounds", flags.rounds,
                 "Rounds; each measures every path once in turn, and the table shows the median")
      ->capture_default_str()
      ->check(CLI::Range(1, 100));
  app.add_flag("--smoke", flags.smoke,
               "Short run for CI: one round, --duration 1s --warmup 0.2s --concurrency 1,4, "
               "1 s of handshakes");
  app.add_option("--apid-endpoint", flags.apidEndpoint,
                 "Measure an apid already running at host:port instead of the node's own");
  app.add_option("--apid-ca", flags.apidCa, "With --apid-endpoint: CA to verify apid with (PEM file)");
  app.add_option("--apid-cert", flags.apidCert,
                 "With --apid-endpoint: os:admin client certificate (PEM file)");
  app.add_option("--apid-key", flags.apidKey, "With --apid-endpoint: its private key (PEM file)");
  app.add_option("--apid-pid", flags.apidPid, "With --apid-endpoint: apid's pid, for CPU per call");
  app.footer("Example: keel_bench --build-dir build --duration 10s --concurrency 1,32,128");
  CLI11_PARSE(app, argc, argv);
  if (flags.smoke) {
    flags.duration = "1s";
    flags.warmup = "0.2s";
    flags.concurrency = "1,4";
    flags.handshakeDuration = "1s";
    flags.rounds = 1;
    flags.streams = std::min(flags.streams, 50);
  }
  if (!flags.apidEndpoint.empty() &&
      (flags.apidCa.empty() || flags.apidCert.empty() || flags.apidKey.empty())) {
    std::fprintf(stderr, "keel_bench: --apid-endpoint needs --apid-ca, --apid-cert and --apid-key\n");
    return 2;
  }

  std::thread([stopSignals] {
    int sig = 0;
    if (sigwait(&stopSignals, &sig) == 0) stopRequested = true;
  }).detach();
  return run(flags);
}
