#include "audit.h"

#include <fcntl.h>
#include <unistd.h>

#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>
#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "keel/testing/testing.h"

namespace keel::apid {
namespace {

using namespace std::chrono_literals;
using keel::testing::readFile;
using keel::testing::TempDir;
using Catch::Matchers::ContainsSubstring;

// 2026-11-26T19:13:37Z
TimePoint fixedTime() {
  return TimePoint{std::chrono::sys_days{std::chrono::year{2026} / 11 / 26}} + 19h + 13min + 37s;
}

AuditRecord sampleCall() {
  AuditRecord r;
  r.event = "call";
  r.requestId = "req-1";
  r.peer = "ipv4:10.0.0.5:40000";
  r.identity = "alice";
  r.roles = {"os:operator", "os:reader"};
  r.method = "/keel.machine.v1.MachineService/Version";
  r.targets = {"10.0.0.2", "10.0.0.3"};
  r.allowed = true;
  r.code = StatusCode::kOk;
  r.duration = 1234us;
  r.bytesIn = 5;
  r.bytesOut = 678;
  return r;
}

std::vector<nlohmann::json> jsonLines(const std::string& text) {
  std::vector<nlohmann::json> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) out.push_back(nlohmann::json::parse(line));
  return out;
}

TEST_CASE("an audit line is one JSON object with who, what, where, the decision and its outcome", "[audit]") {
  ManualClock clock(fixedTime());
  const std::string line = formatAuditLine(sampleCall(), clock.now());
  CHECK(line.find('\n') == std::string::npos);
  const auto j = nlohmann::json::parse(line);
  CHECK(j.at("time") == "2026-11-26T19:13:37Z");
  CHECK(j.at("event") == "call");
  CHECK(j.at("requestId") == "req-1");
  CHECK(j.at("peer") == "ipv4:10.0.0.5:40000");
  CHECK(j.at("identity") == "alice");
  CHECK(j.at("roles") == nlohmann::json({"os:operator", "os:reader"}));
  CHECK(j.at("method") == "/keel.machine.v1.MachineService/Version");
  CHECK(j.at("targets") == nlohmann::json({"10.0.0.2", "10.0.0.3"}));
  CHECK(j.at("decision") == "allow");
  CHECK(j.at("code") == "OK");
  CHECK_FALSE(j.contains("reason"));
  CHECK(j.at("durationUs") == 1234);
  CHECK(j.at("bytesIn") == 5);
  CHECK(j.at("bytesOut") == 678);
}

TEST_CASE("a refusal is logged as deny with its code name and apid's reason", "[audit]") {
  AuditRecord r = sampleCall();
  r.allowed = false;
  r.code = StatusCode::kPermissionDenied;
  r.reason = "requires one of the roles os:admin";
  r.targets.clear();
  const auto j = nlohmann::json::parse(formatAuditLine(r, fixedTime() + 1s));
  CHECK(j.at("time") == "2026-11-26T19:13:38Z");
  CHECK(j.at("decision") == "deny");
  CHECK(j.at("code") == "PERMISSION_DENIED");
  CHECK(j.at("reason") == "requires one of the roles os:admin");
  CHECK(j.at("targets") == nlohmann::json::array());
}

TEST_CASE("a stream's open line has no duration or byte counts, its end line has them", "[audit]") {
  AuditRecord r = sampleCall();
  r.event = "open";
  const auto open = nlohmann::json::parse(formatAuditLine(r, fixedTime()));
  CHECK(open.at("event") == "open");
  CHECK_FALSE(open.contains("durationUs"));
  CHECK_FALSE(open.contains("bytesIn"));
  CHECK_FALSE(open.contains("bytesOut"));
  r.event = "end";
  const auto end = nlohmann::json::parse(formatAuditLine(r, fixedTime()));
  CHECK(end.at("event") == "end");
  CHECK(end.contains("durationUs"));
  CHECK(end.contains("bytesOut"));
}

TEST_CASE("invalid UTF-8 from a client is replaced, not thrown on", "[audit]") {
  AuditRecord r = sampleCall();
  r.identity = "bad\xff\xfe identity";
  r.method = "/x\xc3";
  r.targets = {"\x80"};
  std::string line;
  REQUIRE_NOTHROW(line = formatAuditLine(r, fixedTime()));
  const auto j = nlohmann::json::parse(line);  // valid JSON, hence valid UTF-8
  CHECK(j.at("identity").get<std::string>().starts_with("bad"));
  CHECK(j.at("identity").get<std::string>().ends_with(" identity"));
}

TEST_CASE("the audit log writes one line per record to audit.log in its directory", "[audit]") {
  TempDir dir;
  ManualClock clock(fixedTime());
  auto log = AuditLog::open(dir.path(), 1024 * 1024, 3, /*toStdout=*/false, clock);
  REQUIRE(log.ok());
  AuditRecord r = sampleCall();
  (*log)->write(r);
  clock.advance(5s);
  r.requestId = "req-2";
  r.identity = "bad\xff";
  REQUIRE_NOTHROW((*log)->write(r));
  (*log)->flush();

  const auto lines = jsonLines(readFile(dir / "audit.log"));
  REQUIRE(lines.size() == 2);
  CHECK(lines[0].at("requestId") == "req-1");
  CHECK(lines[0].at("time") == "2026-11-26T19:13:37Z");
  CHECK(lines[1].at("requestId") == "req-2");
  CHECK(lines[1].at("time") == "2026-11-26T19:13:42Z");
}

TEST_CASE("the audit log rotates and keeps at most maxFiles old files", "[audit]") {
  TempDir dir;
  ManualClock clock(fixedTime());
  constexpr std::size_t kMaxFileBytes = 4096;
  constexpr std::size_t kMaxFiles = 2;
  auto log = AuditLog::open(dir.path(), kMaxFileBytes, kMaxFiles, /*toStdout=*/false, clock);
  REQUIRE(log.ok());
  const std::string line = formatAuditLine(sampleCall(), clock.now());
  const std::size_t records = 8 * kMaxFileBytes / line.size();  // about eight files' worth
  for (std::size_t i = 0; i < records; ++i) {
    AuditRecord r = sampleCall();
    r.requestId = "req-" + std::to_string(i);
    (*log)->write(r);
  }
  (*log)->flush();

  std::vector<std::filesystem::path> files;
  for (const auto& e : std::filesystem::directory_iterator(dir.path())) files.push_back(e.path());
  CHECK(files.size() == kMaxFiles + 1);
  for (const auto& f : files) {
    INFO(f);
    CHECK(std::filesystem::file_size(f) <= kMaxFileBytes);
  }
  // The newest record is in the current file.
  const auto current = jsonLines(readFile(dir / "audit.log"));
  REQUIRE_FALSE(current.empty());
  CHECK(current.back().at("requestId") == "req-" + std::to_string(records - 1));
}

// Points stdout at a file for the life of the object.
class StdoutCapture {
 public:
  explicit StdoutCapture(const std::filesystem::path& file) : path_(file) {
    std::fflush(stdout);
    saved_ = ::dup(STDOUT_FILENO);
    const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    REQUIRE((saved_ >= 0 && fd >= 0));
    REQUIRE(::dup2(fd, STDOUT_FILENO) == STDOUT_FILENO);
    ::close(fd);
  }
  ~StdoutCapture() {
    ::dup2(saved_, STDOUT_FILENO);
    ::close(saved_);
  }
  std::string text() const { return readFile(path_); }

