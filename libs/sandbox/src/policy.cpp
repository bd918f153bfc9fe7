#include "keel/sandbox/policy.h"

#include <fcntl.h>
#include <seccomp.h>

#include <charconv>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include <linux/sched.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include "keel/common/text.h"

namespace keel::sandbox {
namespace {

struct DeniedEntry {
  std::string_view name;
  bool DenyExceptions::*lift;  // nullptr: never allowed
};

// Kernel-wide or cross-process powers no daemon's confinement survives: loading code
// into the kernel, reading other processes' memory, the kernel keyring, changing what
// the whole machine sees (mounts, clock, swap, power).
constexpr DeniedEntry kHardDenied[] = {
    {"ptrace", nullptr},
    {"process_vm_readv", nullptr},
    {"process_vm_writev", nullptr},
    {"init_module", nullptr},
    {"finit_module", nullptr},
    {"delete_module", nullptr},
    {"kexec_load", nullptr},
    {"kexec_file_load", nullptr},
    {"bpf", nullptr},
    {"userfaultfd", nullptr},
    {"perf_event_open", nullptr},
    {"keyctl", nullptr},
    {"add_key", nullptr},
    {"request_key", nullptr},
    {"personality", nullptr},
    {"swapon", nullptr},
    {"swapoff", nullptr},
    {"acct", nullptr},
    {"iopl", nullptr},
    {"ioperm", nullptr},
    {"lookup_dcookie", nullptr},
    {"mount", &DenyExceptions::allowMount},
    {"umount", &DenyExceptions::allowMount},
    {"umount2", &DenyExceptions::allowMount},
    {"pivot_root", &DenyExceptions::allowMount},
    {"move_mount", &DenyExceptions::allowMount},
    {"open_tree", &DenyExceptions::allowMount},
    {"fsopen", &DenyExceptions::allowMount},
    {"fsmount", &DenyExceptions::allowMount},
    {"fspick", &DenyExceptions::allowMount},
    {"reboot", &DenyExceptions::allowReboot},
    {"settimeofday", &DenyExceptions::allowClock},
    {"clock_settime", &DenyExceptions::allowClock},
    {"adjtimex", &DenyExceptions::allowClock},
    {"clock_adjtime", &DenyExceptions::allowClock},
};

struct NamedConstant {
  std::string_view name;
  std::uint64_t value;
};

constexpr std::uint64_t u64(long long v) {
  return static_cast<std::uint64_t>(v);
}

// Values as the kernel receives them in a 64-bit register: glibc sign-extends int
// arguments, so AT_FDCWD is 0xffffffffffffff9c.
constexpr NamedConstant kConstants[] = {
    {"AF_UNSPEC", AF_UNSPEC},
    {"AF_UNIX", AF_UNIX},
    {"AF_LOCAL", AF_LOCAL},
    {"AF_INET", AF_INET},
    {"AF_INET6", AF_INET6},
    {"AF_NETLINK", AF_NETLINK},
    {"AF_PACKET", AF_PACKET},
    {"AF_VSOCK", AF_VSOCK},
    {"SOCK_STREAM", SOCK_STREAM},
    {"SOCK_DGRAM", SOCK_DGRAM},
    {"SOCK_RAW", SOCK_RAW},
    {"SOCK_SEQPACKET", SOCK_SEQPACKET},
    {"SOCK_NONBLOCK", SOCK_NONBLOCK},
    {"SOCK_CLOEXEC", SOCK_CLOEXEC},
    {"PROT_NONE", PROT_NONE},
    {"PROT_READ", PROT_READ},
    {"PROT_WRITE", PROT_WRITE},
    {"PROT_EXEC", PROT_EXEC},
    {"MAP_SHARED", MAP_SHARED},
    {"MAP_PRIVATE", MAP_PRIVATE},
    {"MAP_FIXED", MAP_FIXED},
    {"MAP_ANONYMOUS", MAP_ANONYMOUS},
    {"O_RDONLY", O_RDONLY},
    {"O_WRONLY", O_WRONLY},
    {"O_RDWR", O_RDWR},
    {"O_ACCMODE", O_ACCMODE},
    {"O_CREAT", O_CREAT},
    {"O_EXCL", O_EXCL},
    {"O_NOCTTY", O_NOCTTY},
    {"O_TRUNC", O_TRUNC},
    {"O_APPEND", O_APPEND},
    {"O_NONBLOCK", O_NONBLOCK},
    {"O_DIRECTORY", O_DIRECTORY},
    {"O_NOFOLLOW", O_NOFOLLOW},
    {"O_CLOEXEC", O_CLOEXEC},
    {"O_PATH", O_PATH},
    {"O_TMPFILE", O_TMPFILE},
    {"AT_FDCWD", u64(AT_FDCWD)},
    {"CLONE_VM", CLONE_VM},
    {"CLONE_FS", CLONE_FS},
    {"CLONE_FILES", CLONE_FILES},
    {"CLONE_SIGHAND", CLONE_SIGHAND},
    {"CLONE_PIDFD", CLONE_PIDFD},
    {"CLONE_VFORK", CLONE_VFORK},
    {"CLONE_PARENT", CLONE_PARENT},
    {"CLONE_THREAD", CLONE_THREAD},
    {"CLONE_SYSVSEM", CLONE_SYSVSEM},
    {"CLONE_SETTLS", CLONE_SETTLS},
    {"CLONE_PARENT_SETTID", CLONE_PARENT_SETTID},
    {"CLONE_CHILD_CLEARTID", CLONE_CHILD_CLEARTID},
    {"CLONE_CHILD_SETTID", CLONE_CHILD_SETTID},
    {"CLONE_NEWNS", CLONE_NEWNS},
    {"CLONE_NEWCGROUP", CLONE_NEWCGROUP},
    {"CLONE_NEWUTS", CLONE_NEWUTS},
    {"CLONE_NEWIPC", CLONE_NEWIPC},
    {"CLONE_NEWUSER", CLONE_NEWUSER},
    {"CLONE_NEWPID", CLONE_NEWPID},
    {"CLONE_NEWNET", CLONE_NEWNET},
    {"CLONE_IO", CLONE_IO},
};

std::string quoted(std::string_view s) {
  return "'" + std::string(s) + "'";
}

Status lineError(int line, std::string_view what) {
  return invalidArgument("seccomp policy line " + std::to_string(line) + ": " + std::string(what));
}

bool isSpace(char c) {
  return c == ' ' || c == '\t' || c == '\r';
}

bool isNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

// A cursor over one line with the few token kinds the grammar has.
class Lexer {
 public:
  explicit Lexer(std::string_view s) : s_(s) {}

