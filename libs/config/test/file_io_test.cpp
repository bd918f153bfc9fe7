#include "keel/config/file_io.h"

#include <sys/stat.h>

#include <catch2/catch_test_macros.hpp>

#include "keel/testing/testing.h"

using namespace keel::config;
using keel::StatusCode;
using keel::testing::TempDir;

namespace {
mode_t modeOf(const std::filesystem::path& p) {
  struct stat st {};
  REQUIRE(stat(p.c_str(), &st) == 0);
  return st.st_mode & 07777;
}
}  // namespace

TEST_CASE("writes private files with mode 0600 and reads them back") {
  TempDir dir;
  const auto path = dir / "f.json";
  REQUIRE(writePrivateFile(path, "hello", Overwrite::kNo).isOk());
  CHECK(modeOf(path) == 0600);
  CHECK(*readPrivateFile(path, "it holds keys") == "hello");
  // No temporary file is left behind.
  CHECK(std::distance(std::filesystem::directory_iterator(dir.path()), std::filesystem::directory_iterator()) == 1);
}

TEST_CASE("never replaces an existing file unless asked") {
  TempDir dir;
  const auto path = dir / "f.json";
  keel::testing::writeFile(path, "old");
  const auto s = writePrivateFile(path, "new", Overwrite::kNo);
  CHECK(s.code() == StatusCode::kAlreadyExists);
  CHECK(s.message().find("already exists") != std::string::npos);
  CHECK(keel::testing::readFile(path) == "old");
  CHECK(std::distance(std::filesystem::directory_iterator(dir.path()), std::filesystem::directory_iterator()) == 1);

  REQUIRE(writePrivateFile(path, "new", Overwrite::kYes).isOk());
  CHECK(keel::testing::readFile(path) == "new");
  CHECK(modeOf(path) == 0600);
}

TEST_CASE("refuses to read a file others may access, saying how to fix it") {
  TempDir dir;
  const auto path = dir / "secrets.json";
  keel::testing::writeFile(path, "{}");
  chmod(path.c_str(), 0644);
  auto r = readPrivateFile(path, "it holds CA keys");
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == StatusCode::kPermissionDenied);
  CHECK(r.status().message() == path.string() + " has mode 0644; it holds CA keys and must be accessible by its owner "
                                                "only: chmod 600 " + path.string());
  chmod(path.c_str(), 0620);
  CHECK_FALSE(readPrivateFile(path, "x").ok());
  chmod(path.c_str(), 0400);
  CHECK(readPrivateFile(path, "x").ok());
}

TEST_CASE("reports a missing file and a directory clearly") {
  TempDir dir;
  auto missing = readPrivateFile(dir / "nope.json", "x");
  CHECK(missing.status().code() == StatusCode::kNotFound);
  CHECK(missing.status().message().find("no such file") != std::string::npos);
  std::filesystem::create_directory(dir / "d");
  chmod((dir / "d").c_str(), 0700);
  CHECK(readPrivateFile(dir / "d", "x").status().message().find("expected a regular file") != std::string::npos);
  CHECK(writePrivateFile(dir / "no-dir" / "f", "x", Overwrite::kNo).code() == StatusCode::kNotFound);
}

TEST_CASE("refuses a file that is too large to be a config") {
  TempDir dir;
  const auto path = dir / "big";
  REQUIRE(writePrivateFile(path, std::string(kMaxPrivateFileSize + 1, 'x'), Overwrite::kNo).isOk());
  CHECK(readPrivateFile(path, "x").status().message().find("expected at most") != std::string::npos);
}
