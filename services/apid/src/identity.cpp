#include "identity.h"

#include <algorithm>

#include <arpa/inet.h>
#include <sys/stat.h>
#include <fmt/format.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <spdlog/spdlog.h>

#include "keel/config/file_io.h"
#include "keel/pki/pki.h"
#include "keel/security/v1/security.grpc.pb.h"

namespace keel::apid {

namespace v1 = keel::security::v1;

namespace {

constexpr auto kIssueTimeout = std::chrono::seconds(10);
// Never renew more often than this, whatever the lifetime: a misconfigured TTL must not
// turn into a tight loop against trustd.
constexpr auto kMinRenewInterval = std::chrono::seconds(1);

Status fromGrpc(const grpc::Status& s) {
  return Status(static_cast<StatusCode>(s.error_code()), s.error_message());
}

bool isIp(const std::string& s) {
  unsigned char buf[sizeof(in6_addr)];
  return inet_pton(AF_INET, s.c_str(), buf) == 1 || inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

class LocalTrustdIssuer final : public CertificateIssuer {
 public:
  explicit LocalTrustdIssuer(std::filesystem::path socket) : socket_(std::move(socket)) {}

  Result<IssuedIdentity> issue(const IdentityRequest& request) override {
    auto stub = v1::LocalIssuerService::NewStub(
        grpc::CreateChannel("unix:" + socket_.string(), grpc::InsecureChannelCredentials()));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + kIssueTimeout);
    v1::IssueApidCertificatesRequest req;
    req.set_serving_csr(request.servingCsrPem);
    req.set_impersonator_csr(request.impersonatorCsrPem);
    v1::IssueApidCertificatesResponse resp;
    const auto st = stub->IssueApidCertificates(&ctx, req, &resp);
    if (!st.ok()) return fromGrpc(st).withContext("trustd at " + socket_.string());
    return IssuedIdentity{resp.serving_chain(), resp.impersonator_certificate()};
  }
  std::string describe() const override { return "trustd at " + socket_.string(); }

 private:
  std::filesystem::path socket_;
};

class JoinIssuer final : public CertificateIssuer {
 public:
  JoinIssuer(std::vector<std::string> endpoints, std::string token, std::filesystem::path caFile)
      : endpoints_(std::move(endpoints)), token_(std::move(token)), caFile_(std::move(caFile)) {}

  Result<IssuedIdentity> issue(const IdentityRequest& request) override {
    auto ca = config::readPrivateFile(caFile_, "the OS CA bundle");
    if (!ca.ok()) return ca.status();
    if (request.renewal) {
      auto renewed = eachEndpoint(*ca, "renew", [&](v1::SecurityService::Stub& stub, grpc::ClientContext& ctx,
                                                    std::string& certificate) {
        v1::RenewNodeCertificateRequest req;
        req.set_csr(request.servingCsrPem);
        req.set_certificate(request.renewal->certificatePem);
        req.set_proof(request.renewal->signature);
        v1::RenewNodeCertificateResponse resp;
        const auto st = stub.RenewNodeCertificate(&ctx, req, &resp);
        certificate = resp.certificate();
        return st;
      });
      // Unreachable or busy control planes would not take the token either: try again later.
      if (renewed.ok() || renewed.status().code() == StatusCode::kUnavailable ||
          renewed.status().code() == StatusCode::kResourceExhausted) {
        return renewed;
      }
      spdlog::warn("apid: {}; joining again with the join token", renewed.status().message());
    }
    return eachEndpoint(*ca, "sign", [&](v1::SecurityService::Stub& stub, grpc::ClientContext& ctx,
                                         std::string& certificate) {
      v1::SignNodeCertificateRequest req;
      req.set_csr(request.servingCsrPem);
      req.set_token(token_);
      v1::SignNodeCertificateResponse resp;
      const auto st = stub.SignNodeCertificate(&ctx, req, &resp);
      certificate = resp.certificate();
      return st;
    });
  }
  std::string describe() const override {
    return fmt::format("the join listener of {}", fmt::join(endpoints_, ", "));
  }

