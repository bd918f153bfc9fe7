#include "health_command.h"

#include "expiry.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "keel/config/endpoint.h"
#include "keel/pki/pki.h"

#include "table.h"

namespace keel::keelctl {

namespace v1 = keel::machine::v1;

namespace {

constexpr auto kCallTimeout = std::chrono::seconds(10);

std::string remaining(std::chrono::system_clock::duration d) {
  const auto s = std::chrono::duration_cast<std::chrono::seconds>(d).count();
  if (s < 0) return "expired";
  if (s >= 2 * 86400) return fmt::format("{}d", s / 86400);
  if (s >= 2 * 3600) return fmt::format("{}h", s / 3600);
  if (s >= 120) return fmt::format("{}m", s / 60);
  return fmt::format("{}s", s);
}

// Problem text when `cert` is outside its window or has too little of it left.
std::string certificateProblem(const pki::Certificate& cert, const HealthOptions& o, TimePoint now) {
  if (now < cert.notBefore()) return "not valid yet (until " + formatTime(cert.notBefore()) + ")";
  if (now >= cert.notAfter()) return "expired at " + formatTime(cert.notAfter());
  const double lifetime = std::chrono::duration<double>(cert.notAfter() - cert.notBefore()).count();
  const double left = std::chrono::duration<double>(cert.notAfter() - now).count();
  if (lifetime > 0 && left / lifetime < o.minRemainingShare) {
    return "expires at " + formatTime(cert.notAfter()) + " and was not renewed";
  }
  return "";
}

}  // namespace

Status cmdHealth(const MachineTarget& base, const HealthOptions& options, const Clock& clock,
                 std::ostream& out, int& exitBits) {
  exitBits = 0;
  std::vector<std::string> failures;
  const TimePoint now = clock.now();
  if (auto client = pki::Certificate::fromPem(base.tls.crt); client.ok()) {
    if (const auto p = certificateProblem(*client, options, now); !p.empty()) {
      exitBits |= kHealthCertificate;
      failures.push_back("your client certificate " + p + " (renew it with 'keelctl config renew')");
    }
  }
  KEEL_ASSIGN_OR_RETURN(const auto endpoint, config::parseEndpoint(base.endpoint));
  std::vector<std::string> nodes = base.nodes;
  if (nodes.empty()) nodes.push_back(endpoint.host);

  std::vector<std::vector<std::string>> rows;
  for (const auto& node : nodes) {
    MachineTarget t = base;
    t.nodes.clear();
    t.fallbackEndpoints.clear();
    t.endpoint = config::Endpoint{node, endpoint.port}.hostPort();
    MachineClient client(t);
    std::vector<std::string> row = {node, "no", "-", "-"};
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + kCallTimeout);
    v1::ServiceListResponse list;
    const auto st = client.stub().ServiceList(&ctx, keel::common::v1::Empty(), &list);
    if (!st.ok()) {
      exitBits |= kHealthUnreachable;
      failures.push_back(fmt::format("{}: {}", node, fromGrpc(st, t).message()));
      rows.push_back(row);
      continue;
    }
    row[1] = "yes";
    // The certificate this node's apid served in the handshake.
    const auto pems = ctx.auth_context() ? ctx.auth_context()->FindPropertyValues("x509_pem_cert")
                                         : std::vector<grpc::string_ref>{};
    if (pems.empty()) {
      exitBits |= kHealthCertificate;
      failures.push_back(node + ": its certificate could not be read from the connection");
    } else {
      auto served = pki::Certificate::fromPem(std::string(pems.front().data(), pems.front().size()));
      if (!served.ok()) {
        exitBits |= kHealthCertificate;
        failures.push_back(node + ": " + served.status().message());
      } else {
        row[2] = remaining(served->notAfter() - now);
        if (const auto p = certificateProblem(*served, options, now); !p.empty()) {
          exitBits |= kHealthCertificate;
          failures.push_back(fmt::format("{}: its serving certificate {}", node, p));
        }
      }
    }
    std::vector<std::string> down;
    size_t total = 0;
    for (const auto& m : list.messages()) {
      for (const auto& s : m.services()) {
        ++total;
        if (s.state() != "running") down.push_back(s.id() + " " + s.state());
      }
    }
    row[3] = down.empty() ? fmt::format("{} running", total) : fmt::format("{}", fmt::join(down, ", "));
    if (!down.empty()) {
      exitBits |= kHealthServices;
      failures.push_back(fmt::format("{}: not running: {}", node, fmt::join(down, ", ")));
    }
    rows.push_back(row);
  }
  printTable(out, {"NODE", "REACHABLE", "CERT EXPIRES IN", "SERVICES"}, rows);
  if (auto client = pki::Certificate::fromPem(base.tls.crt); client.ok()) {
    if (expiresSoon(*client, now)) {
      out << fmt::format("your client certificate expires at {}: renew it with 'keelctl config renew'\n",
                         formatTime(client->notAfter()));
    }
  }
  if (failures.empty()) return Status::ok();
  return unavailable(fmt::format("{} problem(s): {} (exit code {}: 1 unreachable, 2 certificate, 4 services)",
                                 failures.size(), fmt::join(failures, "; "), exitBits));
}

}  // namespace keel::keelctl
