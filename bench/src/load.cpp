#include "load.h"

#include <algorithm>
#include <condition_variable>
#include <fstream>
#include <mutex>
#include <string_view>
#include <thread>

#include "keel/machine/v1/machine.grpc.pb.h"

namespace keel::bench {

namespace {

namespace v1 = keel::machine::v1;
using Steady = std::chrono::steady_clock;

// A channel that shares no connection with any other channel of the process: its own
// subchannel pool and an argument no other channel has.
std::shared_ptr<grpc::Channel> isolatedChannel(const Target& target, uint64_t id) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  args.SetString("keel.bench.channel-id", std::to_string(id));
  return grpc::CreateCustomChannel(target.address, target.credentials, args);
}

std::atomic<uint64_t> nextChannelId{1};

void prepareContext(grpc::ClientContext& ctx, const Target& target, std::chrono::milliseconds timeout) {
  for (const auto& [k, v] : target.metadata) ctx.AddMetadata(k, v);
  ctx.set_deadline(std::chrono::system_clock::now() + timeout);
}

std::string describe(const grpc::Status& s) {
  return statusCodeName(static_cast<StatusCode>(s.error_code())).data() + std::string(": ") +
         s.error_message();
}

// One outstanding call slot: reissued as soon as its previous call completes.
struct Slot {
  v1::MachineService::Stub* stub = nullptr;
  std::unique_ptr<grpc::ClientContext> ctx;
  keel::common::v1::Empty request;
  v1::VersionResponse response;
  grpc::Status status;
  std::unique_ptr<grpc::ClientAsyncResponseReader<v1::VersionResponse>> reader;
  Steady::time_point started;
};

// What one polling thread saw inside the window.
struct PollerStats {
  std::vector<uint32_t> latenciesUs;
  uint64_t errors = 0;
  std::string firstError;
};

double percentile(const std::vector<uint32_t>& sorted, double q) {
  if (sorted.empty()) return 0;
  const auto i = std::min(sorted.size() - 1, static_cast<size_t>(q * static_cast<double>(sorted.size())));
  return sorted[i];
}

// Sleeps until `t` in short steps so that `stop` is honoured. False when stopped.
bool sleepUntil(Steady::time_point t, const std::atomic<bool>& stop) {
  while (Steady::now() < t) {
    if (stop.load()) return false;
    std::this_thread::sleep_until(std::min(t, Steady::now() + std::chrono::milliseconds(50)));
  }
  return !stop.load();
}

}  // namespace

