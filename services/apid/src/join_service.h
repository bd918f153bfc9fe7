// apid's join listener (:50001): TLS 1.3 with server authentication only, since a
// joining node has no certificate yet. It serves three methods and forwards them to
// trustd with the caller's address in keel-peer and no roles: SignNodeCertificate (the
// join token is the credential), RenewNodeCertificate (a joined node's current
// certificate with a proof by its key), both checked by trustd, and GetRevocationList,
// the signed list workers fetch. Every other method is UNIMPLEMENTED.
//
// It runs no thread of its own. The join server only announces new calls, on a queue
// the gateway's first thread drains between its own events (gateway.h); every operation
// of an accepted call then completes on that thread's own queue. A thread blocked on a
// queue of its own would take socket events from the gateway's threads (gRPC's poller is
// shared by the whole process) and slow every API call down.
#pragma once

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>

#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/server_builder.h>

#include "audit.h"
#include "keel/common/clock.h"

namespace keel::apid {

// Join requests are a CSR and a token, renewals a CSR, a certificate and a signature: a
// few KiB. Larger ones are refused unread.
inline constexpr int kJoinMaxMessageBytes = 64 * 1024;
// Replies may be the revocation list: at most 10,000 entries, about 500 KiB.
inline constexpr int kJoinMaxReplyBytes = 1024 * 1024;

// The methods the join listener forwards: a joining node's first certificate (with the
// join token), a joined node's renewal (with its current certificate), and the signed
// revocation list.
inline constexpr std::string_view kJoinMethod = "/keel.security.v1.SecurityService/SignNodeCertificate";
inline constexpr std::string_view kRenewMethod = "/keel.security.v1.SecurityService/RenewNodeCertificate";
inline constexpr std::string_view kRevocationListMethod = "/keel.security.v1.SecurityService/GetRevocationList";

// Refused joins come from callers nobody has authenticated: the audit log gets the first
// refusal of a source in a window and then one summary line per source and window with
// the count, so such callers cannot rotate the audit history away. A source is an IPv4
// address or an IPv6 /64; beyond kMaxSources at once, the rest share one line.
class RefusalSummary {
 public:
  static constexpr std::chrono::seconds kWindow{60};
  static constexpr std::size_t kMaxSources = 1024;
  static constexpr int kIpv6PrefixBits = 64;

  // `what` names the calls in a summary line ("refused joins").
  RefusalSummary(AuditLog* audit, const Clock& clock, std::string what = "refused joins")
      : audit_(audit), clock_(clock), what_(std::move(what)) {}
  // A refused join, written now or counted into its source's window.
  void refused(const AuditRecord& record);
  // Writes the summary of every window that has ended. Call it now and then.
  void flush();
  // Writes every pending summary (when the listener stops).
  void flushAll() { flush(clock_.now(), true); }

 private:
  struct Window {
    TimePoint start;
    uint64_t more = 0;  // refusals after the first one, not yet written
    AuditRecord last;
  };
  void flush(TimePoint now, bool all);

  AuditLog* audit_;
  const Clock& clock_;
  const std::string what_;
  std::map<std::string, Window> windows_;
};

class JoinListener {
 public:
  JoinListener(std::filesystem::path trustdSocket, AuditLog* audit, const Clock& clock);
  ~JoinListener();

  // Before the join server is built: its generic service and the queue new calls are
  // announced on.
  void registerWith(grpc::ServerBuilder& builder);
  // After it started: accepts calls, whose operations complete on `callQueue` (drained
  // by the thread that also calls drain()).
  void start(grpc::ServerCompletionQueue* callQueue);
  // Handles what the join server announced, and writes the refusal summaries that are
  // due, without blocking. Only from the thread that drains `callQueue`.
  void drain();
  // After the join server's Shutdown() and once nothing drains `callQueue` any more:
  // empties the announcement queue and writes every pending summary.
  void stop();

  // For the calls of join_service.cpp (same thread as drain()).
  grpc::AsyncGenericService& service() { return service_; }
  grpc::ServerCompletionQueue* announcements() { return announcements_.get(); }
  AuditLog* audit() const { return audit_; }
  const Clock& clock() const { return clock_; }
  RefusalSummary& refusals() { return refusals_; }
  // Revocation-list fetches are answered to anyone and summarized the same way.
  RefusalSummary& listFetches() { return listFetches_; }
  // The channel to trustd; a failed one is replaced (retire()) so the next join connects
  // again at once instead of after gRPC's reconnect backoff.
  std::shared_ptr<grpc::Channel> trustd();
  void retire();

 private:
  std::filesystem::path trustdSocket_;
  AuditLog* audit_;
  const Clock& clock_;
  std::shared_ptr<grpc::Channel> trustd_;
  RefusalSummary refusals_;
  RefusalSummary listFetches_;
  grpc::AsyncGenericService service_;
  std::unique_ptr<grpc::ServerCompletionQueue> announcements_;
  bool stopped_ = false;
};

}  // namespace keel::apid
