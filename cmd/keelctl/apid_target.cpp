#include "apid_target.h"

#include <netdb.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <memory>
#include <optional>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "keel/common/fd_io.h"
#include "keel/config/endpoint.h"
#include "keel/pki/pki.h"
#include "keel/common/status.h"

namespace keel::keelctl {

namespace {

// What to run for a new client certificate: a new admin config for a new cluster, or a
// config with chosen roles from the existing cluster's secrets bundle.
// An expired certificate can no longer be renewed ('keelctl config renew' needs a valid
// one), so the way back goes through someone who still has access, or the secrets.
constexpr std::string_view kNewCertificateHint =
    "an expired certificate cannot be renewed; ask an admin to run 'keelctl config generate <file> --roles "
    "<roles>' for you, or make one from the cluster's secrets bundle with 'keelctl config new <file> --roles "
    "<roles> --from <secrets bundle>', then add it with 'keelctl config merge <file>' (renew before expiry with "
    "'keelctl config renew')";

std::string nameOf(const pki::DistinguishedName& dn) {
  return dn.commonName.empty() ? dn.toString() : dn.commonName;
}

std::string opensslErrors() {
  std::string out;
  while (const unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    out += (out.empty() ? "" : "; ") + std::string(buf);
  }
  return out;
}

// A connected TCP socket with send/receive timeouts, or the reason there is none.
Result<int> dial(const config::Endpoint& ep, std::chrono::milliseconds timeout) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const std::string port = std::to_string(ep.port);
  if (const int rc = getaddrinfo(ep.host.c_str(), port.c_str(), &hints, &found); rc != 0) {
    return unavailable(fmt::format("cannot resolve {}: {}", ep.host, gai_strerror(rc)));
  }
  std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> list(found, freeaddrinfo);
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(timeout.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((timeout.count() % 1000) * 1000);
  std::string lastError = "no address";
  for (addrinfo* ai = found; ai != nullptr; ai = ai->ai_next) {
    const int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
      lastError = errnoText(errno);
      continue;
    }
    // Linux bounds connect() by the send timeout.
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) return fd;
    lastError = errnoText(errno);
    close(fd);
  }
  return unavailable(lastError);
}

struct Probe {
  std::vector<pki::Certificate> chain;  // as the server sent it, leaf first
  // Set when the server ended the connection right after the handshake (with TLS 1.3 it
  // judges the client certificate only then): its alert or how it closed.
  std::optional<std::string> refused;
};

