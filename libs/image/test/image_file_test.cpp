#include "keel/image/image_file.h"

#include <map>

#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>

namespace {

using namespace keel::image;
using Catch::Matchers::ContainsSubstring;
using keel::StatusCode;

// A small image: each part is filler bytes, the root one 4096-byte verity block.
struct TestImage {
  std::map<std::string, std::string> parts = {{"kernel", std::string(100, 'k')},
                                              {"initramfs", std::string(50, 'i')},
                                              {"root", std::string(4096, 'r')},
                                              {"verity", std::string(4096, 'v')}};
  Manifest manifest;

  explicit TestImage(std::string version = "1.2.3") {
    manifest.version = parseVersion(version).value();
    manifest.buildId = "test-build";
    for (const auto name : kPartNames) {
      manifest.parts.push_back({.name = std::string(name),
                                .size = parts[std::string(name)].size(),
                                .sha256 = toHex(sha256(parts[std::string(name)]))});
    }
    layOutParts(manifest.parts);
    manifest.verity.rootHash = std::string(64, 'a');
    manifest.verity.salt = "00ff";
  }
  std::string manifestBytes() const { return serializeManifest(manifest); }
  std::string file() const {
    const std::string m = manifestBytes();
    std::string out = formatHeader(m.size()) + m;
    for (const auto name : kPartNames) out += parts.at(std::string(name));
    return out;
  }
};

// What a verifier handed on, and the result of streaming `file` in `chunk`-byte pieces.
struct Streamed {
  keel::Status status;
  std::map<std::string, std::string> written;
  bool manifestSeen = false;
};

Streamed stream(const std::string& file, const std::string& signedManifest, size_t chunk = 1000,
                uint64_t announced = 0, keel::Status manifestAnswer = keel::Status::ok()) {
  Streamed out;
  ImageStreamVerifier v(sha256(signedManifest), announced ? announced : file.size(),
                        {.manifest =
                             [&](const Manifest&, std::string_view) {
                               out.manifestSeen = true;
                               return manifestAnswer;
                             },
                         .part =
                             [&](const Part& p, std::string_view bytes) {
                               out.written[p.name] += bytes;
                               return keel::Status::ok();
                             }});
  for (size_t off = 0; off < file.size() && out.status.isOk(); off += chunk) {
    out.status = v.feed(std::string_view(file).substr(off, chunk));
  }
  if (out.status.isOk()) out.status = v.finish();
  return out;
}

TEST_CASE("versions parse as MAJOR.MINOR.PATCH and compare numerically", "[image]") {
  CHECK(parseVersion("0.10.0").value() > parseVersion("0.9.99").value());
  CHECK(parseVersion("1.0.0").value() == parseVersion("1.0.0").value());
  CHECK(parseVersion("2.0.1").value().toString() == "2.0.1");
  for (const char* bad :
       {"", "1", "1.2", "1.2.3.4", "01.2.3", "1.2.x", "1..3", "-1.2.3", "1.2.3-rc1", "1234567.0.0"}) {
    INFO(bad);
    CHECK(parseVersion(bad).status().code() == StatusCode::kInvalidArgument);
  }
}

TEST_CASE("a manifest round-trips and its parts follow one another", "[image]") {
  const TestImage image;
  const auto parsed = parseManifest(image.manifestBytes());
  REQUIRE(parsed.ok());
  CHECK(parsed->version.toString() == "1.2.3");
  CHECK(parsed->part("root")->offset == 150);
  CHECK(parsed->payloadSize() == 100 + 50 + 4096 + 4096);
  CHECK(parsed->verity.salt == "00ff");
}

TEST_CASE("manifests that name overlapping, missing, reordered or oversized parts are refused", "[image]") {
  TestImage image;
  SECTION("overlap") {
    image.manifest.parts[2].offset -= 10;
    CHECK_THAT(parseManifest(image.manifestBytes()).status().message(),
               ContainsSubstring("without a gap or an overlap"));
  }
  SECTION("gap") {
    image.manifest.parts[3].offset += 1;
  }
  SECTION("missing") {
    image.manifest.parts.pop_back();
  }
  SECTION("reordered") {
    std::swap(image.manifest.parts[0], image.manifest.parts[1]);
  }
  SECTION("empty part") {
    image.manifest.parts[1].size = 0;
  }
  SECTION("oversized") {
    image.manifest.parts[3].size = kMaxPayloadBytes;
  }
  SECTION("root not whole verity blocks") {
    image.manifest.parts[2].size = 4000;
    layOutParts(image.manifest.parts);
  }
  SECTION("bad hash") {
    image.manifest.parts[0].sha256 = "xyz";
  }
  SECTION("bad verity block size") {
    image.manifest.verity.dataBlockSize = 1000;
  }
  SECTION("empty build id") {
    image.manifest.buildId = "";
  }
  CHECK(parseManifest(image.manifestBytes()).status().code() == StatusCode::kInvalidArgument);
}

TEST_CASE("manifests that are not JSON objects or carry unknown fields are refused", "[image]") {
  for (const char* bad : {"", "[]", "{", "null", "{\"format\":1}", "{\"format\":2,\"version\":\"1.0.0\"}"}) {
    INFO(bad);
    CHECK(parseManifest(bad).status().code() == StatusCode::kInvalidArgument);
  }
  std::string m = TestImage().manifestBytes();
  m.insert(1, "\"extra\":1,");
  CHECK_THAT(parseManifest(m).status().message(), ContainsSubstring("unknown field 'extra'"));
}

TEST_CASE("headers with another magic, format or manifest size are refused", "[image]") {
  CHECK(parseHeader(formatHeader(10)).value() == 10);
  CHECK(!parseHeader("KEELIMG\n").ok());
  CHECK(!parseHeader(std::string(16, '\0')).ok());
  CHECK(!parseHeader(formatHeader(0)).ok());
  CHECK(!parseHeader(formatHeader(kMaxManifestBytes + 1)).ok());
  std::string other = formatHeader(10);
  other[8] = 2;
  CHECK_THAT(parseHeader(other).status().message(), ContainsSubstring("image format 2: expected format 1"));
}

TEST_CASE("a whole image streams through in pieces of any size", "[image]") {
  const TestImage image;
  for (const size_t chunk : {size_t{1}, size_t{7}, size_t{4096}, size_t{1} << 20}) {
    const auto out = stream(image.file(), image.manifestBytes(), chunk);
    INFO(chunk);
    REQUIRE(out.status.isOk());
    CHECK(out.written == image.parts);
  }
}

TEST_CASE("a manifest other than the signed one is refused before a part is handed on", "[image]") {
  const TestImage image;
  const auto out = stream(image.file(), TestImage("9.9.9").manifestBytes());
  CHECK(out.status.code() == StatusCode::kPermissionDenied);
  CHECK_THAT(out.status.message(), ContainsSubstring("is not the one signed"));
  CHECK(!out.manifestSeen);
  CHECK(out.written.empty());
}

TEST_CASE("a part whose bytes do not hash to the manifest's is refused", "[image]") {
  TestImage image;
  std::string file = image.file();
  file[file.size() - 5000] ^= 1;  // a byte of the root
  const auto out = stream(file, image.manifestBytes());
  CHECK(out.status.code() == StatusCode::kInvalidArgument);
  CHECK_THAT(out.status.message(),
             ContainsSubstring("the image's root does not hash to its manifest's SHA-256"));
  CHECK(!out.written.contains("verity"));
}

TEST_CASE("a truncated or overlong image is refused", "[image]") {
  const TestImage image;
  const std::string file = image.file();
  SECTION("cut inside the header") {
    const auto out = stream(file.substr(0, 10), image.manifestBytes(), 1000, file.size());
    CHECK_THAT(out.status.message(), ContainsSubstring("ended after 10 of"));
  }
  SECTION("cut inside a part") {
    const auto out = stream(file.substr(0, file.size() - 1), image.manifestBytes(), 1000, file.size());
    CHECK_THAT(out.status.message(), ContainsSubstring("ended after"));
  }
  SECTION("announced shorter than the manifest says") {
    const auto out = stream(file.substr(0, file.size() - 1), image.manifestBytes(), 1000, file.size() - 1);
    CHECK_THAT(out.status.message(), ContainsSubstring("but its manifest describes"));
    CHECK(out.written.empty());
  }
  SECTION("longer than announced") {
    const auto out = stream(file + "x", image.manifestBytes(), 1000, file.size());
    CHECK(out.status.code() == StatusCode::kOutOfRange);
  }
}

TEST_CASE("the manifest callback can refuse an image before any part is handed on", "[image]") {
  const TestImage image;
  const auto out = stream(image.file(), image.manifestBytes(), 1000, 0, keel::failedPrecondition("older"));
  CHECK(out.status.code() == StatusCode::kFailedPrecondition);
  CHECK(out.manifestSeen);
  CHECK(out.written.empty());
}

}  // namespace
