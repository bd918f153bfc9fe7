// Fuzzes the wire-level stamping of replies: the bytes come from a backend or from
// another node's apid, so any byte string must either be stamped or refused as DATA_LOSS,
// and what was stamped must itself be valid wire format.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "wire_stamp.h"

namespace {

void check(bool condition) {
  if (!condition) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  // The first bytes (up to a NUL) name the node, so odd node names are covered too.
  const size_t split = std::min(input.find('\0'), std::min<size_t>(input.size(), 64));
  const std::string_view node = input.substr(0, split);
  const std::string_view reply = input.substr(split == input.size() ? 0 : split + 1);

  const auto stamped = keel::apid::stampUnaryReply(reply, node);
  if (stamped.ok()) {
    // Entry lengths come out in their shortest form, so a reply that spelled one longer
    // may shrink; stamping the result again only adds.
    const auto again = keel::apid::stampUnaryReply(*stamped, node);
    check(again.ok());
    check(again->size() >= stamped->size());
    check(keel::apid::stampUnaryReply(keel::apid::stampStreamMessage(reply, node), node).ok());
  } else {
    check(stamped.status().code() == keel::StatusCode::kDataLoss);
  }
  check(keel::apid::stampUnaryReply(keel::apid::errorUnaryReply(node, 14, reply), node).ok());
  return 0;
}
