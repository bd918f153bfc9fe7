// machined's journal of node events: every service event from the supervisor and every
// configuration event, in one ordered, bounded list that the Events API tails and follows.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "keel/common/clock.h"
#include "keel/supervisor/subscription.h"

namespace keel::machined {

struct NodeEvent {
  uint64_t sequence = 0;
  TimePoint time;
  std::string kind;     // "service", "config" or "backend"
  std::string subject;  // service id or backend name, or "machine-config"
  std::string state;    // "running", "exited", "applied", "rolled-back", …
  std::string message;
};

// Thread-safe. Subscribers are called on the recording thread with no lock held.
class EventJournal {
 public:
  EventJournal(const Clock& clock, size_t capacity) : clock_(clock), capacity_(capacity) {}

  // Records an event stamped with the clock's time.
  void record(std::string kind, std::string subject, std::string state, std::string message);
  // The last `tail` events, oldest first (tail 0: all kept).
  std::vector<NodeEvent> tail(size_t tail) const;
  // Atomically returns the last `tail` events and subscribes to every later one, so a
  // follower neither misses nor repeats an event.
  std::vector<NodeEvent> tailAndFollow(size_t tail, std::function<void(const NodeEvent&)> callback,
                                       supervisor::Subscription& subscription);

 private:
  const Clock& clock_;
  size_t capacity_;
  mutable std::mutex mu_;
  uint64_t next_ = 1;
  std::deque<NodeEvent> events_;
  supervisor::Subscribers<NodeEvent> subscribers_;
};

}  // namespace keel::machined
