#include "keel/sandbox/diagnostics.h"

#include <catch2/catch_test_macros.hpp>

namespace keel::sandbox {
namespace {

// As printed on this kind of machine (Linux 6.x, no auditd) for a process killed by
// SECCOMP_RET_KILL_PROCESS on socket(): first as /dev/kmsg records, then as dmesg lines.
constexpr std::string_view kKmsg =
    "6,338,3216000000,-;EXT4-fs (vda): mounted filesystem r/w without journal.\n"
    "5,339,3216287039,-;audit: type=1326 audit(1795723595.371:2): auid=4294967295 uid=0 gid=0 "
    "ses=4294967295 pid=5950 comm=\"k\" exe=\"/tmp/sbxprobe/k\" sig=31 arch=c000003e syscall=41 "
    "compat=0 ip=0x7f529bafddc7 code=0x80000000\n"
    "5,340,3216288671,-;audit: type=1326 audit(1795723595.375:3): auid=4294967295 uid=0 gid=0 "
    "ses=4294967295 pid=59501 comm=\"k\" exe=\"/tmp/sbxprobe/k\" sig=31 arch=c000003e syscall=101 "
    "compat=0 ip=0x7f66400a6dc7 code=0x80000000\n";

constexpr std::string_view kDmesg =
    "[ 3216.287039] audit: type=1326 audit(1795723595.371:2): auid=4294967295 uid=0 gid=0 "
    "ses=4294967295 pid=5950 comm=\"k\" exe=\"/tmp/sbxprobe/k\" sig=31 arch=c000003e syscall=41 "
    "compat=0 ip=0x7f529bafddc7 code=0x80000000\n";

TEST_CASE("describeSyscall names native syscalls and numbers unknown ones", "[diagnostics]") {
#if defined(__x86_64__)
  CHECK(describeSyscall(41) == "socket");
  CHECK(describeSyscall(101) == "ptrace");
#endif
  CHECK(describeSyscall(99999) == "syscall 99999");
  CHECK(describeSyscall(-1) == "syscall -1");
}

TEST_CASE("findSeccompKill finds the syscall of the kill record of a pid", "[diagnostics]") {
  CHECK(findSeccompKill(kKmsg, 5950) == 41);
  CHECK(findSeccompKill(kKmsg, 59501) == 101);
  CHECK(findSeccompKill(kDmesg, 5950) == 41);
}

TEST_CASE("findSeccompKill ignores other pids, other record types and LOG actions", "[diagnostics]") {
  CHECK_FALSE(findSeccompKill(kKmsg, 595).has_value());
  CHECK_FALSE(findSeccompKill(kKmsg, 1).has_value());
  CHECK_FALSE(findSeccompKill("audit: type=1400 pid=7 sig=31 syscall=41\n", 7).has_value());
  CHECK_FALSE(findSeccompKill("audit: type=1326 ppid=7 sig=31 syscall=41\n", 7).has_value());
  CHECK_FALSE(findSeccompKill("audit: type=1326 pid=7 sig=0 syscall=41 code=0x7ffc0000\n", 7).has_value());
  CHECK_FALSE(findSeccompKill("audit: type=1326 pid=7 sig=31 syscall=4x1\n", 7).has_value());
  CHECK_FALSE(findSeccompKill("", 7).has_value());
}

TEST_CASE("findSeccompKill returns the most recent record when a pid was reused", "[diagnostics]") {
  const std::string text =
      std::string(kDmesg) +
      "audit: type=1326 audit(1.2:9): pid=5950 comm=\"x\" sig=31 arch=c000003e syscall=321 code=0x80000000";
  CHECK(findSeccompKill(text, 5950) == 321);
}

}  // namespace
}  // namespace keel::sandbox
