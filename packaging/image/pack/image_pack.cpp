// keel_image_pack: writes and reads node image files (libs/image) at build time and in
// tests. `pack` makes an image of the build's parts; `repack` gives an image's parts
// another version or build id (a cheap "newer" or "older" image); `extract` and `show`
// read one back. Signing is keelctl sign-image's job.
#include <cstdio>
#include <fstream>
#include <map>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "keel/image/image_file.h"

namespace {

using keel::Result;
using keel::Status;
namespace image = keel::image;
namespace fs = std::filesystem;

constexpr size_t kChunk = size_t{1} << 20;

// Hashes a file in pieces: its lowercase hex SHA-256 and its size.
Result<image::Part> describeFile(const std::string& name, const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return keel::notFound(fmt::format("{}: {} cannot be read", name, path.string()));
  std::string whole;
  std::string chunk(kChunk, '\0');
  // The parts are tens of MiB at most: hashing them whole keeps this tool short.
  while (in.read(chunk.data(), static_cast<std::streamsize>(chunk.size())) || in.gcount() > 0) {
    whole.append(chunk.data(), static_cast<size_t>(in.gcount()));
  }
  return image::Part{.name = name, .size = whole.size(), .sha256 = image::toHex(image::sha256(whole))};
}

// Copies `size` bytes from `in` at its position to `out`.
Status copyBytes(std::istream& in, std::ostream& out, uint64_t size) {
  std::string chunk(kChunk, '\0');
  while (size > 0) {
    const auto n = static_cast<size_t>(std::min<uint64_t>(size, chunk.size()));
    if (!in.read(chunk.data(), static_cast<std::streamsize>(n))) return keel::internalError("short read");
    out.write(chunk.data(), static_cast<std::streamsize>(n));
    size -= n;
  }
  return out ? Status::ok() : keel::internalError("write error");
}

// Writes header, manifest and then each part, read by `readPart` into `out`.
Status writeImage(const image::Manifest& manifest, const fs::path& out,
                  const std::function<Status(const image::Part&, std::ostream&)>& readPart) {
  const fs::path tmp = out.string() + ".partial";
  {
    std::ofstream o(tmp, std::ios::binary | std::ios::trunc);
    if (!o) return keel::internalError(fmt::format("cannot create {}", tmp.string()));
    const std::string m = image::serializeManifest(manifest);
    o << image::formatHeader(m.size()) << m;
    for (const auto& part : manifest.parts) KEEL_RETURN_IF_ERROR(readPart(part, o));
    o.close();
    if (!o) return keel::internalError(fmt::format("cannot write {}", tmp.string()));
  }
  std::error_code ec;
  fs::rename(tmp, out, ec);
  if (ec) return keel::internalError(fmt::format("cannot rename {}: {}", tmp.string(), ec.message()));
  return Status::ok();
}

struct PackArgs {
  std::map<std::string, std::string> files;  // part name -> path
  std::string version, buildId, rootHash, salt;
  uint32_t dataBlockSize = 4096, hashBlockSize = 4096;
  std::string out;
};

Status pack(const PackArgs& a) {
  image::Manifest m;
  KEEL_ASSIGN_OR_RETURN(m.version, image::parseVersion(a.version));
  m.buildId = a.buildId;
  for (const auto name : image::kPartNames) {
    KEEL_ASSIGN_OR_RETURN(auto part, describeFile(std::string(name), a.files.at(std::string(name))));
    m.parts.push_back(std::move(part));
  }
  image::layOutParts(m.parts);
  m.verity = {.rootHash = a.rootHash,
              .salt = a.salt,
              .dataBlockSize = a.dataBlockSize,
              .hashBlockSize = a.hashBlockSize};
  // What machined will parse: refuse to write what it would refuse.
  KEEL_RETURN_IF_ERROR(image::parseManifest(image::serializeManifest(m)).status());
  return writeImage(m, a.out, [&](const image::Part& part, std::ostream& o) {
    std::ifstream in(a.files.at(part.name), std::ios::binary);
    return copyBytes(in, o, part.size);
  });
}

Status repack(const std::string& from, const std::string& version, const std::string& buildId,
              const std::string& out) {
  KEEL_ASSIGN_OR_RETURN(const auto head, image::readImageHead(from));
  image::Manifest m = head.manifest;
  KEEL_ASSIGN_OR_RETURN(m.version, image::parseVersion(version));
  if (!buildId.empty()) m.buildId = buildId;
  std::ifstream in(from, std::ios::binary);
  in.seekg(static_cast<std::streamoff>(image::kHeaderSize + head.manifestBytes.size()));
  return writeImage(m, out,
                    [&](const image::Part& part, std::ostream& o) { return copyBytes(in, o, part.size); });
}

Status extract(const std::string& from, const std::string& partName, const std::string& out) {
  KEEL_ASSIGN_OR_RETURN(const auto head, image::readImageHead(from));
  const image::Part* part = head.manifest.part(partName);
  if (part == nullptr) return keel::invalidArgument(fmt::format("no part '{}' in {}", partName, from));
  std::ifstream in(from, std::ios::binary);
  in.seekg(static_cast<std::streamoff>(image::kHeaderSize + head.manifestBytes.size() + part->offset));
  std::ofstream o(out, std::ios::binary | std::ios::trunc);
  return copyBytes(in, o, part->size);
}

int report(const Status& s) {
  if (s.isOk()) return 0;
  std::fprintf(stderr, "keel_image_pack: %s\n", s.toString().c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"keel_image_pack: writes and reads Keel node image files (packaging/image/README.md)"};
  app.require_subcommand(1);
  PackArgs p;
  auto* packCmd = app.add_subcommand("pack", "Write an image of a build's parts");
  for (const auto name : keel::image::kPartNames) {
    packCmd
        ->add_option("--" + std::string(name), p.files[std::string(name)],
                     "The " + std::string(name) + " part")
        ->required()
        ->check(CLI::ExistingFile);
  }
  packCmd->add_option("--version", p.version, "MAJOR.MINOR.PATCH")->required();
  packCmd->add_option("--build-id", p.buildId, "What identifies the build (a commit, a date)")->required();
  packCmd->add_option("--root-hash", p.rootHash, "veritysetup format's root hash")->required();
  packCmd->add_option("--salt", p.salt, "veritysetup format's salt")->required();
  packCmd->add_option("--data-block-size", p.dataBlockSize)->capture_default_str();
  packCmd->add_option("--hash-block-size", p.hashBlockSize)->capture_default_str();
  packCmd->add_option("-o,--output", p.out)->required();

  std::string from, version, buildId, out, part;
  auto* repackCmd = app.add_subcommand("repack", "Write an image's parts under another version");
  repackCmd->add_option("image", from)->required()->check(CLI::ExistingFile);
  repackCmd->add_option("--version", version, "MAJOR.MINOR.PATCH")->required();
  repackCmd->add_option("--build-id", buildId, "Default: the image's");
  repackCmd->add_option("-o,--output", out)->required();

  auto* extractCmd = app.add_subcommand("extract", "Write one part of an image to a file");
  extractCmd->add_option("image", from)->required()->check(CLI::ExistingFile);
  extractCmd->add_option("--part", part, "kernel, initramfs, root or verity")->required();
  extractCmd->add_option("-o,--output", out)->required();

  auto* showCmd = app.add_subcommand("show", "Print an image's manifest");
  showCmd->add_option("image", from)->required()->check(CLI::ExistingFile);
  CLI11_PARSE(app, argc, argv);

  if (*packCmd) return report(pack(p));
  if (*repackCmd) return report(repack(from, version, buildId, out));
  if (*extractCmd) return report(extract(from, part, out));
  auto head = keel::image::readImageHead(from);
  if (!head.ok()) return report(head.status());
  std::fputs(head->manifestBytes.c_str(), stdout);
  return 0;
}
