// Where a node keeps things. Every path is under a root prefix ("/" on a real node,
// a temporary directory in tests and local clusters), so several nodes can run side
// by side on one machine.
#pragma once

#include <filesystem>
#include <string>

namespace keel::machined {

class NodePaths {
 public:
  explicit NodePaths(std::filesystem::path root) : root_(std::move(root)) {}

  const std::filesystem::path& root() const { return root_; }
  // /etc/keel: the machine config and its previous version.
  std::filesystem::path etcDir() const { return root_ / "etc/keel"; }
  std::filesystem::path configFile() const { return etcDir() / "config.json"; }
  std::filesystem::path previousConfigFile() const { return etcDir() / "config.json.previous"; }
  // /var/lib/keel/<daemon>: a daemon's private state (keys, its config file, logs).
  std::filesystem::path stateRoot() const { return root_ / "var/lib/keel"; }
  std::filesystem::path stateDir(const std::string& daemon) const { return stateRoot() / daemon; }
  std::filesystem::path logDir() const { return root_ / "var/log/keel"; }
  // /run/keel: the daemons' Unix sockets; only machined's and apid's group may enter.
  std::filesystem::path runDir() const { return root_ / "run/keel"; }
  std::filesystem::path socket(const std::string& daemon) const { return runDir() / (daemon + ".sock"); }
  // /run/keel-trustd/trustd.sock: trustd's socket, in a directory trustd owns and apid's
  // group may enter (trustd is not in that group, so it cannot create it in /run/keel).
  std::filesystem::path trustdSocketDir() const { return root_ / "run/keel-trustd"; }
  std::filesystem::path trustdSocket() const { return trustdSocketDir() / "trustd.sock"; }
  // A backend's own socket directory, like trustd's: the backend's, apid's group may enter.
  std::filesystem::path backendSocketDir(const std::string& name) const { return root_ / ("run/keel-" + name); }
  // /run/keel/backends.d: one manifest per backend apid routes to; apid's group reads it.
  std::filesystem::path backendsDir() const { return runDir() / "backends.d"; }

 private:
  std::filesystem::path root_;
};

}  // namespace keel::machined
