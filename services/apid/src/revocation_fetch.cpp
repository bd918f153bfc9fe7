#include "revocation_fetch.h"

#include <fmt/format.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <spdlog/spdlog.h>

#include "keel/config/file_io.h"
#include "keel/security/v1/security.grpc.pb.h"

namespace keel::apid {

namespace v1 = keel::security::v1;

namespace {

constexpr auto kFetchTimeout = std::chrono::seconds(5);
// The list is bounded by trustd (10,000 entries, about 500 KiB).
constexpr int kMaxListBytes = 4 * 1024 * 1024;

Result<SignedRevocation> fetchFrom(v1::SecurityService::Stub& stub) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + kFetchTimeout);
  keel::common::v1::Empty req;
  v1::SignedRevocationList resp;
  const auto st = stub.GetRevocationList(&ctx, req, &resp);
  if (!st.ok()) return Status(static_cast<StatusCode>(st.error_code()), st.error_message());
  return SignedRevocation{resp.list(), resp.signature()};
}

class LocalTrustdRevocations final : public RevocationSource {
 public:
  explicit LocalTrustdRevocations(std::filesystem::path socket)
      : socket_(std::move(socket)),
        stub_(v1::SecurityService::NewStub(
            grpc::CreateChannel("unix:" + socket_.string(), grpc::InsecureChannelCredentials()))) {}
  Result<SignedRevocation> fetch() override {
    auto got = fetchFrom(*stub_);
    if (!got.ok()) return got.status().withContext(describe());
    return got;
  }
  std::string describe() const override { return "trustd at " + socket_.string(); }

 private:
  std::filesystem::path socket_;
  std::unique_ptr<v1::SecurityService::Stub> stub_;
};

class JoinListenerRevocations final : public RevocationSource {
 public:
  JoinListenerRevocations(std::vector<std::string> endpoints, std::filesystem::path caFile)
      : endpoints_(std::move(endpoints)), caFile_(std::move(caFile)) {}

  Result<SignedRevocation> fetch() override {
    auto ca = config::readPrivateFile(caFile_, "the OS CA bundle");
    if (!ca.ok()) return ca.status();
    std::vector<std::string> failures;
    for (const auto& endpoint : endpoints_) {
      grpc::SslCredentialsOptions tls;
      tls.pem_root_certs = *ca;
      grpc::ChannelArguments args;
      args.SetMaxReceiveMessageSize(kMaxListBytes);
      auto stub = v1::SecurityService::NewStub(grpc::CreateCustomChannel(endpoint, grpc::SslCredentials(tls), args));
      auto got = fetchFrom(*stub);
      if (got.ok()) return got;
      failures.push_back(fmt::format("{}: {}", endpoint, got.status().message()));
    }
    return unavailable(fmt::format("no control plane gave its revocation list: {}", fmt::join(failures, "; ")));
  }
  std::string describe() const override { return fmt::format("the join listener of {}", fmt::join(endpoints_, ", ")); }

 private:
  std::vector<std::string> endpoints_;
  std::filesystem::path caFile_;
};

}  // namespace

std::unique_ptr<RevocationSource> localTrustdRevocations(std::filesystem::path socket) {
  return std::make_unique<LocalTrustdRevocations>(std::move(socket));
}

std::unique_ptr<RevocationSource> joinListenerRevocations(std::vector<std::string> endpoints,
                                                          std::filesystem::path caFile) {
  return std::make_unique<JoinListenerRevocations>(std::move(endpoints), std::move(caFile));
}

RevocationKeeper::RevocationKeeper(RevocationList& list, std::unique_ptr<RevocationSource> source,
                                   RevocationKeeperOptions options)
    : list_(list), source_(std::move(source)), options_(std::move(options)) {}

RevocationKeeper::~RevocationKeeper() { stop(); }

Result<std::vector<pki::Certificate>> RevocationKeeper::acceptedCas() const {
  KEEL_ASSIGN_OR_RETURN(const auto pem, config::readPrivateFile(options_.caFile, "the OS CA bundle"));
  return pki::Certificate::bundleFromPem(pem);
}

Result<bool> RevocationKeeper::take(const SignedRevocation& signed_) {
  KEEL_ASSIGN_OR_RETURN(const auto cas, acceptedCas());
  return list_.accept(signed_.list, signed_.signature, cas);
}

void RevocationKeeper::loadSaved() {
  auto text = config::readPrivateFile(options_.savedFile, "it is apid's copy of the revocation list");
  if (!text.ok()) {
    if (text.status().code() != StatusCode::kNotFound) spdlog::error("apid: {}", text.status().message());
    return;
  }
  v1::SignedRevocationList saved;
  if (!saved.ParseFromString(*text)) {
    spdlog::error("apid: {} does not parse; waiting for a fresh revocation list", options_.savedFile.string());
    return;
  }
  auto taken = take({saved.list(), saved.signature()});
  if (!taken.ok()) {
    spdlog::error("apid: the saved revocation list {} is not used: {}", options_.savedFile.string(),
                  taken.status().message());
    return;
  }
  spdlog::info("apid: revocation list from {}: sequence {}, {} certificate(s)", options_.savedFile.string(),
               list_.sequence(), list_.size());
}

Status RevocationKeeper::refreshOnce() {
  KEEL_ASSIGN_OR_RETURN(const auto got, source_->fetch());
  auto changed = take(got);
  if (!changed.ok()) return changed.status().withContext("from " + source_->describe());
  if (!*changed) return Status::ok();
  v1::SignedRevocationList saved;
  saved.set_list(got.list);
  saved.set_signature(got.signature);
  std::string bytes;
  saved.SerializeToString(&bytes);
  spdlog::info("apid: revocation list from {}: sequence {}, {} certificate(s)", source_->describe(), list_.sequence(),
               list_.size());
  const auto st = config::writePrivateFile(options_.savedFile, bytes, config::Overwrite::kYes);
  if (!st.isOk()) return st.withContext("apid cannot save the revocation list (it is enforced all the same)");
  return Status::ok();
}

void RevocationKeeper::start() {
  thread_ = std::thread([this] {
    std::unique_lock lock(mu_);
    Status last = Status::ok();
    while (!stopping_) {
      lock.unlock();
      const Status st = refreshOnce();
      // A control plane that stays away is logged once, not every period.
      if (!st.isOk() && st.message() != last.message()) {
        spdlog::warn("apid: revocation list not refreshed (sequence {} stays in force): {}", list_.sequence(),
                     st.message());
      }
      last = st;
      lock.lock();
      cv_.wait_for(lock, options_.period, [this] { return stopping_; });
    }
  });
}

void RevocationKeeper::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

}  // namespace keel::apid
