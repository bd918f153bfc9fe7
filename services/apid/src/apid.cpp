#include "apid.h"

#include <unistd.h>

#include <algorithm>

#include <grpcpp/security/server_credentials.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_certificate_verifier.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <grpcpp/server_builder.h>
#include <spdlog/spdlog.h>

#include "keel/pki/pki.h"
#include "keel/common/status.h"

namespace keel::apid {

namespace {

// The stdout copy of the audit lines is pushed out this often; the backends directory is
// looked at every kBackendsPollTicks of it (2 s).
constexpr auto kOutputFlush = std::chrono::milliseconds(250);
constexpr int kBackendsPollTicks = 8;

// The handshake already verified the chain and the validity window; this refuses a
// certificate that chains correctly but may not act as a client (a server certificate,
// a CA), so such a peer never reaches a handler.
class ClientUsageVerifier final : public grpc::experimental::ExternalCertificateVerifier {
 public:
  explicit ClientUsageVerifier(IdentityCache* identities) : identities_(identities) {}

  bool Verify(grpc::experimental::TlsCustomVerificationCheckRequest* request,
              std::function<void(grpc::Status)> /*callback*/, grpc::Status* syncStatus) override {
    const auto pem = request->peer_cert();
    // The same cache the calls use: a client reconnecting is not parsed again, and its
    // first call finds its identity ready.
    auto id = identities_->lookup(std::string_view(pem.data(), pem.size()));
    if (!id.ok()) {
      *syncStatus = grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "unreadable client certificate");
      return true;
    }
    if (!(*id)->mayActAsClient()) {
      spdlog::warn("apid: refused a TLS client presenting '{}': not a client certificate (no clientAuth usage)",
                   (*id)->commonName);
      *syncStatus = grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "not a client certificate");
      return true;
    }
    *syncStatus = grpc::Status::OK;
    return true;
  }
  void Cancel(grpc::experimental::TlsCustomVerificationCheckRequest* /*request*/) override {}

 private:
  IdentityCache* identities_;
};

Status readable(const std::filesystem::path& p, std::string_view what) {
  if (access(p.c_str(), R_OK) != 0) {
    return failedPrecondition(fmt::format("apid's {} {} cannot be read: {}", what, p.string(), errnoText(errno)));
  }
  return Status::ok();
}

}  // namespace

Result<std::unique_ptr<Apid>> Apid::start(const contracts::ApidConfig& config, const Clock& clock) {
  KEEL_RETURN_IF_ERROR(readable(config.tls.key, "serving key"));
  KEEL_RETURN_IF_ERROR(readable(config.tls.cert, "serving certificate"));
  KEEL_RETURN_IF_ERROR(readable(config.acceptedCas, "accepted CA bundle"));
  if (config.impersonator) {
    KEEL_RETURN_IF_ERROR(readable(config.impersonator->key, "impersonator key"));
    KEEL_RETURN_IF_ERROR(readable(config.impersonator->cert, "impersonator certificate"));
  }
  std::unique_ptr<Apid> apid(new Apid(config, clock));
  KEEL_ASSIGN_OR_RETURN(apid->audit_, AuditLog::open(config.stateDir, config.audit.maxFileBytes, config.audit.maxFiles,
                                                     /*toStdout=*/true, clock));
  apid->routes_ = Routes::load(config.backendsDir, {localServicesManifest()});
  for (const auto& p : apid->routes_->problems()) spdlog::error("apid: backend manifest skipped: {}", p.status.message());
  apid->backends_ = std::make_unique<BackendChannels>(config.limits.maxMessageBytes);
  if (config.impersonator) {
    const PeerLimits peerLimits{static_cast<std::size_t>(config.limits.maxPeers), config.limits.peerIdle};
    apid->peers_ = std::make_unique<PeerChannels>(*config.impersonator, config.acceptedCas, config.peerPort,
                                                  config.limits.maxMessageBytes, config.certRefresh, peerLimits,
                                                  clock);
  }
  apid->upstreams_ = std::make_unique<ChannelRouter>(*apid->backends_, apid->peers_.get());
  Apid* self = apid.get();
  GatewayOptions gopts;
  gopts.mayForward = apid->peers_ != nullptr;
  gopts.selfNames = {config.nodeAddress};
  if (config.hostname && *config.hostname != config.nodeAddress) gopts.selfNames.push_back(*config.hostname);
  gopts.forwardTimeout = config.forwardTimeout;
  gopts.threads = config.threads;
  gopts.maxTargets = static_cast<std::size_t>(config.limits.maxTargets);
  gopts.revocations = &apid->revocations_;
  apid->startRevocationKeeper();
  GatewayDeps deps;
  deps.routes = [self] { return self->routes(); };
  deps.upstreams = apid->upstreams_.get();
  deps.audit = apid->audit_.get();
  deps.identify = certificateIdentifier(apid->identities_);
  apid->gateway_ = std::make_unique<Gateway>(gopts, deps);

  KEEL_RETURN_IF_ERROR(apid->startApiServer());
  if (config.join) KEEL_RETURN_IF_ERROR(apid->startJoinServer());
  if (apid->join_) {
    apid->join_->start(apid->gateway_->firstQueue());
    JoinListener* join = apid->join_.get();
    apid->gateway_->alsoDrain([join] { join->drain(); });
  }
  apid->gateway_->start();
  apid->watcher_ = std::thread([self] { self->watchBackends(); });
  spdlog::info("apid: listening on {} (port {}), {} backend(s), forwarding to other nodes {}", config.listen,
               apid->port_, apid->routes_->backends().size(), apid->peers_ ? "enabled" : "disabled");
  return apid;
}

