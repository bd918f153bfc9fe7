// libFuzzer target for the image file reader: machined parses a manifest only after its
// signature verifies, but a signing key can leak and a build can go wrong, so whatever
// bytes arrive must be refused by name, never crash machined or hand on a part that does
// not match. The "signed" hash is the input's own manifest's, so every input reaches the
// parser and the parts.
#include <cstddef>
#include <cstdint>
#include <map>
#include <string_view>

#include "keel/image/image_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view file(reinterpret_cast<const char*>(data), size);
  std::string signedHash = keel::image::sha256("");
  if (auto manifestSize = keel::image::parseHeader(file); manifestSize.ok()) {
    signedHash = keel::image::sha256(file.substr(keel::image::kHeaderSize, *manifestSize));
  }
  std::map<std::string, uint64_t> handedOn;
  keel::image::ImageStreamVerifier verifier(
      signedHash, size,
      {.manifest = nullptr, .part = [&](const keel::image::Part& part, std::string_view bytes) {
         handedOn[part.name] += bytes.size();
         if (handedOn[part.name] > part.size) __builtin_trap();
         return keel::Status::ok();
       }});
  // Uneven pieces, as a network delivers them.
  size_t off = 0, piece = 1;
  while (off < size && verifier.feed(file.substr(off, piece)).isOk()) {
    off += piece;
    piece = piece * 3 % 4093 + 1;
  }
  if (verifier.finish().isOk()) {
    // Accepted: the manifest describes the file exactly, and every part was handed on whole.
    const auto& m = *verifier.manifest();
    for (const auto& part : m.parts) {
      if (handedOn[part.name] != part.size) __builtin_trap();
    }
  }
  return 0;
}
