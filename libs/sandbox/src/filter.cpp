#include "filter.h"

#include <seccomp.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <string>

#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "keel/common/fd_io.h"
#include "keel/common/status.h"

namespace keel::sandbox::detail {
namespace {

struct CtxDeleter {
  void operator()(void* ctx) const { seccomp_release(ctx); }
};
using Ctx = std::unique_ptr<void, CtxDeleter>;

// libseccomp returns negative errno values.
Status seccompError(std::string_view what, int rc) {
  return internalError("seccomp filter: " + std::string(what) + " failed: " + errnoText(-rc));
}

scmp_compare toScmp(ArgOp op) {
  switch (op) {
    case ArgOp::kEqual: return SCMP_CMP_EQ;
    case ArgOp::kNotEqual: return SCMP_CMP_NE;
    case ArgOp::kMaskedEqual: return SCMP_CMP_MASKED_EQ;
  }
  return SCMP_CMP_EQ;
}

Status addAllowList(scmp_filter_ctx ctx, const Policy& policy) {
  for (const auto& rule : policy.rules) {
    // Re-checked here because a Policy can be built by hand, not only by parsePolicy().
    if (isHardDenied(rule.name, policy.exceptions)) {
      return invalidArgument("seccomp policy line " + std::to_string(rule.line) + ": '" + rule.name +
                             "' is on the hard deny list");
    }
    std::vector<scmp_arg_cmp> cmps;
    for (const auto& c : rule.conditions) {
      scmp_arg_cmp cmp{};
      cmp.arg = c.index;
      cmp.op = toScmp(c.op);
      cmp.datum_a = c.op == ArgOp::kMaskedEqual ? c.mask : c.value;
      cmp.datum_b = c.op == ArgOp::kMaskedEqual ? c.value : 0;
      cmps.push_back(cmp);
    }
    const int rc =
        seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW, rule.number, static_cast<unsigned>(cmps.size()),
                               cmps.empty() ? nullptr : cmps.data());
    if (rc != 0)
      return seccompError("rule for '" + rule.name + "' (line " + std::to_string(rule.line) + ")", rc);
  }
  for (const char* name : kImplicitSyscalls) {
    const int rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, seccomp_syscall_resolve_name(name), 0);
    if (rc != 0) return seccompError(std::string("implicit rule for '") + name + "'", rc);
  }
  return Status::ok();
}

Status addExtensionRules(scmp_filter_ctx ctx, const Policy& policy) {
  for (std::string_view name : hardDeniedSyscalls(policy.exceptions)) {
    const int nr = seccomp_syscall_resolve_name(std::string(name).c_str());
    if (nr < 0) continue;  // not a syscall on this architecture
    const int rc = seccomp_rule_add(ctx, SCMP_ACT_KILL_PROCESS, nr, 0);
    if (rc != 0) return seccompError("deny rule for '" + std::string(name) + "'", rc);
  }
  // Raw packet sockets see every frame on an interface. The kernel reads the domain as an
  // int, so only the low 32 bits are compared: garbage in the upper half cannot dodge it.
  // Refused rather than killed: programs probe for it and fall back.
  const scmp_arg_cmp packet{0, SCMP_CMP_MASKED_EQ, 0xffffffffULL, AF_PACKET};
  const int rc = seccomp_rule_add_array(ctx, SCMP_ACT_ERRNO(EAFNOSUPPORT), SCMP_SYS(socket), 1, &packet);
  if (rc != 0) return seccompError("AF_PACKET rule", rc);
  return Status::ok();
}

Result<std::vector<sock_filter>> exportProgram(scmp_filter_ctx ctx) {
  // libseccomp 2.5 exports only to a descriptor; an anonymous memory file keeps it off disk.
  const UniqueFd mem(memfd_create("keel-seccomp", MFD_CLOEXEC));
  if (!mem)
    return internalError(std::string("seccomp filter: memfd_create failed: ") + errnoText(errno));
  if (const int rc = seccomp_export_bpf(ctx, mem.get()); rc != 0) return seccompError("seccomp_export_bpf", rc);
  struct stat st {};
  if (fstat(mem.get(), &st) != 0)
    return internalError(std::string("seccomp filter: fstat failed: ") + errnoText(errno));
  const auto bytes = static_cast<std::size_t>(st.st_size);
  if (bytes == 0 || bytes % sizeof(sock_filter) != 0) {
    return internalError("seccomp filter: expected a whole number of BPF instructions, got " +
                         std::to_string(bytes) + " bytes");
  }
  std::vector<sock_filter> program(bytes / sizeof(sock_filter));
  if (pread(mem.get(), program.data(), bytes, 0) != static_cast<ssize_t>(bytes)) {
    return internalError(std::string("seccomp filter: reading the exported program failed: ") +
                         errnoText(errno));
  }
  return program;
}

}  // namespace

Result<std::vector<sock_filter>> compileFilter(const Policy& policy) {
  const bool allowList = policy.kind == PolicyKind::kAllowList;
  Ctx ctx(seccomp_init(allowList ? SCMP_ACT_KILL_PROCESS : SCMP_ACT_ALLOW));
  if (!ctx) return internalError("seccomp filter: seccomp_init failed");
  // Syscall numbers differ between ABIs: a call through another one (int 0x80) would be
  // judged by the wrong table, so it kills in both modes.
  if (const int rc = seccomp_attr_set(ctx.get(), SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS); rc != 0) {
    return seccompError("setting the bad-architecture action", rc);
  }
  KEEL_RETURN_IF_ERROR(allowList ? addAllowList(ctx.get(), policy) : addExtensionRules(ctx.get(), policy));
  return exportProgram(ctx.get());
}

}  // namespace keel::sandbox::detail
