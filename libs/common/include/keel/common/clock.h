// The wall clock as an injectable dependency, so certificate validity and
// timeouts can be tested with a clock the test controls.
#pragma once

#include <chrono>
#include <string>

namespace keel {

using TimePoint = std::chrono::system_clock::time_point;

class Clock {
 public:
  virtual ~Clock() = default;
  // Current wall-clock time. Thread-safe in every implementation.
  virtual TimePoint now() const = 0;
};

class SystemClock final : public Clock {
 public:
  TimePoint now() const override { return std::chrono::system_clock::now(); }
};

// A clock that only moves when told to. Not thread-safe.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(TimePoint start) : now_(start) {}
  TimePoint now() const override { return now_; }
  void set(TimePoint t) { now_ = t; }
  void advance(std::chrono::system_clock::duration d) { now_ += d; }

 private:
  TimePoint now_;
};

// RFC 3339 UTC with second precision: "2026-11-26T19:13:37Z".
std::string formatTime(TimePoint t);

}  // namespace keel
