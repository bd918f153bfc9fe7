#include "revocations.h"

#include <algorithm>
#include <cctype>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "keel/config/file_io.h"
#include "keel/pki/serial.h"
#include "keel/security/v1/security.pb.h"

namespace keel::trustd {

namespace {

int64_t toUnix(TimePoint t) { return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count(); }
TimePoint fromUnix(int64_t s) { return TimePoint(std::chrono::seconds(s)); }
uint64_t toUnixMicros(TimePoint t) {
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
  return us > 0 ? static_cast<uint64_t>(us) : 0;
}

nlohmann::ordered_json toJson(const RevokedEntry& e) {
  return {{"serial", e.serial},
          {"notAfter", toUnix(e.notAfter)},
          {"identity", e.identity},
          {"revokedAt", toUnix(e.revokedAt)},
          {"revokedBy", e.revokedBy}};
}

Result<RevokedEntry> entryFromJson(const nlohmann::json& j) {
  if (!j.is_object()) return invalidArgument("expected each entry to be an object");
  RevokedEntry e;
  try {
    e.serial = j.at("serial").get<std::string>();
    e.notAfter = fromUnix(j.at("notAfter").get<int64_t>());
    e.identity = j.at("identity").get<std::string>();
    e.revokedAt = fromUnix(j.at("revokedAt").get<int64_t>());
    e.revokedBy = j.at("revokedBy").get<std::string>();
  } catch (const nlohmann::json::exception& ex) {
    return invalidArgument(std::string("an entry: ") + ex.what());
  }
  KEEL_ASSIGN_OR_RETURN(const auto serial, pki::normalizeSerial(e.serial));
  if (serial != e.serial) return invalidArgument("an entry's serial is not in canonical form: " + e.serial);
  return e;
}

struct Stored {
  uint64_t sequence = 0;
  std::vector<RevokedEntry> entries;
};

Result<Stored> parseStored(std::string_view text) {
  const auto j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j.contains("sequence") || !j.contains("certificates") || !j["sequence"].is_number_unsigned() ||
      !j["certificates"].is_array()) {
    return invalidArgument("expected {\"sequence\": N, \"certificates\": [...]}");
  }
  Stored s;
  s.sequence = j["sequence"].get<uint64_t>();
  for (const auto& e : j["certificates"]) {
    KEEL_ASSIGN_OR_RETURN(auto entry, entryFromJson(e));
    s.entries.push_back(std::move(entry));
  }
  return s;
}

}  // namespace

Result<std::unique_ptr<Revocations>> Revocations::open(std::filesystem::path file, pki::PrivateKey signingKey,
                                                       const Clock& clock) {
  std::unique_ptr<Revocations> r(new Revocations(std::move(file), std::move(signingKey), clock));
  if (r->file_.empty()) return r;
  auto text = config::readPrivateFile(r->file_, "it is trustd's revocation list");
  if (text.ok()) {
    auto stored = parseStored(*text);
    if (!stored.ok()) return stored.status().withContext(r->file_.string());
    r->sequence_ = stored->sequence;
    r->entries_ = std::move(stored->entries);
  } else if (text.status().code() != StatusCode::kNotFound) {
    return text.status();
  }
  std::lock_guard lock(r->mu_);
  KEEL_RETURN_IF_ERROR(r->pruneLocked());
  return r;
}

uint64_t Revocations::nextSequenceLocked() const { return std::max(sequence_ + 1, toUnixMicros(clock_.now())); }

Status Revocations::writeLocked(const std::vector<RevokedEntry>& entries, uint64_t sequence) const {
  if (file_.empty()) return Status::ok();
  nlohmann::ordered_json list = nlohmann::ordered_json::array();
  for (const auto& e : entries) list.push_back(toJson(e));
  const nlohmann::ordered_json doc = {{"sequence", sequence}, {"certificates", std::move(list)}};
  const auto st = config::writePrivateFile(file_, doc.dump(2) + "\n", config::Overwrite::kYes);
  if (!st.isOk()) return st.withContext("trustd cannot keep the revocation list");
  return Status::ok();
}

Status Revocations::pruneLocked() {
  const TimePoint now = clock_.now();
  std::vector<RevokedEntry> kept;
  for (const auto& e : entries_) {
    if (e.notAfter >= now) kept.push_back(e);
  }
  if (kept.size() == entries_.size()) return Status::ok();
  const uint64_t next = nextSequenceLocked();
  KEEL_RETURN_IF_ERROR(writeLocked(kept, next));
  spdlog::info("trustd: {} expired certificate(s) left the revocation list; {} remain",
               entries_.size() - kept.size(), kept.size());
  entries_ = std::move(kept);
  sequence_ = next;
  return Status::ok();
}

Result<Revocations::Added> Revocations::add(RevokedEntry entry) {
  std::lock_guard lock(mu_);
  KEEL_RETURN_IF_ERROR(pruneLocked());
  for (const auto& e : entries_) {
    if (e.serial == entry.serial) return Added{e, true, sequence_};
  }
  if (entries_.size() >= kMaxRevokedCertificates) {
    return Status(StatusCode::kResourceExhausted, fmt::format(
        "the revocation list holds {} certificates, its limit: rotate the OS CA instead", entries_.size()));
  }
  auto next = entries_;
  next.push_back(entry);
  const uint64_t sequence = nextSequenceLocked();
  KEEL_RETURN_IF_ERROR(writeLocked(next, sequence));
  entries_ = std::move(next);
  sequence_ = sequence;
  return Added{std::move(entry), false, sequence};
}

bool Revocations::isRevoked(const std::string& serial) {
  std::lock_guard lock(mu_);
  return std::any_of(entries_.begin(), entries_.end(), [&](const RevokedEntry& e) { return e.serial == serial; });
}

std::vector<RevokedEntry> Revocations::entries() {
  std::lock_guard lock(mu_);
  if (const auto st = pruneLocked(); !st.isOk()) spdlog::error("trustd: {}", st.message());
  return entries_;
}

uint64_t Revocations::sequence() {
  std::lock_guard lock(mu_);
  return sequence_;
}

Result<SignedList> Revocations::signedList() {
  std::lock_guard lock(mu_);
  KEEL_RETURN_IF_ERROR(pruneLocked());
  if (signed_.sequence == sequence_ && !signed_.list.empty()) return signed_;
  keel::security::v1::RevocationList list;
  list.set_sequence(sequence_);
  list.set_issued_at_unix(toUnix(clock_.now()));
  for (const auto& e : entries_) {
    auto* c = list.add_certificates();
    c->set_serial(e.serial);
    c->set_not_after_unix(toUnix(e.notAfter));
  }
  SignedList out;
  out.sequence = sequence_;
  if (!list.SerializeToString(&out.list)) return internalError("the revocation list does not serialize");
  KEEL_ASSIGN_OR_RETURN(out.signature, pki::signDocument(key_, out.list));
  signed_ = out;
  return out;
}

}  // namespace keel::trustd
