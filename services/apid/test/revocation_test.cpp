#include "revocation_list.h"

#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>

#include "admission.h"
#include "callers.h"
#include "keel/common/clock.h"
#include "keel/pki/pki.h"
#include "keel/security/v1/security.pb.h"

namespace keel::apid {
namespace {

using Catch::Matchers::ContainsSubstring;

const TimePoint kStart = std::chrono::sys_days{std::chrono::year{2030} / 1 / 2};

pki::CertificateAuthority makeCa(const Clock& clock) {
  pki::CaOptions o;
  o.subject.commonName = "keel-os";
  return pki::createSelfSignedCa(o, clock).value();
}

struct Signed {
  std::string list;
  std::string signature;
};

Signed makeList(const pki::CertificateAuthority& ca, uint64_t sequence, std::vector<std::string> serials) {
  keel::security::v1::RevocationList list;
  list.set_sequence(sequence);
  list.set_issued_at_unix(1893456000);
  for (const auto& s : serials) {
    auto* c = list.add_certificates();
    c->set_serial(s);
    c->set_not_after_unix(1893459600);
  }
  Signed out;
  REQUIRE(list.SerializeToString(&out.list));
  out.signature = pki::signDocument(ca.key, out.list).value();
  return out;
}

TEST_CASE("a list signed by an accepted CA is taken, newer lists replace it, equal ones change nothing",
          "[revocation]") {
  ManualClock clock(kStart);
  const auto ca = makeCa(clock);
  RevocationList held;
  CHECK_FALSE(held.isRevoked("0a1b"));
  const auto first = makeList(ca, 10, {"0a1b", "0c"});
  CHECK(held.accept(first.list, first.signature, {ca.certificate}).value());
  CHECK(held.isRevoked("0a1b"));
  CHECK(held.isRevoked("0c"));
  CHECK_FALSE(held.isRevoked("0d"));
  CHECK_FALSE(held.accept(first.list, first.signature, {ca.certificate}).value());
  const auto second = makeList(ca, 11, {"0c"});
  CHECK(held.accept(second.list, second.signature, {ca.certificate}).value());
  CHECK_FALSE(held.isRevoked("0a1b"));
  CHECK(held.isRevoked("0c"));
  CHECK(held.sequence() == 11);
}

TEST_CASE("a forged, damaged or stale list is refused and the list held stays in force", "[revocation]") {
  ManualClock clock(kStart);
  const auto ca = makeCa(clock);
  const auto mallory = makeCa(clock);  // same name, another key
  RevocationList held;
  const auto current = makeList(ca, 20, {"0a1b"});
  REQUIRE(held.accept(current.list, current.signature, {ca.certificate}).ok());

  // Signed by another CA (an empty list would let everyone back in).
  const auto forged = makeList(mallory, 21, {});
  auto r = held.accept(forged.list, forged.signature, {ca.certificate});
  CHECK(r.status().code() == StatusCode::kPermissionDenied);
  // A real list with a byte changed after signing.
  auto tampered = makeList(ca, 22, {"0a1b"});
  tampered.list[tampered.list.size() - 1] ^= 0x01;
  CHECK(held.accept(tampered.list, tampered.signature, {ca.certificate}).status().code() ==
        StatusCode::kPermissionDenied);
  // A list the CA really signed, but older than the one held: a replay.
  const auto stale = makeList(ca, 19, {});
  r = held.accept(stale.list, stale.signature, {ca.certificate});
  CHECK(r.status().code() == StatusCode::kFailedPrecondition);
  CHECK_THAT(r.status().message(), ContainsSubstring("stale"));
  // Signed garbage.
  const std::string garbage = "\xff\xff\xff";
  CHECK(held.accept(garbage, pki::signDocument(ca.key, garbage).value(), {ca.certificate}).status().code() ==
        StatusCode::kInvalidArgument);
  // No CA to check with.
  CHECK_FALSE(held.accept(current.list, current.signature, {}).ok());

  CHECK(held.isRevoked("0a1b"));
  CHECK(held.sequence() == 20);
}

TEST_CASE("a list from either of two accepted CAs is taken (a CA rotation in progress)", "[revocation]") {
  ManualClock clock(kStart);
  const auto oldCa = makeCa(clock);
  const auto newCa = makeCa(clock);
  RevocationList held;
  const auto fromNew = makeList(newCa, 5, {"01"});
  CHECK(held.accept(fromNew.list, fromNew.signature, {oldCa.certificate, newCa.certificate}).value());
  CHECK(held.isRevoked("01"));
}

TEST_CASE("admission refuses a revoked client certificate before anything else, and lets others through",
          "[revocation][admission]") {
  ManualClock clock(kStart);
  const auto ca = makeCa(clock);
  RevocationList held;
  const auto list = makeList(ca, 1, {"0bad"});
  REQUIRE(held.accept(list.list, list.signature, {ca.certificate}).ok());
  static const auto routes =
      Routes::fromManifests({testing::builtinManifest("machined", "keel.machine.v1.MachineService")});

  auto revoked = testing::client("alice", {"os:admin"});
  revoked.serialHex = "0bad";
  auto other = testing::client("bob", {"os:reader"});
  other.serialHex = "0900";
  auto forwarding = testing::client("node-b", {"os:impersonator"});
  forwarding.serialHex = "0bad";

  AdmissionOptions options;
  options.newRequestId = "id";
  options.revocations = &held;
  CallRequest request;
  request.method = "/keel.machine.v1.MachineService/Version";
  request.peerAddress = "ipv4:127.0.0.1:4711";

  request.peer = &revoked;
  auto d = admitCall(request, *routes, options);
  CHECK(d.status.code() == StatusCode::kUnauthenticated);
  CHECK_THAT(d.status.message(), ContainsSubstring("revoked"));
  CHECK_THAT(d.status.message(), ContainsSubstring("0bad"));
  CHECK(d.backend == nullptr);

  request.peer = &forwarding;  // another node's apid whose own certificate is revoked
  request.metadata = {{"keel-roles", "os:admin"}, {"keel-identity", "admin"}};
  d = admitCall(request, *routes, options);
  CHECK(d.status.code() == StatusCode::kUnauthenticated);

  request.peer = &other;
  request.metadata = {};
  d = admitCall(request, *routes, options);
  CHECK(d.status.isOk());
}

}  // namespace
}  // namespace keel::apid