 private:
  using Call = std::function<grpc::Status(v1::SecurityService::Stub&, grpc::ClientContext&, std::string&)>;

  // `call` against each endpoint in turn until one answers.
  Result<IssuedIdentity> eachEndpoint(const std::string& ca, std::string_view verb, const Call& call) const {
    std::vector<std::string> failures;
    for (const auto& endpoint : endpoints_) {
      grpc::SslCredentialsOptions tls;
      tls.pem_root_certs = ca;
      auto stub = v1::SecurityService::NewStub(grpc::CreateChannel(endpoint, grpc::SslCredentials(tls)));
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + kIssueTimeout);
      std::string certificate;
      const auto st = call(*stub, ctx, certificate);
      if (st.ok()) return IssuedIdentity{certificate, ""};
      failures.push_back(fmt::format("{}: {}", endpoint, st.error_message()));
      // A refusal is the cluster's answer; another control plane would give the same one.
      if (st.error_code() == grpc::StatusCode::UNAUTHENTICATED ||
          st.error_code() == grpc::StatusCode::INVALID_ARGUMENT ||
          st.error_code() == grpc::StatusCode::UNIMPLEMENTED) {
        return Status(static_cast<StatusCode>(st.error_code()),
                      fmt::format("the control plane refused to {}: {}", verb, failures.back()));
      }
    }
    return unavailable(fmt::format("no control plane would {} apid's certificate: {}", verb,
                                   fmt::join(failures, "; ")));
  }

  std::vector<std::string> endpoints_;
  std::string token_;
  std::filesystem::path caFile_;
};

struct KeyAndCsr {
  pki::PrivateKey key;
  std::string csrPem;
};

Result<KeyAndCsr> makeCsr(const std::string& cn, const std::vector<std::string>& sans) {
  KEEL_ASSIGN_OR_RETURN(auto key, pki::PrivateKey::generate(pki::KeyType::kEcdsaP256));
  pki::CsrOptions options;
  options.subject.commonName = cn;
  for (const auto& s : sans) {
    auto& list = isIp(s) ? options.subjectAltNames.ipAddresses : options.subjectAltNames.dnsNames;
    if (!s.empty() && std::find(list.begin(), list.end(), s) == list.end()) list.push_back(s);
  }
  KEEL_ASSIGN_OR_RETURN(auto csr, pki::CertificateRequest::create(key, options));
  return KeyAndCsr{std::move(key), csr.toPem()};
}

// The certificate must be for the key apid just made, or apid would write a pair that
// no TLS stack can use.
Result<pki::Certificate> checkIssued(const std::string& pem, const pki::PrivateKey& key,
                                     std::string_view what) {
  auto chain = pki::Certificate::bundleFromPem(pem);
  if (!chain.ok()) return chain.status().withContext(std::string(what) + " from the issuer");
  if (!chain->front().matchesKey(key)) {
    return internalError(std::string(what) + " from the issuer is not for the key apid sent");
  }
  return chain->front();
}

}  // namespace

std::unique_ptr<CertificateIssuer> localTrustdIssuer(const std::filesystem::path& socket) {
  return std::make_unique<LocalTrustdIssuer>(socket);
}

std::unique_ptr<CertificateIssuer> joinIssuer(std::vector<std::string> endpoints, std::string token,
                                              std::filesystem::path caFile) {
  return std::make_unique<JoinIssuer>(std::move(endpoints), std::move(token), std::move(caFile));
}

IdentityManager::IdentityManager(IdentityOptions options, std::unique_ptr<CertificateIssuer> issuer,
                                 const Clock& clock, uint64_t seed)
    : options_(std::move(options)), issuer_(std::move(issuer)), clock_(clock), random_(seed) {}

IdentityManager::~IdentityManager() {
  stop();
}

