// The boot pointer on the state disk (lib/keel-boot/pointer): which root slot boots
// ("factory" is the root disk, "a" and "b" files on the state disk), which one to return
// to, and how many boots on trial the slot has left. One format for the three programs
// that read or write it: the initramfs's init (a static program that links nothing of
// Keel's), machined's PID 1 and machined's Upgrade and Rollback. Header-only, standard
// library only, for that reason.
#pragma once

#include <string>
#include <string_view>

namespace keel::machined {

struct BootPointer {
  std::string boot = "factory";
  std::string fallback = "factory";
  int tries = -1;  // boots on trial left; < 0: confirmed (it served the API), kept for good
};

inline bool isBootSlot(std::string_view s) { return s == "factory" || s == "a" || s == "b"; }

struct ParsedBootPointer {
  BootPointer pointer;    // fields that were missing or malformed keep their defaults
  bool complete = false;  // every field was present and well-formed
};

inline ParsedBootPointer parseBootPointer(std::string_view text) {
  ParsedBootPointer out;
  bool boot = false, fallback = false, tries = false;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view line = text.substr(start, end - start);
    start = end + 1;
    const size_t eq = line.find('=');
    if (eq == std::string_view::npos) continue;
    const std::string_view key = line.substr(0, eq), value = line.substr(eq + 1);
    if (key == "boot" && isBootSlot(value)) {
      out.pointer.boot = std::string(value);
      boot = true;
    } else if (key == "fallback" && isBootSlot(value)) {
      out.pointer.fallback = std::string(value);
      fallback = true;
    } else if (key == "tries" && value == "confirmed") {
      out.pointer.tries = -1;
      tries = true;
    } else if (key == "tries" && !value.empty() && value.size() < 4 &&
               value.find_first_not_of("0123456789") == std::string_view::npos) {
      out.pointer.tries = 0;
      for (const char c : value) out.pointer.tries = out.pointer.tries * 10 + (c - '0');
      tries = true;
    }
  }
  out.complete = boot && fallback && tries;
  return out;
}

inline std::string formatBootPointer(const BootPointer& p) {
  return "boot=" + p.boot + "\nfallback=" + p.fallback +
         "\ntries=" + (p.tries < 0 ? std::string("confirmed") : std::to_string(p.tries)) + "\n";
}

}  // namespace keel::machined