// The API listener: mutual TLS with the certificates re-read from their files, the
// gateway's services, and the limits of apid's config.
Status Apid::startApiServer() {
  // Certificates are re-read from their files while apid runs: a renewed serving
  // certificate or a changed CA bundle applies to new handshakes; open ones stay.
  auto provider = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
      config_.tls.key.string(), config_.tls.cert.string(), config_.acceptedCas.string(),
      static_cast<unsigned int>(config_.certRefresh.count()));
  grpc::experimental::TlsServerCredentialsOptions tls(provider);
  tls.watch_root_certs();
  tls.watch_identity_key_cert_pairs();
  tls.set_cert_request_type(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  tls.set_certificate_verifier(
      grpc::experimental::ExternalCertificateVerifier::Create<ClientUsageVerifier>(&identities_));

  const auto& l = config_.limits;
  grpc::ServerBuilder builder;
  builder.AddListeningPort(config_.listen, grpc::experimental::TlsServerCredentials(tls), &port_);
  gateway_->registerWith(builder);
  builder.SetMaxReceiveMessageSize(l.maxMessageBytes);
  builder.SetMaxSendMessageSize(l.maxMessageBytes);
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, l.maxConcurrentStreams);
  builder.AddChannelArgument(GRPC_ARG_SERVER_HANDSHAKE_TIMEOUT_MS, static_cast<int>(l.handshakeTimeout.count()));
  builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_IDLE_MS, static_cast<int>(l.idleTimeout.count()));
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, static_cast<int>(l.keepaliveTime.count()));
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, static_cast<int>(l.keepaliveTimeout.count()));
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
                             static_cast<int>(l.minPingInterval.count()));
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 2);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  // Bandwidth probing pings along with data; API calls are small and the window default
  // is plenty, so the pings only cost wake-ups.
  builder.AddChannelArgument(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  builder.AddChannelArgument(GRPC_ARG_ENABLE_CHANNELZ, 0);
  server_ = builder.BuildAndStart();
  if (!server_ || port_ == 0) {
    return unavailable("apid cannot listen on " + config_.listen + " (address in use, or not an address of this node?)");
  }
  return Status::ok();
}

