// keelctl dashboard in a pseudo-terminal of 80x24 against a real local cluster (a control
// plane and a worker): the screen shows both nodes and their services, keys switch the
// node, a node that stops answering is marked while the dashboard goes on, and q quits.
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>

#include "apid_fixture.h"

namespace {

using namespace keel::integration;
using keel::testing::ProcessResult;

ProcessResult keelctl(std::vector<std::string> args) { return runKeelctl(std::move(args)); }

// keelctl dashboard on the terminal side of a pty; what it draws is read from the other.
class Terminal {
 public:
  explicit Terminal(const std::filesystem::path& keelconfig) {
    winsize size{};
    size.ws_row = 24;
    size.ws_col = 80;
    pid_ = forkpty(&master_, nullptr, nullptr, &size);
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      setenv("TERM", "xterm", 1);
      execl(KEELCTL_PATH, KEELCTL_PATH, "--keelconfig", keelconfig.c_str(), "dashboard", nullptr);
      _exit(127);
    }
  }
  ~Terminal() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (master_ >= 0) close(master_);
  }
  Terminal(const Terminal&) = delete;
  Terminal& operator=(const Terminal&) = delete;

  // Reads what is drawn until `text` appears in it (true) or `timeout` passes.
  bool waitFor(const std::string& text, std::chrono::seconds timeout) {
    const auto end = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < end) {
      if (screen_.find(text) != std::string::npos) return true;
      pollfd p{master_, POLLIN, 0};
      if (poll(&p, 1, 200) <= 0) continue;
      char buf[4096];
      const ssize_t n = read(master_, buf, sizeof buf);
      if (n <= 0) break;
      screen_.append(buf, static_cast<std::size_t>(n));
    }
    return screen_.find(text) != std::string::npos;
  }
  void type(const std::string& keys) {
    screen_.clear();
    REQUIRE(write(master_, keys.data(), keys.size()) == static_cast<ssize_t>(keys.size()));
  }
  // The exit code once it ended within `timeout`; -1 otherwise.
  int exitCode(std::chrono::seconds timeout) {
    const auto end = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < end) {
      int status = 0;
      char buf[4096];
      while (read(master_, buf, sizeof buf) > 0) {
      }
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      }
      std::this_thread::sleep_for(50ms);
    }
    return -1;
  }
  const std::string& screen() const { return screen_; }

 private:
  pid_t pid_ = -1;
  int master_ = -1;
  std::string screen_;
};

}  // namespace

TEST_CASE("the dashboard shows every node and its services, follows the keys, marks a node that stops answering",
          "[cluster][dashboard]") {
  TempDir dir;
  TempDir libexec;
  const auto root = createLocalCluster(dir, libexec, 1);
  {
    Terminal term(root / "keelconfig");
    REQUIRE(term.waitFor("SERVICES on 127.0.1.1", 30s));
    CHECK(term.waitFor("127.0.1.2", 10s));
    CHECK(term.waitFor("trustd", 10s));
    CHECK(term.waitFor("running", 10s));
    CHECK(term.waitFor("LOG of trustd", 10s));  // the control plane's first service
    CHECK(term.waitFor("trustd: serving on", 10s));  // from its log
    CHECK(term.waitFor("EVENTS", 10s));
    term.type("l");  // the next node
    CHECK(term.waitFor("SERVICES on 127.0.1.2", 10s));
    CHECK(term.waitFor("LOG of apid", 10s));
    term.type("\x1b[B\x1b[B");  // down twice: past timed to machined
    CHECK(term.waitFor("LOG of machined", 10s));

    // The worker goes away: it is marked, and the dashboard goes on.
    const auto state = nlohmann::json::parse(readFile(root / "cluster.json"));
    const int workerPid = state["nodes"][1]["pid"];
    REQUIRE(kill(workerPid, SIGKILL) == 0);
    term.type("");
    CHECK(term.waitFor("NOT ANSWERING", 30s));
    CHECK(term.waitFor("127.0.1.1", 10s));
    INFO(term.screen());
    term.type("q");
    CHECK(term.exitCode(10s) == 0);
  }
  const auto notTty = keelctl({"--keelconfig", (root / "keelconfig").string(), "dashboard"});
  CHECK(notTty.exitCode != 0);
  CHECK_THAT(notTty.err, ContainsSubstring("needs a terminal"));
  CHECK(keelctl({"cluster", "destroy", "--root", root.string()}).exitCode == 0);
}