Result<LoadResult> runLoad(const Target& target, const LoadOptions& options, const WindowHook& onWindowStart,
                           const WindowHook& onWindowEnd, const std::atomic<bool>& stop) {
  KEEL_RELEASE_ASSERT(options.concurrency > 0 && options.channels > 0 && options.pollers > 0,
                      "load options must be positive");
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  std::vector<std::unique_ptr<v1::MachineService::Stub>> stubs;
  for (int i = 0; i < options.channels; ++i) {
    auto channel = isolatedChannel(target, nextChannelId++);
    if (!channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(10))) {
      return unavailable("channel to " + target.address + " did not connect within 10 s");
    }
    stubs.push_back(v1::MachineService::NewStub(channel));
    channels.push_back(std::move(channel));
  }

  grpc::CompletionQueue cq;
  const auto timeout = std::chrono::duration_cast<std::chrono::milliseconds>(options.callTimeout);
  auto issue = [&](Slot& s) {
    s.reader.reset();  // lives in the previous call's arena, freed with its context
    s.ctx = std::make_unique<grpc::ClientContext>();
    prepareContext(*s.ctx, target, timeout);
    s.response.Clear();
    s.started = Steady::now();
    s.reader = s.stub->PrepareAsyncVersion(s.ctx.get(), s.request, &cq);
    s.reader->StartCall();
    s.reader->Finish(&s.response, &s.status, &s);
  };

  const auto begin = Steady::now();
  const auto windowStart = begin + options.warmup;
  const auto windowEnd = windowStart + options.duration;
  std::atomic<int> outstanding{options.concurrency};
  std::mutex mu;
  std::condition_variable drained;

  std::vector<Slot> slots(static_cast<size_t>(options.concurrency));
  std::vector<PollerStats> stats(static_cast<size_t>(options.pollers));
  std::vector<std::thread> pollers;
  for (int p = 0; p < options.pollers; ++p) {
    pollers.emplace_back([&, p] {
      PollerStats& st = stats[static_cast<size_t>(p)];
      void* tag = nullptr;
      bool ok = false;
      while (cq.Next(&tag, &ok)) {
        auto& s = *static_cast<Slot*>(tag);
        const auto end = Steady::now();
        if (s.started >= windowStart && end <= windowEnd) {
          if (ok && s.status.ok()) {
            st.latenciesUs.push_back(static_cast<uint32_t>(
                std::chrono::duration_cast<std::chrono::microseconds>(end - s.started).count()));
          } else {
            if (st.errors++ == 0) st.firstError = describe(s.status);
          }
        }
        if (end >= windowEnd || stop.load()) {
          if (--outstanding == 0) {
            std::lock_guard lock(mu);
            drained.notify_all();
          }
          continue;
        }
        issue(s);
      }
    });
  }
  for (size_t i = 0; i < slots.size(); ++i) {
    slots[i].stub = stubs[i % stubs.size()].get();
    issue(slots[i]);
  }

  bool interrupted = !sleepUntil(windowStart, stop);
  if (!interrupted) {
    onWindowStart();
    interrupted = !sleepUntil(windowEnd, stop);
    if (!interrupted) onWindowEnd();
  }
  {
    std::unique_lock lock(mu);
    drained.wait_for(lock, options.callTimeout + std::chrono::seconds(5),
                     [&] { return outstanding.load() == 0; });
  }
  cq.Shutdown();
  for (auto& t : pollers) t.join();
  if (interrupted) return Status(StatusCode::kCancelled, "interrupted");

  LoadResult result;
  std::vector<uint32_t> all;
  for (auto& st : stats) {
    all.insert(all.end(), st.latenciesUs.begin(), st.latenciesUs.end());
    if (result.errors == 0 && st.errors > 0) result.firstError = st.firstError;
    result.errors += st.errors;
  }
  std::sort(all.begin(), all.end());
  result.calls = all.size();
  result.seconds = std::chrono::duration<double>(options.duration).count();
  result.p50Us = percentile(all, 0.50);
  result.p99Us = percentile(all, 0.99);
  return result;
}