// A TLS 1.3 handshake that trusts anything and presents the client certificate, to see
// what the server presents and whether it accepts ours.
Result<Probe> probe(const config::Endpoint& ep, const TlsIdentity& identity,
                    std::chrono::milliseconds timeout) {
  KEEL_ASSIGN_OR_RETURN(auto crt, pki::Certificate::fromPem(identity.crt));
  KEEL_ASSIGN_OR_RETURN(auto key, pki::PrivateKey::fromPem(identity.key));
  ERR_clear_error();
  std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> ctx(SSL_CTX_new(TLS_client_method()), SSL_CTX_free);
  if (!ctx) return internalError("SSL_CTX_new: " + opensslErrors());
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_3_VERSION);
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_NONE, nullptr);
  if (SSL_CTX_use_certificate(ctx.get(), crt.raw()) != 1 ||
      SSL_CTX_use_PrivateKey(ctx.get(), key.raw()) != 1) {
    return internalError("cannot use the client certificate for the TLS probe: " + opensslErrors());
  }
  static constexpr unsigned char kAlpn[] = {2, 'h', '2'};
  SSL_CTX_set_alpn_protos(ctx.get(), kAlpn, sizeof kAlpn);

  KEEL_ASSIGN_OR_RETURN(const int raw, dial(ep, timeout));
  UniqueFd fd(raw);
  std::unique_ptr<SSL, decltype(&SSL_free)> ssl(SSL_new(ctx.get()), SSL_free);
  if (!ssl) return internalError("SSL_new: " + opensslErrors());
  SSL_set_fd(ssl.get(), fd.get());
  if (!config::isIpAddress(ep.host)) {
    // SSL_set_tlsext_host_name without its C cast.
    SSL_ctrl(ssl.get(), SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
             const_cast<char*>(ep.host.c_str()));
  }
  if (SSL_connect(ssl.get()) != 1) {
    const std::string why = opensslErrors();
    return unauthenticated(why.empty() ? "the server closed the connection during the TLS handshake" : why);
  }
  Probe out;
  if (STACK_OF(X509)* chain = SSL_get_peer_cert_chain(ssl.get())) {
    for (int i = 0; i < sk_X509_num(chain); ++i) {
      unsigned char* der = nullptr;
      const int len = i2d_X509(sk_X509_value(chain, i), &der);
      if (len <= 0) continue;
      auto cert = pki::Certificate::fromDer({der, static_cast<size_t>(len)});
      OPENSSL_free(der);
      if (cert.ok()) out.chain.push_back(*cert);
    }
  }
  // The server's verdict on our certificate: an alert or a close means refused; data
  // (its HTTP/2 settings) or silence until the timeout means accepted.
  char byte = 0;
  if (SSL_read(ssl.get(), &byte, 1) <= 0) {
    const int kind = SSL_get_error(ssl.get(), 0);
    const std::string why = opensslErrors();
    if (kind == SSL_ERROR_SSL || kind == SSL_ERROR_ZERO_RETURN) {
      out.refused = why.empty() ? "the server closed the connection" : why;
    } else if (kind == SSL_ERROR_SYSCALL && errno != EAGAIN && errno != EWOULDBLOCK) {
      out.refused = "the server closed the connection";
    }
  }
  return out;
}

std::string describeCas(const std::vector<pki::Certificate>& cas) {
  std::vector<std::string> parts;
  for (const auto& ca : cas)
    parts.push_back(fmt::format("'{}' (sha256 {})", nameOf(ca.subject()), ca.fingerprintSha256()));
  return fmt::format("{}", fmt::join(parts, ", "));
}

}  // namespace

std::vector<std::pair<std::string, std::string>> nodeTargetMetadata(const std::vector<std::string>& nodes) {
  if (nodes.empty()) return {};
  if (nodes.size() == 1) return {{kNodeMetadata, nodes.front()}};
  return {{kNodesMetadata, fmt::format("{}", fmt::join(nodes, ","))}};
}

bool isConnectionFailure(std::string_view grpcMessage) {
  // What gRPC 1.51's transport says; apid's own messages name a backend or a node.
  static constexpr std::string_view kMarkers[] = {
      "failed to connect",    "socket closed",         "connection reset",  "connection refused",
      "broken pipe",          "dns resolution failed", "handshake",         "ssl",
      "endpoint read failed", "transport closed",      "connection closed",
  };
  std::string lower(grpcMessage);
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (const auto marker : kMarkers) {
    if (lower.find(marker) != std::string::npos) return true;
  }
  return false;
}

Status checkClientCertificate(std::string_view crtPem, std::string_view contextName, const Clock& clock) {
  auto crt = pki::Certificate::fromPem(crtPem);
  if (!crt.ok()) {
    return invalidArgument(fmt::format("the client certificate of context '{}' does not parse: {}",
                                       contextName, crt.status().message()));
  }
  const TimePoint now = clock.now();
  if (now > crt->notAfter()) {
    return unauthenticated(fmt::format(
        "the client certificate of context '{}' ({}) expired at {} (now {}): {}", contextName,
        crt->subject().toString(), formatTime(crt->notAfter()), formatTime(now), kNewCertificateHint));
  }
  if (now < crt->notBefore()) {
    return unauthenticated(
        fmt::format("the client certificate of context '{}' ({}) is not valid before {} (now {}): check this "
                    "machine's clock, "
                    "or wait until then",
                    contextName, crt->subject().toString(), formatTime(crt->notBefore()), formatTime(now)));
  }
  return Status::ok();
}

