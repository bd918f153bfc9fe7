// PEM blocks and memory BIOs: reading the blocks of untrusted PEM input strictly, and
// collecting what OpenSSL writes into a BIO.
#include <algorithm>

#include "internal.h"

namespace keel::pki::internal {
namespace {

std::string nameList(std::span<const std::string_view> names) {
  std::string out;
  for (const auto& n : names) {
    if (!out.empty()) out += " or ";
    out += n;
  }
  return out;
}

}  // namespace

Result<std::vector<PemBlock>> readPemBlocks(std::string_view pem, std::string_view what) {
  if (pem.size() > kMaxPemSize) {
    return invalidArgument("expected " + std::string(what) + " PEM of at most " +
                           std::to_string(kMaxPemSize) + " bytes, got " + std::to_string(pem.size()));
  }
  ERR_clear_error();
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  KEEL_RELEASE_ASSERT(bio != nullptr, "out of memory");
  std::vector<PemBlock> blocks;
  for (;;) {
    char* name = nullptr;
    char* header = nullptr;
    unsigned char* data = nullptr;
    long len = 0;
    if (PEM_read_bio(bio.get(), &name, &header, &data, &len) != 1) {
      const unsigned long err = ERR_peek_last_error();
      if (ERR_GET_LIB(err) == ERR_LIB_PEM && ERR_GET_REASON(err) == PEM_R_NO_START_LINE) {
        ERR_clear_error();
        break;  // no further block: the normal end
      }
      return cryptoError(StatusCode::kInvalidArgument, "malformed " + std::string(what) + " PEM: block " +
                                                           std::to_string(blocks.size() + 1) +
                                                           " does not decode");
    }
    std::unique_ptr<char, OpensslFree> nameOwner(name);
    std::unique_ptr<char, OpensslFree> headerOwner(header);
    OpensslBytes dataOwner(data);
    PemBlock block;
    block.name = name;
    block.headers = header;
    block.der.assign(data, data + len);
    blocks.push_back(std::move(block));
  }
  return blocks;
}

Result<PemBlock> readSinglePemBlock(std::string_view pem, std::span<const std::string_view> names,
                                    std::string_view what) {
  KEEL_ASSIGN_OR_RETURN(auto blocks, readPemBlocks(pem, what));
  if (blocks.size() != 1) {
    return invalidArgument("expected exactly one " + nameList(names) + " PEM block, found " +
                           std::to_string(blocks.size()));
  }
  PemBlock& block = blocks.front();
  if (std::find(names.begin(), names.end(), block.name) == names.end()) {
    return invalidArgument("expected a " + nameList(names) + " PEM block, found '" + block.name + "'");
  }
  if (!block.headers.empty()) {
    return invalidArgument("expected a " + block.name +
                           " PEM block without headers (encrypted PEM is not supported), found headers");
  }
  return std::move(block);
}

BioPtr newMemoryBio() {
  BioPtr bio(BIO_new(BIO_s_mem()));
  KEEL_RELEASE_ASSERT(bio != nullptr, "out of memory");
  return bio;
}

std::string bioContents(BIO* bio) {
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio, &data);
  if (len <= 0 || data == nullptr) return {};
  return std::string(data, static_cast<size_t>(len));
}

}  // namespace keel::pki::internal