Status IdentityManager::renewOnce() {
  KEEL_ASSIGN_OR_RETURN(auto serving, makeCsr(options_.nodeAddress, options_.sans));
  std::optional<KeyAndCsr> impersonator;
  IdentityRequest request{serving.csrPem, "", renewalProof(serving.csrPem)};
  const bool wantImpersonator = !options_.files.impersonatorCert.empty();
  if (wantImpersonator) {
    KEEL_ASSIGN_OR_RETURN(impersonator, makeCsr("apid@" + options_.nodeAddress, {}));
    request.impersonatorCsrPem = impersonator->csrPem;
  }
  KEEL_ASSIGN_OR_RETURN(const auto issued, issuer_->issue(request));
  KEEL_ASSIGN_OR_RETURN(const auto leaf,
                        checkIssued(issued.servingChainPem, serving.key, "the serving certificate"));
  std::optional<pki::Certificate> forwarding;
  if (wantImpersonator) {
    if (issued.impersonatorPem.empty())
      return internalError("the issuer granted no impersonator certificate");
    KEEL_ASSIGN_OR_RETURN(
        forwarding, checkIssued(issued.impersonatorPem, impersonator->key, "the impersonator certificate"));
  }
  // Key first, then certificate: a reader that sees a new certificate finds its key;
  // a reader that sees a new key with the old certificate finds them mismatched and keeps
  // what it had until the next look.
  const auto& f = options_.files;
  KEEL_RETURN_IF_ERROR(config::writePrivateFile(f.servingKey, serving.key.toPem(), config::Overwrite::kYes));
  KEEL_RETURN_IF_ERROR(
      config::writePrivateFile(f.servingCert, issued.servingChainPem, config::Overwrite::kYes));
  if (wantImpersonator) {
    KEEL_RETURN_IF_ERROR(
        config::writePrivateFile(f.impersonatorKey, impersonator->key.toPem(), config::Overwrite::kYes));
    KEEL_RETURN_IF_ERROR(
        config::writePrivateFile(f.impersonatorCert, issued.impersonatorPem, config::Overwrite::kYes));
  }
  const TimePoint now = clock_.now();
  TimePoint notAfter = leaf.notAfter();
  if (forwarding) notAfter = std::min(notAfter, forwarding->notAfter());
  std::uniform_real_distribution<double> spread(-options_.jitter, options_.jitter);
  std::lock_guard lock(mu_);
  current_ = std::make_pair(serving.key.toPem(), issued.servingChainPem);
  impersonatorPem_ = issued.impersonatorPem;
  const auto lifetime = std::chrono::duration<double>(notAfter - now);
  const double fraction = std::clamp(options_.renewAt + spread(random_), 0.05, 0.95);
  const auto wait = std::max<std::chrono::system_clock::duration>(
      std::chrono::duration_cast<std::chrono::system_clock::duration>(lifetime * fraction),
      kMinRenewInterval);
  renewAt_ = now + wait;
  notAfter_ = notAfter;
  spdlog::info("apid: new certificate from {}: serial {}, valid until {}; renewal at {}", issuer_->describe(),
               leaf.serialHex(), formatTime(notAfter), formatTime(renewAt_));
  return Status::ok();
}

std::optional<RenewalProof> IdentityManager::renewalProof(const std::string& csrPem) const {
  std::optional<std::pair<std::string, std::string>> current;
  {
    std::lock_guard lock(mu_);
    current = current_;
  }
  if (!current) return std::nullopt;
  // An expired certificate proves nothing: the node joins again with the token.
  auto chain = pki::Certificate::bundleFromPem(current->second);
  if (!chain.ok() || chain->front().notAfter() <= clock_.now()) return std::nullopt;
  auto key = pki::PrivateKey::fromPem(current->first);
  auto csr = pki::CertificateRequest::fromPem(csrPem);
  if (!key.ok() || !csr.ok()) return std::nullopt;
  auto signature = pki::signPossession(*key, *csr);
  if (!signature.ok()) return std::nullopt;
  return RenewalProof{current->second, *std::move(signature)};
}