Status diagnoseUnavailable(const std::string& endpoint, const TlsIdentity& identity,
                           std::string_view grpcMessage, const Clock& clock,
                           std::chrono::milliseconds timeout) {
  const std::string unreachable = fmt::format(
      "cannot reach apid at {}: {} (is the node up and apid running? check the endpoint with "
      "'keelctl config info', or pass -e/--endpoints)",
      endpoint, grpcMessage);
  auto ep = config::parseEndpoint(endpoint);
  if (!ep.ok()) return unavailable(unreachable);
  auto probed = probe(*ep, identity, timeout);
  if (!probed.ok()) {
    if (probed.status().code() == StatusCode::kUnauthenticated) {
      return unavailable(
          fmt::format("apid at {} rejected the client certificate during the TLS handshake ({}): it was "
                      "likely issued for "
                      "another cluster, or it expired; check it with 'keelctl config info'",
                      endpoint, probed.status().message()));
    }
    return unavailable(unreachable);
  }
  auto cas = pki::Certificate::bundleFromPem(identity.ca);
  if (!cas.ok() || probed->chain.empty()) return unavailable(unreachable);

  const pki::Certificate& leaf = probed->chain.front();
  pki::VerifyOptions options;
  options.requiredUsage = pki::ExtendedKeyUsage::kServerAuth;
  options.intermediates.assign(probed->chain.begin() + 1, probed->chain.end());
  const Status verified = pki::verifyCertificate(leaf, *cas, options, clock);
  if (!verified.isOk()) {
    // Servers often send their CA along with the leaf, so the question is whether any
    // certificate presented names one of the context's CAs as its issuer.
    bool trustedIssuer = false;
    for (const auto& c : probed->chain) {
      for (const auto& ca : *cas) trustedIssuer = trustedIssuer || ca.subject() == c.issuer();
    }
    if (!trustedIssuer) {
      // The issuer's own fingerprint when the server sent it, else the certificate's.
      std::string fingerprint = leaf.fingerprintSha256();
      for (const auto& c : options.intermediates) {
        if (c.subject() == leaf.issuer()) fingerprint = c.fingerprintSha256();
      }
      return unavailable(
          fmt::format("server {} presented a certificate issued by '{}' (sha256 {}), but this context trusts "
                      "only CA {}: the "
                      "endpoint belongs to another cluster, or the context is outdated",
                      endpoint, nameOf(leaf.issuer()), fingerprint, describeCas(*cas)));
    }
    return unavailable(
        fmt::format("server {} presented a certificate that does not verify against this context's CA: {}",
                    endpoint, verified.message()));
  }
  if (probed->refused) {
    return unavailable(fmt::format(
        "apid at {} rejected the client certificate ({}): it was likely issued for another cluster, or it "
        "expired; check it with 'keelctl config info'",
        endpoint, *probed->refused));
  }
  // gRPC also checks that the certificate names the host dialled.
  const auto sans = leaf.subjectAltNames();
  const auto& names = config::isIpAddress(ep->host) ? sans.ipAddresses : sans.dnsNames;
  if (std::find(names.begin(), names.end(), ep->host) == names.end()) {
    std::vector<std::string> all = sans.ipAddresses;
    all.insert(all.end(), sans.dnsNames.begin(), sans.dnsNames.end());
    return unavailable(fmt::format(
        "server {} presented a certificate for {}, which does not name {}: use one of "
        "those names in -e/--endpoints, or add {} to the node's certSans",
        endpoint, all.empty() ? "no names" : fmt::format("{}", fmt::join(all, ", ")), ep->host, ep->host));
  }
  // The TLS connection works: the call failed for another reason.
  return unavailable(fmt::format("apid at {} accepts keelctl's TLS connection, but the call failed: {}",
                                 endpoint, grpcMessage));
}

}  // namespace keel::keelctl