  void skipSpace() {
    while (pos_ < s_.size() && isSpace(s_[pos_])) ++pos_;
  }
  bool atEnd() {
    skipSpace();
    return pos_ >= s_.size();
  }
  // Consumes `tok` if it comes next. "&" does not match the start of "&&".
  bool accept(std::string_view tok) {
    skipSpace();
    if (s_.substr(pos_, tok.size()) != tok) return false;
    pos_ += tok.size();
    return true;
  }
  std::string_view word() {
    skipSpace();
    const std::size_t start = pos_;
    while (pos_ < s_.size() && isNameChar(s_[pos_])) ++pos_;
    return s_.substr(start, pos_ - start);
  }
  // What comes next, for "found ..." in messages.
  std::string rest() {
    skipSpace();
    if (pos_ >= s_.size()) return "end of line";
    return quoted(s_.substr(pos_, 20));
  }

 private:
  std::string_view s_;
  std::size_t pos_ = 0;
};

Result<std::uint64_t> parseTerm(Lexer& lex, int line) {
  const bool negative = lex.accept("-");
  const std::string_view w = lex.word();
  if (w.empty()) return lineError(line, "expected a number or a named constant, found " + lex.rest());
  if (w.front() >= '0' && w.front() <= '9') {
    std::uint64_t v = 0;
    std::string_view digits = w;
    int base = 10;
    if (w.size() > 2 && w[0] == '0' && (w[1] == 'x' || w[1] == 'X')) {
      digits = w.substr(2);
      base = 16;
    }
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v, base);
    if (ec == std::errc::result_out_of_range) {
      return lineError(line, "expected a number that fits in 64 bits, found " + quoted(w));
    }
    if (ec != std::errc() || end != digits.data() + digits.size()) {
      return lineError(line, "expected a decimal or 0x-prefixed hex number, found " + quoted(w));
    }
    if (negative) {
      if (v > (std::uint64_t{1} << 63))
        return lineError(line, "negative number out of range: -" + std::string(w));
      return ~v + 1;  // two's complement, as a sign-extended register holds it
    }
    return v;
  }
  if (negative) return lineError(line, "expected a number after '-', found " + quoted(w));
  for (const auto& c : kConstants) {
    if (c.name == w) return c.value;
  }
  return lineError(line, "unknown constant " + quoted(w) +
                             " (expected a number or one of the named constants in libs/sandbox/README.md)");
}

// term ('|' term)*
Result<std::uint64_t> parseValue(Lexer& lex, int line) {
  KEEL_ASSIGN_OR_RETURN(std::uint64_t v, parseTerm(lex, line));
  while (lex.accept("|")) {
    KEEL_ASSIGN_OR_RETURN(std::uint64_t more, parseTerm(lex, line));
    v |= more;
  }
  return v;
}

// argN (== | !=) value  |  argN & value == value
Result<ArgCondition> parseCondition(Lexer& lex, int line) {
  const std::string_view arg = lex.word();
  if (arg.size() != 4 || arg.substr(0, 3) != "arg" || arg[3] < '0' || arg[3] > '5') {
    return lineError(line,
                     "expected an argument arg0..arg5, found " + (arg.empty() ? lex.rest() : quoted(arg)));
  }
  ArgCondition cond;
  cond.index = static_cast<unsigned>(arg[3] - '0');
  if (lex.accept("==")) {
    cond.op = ArgOp::kEqual;
  } else if (lex.accept("!=")) {
    cond.op = ArgOp::kNotEqual;
  } else if (!lex.accept("&&") && lex.accept("&")) {
    cond.op = ArgOp::kMaskedEqual;
    KEEL_ASSIGN_OR_RETURN(cond.mask, parseValue(lex, line));
    if (!lex.accept("==")) return lineError(line, "expected '==' after the mask, found " + lex.rest());
  } else {
    return lineError(line, "expected '==', '!=' or '&' after " + std::string(arg) + ", found " + lex.rest());
  }
  KEEL_ASSIGN_OR_RETURN(cond.value, parseValue(lex, line));
  if (cond.op == ArgOp::kMaskedEqual && (cond.value & ~cond.mask) != 0) {
    return lineError(line, "masked comparison can never hold: value has bits outside the mask");
  }
  return cond;
}

Result<SyscallRule> parseLine(std::string_view text, int line, const DenyExceptions& exceptions) {
  Lexer lex(text);
  SyscallRule rule;
  rule.line = line;
  const std::string_view name = lex.word();
  if (name.empty()) return lineError(line, "expected a syscall name, found " + lex.rest());
  rule.name = std::string(name);
  if (isHardDenied(name, exceptions)) {
    bool liftable = false;
    for (const auto& d : kHardDenied) liftable |= d.name == name && d.lift != nullptr;
    return lineError(line,
                     quoted(name) + " is on the hard deny list" +
                         (liftable ? std::string(" (expected only with the sandbox option that lifts it: "
                                                 "allowMount, allowReboot or allowClock)")
                                   : std::string("; no profile can allow it")));
  }
  rule.number = seccomp_syscall_resolve_name(rule.name.c_str());
  // Negative numbers are libseccomp's pseudo-syscalls: names that exist on other
  // architectures only (socketcall on x86_64).
  if (rule.number < 0) {
    return lineError(line, "unknown syscall " + quoted(name) + " (expected a syscall of this architecture)");
  }
  // Also by number, so that no alias of a denied call slips through under another name.
  for (const auto& d : kHardDenied) {
    if (isHardDenied(d.name, exceptions) &&
        seccomp_syscall_resolve_name(std::string(d.name).c_str()) == rule.number) {
      return lineError(line, quoted(name) + " is the same syscall as hard-denied " + quoted(d.name));
    }
  }
  if (!lex.atEnd()) {
    if (!lex.accept(":"))
      return lineError(line, "expected ':' or end of line after the syscall name, found " + lex.rest());
    do {
      KEEL_ASSIGN_OR_RETURN(ArgCondition cond, parseCondition(lex, line));
      for (const auto& other : rule.conditions) {
        if (other.index == cond.index) {
          return lineError(line, "arg" + std::to_string(cond.index) +
                                     " compared twice in one rule (expected one comparison per argument; "
                                     "use another line for an alternative)");
        }
      }
      rule.conditions.push_back(cond);
    } while (lex.accept(","));
    if (!lex.atEnd())
      return lineError(line, "expected ',' or end of line after a condition, found " + lex.rest());
  }
  return rule;
}

}  // namespace