std::chrono::milliseconds IdentityManager::backoff(int failures) const {
  auto d = options_.firstRetry;
  for (int i = 1; i < failures && d < options_.maxRetry; ++i) d *= 2;
  return std::min(d, options_.maxRetry);
}

Status IdentityManager::obtain() {
  for (int failures = 1;; ++failures) {
    {
      std::lock_guard lock(mu_);
      if (stopping_) return Status(StatusCode::kCancelled, "apid is stopping");
    }
    const Status st = renewOnce();
    if (st.isOk()) return st;
    const auto wait = backoff(failures);
    spdlog::warn(
        "apid: no serving certificate yet, so the API port is not served: {} (from {}); retrying in {} ms",
        st.message(), issuer_->describe(), wait.count());
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, wait, [this] { return stopping_; });
  }
}

void IdentityManager::startRenewing() {
  thread_ = std::thread([this] { renewLoop(); });
}

bool IdentityManager::issuedByAnotherCa() {
  if (options_.caBundle.empty()) return false;
  std::vector<std::string> held;
  {
    std::lock_guard lock(mu_);
    if (!current_) return false;
    held = {current_->second, impersonatorPem_};
  }
  struct stat st {};
  if (::stat(options_.caBundle.c_str(), &st) != 0) return false;
  std::string input = fmt::format("{}:{}:{}.{}\n", st.st_ino, st.st_size, st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
  for (const auto& pem : held) input += pem;
  if (input == issuerInput_) return issuerVerdict_;
  issuerInput_ = std::move(input);
  issuerVerdict_ = false;
  auto text = config::readPrivateFile(options_.caBundle, "the OS CA bundle");
  if (!text.ok()) return false;
  auto cas = pki::Certificate::bundleFromPem(*text);
  if (!cas.ok()) return false;
  for (const auto& pem : held) {
    if (pem.empty()) continue;
    auto chain = pki::Certificate::bundleFromPem(pem);
    if (chain.ok() && !chain->front().isSignedBy(cas->front())) return issuerVerdict_ = true;
  }
  return false;
}

void IdentityManager::renewLoop() {
  int failures = 0;
  std::unique_lock lock(mu_);
  while (!stopping_) {
    auto until = failures == 0 ? renewAt_ - clock_.now() : std::chrono::system_clock::duration(backoff(failures));
    const bool checksIssuer = !options_.caBundle.empty() && options_.issuerCheck.count() > 0;
    if (checksIssuer) until = std::min<std::chrono::system_clock::duration>(until, options_.issuerCheck);
    if (until > std::chrono::system_clock::duration::zero()) {
      cv_.wait_for(lock, until, [this] { return stopping_; });
      if (stopping_) break;
    }
    const bool due = failures > 0 ? std::chrono::steady_clock::now() >= retryAt_ : clock_.now() >= renewAt_;
    lock.unlock();
    const bool rotated = failures == 0 && !due && checksIssuer && issuedByAnotherCa();
    if (!due && !rotated) {
      lock.lock();
      continue;
    }
    if (rotated) spdlog::info("apid: the issuing OS CA changed; renewing its certificates under it now");
    Status st = renewOnce();
    // A control plane that does not issue with the new CA yet: again after a backoff.
    if (st.isOk() && checksIssuer && issuedByAnotherCa()) {
      st = unavailable("the certificates came back signed by a CA other than the issuing one; the control plane "
                       "has not taken the new CA yet");
    }
    lock.lock();
    if (st.isOk()) {
      failures = 0;
      continue;
    }
    ++failures;
    retryAt_ = std::chrono::steady_clock::now() + backoff(failures);
    spdlog::warn("apid: renewing its certificate failed (attempt {}): {}; the current one is valid until {}",
                 failures, st.message(), formatTime(notAfter_));
  }
}

void IdentityManager::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

TimePoint IdentityManager::renewalTime() const {
  std::lock_guard lock(mu_);
  return renewAt_;
}

TimePoint IdentityManager::notAfter() const {
  std::lock_guard lock(mu_);
  return notAfter_;
}

}  // namespace keel::apid
