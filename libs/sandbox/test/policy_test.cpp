#include "keel/sandbox/policy.h"

#include <string>

#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>
#include <sys/socket.h>

namespace keel::sandbox::test {
extern const std::string_view kChildBasePolicy;
}

namespace keel::sandbox {
namespace {

using Catch::Matchers::ContainsSubstring;

TEST_CASE("parses syscall names, skipping comments and blank lines", "[policy]") {
  auto policy = parsePolicy("# header\n\nread\n  write   # why: logging\n\t\nclose\n");
  REQUIRE(policy.ok());
  REQUIRE(policy->rules.size() == 3);
  CHECK(policy->kind == PolicyKind::kAllowList);
  CHECK(policy->rules[0].name == "read");
  CHECK(policy->rules[0].number == 0);
  CHECK(policy->rules[1].name == "write");
  CHECK(policy->rules[1].line == 4);
  CHECK(policy->rules[2].line == 6);
  CHECK(policy->rules[2].conditions.empty());
}

TEST_CASE("parses ==, != and masked == conditions with numbers and named constants", "[policy]") {
  auto policy = parsePolicy(
      "socket: arg0 == AF_UNIX, arg1 & 0xf == SOCK_STREAM\n"
      "mprotect: arg2 & PROT_EXEC == 0\n"
      "openat: arg0 == AT_FDCWD, arg2 != 0x40\n"
      "socket: arg0 == 10, arg1 == SOCK_DGRAM|SOCK_CLOEXEC\n");
  REQUIRE(policy.ok());
  REQUIRE(policy->rules.size() == 4);
  const auto& s = policy->rules[0];
  REQUIRE(s.conditions.size() == 2);
  CHECK(s.conditions[0] == ArgCondition{0, ArgOp::kEqual, 0, AF_UNIX});
  CHECK(s.conditions[1] == ArgCondition{1, ArgOp::kMaskedEqual, 0xf, SOCK_STREAM});
  CHECK(policy->rules[1].conditions[0] == ArgCondition{2, ArgOp::kMaskedEqual, 0x4, 0});
  // A negative int reaches the kernel sign-extended.
  CHECK(policy->rules[2].conditions[0].value == 0xffffffffffffff9cULL);
  CHECK(policy->rules[2].conditions[1] == ArgCondition{2, ArgOp::kNotEqual, 0, 0x40});
  CHECK(policy->rules[3].conditions[1].value == (SOCK_DGRAM | SOCK_CLOEXEC));
}

TEST_CASE("keeps several lines for one syscall as alternatives", "[policy]") {
  auto policy = parsePolicy("socket: arg0 == AF_UNIX\nsocket: arg0 == AF_INET\n");
  REQUIRE(policy.ok());
  REQUIRE(policy->rules.size() == 2);
  CHECK(policy->rules[0].number == policy->rules[1].number);
}

TEST_CASE("rejects an unknown syscall, naming the line", "[policy]") {
  auto policy = parsePolicy("read\n# comment\nsockte\n");
  REQUIRE_FALSE(policy.ok());
  CHECK(policy.status().code() == StatusCode::kInvalidArgument);
  CHECK_THAT(policy.status().message(), ContainsSubstring("line 3") && ContainsSubstring("'sockte'"));
}

TEST_CASE("rejects a syscall that exists only on other architectures", "[policy]") {
  auto policy = parsePolicy("socketcall\n");
  REQUIRE_FALSE(policy.ok());
  CHECK_THAT(policy.status().message(), ContainsSubstring("line 1") && ContainsSubstring("unknown syscall"));
}

TEST_CASE("rejects malformed lines, naming the line and what was found", "[policy]") {
  struct Case {
    const char* line;
    const char* expected;
  };
  const Case cases[] = {
      {"socket arg0 == 1", "expected ':'"},
      {"socket:", "expected an argument arg0..arg5"},
      {"socket: arg6 == 1", "found 'arg6'"},
      {"socket: arg0 = 1", "expected '==', '!=' or '&'"},
      {"socket: arg0 == ", "expected a number or a named constant"},
      {"socket: arg0 == AF_NOPE", "unknown constant 'AF_NOPE'"},
      {"socket: arg0 == 0x", "expected a decimal or 0x-prefixed hex number"},
      {"socket: arg0 == 12abc", "found '12abc'"},
      {"socket: arg0 == 99999999999999999999", "fits in 64 bits"},
      {"socket: arg0 & 0x1 1", "expected '==' after the mask"},
      {"socket: arg0 & 0x1 == 0x2", "can never hold"},
      {"socket: arg0 == 1 arg1 == 2", "expected ',' or end of line"},
      {"socket: arg0 == 1, arg0 == 2", "compared twice"},
      {"socket: arg0 && 1 == 1", "expected '==', '!=' or '&'"},
      {"-read", "expected a syscall name"},
      {"socket: arg0 == -AF_UNIX", "expected a number after '-'"},
  };
  for (const auto& c : cases) {
    INFO(c.line);
    auto policy = parsePolicy(std::string("read\nwrite\n") + c.line + "\n");
    REQUIRE_FALSE(policy.ok());
    CHECK(policy.status().code() == StatusCode::kInvalidArgument);
    CHECK_THAT(policy.status().message(), ContainsSubstring("line 3:") && ContainsSubstring(c.expected));
  }
}

TEST_CASE("rejects an empty profile", "[policy]") {
  auto policy = parsePolicy("# nothing\n\n");
  REQUIRE_FALSE(policy.ok());
  CHECK_THAT(policy.status().message(), ContainsSubstring("at least one rule"));
}

TEST_CASE("refuses every hard-denied syscall at parse time, even with conditions", "[policy]") {
  const auto denied = hardDeniedSyscalls();
  CHECK(denied.size() >= 30);
  for (std::string_view name : denied) {
    INFO(name);
    auto plain = parsePolicy("read\n" + std::string(name) + "\n");
    REQUIRE_FALSE(plain.ok());
    CHECK_THAT(plain.status().message(), ContainsSubstring("line 2") && ContainsSubstring("hard deny list"));
    auto conditional = parsePolicy(std::string(name) + ": arg0 == 0\n");
    CHECK_FALSE(conditional.ok());
  }
  for (const char* name : {"ptrace", "bpf", "init_module", "process_vm_readv", "userfaultfd", "keyctl"}) {
    INFO(name);
    auto policy = parsePolicy(name, DenyExceptions{true, true, true});
    REQUIRE_FALSE(policy.ok());
    CHECK_THAT(policy.status().message(), ContainsSubstring("no profile can allow it"));
  }
}

TEST_CASE("allows the mount family only with allowMount", "[policy]") {
  for (const char* name :
       {"mount", "umount2", "pivot_root", "move_mount", "open_tree", "fsopen", "fsmount", "fspick"}) {
    INFO(name);
    auto denied = parsePolicy(name);
    REQUIRE_FALSE(denied.ok());
    CHECK_THAT(denied.status().message(), ContainsSubstring("allowMount"));
    CHECK(parsePolicy(name, DenyExceptions{.allowMount = true}).ok());
    CHECK_FALSE(parsePolicy(name, DenyExceptions{.allowReboot = true, .allowClock = true}).ok());
  }
}

TEST_CASE("allows reboot only with allowReboot and clock setting only with allowClock", "[policy]") {
  CHECK_FALSE(parsePolicy("reboot").ok());
  CHECK(parsePolicy("reboot", DenyExceptions{.allowReboot = true}).ok());
  for (const char* name : {"settimeofday", "clock_settime", "adjtimex", "clock_adjtime"}) {
    INFO(name);
    CHECK_FALSE(parsePolicy(name).ok());
    CHECK_FALSE(parsePolicy(name, DenyExceptions{.allowMount = true, .allowReboot = true}).ok());
    CHECK(parsePolicy(name, DenyExceptions{.allowClock = true}).ok());
  }
  auto policy = parsePolicy("read", DenyExceptions{.allowClock = true});
  REQUIRE(policy.ok());
  CHECK(policy->exceptions.allowClock);
}

TEST_CASE("extension profile allows by default and carries its exceptions", "[policy]") {
  const Policy policy = extensionPolicy(DenyExceptions{.allowClock = true});
  CHECK(policy.kind == PolicyKind::kExtension);
  CHECK(policy.rules.empty());
  CHECK(policy.exceptions.allowClock);
  CHECK(isHardDenied("ptrace", policy.exceptions));
  CHECK_FALSE(isHardDenied("clock_settime", policy.exceptions));
}

TEST_CASE("keel_embed_policy embeds the profile file byte for byte", "[policy]") {
  using keel::sandbox::test::kChildBasePolicy;
  CHECK(kChildBasePolicy.substr(0, 2) == "# ");
  CHECK(kChildBasePolicy.back() == '\n');
  CHECK(kChildBasePolicy.find("getresuid\n") != std::string_view::npos);
  CHECK(parsePolicy(kChildBasePolicy).ok());
}

}  // namespace
}  // namespace keel::sandbox
