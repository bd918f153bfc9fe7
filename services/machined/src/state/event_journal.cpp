#include "src/state/event_journal.h"

namespace keel::machined {

void EventJournal::record(std::string kind, std::string subject, std::string state, std::string message) {
  NodeEvent event;
  {
    std::lock_guard lock(mu_);
    event = NodeEvent{next_++, clock_.now(), std::move(kind), std::move(subject), std::move(state), std::move(message)};
    events_.push_back(event);
    while (events_.size() > capacity_) events_.pop_front();
    // Publishing under mu_ keeps tailAndFollow exact; callbacks only queue the event.
    subscribers_.publish(event);
  }
}

std::vector<NodeEvent> EventJournal::tail(size_t tail) const {
  std::lock_guard lock(mu_);
  const size_t n = tail == 0 ? events_.size() : std::min(tail, events_.size());
  return {events_.end() - static_cast<std::ptrdiff_t>(n), events_.end()};
}

std::vector<NodeEvent> EventJournal::tailAndFollow(size_t tail, std::function<void(const NodeEvent&)> callback,
                                                   supervisor::Subscription& subscription) {
  std::lock_guard lock(mu_);
  const size_t n = tail == 0 ? events_.size() : std::min(tail, events_.size());
  subscription = subscribers_.add(std::move(callback));
  return {events_.end() - static_cast<std::ptrdiff_t>(n), events_.end()};
}

}  // namespace keel::machined
