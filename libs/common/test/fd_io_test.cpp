#include "keel/common/fd_io.h"

#include <unistd.h>

#include <catch2/catch_test_macros.hpp>
#include <cstring>
#include <thread>

namespace {

struct Pipe {
  int fds[2] = {-1, -1};
  Pipe() { REQUIRE(::pipe(fds) == 0); }
  ~Pipe() {
    closeWrite();
    if (fds[0] >= 0) ::close(fds[0]);
  }
  void closeWrite() {
    if (fds[1] >= 0) ::close(fds[1]);
    fds[1] = -1;
  }
};

TEST_CASE("readFully gathers a record written in pieces", "[fd_io]") {
  Pipe p;
  std::thread writer([&] {
    for (const char* piece : {"ab", "cde", "fgh"}) {
      REQUIRE(::write(p.fds[1], piece, std::strlen(piece)) == static_cast<ssize_t>(std::strlen(piece)));
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  });
  char buf[8] = {};
  CHECK(keel::readFully(p.fds[0], buf, sizeof buf) == 8);
  writer.join();
  CHECK(std::memcmp(buf, "abcdefgh", 8) == 0);
}

TEST_CASE("readFully returns the short count when the writer closes early", "[fd_io]") {
  Pipe p;
  REQUIRE(::write(p.fds[1], "xyz", 3) == 3);
  p.closeWrite();
  char buf[8] = {};
  CHECK(keel::readFully(p.fds[0], buf, sizeof buf) == 3);
  CHECK(keel::readFully(p.fds[0], buf, sizeof buf) == 0);
}

TEST_CASE("readFully returns 0 on a descriptor that cannot be read", "[fd_io]") {
  char buf[4];
  CHECK(keel::readFully(-1, buf, sizeof buf) == 0);
}

}  // namespace