 private:
  std::filesystem::path path_;
  int saved_ = -1;
};

TEST_CASE("the stdout copy leaves in batches: on flushOutput, or once 64 KiB are waiting", "[audit]") {
  TempDir dir;
  ManualClock clock(fixedTime());
  StdoutCapture out(dir / "stdout");
  auto log = AuditLog::open(dir.path(), 16 * 1024 * 1024, 1, /*toStdout=*/true, clock);
  REQUIRE(log.ok());
  for (int i = 0; i < 3; ++i) {
    AuditRecord r = sampleCall();
    r.requestId = "req-" + std::to_string(i);
    (*log)->write(r);
  }
  // In the file at once; on stdout only when flushed.
  CHECK(jsonLines(readFile(dir / "audit.log")).size() == 3);
  CHECK(out.text().empty());
  (*log)->flushOutput();
  auto lines = jsonLines(out.text());
  REQUIRE(lines.size() == 3);
  for (int i = 0; i < 3; ++i) CHECK(lines[i].at("requestId") == "req-" + std::to_string(i));

  // Without a flush, a full buffer goes out by itself, whole lines and in order.
  const std::size_t lineBytes = formatAuditLine(sampleCall(), clock.now()).size() + 1;
  const std::size_t records = 64 * 1024 / lineBytes + 2;
  for (std::size_t i = 0; i < records; ++i) {
    AuditRecord r = sampleCall();
    r.requestId = "bulk-" + std::to_string(i);
    (*log)->write(r);
  }
  const std::string text = out.text();
  REQUIRE_FALSE(text.empty());
  CHECK(text.back() == '\n');
  lines = jsonLines(text);
  REQUIRE(lines.size() > 3);
  CHECK(lines[3].at("requestId") == "bulk-0");
  CHECK(lines.back().at("requestId").get<std::string>().starts_with("bulk-"));
  (*log)->flush();
  lines = jsonLines(out.text());
  CHECK(lines.size() == 3 + records);
  CHECK(lines.back().at("requestId") == "bulk-" + std::to_string(records - 1));
}

TEST_CASE("an audit log that cannot be created is an error", "[audit]") {
  TempDir dir;
  keel::testing::writeFile(dir / "file", "x");
  ManualClock clock(fixedTime());
  const auto log = AuditLog::open(dir / "file" / "sub", 4096, 1, false, clock);
  REQUIRE_FALSE(log.ok());
  CHECK(log.status().code() == StatusCode::kInternal);
  CHECK_THAT(log.status().message(), ContainsSubstring("cannot open the audit log in " + (dir / "file" / "sub").string()));
}

}  // namespace
}  // namespace keel::apid
