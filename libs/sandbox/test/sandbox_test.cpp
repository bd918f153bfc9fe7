// Every filter here is loaded in a forked child (see child.h); the test process stays
// unconfined. Children exit 0 when everything they check holds, or a distinct code
// naming the first check that failed.
#include "keel/sandbox/sandbox.h"

#include <fcntl.h>
#include <seccomp.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "keel/sandbox/diagnostics.h"

#include "child.h"

namespace keel::sandbox::test {
extern const std::string_view kChildBasePolicy;
}

namespace keel::sandbox {
namespace {

using Catch::Matchers::ContainsSubstring;
using test::describeWaitStatus;
using test::runInChild;

// The children's base profile plus the lines under test.
Policy childPolicy(const std::string& extra = "") {
  auto policy = parsePolicy(std::string(test::kChildBasePolicy) + extra);
  REQUIRE(policy.ok());
  return *policy;
}

SandboxOptions childOptions(const std::string& extra = "") {
  SandboxOptions options;
  options.policy = childPolicy(extra);
  return options;
}

bool isRoot() {
  return geteuid() == 0;
}

bool killedBySigsys(int status) {
  return WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS;
}
bool exitedZero(int status) {
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

// Applies `options` in the child, then runs `body`; exit 98 when apply() fails.
int confinedChild(const SandboxOptions& options, const std::function<int()>& body, int* pid = nullptr) {
  return runInChild(
      [&] {
        if (!apply(options).isOk()) return 98;
        return body();
      },
      pid);
}

long rawSocket(int domain, int type) {
  return syscall(SYS_socket, domain, type, 0);
}

TEST_CASE("a profile without socket kills the child by SIGSYS when it calls socket()", "[sandbox]") {
  int pid = 0;
  const int status = confinedChild(
      childOptions(), [] { return rawSocket(AF_UNIX, SOCK_STREAM) >= 0 ? 0 : 1; }, &pid);
  INFO(describeWaitStatus(status, pid));
  CHECK(killedBySigsys(status));
}

TEST_CASE("socket: arg0 == AF_UNIX lets AF_UNIX through and kills AF_INET, AF_INET6 and AF_NETLINK",
          "[sandbox]") {
  const SandboxOptions options = childOptions("socket: arg0 == AF_UNIX\n");
  {
    int pid = 0;
    const int status = confinedChild(
        options, [] { return rawSocket(AF_UNIX, SOCK_STREAM) >= 0 ? 0 : 1; }, &pid);
    INFO("AF_UNIX: " << describeWaitStatus(status, pid));
    CHECK(exitedZero(status));
  }
  for (int domain : {AF_INET, AF_INET6, AF_NETLINK}) {
    int pid = 0;
    const int status = confinedChild(
        options, [domain] { return rawSocket(domain, SOCK_DGRAM) >= 0 ? 0 : 1; }, &pid);
    INFO("domain " << domain << ": " << describeWaitStatus(status, pid));
    CHECK(killedBySigsys(status));
  }
}

TEST_CASE("an == rule compares all 64 bits, so garbage above an int argument kills", "[sandbox]") {
  const SandboxOptions options = childOptions("socket: arg0 == AF_UNIX\n");
  int pid = 0;
  const int status = confinedChild(
      options,
      [] { return syscall(SYS_socket, (std::uint64_t{1} << 32) | AF_UNIX, SOCK_STREAM, 0) >= 0 ? 0 : 1; },
      &pid);
  INFO(describeWaitStatus(status, pid));
  CHECK(killedBySigsys(status));
}

TEST_CASE("the confined child has NoNewPrivs 1, Seccomp 2 and no capabilities at all", "[sandbox]") {
  const int status = confinedChild(childOptions(), [] {
    const std::string s = test::procSelfStatus();
    if (test::statusField(s, "NoNewPrivs") != "1") return 1;
    if (test::statusField(s, "Seccomp") != "2") return 2;
    for (const char* set : {"CapEff", "CapPrm", "CapInh", "CapAmb"}) {
      if (test::statusField(s, set) != "0000000000000000") return 3;
    }
    // The bounding set can only be emptied with CAP_SETPCAP, i.e. as root.
    if (geteuid() == 0 && test::statusField(s, "CapBnd") != "0000000000000000") return 4;
    return 0;
  });
  INFO(describeWaitStatus(status));
  CHECK(exitedZero(status));
}

TEST_CASE("as root with uid/gid 65534 the child runs as 65534 with no supplementary groups",
          "[sandbox][root]") {
  if (!isRoot()) SKIP("needs root");
  SandboxOptions options = childOptions();
  options.uid = 65534;
  options.gid = 65534;
  const int status = confinedChild(options, [] {
    uid_t r = 0, e = 0, s = 0;
    gid_t gr = 0, ge = 0, gs = 0;
    if (getresuid(&r, &e, &s) != 0 || r != 65534 || e != 65534 || s != 65534) return 1;
    if (getresgid(&gr, &ge, &gs) != 0 || gr != 65534 || ge != 65534 || gs != 65534) return 2;
    if (getgroups(0, nullptr) != 0) return 3;
    const std::string st = test::procSelfStatus();
    if (test::statusField(st, "CapEff") != "0000000000000000") return 4;
    if (test::statusField(st, "CapPrm") != "0000000000000000") return 5;
    return 0;
  });
  INFO(describeWaitStatus(status));
  CHECK(exitedZero(status));
}

TEST_CASE("supplementary groups are replaced by exactly the given ones", "[sandbox][root]") {
  if (!isRoot()) SKIP("needs root");
  SandboxOptions options = childOptions();
  options.uid = 65534;
  options.gid = 65534;
  options.supplementaryGroups = {4242, 4343};
  const int status = confinedChild(options, [] {
    gid_t groups[8]{};
    const int n = getgroups(8, groups);
    if (n != 2 || groups[0] != 4242 || groups[1] != 4343) return 1;
    return 0;
  });
  INFO(describeWaitStatus(status));
  CHECK(exitedZero(status));
}

TEST_CASE("kept capabilities are exactly CapEff, CapPrm and CapBnd across the switch to 65534",
          "[sandbox][root]") {
  if (!isRoot()) SKIP("needs root");
  SandboxOptions options = childOptions();
  options.uid = 65534;
  options.gid = 65534;
  options.keepCapabilities = {CAP_NET_BIND_SERVICE, CAP_NET_RAW};
  const int status = confinedChild(options, [] {
    const std::string s = test::procSelfStatus();
    const std::string kept = "0000000000002400";  // bits 10 and 13
    if (test::statusField(s, "CapEff") != kept) return 1;
    if (test::statusField(s, "CapPrm") != kept) return 2;
    if (test::statusField(s, "CapBnd") != kept) return 3;
    if (test::statusField(s, "CapInh") != "0000000000000000") return 4;
    if (test::statusField(s, "CapAmb") != "0000000000000000") return 5;
    if (getuid() != 65534) return 6;
    return 0;
  });
  INFO(describeWaitStatus(status));
  CHECK(exitedZero(status));
}

TEST_CASE("core dumps are off: RLIMIT_CORE is 0 and the process is not dumpable", "[sandbox]") {
  SandboxOptions options = childOptions();
  if (isRoot()) {
    // A credential change resets dumpable; it must still end at 0.
    options.uid = 65534;
    options.gid = 65534;
  }
  const int status = confinedChild(options, [] {
    rlimit rl{};
    if (getrlimit(RLIMIT_CORE, &rl) != 0 || rl.rlim_cur != 0 || rl.rlim_max != 0) return 1;
    if (prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != 0) return 2;
    return 0;
  });
  INFO(describeWaitStatus(status));
  CHECK(exitedZero(status));
}

TEST_CASE("inherited descriptors above 2 are closed except the keep-list", "[sandbox]") {
  const int leaked = open("/dev/null", O_RDONLY);
  const int kept = open("/dev/null", O_RDONLY);
  const int alsoLeaked = open("/dev/null", O_RDONLY);
  REQUIRE(leaked > 2);
  REQUIRE(alsoLeaked > kept);
  SandboxOptions options = childOptions();
  options.keepFds = {kept, 1};
  const int status = confinedChild(options, [&] {
    if (fcntl(leaked, F_GETFD) != -1 || errno != EBADF) return 1;
    if (fcntl(alsoLeaked, F_GETFD) != -1 || errno != EBADF) return 2;
    if (fcntl(kept, F_GETFD) == -1) return 3;
    if (fcntl(1, F_GETFD) == -1 || fcntl(2, F_GETFD) == -1) return 4;
    return 0;
  });
  close(leaked);
  close(kept);
  close(alsoLeaked);
  INFO(describeWaitStatus(status));
  CHECK(exitedZero(status));
}

TEST_CASE("umask is 077 after apply", "[sandbox]") {
  const int status = confinedChild(childOptions(), [] { return umask(0) == 077 ? 0 : 1; });
  INFO(describeWaitStatus(status));
  CHECK(exitedZero(status));
}

TEST_CASE(
    "prepare in the parent, applyInChild between fork and exec: /bin/true runs under the extension profile",
    "[sandbox]") {
  SandboxOptions options;
  options.policy = extensionPolicy();
  if (isRoot()) {
    options.uid = 65534;
    options.gid = 65534;
  }
  auto prepared = prepare(options);
  REQUIRE(prepared.ok());
  const char* const argv[] = {"/bin/true", nullptr};
  int pid = 0;
  const int status = test::execInChild([&] { return prepared->applyInChild(); }, argv, &pid);
  INFO(describeWaitStatus(status, pid));
  CHECK(exitedZero(status));
}

TEST_CASE("under the extension profile an exec'd program calling ptrace dies by SIGSYS, logged by the kernel",
          "[sandbox]") {
  SandboxOptions options;
  options.policy = extensionPolicy();
  auto prepared = prepare(options);
  REQUIRE(prepared.ok());
  const char* const argv[] = {KEEL_SANDBOX_TEST_HELPER, "ptrace", nullptr};
  int pid = 0;
  const int status = test::execInChild([&] { return prepared->applyInChild(); }, argv, &pid);
  INFO(describeWaitStatus(status, pid));
  REQUIRE(killedBySigsys(status));

  // kauditd prints the record asynchronously, and printk rate-limits it: poll for a
  // while, and only warn when it never shows up (or /dev/kmsg is not readable).
  std::optional<int> nr;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (!nr && std::chrono::steady_clock::now() < deadline) {
    auto log = readKernelLog();
    if (!log.ok()) break;
    nr = findSeccompKill(*log, pid);
    if (!nr) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (nr) {
    CHECK(describeSyscall(*nr) == "ptrace");
  } else {
    WARN("no seccomp audit record for pid " << pid << " in /dev/kmsg");
  }
}

TEST_CASE("the extension profile refuses AF_PACKET sockets with EAFNOSUPPORT, high bits or not",
          "[sandbox]") {
  SandboxOptions options;
  options.policy = extensionPolicy();
  auto prepared = prepare(options);
  REQUIRE(prepared.ok());
  for (const char* mode : {"packet", "packet-high-bits"}) {
    const char* const argv[] = {KEEL_SANDBOX_TEST_HELPER, mode, nullptr};
    int pid = 0;
    const int status = test::execInChild([&] { return prepared->applyInChild(); }, argv, &pid);
    INFO(mode << ": " << describeWaitStatus(status, pid));
    CHECK(exitedZero(status));
  }
}

TEST_CASE("the extension profile kills every hard-denied syscall", "[sandbox]") {
  SandboxOptions options;
  options.policy = extensionPolicy();
  auto prepared = prepare(options);
  REQUIRE(prepared.ok());
  for (const char* name : {"bpf", "perf_event_open", "keyctl", "init_module", "process_vm_readv", "mount",
                           "reboot", "clock_settime", "userfaultfd", "personality"}) {
    const int nr = seccomp_syscall_resolve_name(name);
    REQUIRE(nr >= 0);
    int pid = 0;
    // Arguments all zero: if the call got through it would fail harmlessly (EFAULT/EINVAL).
    const int status = runInChild(
        [&] {
          if (prepared->applyInChild() != 0) return 98;
          syscall(nr, 0, 0, 0, 0, 0, 0);
          return 0;
        },
        &pid);
    INFO(name << ": " << describeWaitStatus(status, pid));
    CHECK(killedBySigsys(status));
  }
}

TEST_CASE("a thread started before apply() is filtered too (TSYNC)", "[sandbox]") {
  // The first apply() gives up credentials while single-threaded; the second loads the
  // allow-list with the thread already running.
  SandboxOptions first;
  first.policy = extensionPolicy();
  const SandboxOptions second = childOptions();
  int pid = 0;
  const int status = runInChild(
      [&] {
        if (!apply(first).isOk()) return 97;
        std::mutex m;
        std::condition_variable cv;
        bool filtered = false;
        std::thread worker([&] {
          std::unique_lock lock(m);
          cv.wait(lock, [&] { return filtered; });
          rawSocket(AF_UNIX, SOCK_STREAM);  // kills the whole process
        });
        const Status applied = apply(second);
        {
          std::lock_guard lock(m);
          filtered = true;
        }
        cv.notify_one();
        worker.join();
        return applied.isOk() ? 0 : 98;
      },
      &pid);
  INFO(describeWaitStatus(status, pid));
  CHECK(killedBySigsys(status));
}

TEST_CASE("apply() refuses to switch identity or drop capabilities with other threads running",
          "[sandbox][root]") {
  if (!isRoot()) SKIP("needs root");
  SandboxOptions options = childOptions();
  options.uid = 65534;
  options.gid = 65534;
  const int status = runInChild([&] {
    std::mutex m;
    std::condition_variable cv;
    bool done = false;
    std::thread worker([&] {
      std::unique_lock lock(m);
      cv.wait(lock, [&] { return done; });
    });
    const Status applied = apply(options);
    {
      std::lock_guard lock(m);
      done = true;
    }
    cv.notify_one();
    worker.join();
    if (applied.code() != StatusCode::kFailedPrecondition) return 1;
    if (applied.message().find("found 2 threads") == std::string::npos) return 2;
    // Nothing was applied.
    if (geteuid() != 0 || prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 0) return 3;
    return 0;
  });
  INFO(describeWaitStatus(status));
  CHECK(exitedZero(status));
}

TEST_CASE("a failing step is reported with its name and errno", "[sandbox][root]") {
  if (!isRoot()) SKIP("needs root");
  SandboxOptions drop;
  drop.policy = extensionPolicy();
  drop.uid = 65534;
  drop.gid = 65534;
  SandboxOptions regain;
  regain.policy = extensionPolicy();
  regain.keepCapabilities = {CAP_NET_ADMIN};
  const int status = runInChild([&] {
    if (!apply(drop).isOk()) return 1;
    const Status s = apply(regain);
    if (s.code() != StatusCode::kPermissionDenied) return 2;
    if (s.message().find("capset") == std::string::npos) return 3;
    if (s.message().find("errno 1") == std::string::npos) return 4;
    return 0;
  });
  INFO(describeWaitStatus(status));
  CHECK(exitedZero(status));
}

TEST_CASE("prepare rejects inconsistent options", "[sandbox]") {
  SandboxOptions uidOnly = childOptions();
  uidOnly.uid = 65534;
  auto a = prepare(uidOnly);
  REQUIRE_FALSE(a.ok());
  CHECK(a.status().code() == StatusCode::kInvalidArgument);
  CHECK_THAT(a.status().message(), ContainsSubstring("found only uid"));

  SandboxOptions badCap = childOptions();
  badCap.keepCapabilities = {200};
  auto b = prepare(badCap);
  REQUIRE_FALSE(b.ok());
  CHECK_THAT(b.status().message(), ContainsSubstring("found 200"));

  SandboxOptions handBuilt;
  handBuilt.policy.rules.push_back(SyscallRule{"ptrace", 101, {}, 1});
  auto c = prepare(handBuilt);
  REQUIRE_FALSE(c.ok());
  CHECK_THAT(c.status().message(), ContainsSubstring("hard deny list"));
}

TEST_CASE("the compiled filter fits the kernel's limit and grows with the profile", "[sandbox]") {
  auto small = prepare(childOptions());
  auto larger = prepare(childOptions("socket: arg0 == AF_UNIX\nsocket: arg0 == AF_INET\n"));
  REQUIRE(small.ok());
  REQUIRE(larger.ok());
  CHECK(small->filterSize() > 0);
  CHECK(larger->filterSize() > small->filterSize());
}

}  // namespace
}  // namespace keel::sandbox