// The join listener of a control plane: server-auth TLS only, joins, renewals and the
// revocation list forwarded to trustd.
Status Apid::startJoinServer() {
  // The same serving certificate, re-read the same way; no client certificate asked.
  auto joinProvider = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
      config_.tls.key.string(), config_.tls.cert.string(), static_cast<unsigned int>(config_.certRefresh.count()));
  grpc::experimental::TlsServerCredentialsOptions joinTls(joinProvider);
  joinTls.watch_identity_key_cert_pairs();
  joinTls.set_cert_request_type(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  join_ = std::make_unique<JoinListener>(config_.join->trustdSocket, audit_.get(), clock_);
  grpc::ServerBuilder joinBuilder;
  joinBuilder.AddListeningPort(config_.join->listen, grpc::experimental::TlsServerCredentials(joinTls),
                               &joinPort_);
  join_->registerWith(joinBuilder);
  joinBuilder.SetMaxReceiveMessageSize(kJoinMaxMessageBytes);
  joinBuilder.SetMaxSendMessageSize(kJoinMaxReplyBytes);
  joinBuilder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, 4);
  joinBuilder.AddChannelArgument(GRPC_ARG_SERVER_HANDSHAKE_TIMEOUT_MS,
                                static_cast<int>(config_.limits.handshakeTimeout.count()));
  joinBuilder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_IDLE_MS, 30'000);
  joinBuilder.AddChannelArgument(GRPC_ARG_ENABLE_CHANNELZ, 0);
  joinServer_ = joinBuilder.BuildAndStart();
  if (!joinServer_ || joinPort_ == 0) {
    server_->Shutdown();
    return unavailable("apid cannot listen for joining nodes on " + config_.join->listen);
  }
  spdlog::info("apid: join listener on {} (port {}), forwarding joins, renewals and the revocation list to {}",
               config_.join->listen, joinPort_, config_.join->trustdSocket.string());
  return Status::ok();
}

void Apid::startRevocationKeeper() {
  // The list comes from where the certificates come from; an apid whose certificates are
  // provisioned by someone else enforces none.
  if (!config_.identity) return;
  const auto& id = *config_.identity;
  auto source = id.joinEndpoints.empty() ? localTrustdRevocations(id.trustdSocket)
                                         : joinListenerRevocations(id.joinEndpoints, config_.acceptedCas);
  RevocationKeeperOptions options;
  options.savedFile = config_.stateDir / "revocations.pb";
  options.caFile = config_.acceptedCas;
  options.period = config_.revocationRefresh;
  revocationKeeper_ = std::make_unique<RevocationKeeper>(revocations_, std::move(source), std::move(options));
  revocationKeeper_->loadSaved();
  revocationKeeper_->start();
}

std::shared_ptr<const Routes> Apid::routes() const {
  std::lock_guard lock(mu_);
  return routes_;
}

void Apid::watchBackends() {
  std::unique_lock lock(mu_);
  for (int tick = 1; !stopping_; ++tick) {
    stopCv_.wait_for(lock, kOutputFlush);
    if (stopping_) break;
    audit_->flushOutput();
    if (tick % kBackendsPollTicks != 0) continue;
    const std::string fp = Routes::fingerprintDir(config_.backendsDir);
    if (fp == routes_->fingerprint()) continue;
    lock.unlock();
    auto fresh = Routes::load(config_.backendsDir, {localServicesManifest()});
    for (const auto& p : fresh->problems()) spdlog::error("apid: backend manifest skipped: {}", p.status.message());
    spdlog::info("apid: backend manifests changed; {} backend(s) now", fresh->backends().size());
    lock.lock();
    routes_ = std::move(fresh);
  }
}

void Apid::shutdown(std::chrono::milliseconds grace) {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  stopCv_.notify_all();
  if (watcher_.joinable()) watcher_.join();
  if (revocationKeeper_) revocationKeeper_->stop();
  if (joinServer_) joinServer_->Shutdown(std::chrono::system_clock::now() + grace);
  if (server_) server_->Shutdown(std::chrono::system_clock::now() + grace);
  if (gateway_) gateway_->stop();
  if (join_) join_->stop();
  if (audit_) audit_->flush();
}

Apid::~Apid() { shutdown(std::chrono::milliseconds(0)); }

}  // namespace keel::apid
