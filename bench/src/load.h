// The load keel_bench puts on a target: many outstanding unary Version calls on a few
// long-lived channels (throughput and latency), or a new TLS connection per call
// (handshakes). Runs on gRPC's async API with a completion queue and polling threads.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "keel/common/status.h"

namespace keel::bench {

// How to reach one target.
struct Target {
  std::string address;                                        // gRPC target ("unix:/…", "127.0.0.1:443")
  std::shared_ptr<grpc::ChannelCredentials> credentials;      // insecure or mTLS
  std::vector<std::pair<std::string, std::string>> metadata;  // sent on every call
};

struct LoadOptions {
  int concurrency = 1;  // calls outstanding at every moment, spread over the channels
  int channels = 1;
  int pollers = 2;  // threads draining the completion queue
  std::chrono::microseconds warmup{std::chrono::seconds(1)};
  std::chrono::microseconds duration{std::chrono::seconds(5)};
  std::chrono::seconds callTimeout{10};
};

struct LoadResult {
  uint64_t calls = 0;   // successful calls that started and finished inside the window
  uint64_t errors = 0;  // failed calls that finished inside the window
  std::string firstError;
  double seconds = 0;  // length of the measured window
  double p50Us = 0;
  double p99Us = 0;
  double requestsPerSecond() const { return seconds > 0 ? static_cast<double>(calls) / seconds : 0; }
};

// Called once when the measured window opens and once when it closes, from the
// controlling thread; keel_bench reads the daemons' CPU time there.
using WindowHook = std::function<void()>;

// Connects `options.channels` channels (each with its own subchannel pool, so they do
// not share a connection), keeps `options.concurrency` calls outstanding through warmup
// and the measured window, then drains. `stop` ends the run early (SIGINT). Errors:
// UNAVAILABLE when a channel does not connect within 10 s.
Result<LoadResult> runLoad(const Target& target, const LoadOptions& options, const WindowHook& onWindowStart,
                           const WindowHook& onWindowEnd, const std::atomic<bool>& stop);

struct HandshakeResult {
  uint64_t handshakes = 0;  // new connections that completed a Version call
  uint64_t errors = 0;
  std::string firstError;
  double seconds = 0;
  double perSecond() const { return seconds > 0 ? static_cast<double>(handshakes) / seconds : 0; }
};

// `concurrency` threads each loop for `duration`: a new channel that shares nothing with
// any other (so a new TCP connection and a full TLS handshake), one Version call, close.
HandshakeResult runHandshakes(const Target& target, int concurrency, std::chrono::microseconds duration,
                              const WindowHook& onWindowStart, const WindowHook& onWindowEnd,
                              const std::atomic<bool>& stop);

struct StreamsResult {
  int opened = 0;  // streams that delivered their first message
  std::string firstError;
};

// Opens `count` server streams (MachineService/Events: the last event, then following),
// at most `perChannel` on one channel (apid allows limits.maxConcurrentStreams per
// connection), waits until each has delivered its first message or 30 s passed, runs
// `whileOpen`, then cancels them all.
StreamsResult holdStreams(const Target& target, int count, int perChannel, const std::function<void()>& whileOpen,
                          const std::atomic<bool>& stop);

// A process's resident set (VmRSS) in KiB; 0 when it cannot be read.
long residentKib(pid_t pid);

// The file-backed part of it (RssFile: the executable's and shared libraries' pages,
// which the daemons share with each other), in KiB; 0 when it cannot be read.
long residentFileKib(pid_t pid);

// One blocking Version call with a deadline; used to wait for a daemon to answer.
Status callVersionOnce(const Target& target, std::chrono::milliseconds timeout);

}  // namespace keel::bench