HandshakeResult runHandshakes(const Target& target, int concurrency, std::chrono::microseconds duration,
                              const WindowHook& onWindowStart, const WindowHook& onWindowEnd,
                              const std::atomic<bool>& stop) {
  std::atomic<uint64_t> done{0};
  std::atomic<uint64_t> errors{0};
  std::mutex mu;
  std::string firstError;
  onWindowStart();
  const auto begin = Steady::now();
  const auto end = begin + duration;
  std::vector<std::thread> threads;
  for (int i = 0; i < concurrency; ++i) {
    threads.emplace_back([&] {
      while (Steady::now() < end && !stop.load()) {
        auto stub = v1::MachineService::NewStub(isolatedChannel(target, nextChannelId++));
        grpc::ClientContext ctx;
        prepareContext(ctx, target, std::chrono::seconds(5));
        keel::common::v1::Empty request;
        v1::VersionResponse response;
        const grpc::Status s = stub->Version(&ctx, request, &response);
        if (s.ok()) {
          ++done;
        } else if (errors++ == 0) {
          std::lock_guard lock(mu);
          firstError = describe(s);
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  const auto finished = Steady::now();
  onWindowEnd();
  HandshakeResult result;
  result.handshakes = done.load();
  result.errors = errors.load();
  result.firstError = firstError;
  result.seconds = std::chrono::duration<double>(finished - begin).count();
  return result;
}

StreamsResult holdStreams(const Target& target, int count, int perChannel, const std::function<void()>& whileOpen,
                          const std::atomic<bool>& stop) {
  struct Stream {
    grpc::ClientContext ctx;
    v1::Event event;
    grpc::Status status;
    std::unique_ptr<grpc::ClientAsyncReader<v1::Event>> reader;
  };
  grpc::CompletionQueue cq;
  std::vector<std::unique_ptr<v1::MachineService::Stub>> stubs;
  std::vector<std::unique_ptr<Stream>> streams;
  v1::EventsRequest request;
  request.set_tail_events(1);
  request.set_follow(true);
  for (int i = 0; i < count; ++i) {
    if (i % std::max(1, perChannel) == 0) {
      stubs.push_back(v1::MachineService::NewStub(isolatedChannel(target, nextChannelId++)));
    }
    auto s = std::make_unique<Stream>();
    for (const auto& [k, v] : target.metadata) s->ctx.AddMetadata(k, v);
    s->reader = stubs.back()->PrepareAsyncEvents(&s->ctx, request, &cq);
    // Tags: 2*i the start, 2*i+1 the first message.
    s->reader->StartCall(reinterpret_cast<void*>(static_cast<uintptr_t>(2 * i)));
    s->reader->Read(&s->event, reinterpret_cast<void*>(static_cast<uintptr_t>(2 * i + 1)));
    streams.push_back(std::move(s));
  }
  StreamsResult result;
  int pending = 2 * count;
  const auto deadline = std::chrono::system_clock::now() + std::chrono::seconds(30);
  while (pending > 0 && !stop) {
    void* tag = nullptr;
    bool ok = false;
    if (cq.AsyncNext(&tag, &ok, deadline) != grpc::CompletionQueue::GOT_EVENT) break;
    --pending;
    const auto t = reinterpret_cast<uintptr_t>(tag);
    if (t % 2 == 1 && ok) ++result.opened;
  }
  if (!stop) whileOpen();
  for (auto& s : streams) s->ctx.TryCancel();
  // Collect what is still in flight, then each stream's status.
  for (int i = 0; i < count; ++i) {
    streams[static_cast<size_t>(i)]->reader->Finish(&streams[static_cast<size_t>(i)]->status,
                                                    reinterpret_cast<void*>(static_cast<uintptr_t>(2 * count + i)));
  }
  pending += count;
  while (pending > 0) {
    void* tag = nullptr;
    bool ok = false;
    if (!cq.Next(&tag, &ok)) break;
    --pending;
  }
  cq.Shutdown();
  void* tag = nullptr;
  bool ok = false;
  while (cq.Next(&tag, &ok)) {
  }
  if (result.opened < count) {
    for (const auto& s : streams) {
      if (!s->status.ok() && s->status.error_code() != grpc::StatusCode::CANCELLED) {
        result.firstError = describe(s->status);
        break;
      }
    }
  }
  return result;
}

namespace {

long statusKib(pid_t pid, std::string_view field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field, 0) == 0) return std::stol(line.substr(field.size()));
  }
  return 0;
}

}  // namespace

long residentKib(pid_t pid) { return statusKib(pid, "VmRSS:"); }

long residentFileKib(pid_t pid) { return statusKib(pid, "RssFile:"); }

Status callVersionOnce(const Target& target, std::chrono::milliseconds timeout) {
  auto stub = v1::MachineService::NewStub(isolatedChannel(target, nextChannelId++));
  grpc::ClientContext ctx;
  prepareContext(ctx, target, timeout);
  keel::common::v1::Empty request;
  v1::VersionResponse response;
  const grpc::Status s = stub->Version(&ctx, request, &response);
  if (s.ok()) return Status::ok();
  return Status(static_cast<StatusCode>(s.error_code()), s.error_message());
}

}  // namespace keel::bench
