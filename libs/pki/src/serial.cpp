#include "keel/pki/serial.h"

#include <algorithm>
#include <cctype>

namespace keel::pki {

namespace {

constexpr std::size_t kMaxSerialHexDigits = 40;  // RFC 5280: at most 20 octets

}  // namespace

Result<std::string> normalizeSerial(std::string_view text) {
  std::string hex;
  std::string_view rest = text;
  if (rest.starts_with("0x") || rest.starts_with("0X")) rest.remove_prefix(2);
  for (const char c : rest) {
    if (c == ':' || c == ' ') continue;
    if (!std::isxdigit(static_cast<unsigned char>(c))) {
      return invalidArgument(
          "expected a certificate serial in hexadecimal (as 'openssl x509 -serial' prints it), found '" +
          std::string(text) + "'");
    }
    hex.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  }
  hex.erase(0, std::min(hex.find_first_not_of('0'), hex.size()));
  if (hex.empty()) return invalidArgument("expected a nonzero certificate serial, found '" + std::string(text) + "'");
  if (hex.size() > kMaxSerialHexDigits) {
    return invalidArgument("expected a serial of at most 20 bytes, found " + std::to_string(hex.size()) +
                           " hex digits");
  }
  if (hex.size() % 2 != 0) hex.insert(hex.begin(), '0');
  return hex;
}

}  // namespace keel::pki
