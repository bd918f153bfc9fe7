#include "keel/files/file_access.h"

#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <random>
#include <string>

#include <catch2/catch_test_macros.hpp>
#include <catch2/generators/catch_generators.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "keel/testing/testing.h"

namespace keel::files {
namespace {

namespace fs = std::filesystem;
using Catch::Matchers::ContainsSubstring;
using keel::testing::TempDir;
using keel::testing::writeFile;

// base/
//   allowed/              the allowed root
//     hello.txt
//     sub/inner.txt
//     sub/deeper/deep.txt
//     link-out      -> base/secret.txt     (symlink out of the root)
//     link-in       -> hello.txt           (symlink to a file inside the root)
//     linkdir       -> sub                 (directory symlink inside the root)
//     linkdir-out   -> base/outside        (directory symlink out of the root)
//   allowed-evil/evil.txt                  (shares the root's name as a string prefix)
//   outside/private.txt
//   secret.txt
struct Tree {
  TempDir base;
  fs::path allowed = base / "allowed";
  fs::path evil = base / "allowed-evil";
  fs::path outside = base / "outside";
  fs::path secret = base / "secret.txt";

  Tree() {
    fs::create_directories(allowed / "sub/deeper");
    fs::create_directories(evil);
    fs::create_directories(outside);
    writeFile(allowed / "hello.txt", "hello, machine\n");
    writeFile(allowed / "sub/inner.txt", "inner");
    writeFile(allowed / "sub/deeper/deep.txt", "deep");
    writeFile(evil / "evil.txt", "evil");
    writeFile(outside / "private.txt", "private");
    writeFile(secret, "top secret");
    fs::create_symlink(secret, allowed / "link-out");
    fs::create_symlink("hello.txt", allowed / "link-in");
    fs::create_directory_symlink("sub", allowed / "linkdir");
    fs::create_directory_symlink(outside, allowed / "linkdir-out");
  }
};

PathResolver resolverUnderTest() {
  return GENERATE(PathResolver::kAuto, PathResolver::kWalk);
}

FileAccessOptions withResolver(PathResolver r) {
  FileAccessOptions o;
  o.resolver = r;
  return o;
}

std::string readAll(FileReader& reader) {
  std::string all;
  for (;;) {
    auto chunk = reader.next();
    REQUIRE(chunk.ok());
    if (chunk->empty()) return all;
    all += *chunk;
  }
}

void requireCode(const Status& s, StatusCode code) {
  INFO(s.toString());
  REQUIRE(s.code() == code);
}

const FileEntry* find(const Listing& l, const std::string& relative) {
  const auto it = std::find_if(l.entries.begin(), l.entries.end(),
                               [&](const FileEntry& e) { return e.relativeName == relative; });
  return it == l.entries.end() ? nullptr : &*it;
}

TEST_CASE("a file under an allowed root is read in full", "[files]") {
  Tree t;
  const FileAccess access({t.allowed}, withResolver(resolverUnderTest()));
  auto reader = access.openForRead(t.allowed / "hello.txt");
  REQUIRE(reader.ok());
  CHECK(reader->path() == (t.allowed / "hello.txt").string());
  CHECK(reader->sizeAtOpen() == 15);
  CHECK(readAll(*reader) == "hello, machine\n");

  auto nested = access.openForRead(t.allowed / "sub/./deeper//deep.txt");
  REQUIRE(nested.ok());
  CHECK(nested->path() == (t.allowed / "sub/deeper/deep.txt").string());
  CHECK(readAll(*nested) == "deep");
}

TEST_CASE("'..' that climbs out of a root is refused, even when it would land inside", "[files]") {
  Tree t;
  const FileAccess access({t.allowed}, withResolver(resolverUnderTest()));
  const auto escape = access.openForRead(t.allowed.string() + "/../secret.txt");
  requireCode(escape.status(), StatusCode::kPermissionDenied);
  CHECK_THAT(escape.status().message(), ContainsSubstring("'..'"));
  requireCode(access.openForRead(t.allowed.string() + "/sub/../hello.txt").status(),
              StatusCode::kPermissionDenied);
  requireCode(access.list(t.allowed.string() + "/..", 0).status(), StatusCode::kPermissionDenied);
}

TEST_CASE("an absolute path outside every root is refused, naming the allowed roots", "[files]") {
  Tree t;
  const FileAccess access({t.allowed, t.base / "other-root"}, withResolver(resolverUnderTest()));
  const auto outside = access.openForRead(t.secret);
  requireCode(outside.status(), StatusCode::kPermissionDenied);
  CHECK_THAT(outside.status().message(), ContainsSubstring("outside the allowed roots"));
  CHECK_THAT(outside.status().message(), ContainsSubstring(t.allowed.string()));
  CHECK_THAT(outside.status().message(), ContainsSubstring((t.base / "other-root").string()));
  requireCode(access.openForRead("/etc/passwd").status(), StatusCode::kPermissionDenied);
  requireCode(access.list("/", 0).status(), StatusCode::kPermissionDenied);
}

TEST_CASE("a root's name as a string prefix of another directory grants nothing", "[files]") {
  Tree t;
  const FileAccess access({t.allowed}, withResolver(resolverUnderTest()));
  requireCode(access.openForRead(t.evil / "evil.txt").status(), StatusCode::kPermissionDenied);
  requireCode(access.list(t.evil, 0).status(), StatusCode::kPermissionDenied);
  // Also with a trailing slash on the configured root.
  const FileAccess slash({t.allowed.string() + "/"}, withResolver(resolverUnderTest()));
  requireCode(slash.openForRead(t.evil / "evil.txt").status(), StatusCode::kPermissionDenied);
  REQUIRE(slash.openForRead(t.allowed / "hello.txt").ok());
}

TEST_CASE("a relative path is refused and never resolved against the working directory", "[files]") {
  Tree t;
  const FileAccess access({t.allowed}, withResolver(resolverUnderTest()));
  requireCode(access.openForRead("allowed/hello.txt").status(), StatusCode::kInvalidArgument);
  requireCode(access.openForRead("hello.txt").status(), StatusCode::kInvalidArgument);
  requireCode(access.openForRead("").status(), StatusCode::kInvalidArgument);
  const auto rel = access.list(".", 0);
  requireCode(rel.status(), StatusCode::kInvalidArgument);
  CHECK_THAT(rel.status().message(), ContainsSubstring("expected an absolute path"));
  // A relative root in the config never matches anything.
  const FileAccess relativeRoot({"allowed"}, withResolver(resolverUnderTest()));
  CHECK(relativeRoot.allowedRoots().empty());
  requireCode(relativeRoot.openForRead(t.allowed / "hello.txt").status(), StatusCode::kPermissionDenied);
}

TEST_CASE("a symlink pointing out of the root is refused for reading", "[files]") {
  Tree t;
  const FileAccess access({t.allowed}, withResolver(resolverUnderTest()));
  const auto out = access.openForRead(t.allowed / "link-out");
  requireCode(out.status(), StatusCode::kPermissionDenied);
  CHECK_THAT(out.status().message(), ContainsSubstring("symlink"));
  requireCode(access.openForRead(t.allowed / "linkdir-out/private.txt").status(),
              StatusCode::kPermissionDenied);
  requireCode(access.list(t.allowed / "linkdir-out", 0).status(), StatusCode::kPermissionDenied);
}

TEST_CASE("a symlink to a file inside the root is refused too: symlinks are never followed", "[files]") {
  Tree t;
  const FileAccess access({t.allowed}, withResolver(resolverUnderTest()));
  requireCode(access.openForRead(t.allowed / "link-in").status(), StatusCode::kPermissionDenied);
}

TEST_CASE("a directory symlink in the middle of a path is refused", "[files]") {
  Tree t;
  const FileAccess access({t.allowed}, withResolver(resolverUnderTest()));
  const auto viaLink = access.openForRead(t.allowed / "linkdir/inner.txt");
  requireCode(viaLink.status(), StatusCode::kPermissionDenied);
  CHECK_THAT(viaLink.status().message(), ContainsSubstring("symlink"));
  requireCode(access.list(t.allowed / "linkdir", 0).status(), StatusCode::kPermissionDenied);
  requireCode(access.openForRead(t.allowed / "linkdir-out/private.txt").status(),
              StatusCode::kPermissionDenied);
}

TEST_CASE("listing shows symlinks with their targets and never descends through them", "[files]") {
  Tree t;
  const FileAccess access({t.allowed}, withResolver(resolverUnderTest()));
  const auto listing = access.list(t.allowed, -1);
  REQUIRE(listing.ok());
  CHECK_FALSE(listing->truncated);
  const FileEntry* out = find(*listing, "link-out");
  REQUIRE(out != nullptr);
  CHECK(out->type == EntryType::kSymlink);
  CHECK(out->link == t.secret.string());
  CHECK_FALSE(out->isDir);
  const FileEntry* dirLink = find(*listing, "linkdir-out");
  REQUIRE(dirLink != nullptr);
  CHECK(dirLink->type == EntryType::kSymlink);
  CHECK(dirLink->link == t.outside.string());
  for (const auto& e : listing->entries) {
    CHECK_THAT(e.name, !ContainsSubstring("private.txt"));
    CHECK(e.relativeName.rfind("linkdir/", 0) != 0);
    CHECK(e.relativeName.rfind("linkdir-out/", 0) != 0);
  }
}

TEST_CASE("listing reports names, sizes, modes and times, sorted and depth-limited", "[files]") {
  Tree t;
  const FileAccess access({t.allowed}, withResolver(resolverUnderTest()));
  const auto top = access.list(t.allowed, 0);
  REQUIRE(top.ok());
  std::vector<std::string> names;
  for (const auto& e : top->entries) names.push_back(e.relativeName);
  CHECK(names ==
        std::vector<std::string>{"hello.txt", "link-in", "link-out", "linkdir", "linkdir-out", "sub"});
  const FileEntry* hello = find(*top, "hello.txt");
  REQUIRE(hello != nullptr);
  CHECK(hello->name == (t.allowed / "hello.txt").string());
  CHECK(hello->size == 15);
  CHECK(hello->type == EntryType::kRegular);
  CHECK(S_ISREG(hello->mode));
  CHECK(hello->modifiedUnix > 1600000000);
  CHECK(hello->error.empty());
  CHECK(find(*top, "sub")->isDir);

  const auto one = access.list(t.allowed, 1);
  REQUIRE(one.ok());
  CHECK(find(*one, "sub/inner.txt") != nullptr);
  CHECK(find(*one, "sub/deeper") != nullptr);
  CHECK(find(*one, "sub/deeper/deep.txt") == nullptr);

  const auto all = access.list(t.allowed, -1);
  REQUIRE(all.ok());
  CHECK(find(*all, "sub/deeper/deep.txt") != nullptr);

  // Relative names are relative to the requested directory, not to the allowed root.
  const auto sub = access.list(t.allowed / "sub", -1);
  REQUIRE(sub.ok());
  REQUIRE(find(*sub, "deeper/deep.txt") != nullptr);
  CHECK(find(*sub, "deeper/deep.txt")->name == (t.allowed / "sub/deeper/deep.txt").string());
}

TEST_CASE("a type filter keeps only those types but still recurses through directories", "[files]") {
  Tree t;
  const FileAccess access({t.allowed}, withResolver(resolverUnderTest()));
  const auto files = access.list(t.allowed, -1, {EntryType::kRegular});
  REQUIRE(files.ok());
  std::vector<std::string> names;
  for (const auto& e : files->entries) names.push_back(e.relativeName);
  CHECK(names == std::vector<std::string>{"hello.txt", "sub/deeper/deep.txt", "sub/inner.txt"});

  const auto links = access.list(t.allowed, -1, {EntryType::kSymlink});
  REQUIRE(links.ok());
  CHECK(links->entries.size() == 4);

  const auto dirs = access.list(t.allowed, -1, {EntryType::kDirectory, EntryType::kSymlink});
  REQUIRE(dirs.ok());
  CHECK(dirs->entries.size() == 6);
}

TEST_CASE("a listing stops at the entry cap and says it was truncated", "[files]") {
  Tree t;
  for (int i = 0; i < 50; ++i) writeFile(t.allowed / ("many-" + std::to_string(i)), "x");
  FileAccessOptions options = withResolver(resolverUnderTest());
  options.maxListEntries = 10;
  const FileAccess access({t.allowed}, options);
  const auto capped = access.list(t.allowed, -1);
  REQUIRE(capped.ok());
  CHECK(capped->truncated);
  CHECK(capped->entries.size() == 10);

  options.maxListEntries = 6;  // exactly the root's six entries
  const auto exact = FileAccess({t.allowed}, options).list(t.allowed / "sub", -1);
  REQUIRE(exact.ok());
  CHECK_FALSE(exact->truncated);

  options.maxListEntries = 1000;
  options.maxListVisited = 5;
  const auto fewVisits = FileAccess({t.allowed}, options).list(t.allowed, -1);
  REQUIRE(fewVisits.ok());
  CHECK(fewVisits->truncated);
}

TEST_CASE("a large file is streamed in chunks that add up to the original", "[files]") {
  TempDir dir;
  std::string content(5 * 64 * 1024 + 12345, '\0');
  std::mt19937 rng(42);
  for (auto& c : content) c = static_cast<char>(rng());
  writeFile(dir / "big.bin", content);
  const FileAccess access({dir.path()}, withResolver(resolverUnderTest()));
  auto reader = access.openForRead(dir / "big.bin");
  REQUIRE(reader.ok());
  CHECK(reader->sizeAtOpen() == content.size());
  std::string got;
  size_t chunks = 0;
  for (;;) {
    auto chunk = reader->next();
    REQUIRE(chunk.ok());
    if (chunk->empty()) break;
    CHECK(chunk->size() <= 64 * 1024);
    ++chunks;
    got += *chunk;
  }
  CHECK(chunks == 6);
  CHECK(got == content);
  // Past the end it keeps answering "end of file".
  CHECK(reader->next()->empty());
}

TEST_CASE("reading a directory, FIFO or device is refused without opening it", "[files]") {
  Tree t;
  REQUIRE(::mkfifo((t.allowed / "pipe").c_str(), 0600) == 0);
  const FileAccess access({t.allowed, "/dev"}, withResolver(resolverUnderTest()));
  const auto dir = access.openForRead(t.allowed / "sub");
  requireCode(dir.status(), StatusCode::kFailedPrecondition);
  CHECK_THAT(dir.status().message(), ContainsSubstring("expected a regular file, found a directory"));
  requireCode(access.openForRead(t.allowed).status(), StatusCode::kFailedPrecondition);
  // A FIFO without a writer would block a plain open forever.
  const auto fifo = access.openForRead(t.allowed / "pipe");
  requireCode(fifo.status(), StatusCode::kFailedPrecondition);
  CHECK_THAT(fifo.status().message(), ContainsSubstring("found a FIFO"));
  const auto dev = access.openForRead("/dev/null");
  requireCode(dev.status(), StatusCode::kFailedPrecondition);
  CHECK_THAT(dev.status().message(), ContainsSubstring("character device"));
  const auto listFile = access.list(t.allowed / "hello.txt", 0);
  requireCode(listFile.status(), StatusCode::kFailedPrecondition);
  CHECK_THAT(listFile.status().message(), ContainsSubstring("expected a directory, found a regular file"));
}

TEST_CASE("a missing path is NOT_FOUND", "[files]") {
  Tree t;
  const FileAccess access({t.allowed, t.base / "not-yet"}, withResolver(resolverUnderTest()));
  requireCode(access.openForRead(t.allowed / "nope.txt").status(), StatusCode::kNotFound);
  requireCode(access.openForRead(t.allowed / "hello.txt/child").status(), StatusCode::kNotFound);
  requireCode(access.list(t.allowed / "nope", 0).status(), StatusCode::kNotFound);
  requireCode(access.list(t.base / "not-yet", 0).status(), StatusCode::kNotFound);
}

TEST_CASE("magic links under an allowed /proc root are refused", "[files]") {
  const FileAccess access({"/proc"}, withResolver(resolverUnderTest()));
  const std::string self = "/proc/" + std::to_string(::getpid());
  // The same files through the process's own directory are readable: only the links are refused.
  auto status = access.openForRead(self + "/status");
  REQUIRE(status.ok());
  CHECK_THAT(readAll(*status), ContainsSubstring("Pid:"));

  requireCode(access.openForRead("/proc/self/root/etc/hostname").status(), StatusCode::kPermissionDenied);
  requireCode(access.openForRead("/proc/self/status").status(), StatusCode::kPermissionDenied);
  requireCode(access.openForRead("/proc/thread-self/status").status(), StatusCode::kPermissionDenied);
  requireCode(access.openForRead(self + "/root/etc/hostname").status(), StatusCode::kPermissionDenied);
  requireCode(access.openForRead(self + "/cwd/CMakeCache.txt").status(), StatusCode::kPermissionDenied);
  requireCode(access.openForRead(self + "/exe").status(), StatusCode::kPermissionDenied);
  requireCode(access.openForRead(self + "/fd/0").status(), StatusCode::kPermissionDenied);
  requireCode(access.list(self + "/root", 0).status(), StatusCode::kPermissionDenied);
  const auto fds = access.list(self + "/fd", 0);
  REQUIRE(fds.ok());
  for (const auto& e : fds->entries) CHECK(e.type == EntryType::kSymlink);
}

TEST_CASE("a symlink to a magic link inside a root is refused", "[files]") {
  Tree t;
  fs::create_directory_symlink("/proc/self/root", t.allowed / "hostroot");
  const FileAccess access({t.allowed}, withResolver(resolverUnderTest()));
  requireCode(access.openForRead(t.allowed / "hostroot/etc/hostname").status(),
              StatusCode::kPermissionDenied);
  requireCode(access.list(t.allowed / "hostroot", 0).status(), StatusCode::kPermissionDenied);
}

TEST_CASE("a root replaced by a symlink is refused, not followed", "[files]") {
  Tree t;
  const FileAccess access({t.allowed}, withResolver(resolverUnderTest()));
  fs::rename(t.allowed, t.base / "moved");
  fs::create_directory_symlink(t.outside, t.allowed);
  const auto swapped = access.openForRead(t.allowed / "private.txt");
  requireCode(swapped.status(), StatusCode::kPermissionDenied);
  CHECK_THAT(swapped.status().message(), ContainsSubstring("is a symlink"));
  requireCode(access.list(t.allowed, 0).status(), StatusCode::kPermissionDenied);
}

TEST_CASE("a file swapped for a symlink after opening is not followed, and refused afterwards", "[files]") {
  Tree t;
  const FileAccess access({t.allowed}, withResolver(resolverUnderTest()));
  auto reader = access.openForRead(t.allowed / "hello.txt");
  REQUIRE(reader.ok());
  fs::remove(t.allowed / "hello.txt");
  fs::create_symlink(t.secret, t.allowed / "hello.txt");
  CHECK(readAll(*reader) == "hello, machine\n");
  requireCode(access.openForRead(t.allowed / "hello.txt").status(), StatusCode::kPermissionDenied);

  // A directory swapped for a symlink is refused on the next call: nothing is cached.
  REQUIRE(access.list(t.allowed / "sub", 0).ok());
  fs::rename(t.allowed / "sub", t.base / "sub-moved");
  fs::create_directory_symlink(t.outside, t.allowed / "sub");
  requireCode(access.list(t.allowed / "sub", 0).status(), StatusCode::kPermissionDenied);
  requireCode(access.openForRead(t.allowed / "sub/private.txt").status(), StatusCode::kPermissionDenied);
}

TEST_CASE("the longest matching root applies and nested roots do not widen access", "[files]") {
  Tree t;
  const FileAccess access({t.allowed / "sub", t.allowed}, withResolver(resolverUnderTest()));
  REQUIRE(access.openForRead(t.allowed / "sub/inner.txt").ok());
  REQUIRE(access.openForRead(t.allowed / "hello.txt").ok());
  requireCode(access.openForRead(t.allowed / "sub/../../secret.txt").status(), StatusCode::kPermissionDenied);
}

TEST_CASE("a path with a NUL byte is refused", "[files]") {
  Tree t;
  const FileAccess access({t.allowed});
  const std::string withNul = (t.allowed / "hello.txt").string() + std::string("\0/../../secret.txt", 18);
  requireCode(access.openForRead(withNul).status(), StatusCode::kInvalidArgument);
}

// Runs `check` in a child process inside a private mount namespace where `setup`
// has bind-mounted something. Returns false when namespaces are not available here.
template <typename Setup, typename Check>
bool inPrivateMountNamespace(Setup setup, Check check, int& exitCode) {
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    if (::unshare(CLONE_NEWNS) != 0) {
      // Unprivileged: a user namespace gives mount rights over a private copy.
      if (::unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0) ::_exit(77);
    }
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) ::_exit(77);
    if (!setup()) ::_exit(77);
    ::_exit(check() ? 0 : 1);
  }
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  REQUIRE(WIFEXITED(status));
  exitCode = WEXITSTATUS(status);
  return exitCode != 77;
}