bool isHardDenied(std::string_view name, const DenyExceptions& exceptions) {
  for (const auto& d : kHardDenied) {
    if (d.name == name) return d.lift == nullptr || !(exceptions.*d.lift);
  }
  return false;
}

std::vector<std::string_view> hardDeniedSyscalls(const DenyExceptions& exceptions) {
  std::vector<std::string_view> names;
  for (const auto& d : kHardDenied) {
    if (isHardDenied(d.name, exceptions)) names.push_back(d.name);
  }
  return names;
}

Result<Policy> parsePolicy(std::string_view text, const DenyExceptions& exceptions) {
  Policy policy;
  policy.kind = PolicyKind::kAllowList;
  policy.exceptions = exceptions;
  int line = 0;
  while (!text.empty()) {
    ++line;
    const std::size_t nl = text.find('\n');
    std::string_view raw = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    if (const std::size_t hash = raw.find('#'); hash != std::string_view::npos) raw = raw.substr(0, hash);
    raw = trim(raw);
    if (raw.empty()) continue;
    KEEL_ASSIGN_OR_RETURN(SyscallRule rule, parseLine(raw, line, exceptions));
    policy.rules.push_back(std::move(rule));
  }
  if (policy.rules.empty()) {
    return invalidArgument("seccomp policy: expected at least one rule, found none");
  }
  return policy;
}

Policy extensionPolicy(const DenyExceptions& exceptions) {
  Policy policy;
  policy.kind = PolicyKind::kExtension;
  policy.exceptions = exceptions;
  return policy;
}

}  // namespace keel::sandbox
