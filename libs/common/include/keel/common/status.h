// Errors as values: a Status carries one of gRPC's canonical codes and a message
// that says what was expected and what was found, so apid can pass it on unchanged.
// Status and Result are the project's vocabulary types and live in namespace keel.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <variant>

#include "keel/common/assert.h"

namespace keel {

// Numeric values match grpc::StatusCode.
enum class StatusCode : int {
  kOk = 0,
  kCancelled = 1,
  kUnknown = 2,
  kInvalidArgument = 3,
  kDeadlineExceeded = 4,
  kNotFound = 5,
  kAlreadyExists = 6,
  kPermissionDenied = 7,
  kResourceExhausted = 8,
  kFailedPrecondition = 9,
  kAborted = 10,
  kOutOfRange = 11,
  kUnimplemented = 12,
  kInternal = 13,
  kUnavailable = 14,
  kDataLoss = 15,
  kUnauthenticated = 16,
};

// Canonical upper-case name of a code ("INVALID_ARGUMENT").
std::string_view statusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status ok() { return {}; }

  bool isOk() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }

  // Returns a copy whose message is "<context>: <message>"; an OK status stays OK.
  Status withContext(std::string_view context) const;

  // "INVALID_ARGUMENT: message", or "OK".
  std::string toString() const;

  bool operator==(const Status&) const = default;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status invalidArgument(std::string m) { return {StatusCode::kInvalidArgument, std::move(m)}; }
inline Status notFound(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
inline Status alreadyExists(std::string m) { return {StatusCode::kAlreadyExists, std::move(m)}; }
inline Status permissionDenied(std::string m) { return {StatusCode::kPermissionDenied, std::move(m)}; }
inline Status failedPrecondition(std::string m) { return {StatusCode::kFailedPrecondition, std::move(m)}; }
inline Status unauthenticated(std::string m) { return {StatusCode::kUnauthenticated, std::move(m)}; }
inline Status unavailable(std::string m) { return {StatusCode::kUnavailable, std::move(m)}; }
inline Status internalError(std::string m) { return {StatusCode::kInternal, std::move(m)}; }
inline Status dataLoss(std::string m) { return {StatusCode::kDataLoss, std::move(m)}; }
inline Status outOfRange(std::string m) { return {StatusCode::kOutOfRange, std::move(m)}; }

// The text of an errno value ("No such file or directory"), for error messages.
std::string errnoText(int error);

// Either a value or a non-OK Status. Reading the value of an error crashes: check first.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : state_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : state_(std::in_place_index<1>, std::move(status)) {  // NOLINT
    KEEL_RELEASE_ASSERT(!std::get<1>(state_).isOk(), "Result built from an OK status without a value");
  }

  bool ok() const { return state_.index() == 0; }
  explicit operator bool() const { return ok(); }

  // The error; Status::ok() when a value is present.
  Status status() const { return ok() ? Status::ok() : std::get<1>(state_); }

  T& value() & {
    KEEL_RELEASE_ASSERT(ok(), "value() of an error Result: " + std::get<1>(state_).toString());
    return std::get<0>(state_);
  }
  const T& value() const& {
    KEEL_RELEASE_ASSERT(ok(), "value() of an error Result: " + std::get<1>(state_).toString());
    return std::get<0>(state_);
  }
  T&& value() && {
    KEEL_RELEASE_ASSERT(ok(), "value() of an error Result: " + std::get<1>(state_).toString());
    return std::get<0>(std::move(state_));
  }

  // The value, or `fallback` for an error (like std::optional's).
  T value_or(T fallback) const& { return ok() ? std::get<0>(state_) : std::move(fallback); }

  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  std::variant<T, Status> state_;
};

}  // namespace keel

#define KEEL_STATUS_CONCAT_INNER(a, b) a##b
#define KEEL_STATUS_CONCAT(a, b) KEEL_STATUS_CONCAT_INNER(a, b)

// Returns the Status from the enclosing function when `expr` is not OK.
#define KEEL_RETURN_IF_ERROR(expr)                 \
  do {                                             \
    ::keel::Status keel_status_ = (expr);          \
    if (!keel_status_.isOk()) return keel_status_; \
  } while (false)

// `KEEL_ASSIGN_OR_RETURN(auto x, makeX());` declares x from a Result or returns its error.
#define KEEL_ASSIGN_OR_RETURN(lhs, expr) \
  KEEL_ASSIGN_OR_RETURN_IMPL(KEEL_STATUS_CONCAT(keel_result_, __LINE__), lhs, expr)
#define KEEL_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                               \
  if (!tmp.ok()) return tmp.status();              \
  lhs = std::move(tmp).value()
