// Prints the README section "What each daemon can and cannot do" from the daemons'
// seccomp profiles, so the documentation is generated from the reviewed data.
// Usage: sandbox_report <source-dir>
#include <sys/socket.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>

#include "keel/sandbox/policy.h"

namespace {

namespace fs = std::filesystem;

std::string familyName(uint64_t af) {
  switch (af) {
    case AF_UNIX: return "AF_UNIX";
    case AF_INET: return "AF_INET";
    case AF_INET6: return "AF_INET6";
    case AF_NETLINK: return "AF_NETLINK";
    default: return "family " + std::to_string(af);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: sandbox_report <source-dir>\n";
    return 2;
  }
  std::vector<fs::path> daemons;
  for (const auto& entry : fs::directory_iterator(fs::path(argv[1]) / "services")) {
    if (fs::exists(entry.path() / "main.cpp")) daemons.push_back(entry.path());
  }
  std::sort(daemons.begin(), daemons.end());
  std::cout << "Generated from `services/<daemon>/seccomp.policy` by `sandbox_report` (a test keeps it in sync).\n\n";
  for (const auto& dir : daemons) {
    std::ifstream in(dir / "seccomp.policy");
    std::stringstream text;
    text << in.rdbuf();
    auto policy = keel::sandbox::parsePolicy(text.str());
    const std::string name = dir.filename().string();
    if (!policy.ok()) {
      std::cerr << name << ": " << policy.status().toString() << "\n";
      return 1;
    }
    std::set<std::string> allowed;
    std::set<std::string> conditional;
    std::set<std::string> families;
    bool anySocket = false;
    for (const auto& rule : policy->rules) {
      allowed.insert(rule.name);
      if (!rule.conditions.empty()) conditional.insert(rule.name);
      if (rule.name == "socket") {
        bool restricted = false;
        for (const auto& c : rule.conditions) {
          if (c.index == 0 && c.op == keel::sandbox::ArgOp::kEqual) {
            families.insert(familyName(c.value));
            restricted = true;
          }
        }
        if (!restricted) anySocket = true;
      }
    }
    std::cout << "### " << name << "\n\n";
    std::cout << "- May call " << allowed.size() << " system calls; anything else kills it (SIGSYS).\n";
    std::cout << "- Sockets: ";
    if (anySocket) {
      std::cout << "any family.\n";
    } else if (families.empty()) {
      std::cout << "none.\n";
    } else {
      std::string list;
      for (const auto& f : families) list += (list.empty() ? "" : ", ") + f;
      std::cout << list << " only.\n";
    }
    std::string cond;
    for (const auto& c : conditional) cond += (cond.empty() ? "`" : ", `") + c + "`";
    if (!cond.empty()) std::cout << "- Allowed only with argument checks: " << cond << ".\n";
    std::string all;
    for (const auto& a : allowed) all += (all.empty() ? "`" : " `") + a + "`";
    std::cout << "- Allowed: " << all << "\n\n";
  }
  std::string denied;
  for (const auto& d : keel::sandbox::hardDeniedSyscalls()) denied += (denied.empty() ? "`" : " `") + std::string(d) + "`";
  std::cout << "### Every daemon and every service\n\n";
  std::cout << "No profile may allow these, and machined refuses them to every service it starts: " << denied
            << ".\n";
  return 0;
}
