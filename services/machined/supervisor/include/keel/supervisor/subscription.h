// Subscriptions to a stream of values (log lines, service events): an RAII handle that
// ends delivery when destroyed, and the thread-safe fan-out list behind it. Callbacks run
// with no lock of the publisher held, so they may call back into the publisher.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

namespace keel::supervisor {

// Ends delivery to its callback when reset or destroyed. Once reset() returns, the
// callback is not running on another thread and is never called again. Resetting from
// inside the callback itself is allowed (the current call then finishes normally).
// Move-only; not thread-safe itself (one owner).
class [[nodiscard]] Subscription {
 public:
  Subscription() = default;
  explicit Subscription(std::function<void()> cancel) : cancel_(std::move(cancel)) {}
  ~Subscription() { reset(); }
  Subscription(Subscription&& other) noexcept : cancel_(std::exchange(other.cancel_, nullptr)) {}
  Subscription& operator=(Subscription&& other) noexcept {
    if (this != &other) {
      reset();
      cancel_ = std::exchange(other.cancel_, nullptr);
    }
    return *this;
  }
  Subscription(const Subscription&) = delete;
  Subscription& operator=(const Subscription&) = delete;

  // Ends the subscription. Idempotent.
  void reset() {
    if (cancel_) std::exchange(cancel_, nullptr)();
  }
  bool active() const { return static_cast<bool>(cancel_); }

 private:
  std::function<void()> cancel_;
};

// The subscribers of one stream. Thread-safe. Calls to one subscriber never overlap;
// when several threads publish at once, a subscriber sees their values in some order.
template <typename T>
class Subscribers {
 public:
  // Registers `callback` for values published from now on. The callback must not throw.
  Subscription add(std::function<void(const T&)> callback) {
    auto entry = std::make_shared<Entry>();
    entry->callback = std::move(callback);
    {
      std::lock_guard lock(mutex_);
      prune();
      entries_.push_back(entry);
    }
    // The handle owns the entry too, so cancelling after the publisher is gone is safe.
    return Subscription([entry] {
      std::lock_guard lock(entry->callMutex);
      entry->active = false;
    });
  }

  // Calls every active subscriber on the calling thread. Holds only the subscriber's own
  // call mutex (recursive, so the callback may cancel itself) while it runs.
  void publish(const T& value) noexcept {
    std::vector<std::shared_ptr<Entry>> snapshot;
    {
      std::lock_guard lock(mutex_);
      prune();
      snapshot = entries_;
    }
    for (const auto& entry : snapshot) {
      std::lock_guard lock(entry->callMutex);
      if (entry->active) entry->callback(value);
    }
  }

 private:
  struct Entry {
    std::recursive_mutex callMutex;
    bool active = true;  // guarded by callMutex
    std::function<void(const T&)> callback;
  };

  // Drops cancelled entries; a cancelled entry that is being called stays alive through
  // the caller's snapshot. Requires mutex_.
  void prune() {
    std::erase_if(entries_, [](const std::shared_ptr<Entry>& e) {
      std::unique_lock lock(e->callMutex, std::try_to_lock);
      return lock.owns_lock() && !e->active;
    });
  }

  std::mutex mutex_;
  std::vector<std::shared_ptr<Entry>> entries_;
};

}  // namespace keel::supervisor