TEST_CASE("a bind mount inside a root does not lead out of it", "[files]") {
  Tree t;
  const PathResolver resolver = resolverUnderTest();
  fs::create_directories(t.allowed / "mnt");
  int exitCode = -1;
  const bool ran = inPrivateMountNamespace(
      [&] { return ::mount(t.outside.c_str(), (t.allowed / "mnt").c_str(), nullptr, MS_BIND, nullptr) == 0; },
      [&] {
        const FileAccess access({t.allowed}, withResolver(resolver));
        const auto read = access.openForRead(t.allowed / "mnt/private.txt");
        const auto listMnt = access.list(t.allowed / "mnt", 0);
        const auto listing = access.list(t.allowed, -1);
        if (read.status().code() != StatusCode::kPermissionDenied) return false;
        if (listMnt.status().code() != StatusCode::kPermissionDenied) return false;
        if (!listing.ok()) return false;
        const FileEntry* mnt = find(*listing, "mnt");
        return mnt != nullptr && mnt->error.find("another filesystem") != std::string::npos &&
               find(*listing, "mnt/private.txt") == nullptr;
      },
      exitCode);
  if (!ran) SKIP("mount namespaces are not available to this process");
  CHECK(exitCode == 0);
}

}  // namespace
}  // namespace keel::files
