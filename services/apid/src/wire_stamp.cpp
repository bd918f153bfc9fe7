#include "wire_stamp.h"

#include <cstdint>
#include <optional>

namespace keel::apid {

namespace {

constexpr uint32_t kLengthDelimited = 2;
constexpr uint64_t kMaxLength = 0x7fffffff;

void putVarint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

void putBytesField(std::string& out, uint32_t field, std::string_view bytes) {
  putVarint(out, (uint64_t{field} << 3) | kLengthDelimited);
  putVarint(out, bytes.size());
  out.append(bytes);
}

std::optional<uint64_t> getVarint(std::string_view data, size_t& pos) {
  uint64_t v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (pos >= data.size()) return std::nullopt;
    const auto byte = static_cast<uint8_t>(data[pos++]);
    v |= uint64_t{byte & 0x7fu} << shift;
    if ((byte & 0x80) == 0) return v;
  }
  return std::nullopt;
}

std::string metadataField(std::string_view node, int code, std::string_view error) {
  std::string md;
  putBytesField(md, 1, node);
  if (!error.empty()) putBytesField(md, 2, error);
  if (code != 0) {
    putVarint(md, (3u << 3) | 0u);
    putVarint(md, static_cast<uint64_t>(static_cast<int64_t>(code)));
  }
  std::string field;
  putBytesField(field, 1, md);
  return field;
}

}  // namespace

std::string stampStreamMessage(std::string_view message, std::string_view node) {
  std::string out(message);
  out += metadataField(node, 0, {});
  return out;
}

Result<std::string> stampUnaryReply(std::string_view reply, std::string_view node) {
  const std::string stamp = metadataField(node, 0, {});
  std::string out;
  out.reserve(reply.size() + 64);
  size_t pos = 0;
  while (pos < reply.size()) {
    const size_t fieldStart = pos;
    const auto tag = getVarint(reply, pos);
    if (!tag || (*tag >> 3) == 0) return dataLoss("the reply is not valid protobuf (bad tag)");
    const uint64_t field = *tag >> 3;
    switch (*tag & 7) {
      case 0:
        if (!getVarint(reply, pos)) return dataLoss("the reply is not valid protobuf (bad varint)");
        break;
      case 1:
        if (reply.size() - pos < 8) return dataLoss("the reply is not valid protobuf (truncated)");
        pos += 8;
        break;
      case 5:
        if (reply.size() - pos < 4) return dataLoss("the reply is not valid protobuf (truncated)");
        pos += 4;
        break;
      case kLengthDelimited: {
        const size_t lengthStart = pos;
        const auto len = getVarint(reply, pos);
        // protobuf reads a length as at most five bytes, below 2^31; what it would refuse
        // is refused here too.
        if (!len || pos - lengthStart > 5 || *len > kMaxLength || *len > reply.size() - pos) {
          return dataLoss("the reply is not valid protobuf (bad length)");
        }
        if (field == 1) {
          std::string entry(reply.substr(pos, *len));
          entry += stamp;
          putBytesField(out, 1, entry);
          pos += *len;
          continue;
        }
        pos += *len;
        break;
      }
      default:
        return dataLoss("the reply is not valid protobuf (unsupported wire type)");
    }
    out.append(reply.substr(fieldStart, pos - fieldStart));
  }
  return out;
}

std::string errorStreamMessage(std::string_view node, int code, std::string_view error) {
  return metadataField(node, code, error);
}

std::string errorUnaryReply(std::string_view node, int code, std::string_view error) {
  std::string out;
  putBytesField(out, 1, metadataField(node, code, error));
  return out;
}

}  // namespace keel::apid
