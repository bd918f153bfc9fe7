// Keeps apid's revocation list (revocation_list.h) current: fetches the signed list on a
// short period from where apid gets its certificates (this node's trustd on a control
// plane; a control plane's join listener on a worker), verifies it against the OS CAs
// apid accepts, and saves the last list it verified in its state directory, so that an
// apid that cannot reach a control plane, even after a restart, keeps enforcing it.
#pragma once

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "keel/common/status.h"
#include "revocation_list.h"

namespace keel::apid {

struct SignedRevocation {
  std::string list;       // a serialized keel.security.v1.RevocationList
  std::string signature;  // over `list`
};

class RevocationSource {
 public:
  virtual ~RevocationSource() = default;
  virtual Result<SignedRevocation> fetch() = 0;
  virtual std::string describe() const = 0;  // for log lines
};

// trustd on this node, over its Unix socket.
std::unique_ptr<RevocationSource> localTrustdRevocations(std::filesystem::path socket);
// Control planes' join listeners, each in turn until one answers; the server is verified
// against the OS CA bundle at `caFile`.
std::unique_ptr<RevocationSource> joinListenerRevocations(std::vector<std::string> endpoints,
                                                          std::filesystem::path caFile);

struct RevocationKeeperOptions {
  std::filesystem::path savedFile;  // the last verified list (in apid's state directory)
  std::filesystem::path caFile;     // the OS CAs a list must be signed by (re-read each time)
  std::chrono::milliseconds period{10'000};
};

class RevocationKeeper {
 public:
  RevocationKeeper(RevocationList& list, std::unique_ptr<RevocationSource> source, RevocationKeeperOptions options);
  ~RevocationKeeper();

  // Takes the saved list, verified again; one that no longer verifies is logged and left.
  void loadSaved();
  // One fetch: verified, taken when newer, saved. Errors say which step failed; the list
  // held does not change then.
  Status refreshOnce();
  // Refreshes every period in a thread of its own until stop().
  void start();
  void stop();

 private:
  Result<std::vector<pki::Certificate>> acceptedCas() const;
  Result<bool> take(const SignedRevocation& signed_);

  RevocationList& list_;
  std::unique_ptr<RevocationSource> source_;
  const RevocationKeeperOptions options_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace keel::apid
