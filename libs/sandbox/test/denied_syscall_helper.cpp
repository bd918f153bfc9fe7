// A program for the sandbox tests to exec under a filter: it makes the one call named by
// argv[1] and reports through its exit status (0: refused as expected, 1: allowed).
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>

#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  const char* mode = argv[1];
  if (std::strcmp(mode, "ptrace") == 0) {
    // Killed by the filter before returning.
    ptrace(PTRACE_TRACEME, 0, nullptr, nullptr);
    return 1;
  }
  if (std::strcmp(mode, "packet") == 0) {
    const int fd = socket(AF_PACKET, SOCK_RAW, 0);
    return fd < 0 && errno == EAFNOSUPPORT ? 0 : 1;
  }
  if (std::strcmp(mode, "packet-high-bits") == 0) {
    // The kernel reads the domain as an int and ignores the upper half of the register.
    const std::uint64_t domain = (std::uint64_t{1} << 32) | AF_PACKET;
    const long fd = syscall(SYS_socket, domain, SOCK_RAW, 0);
    return fd < 0 && errno == EAFNOSUPPORT ? 0 : 1;
  }
  return 2;
}
