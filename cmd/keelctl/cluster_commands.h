// `keelctl cluster …`: a whole local cluster on this machine, unprivileged, each node's
// machined on its own loopback address (127.0.1.1, 127.0.1.2, …) under one directory.
// The first nodes are control planes; the workers join them with the join token, as
// real nodes do. What was started is recorded in DIR/cluster.json, so that show and
// destroy find it again.
#pragma once

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include "keel/common/status.h"

#include "command_env.h"

namespace keel::keelctl {

struct ClusterCreateOptions {
  std::filesystem::path root;
  std::string name = "local";
  int controlPlanes = 1;
  int workers = 0;
  std::filesystem::path machined;  // the machined binary
  std::filesystem::path libexec;   // holds apid and trustd
  int apiPort = 50000;
  int joinPort = 50001;
  std::chrono::seconds wait{300};
  // JSON merge patches (RFC 7396) applied to every node's machine config, in order.
  std::vector<std::filesystem::path> configPatches;
};

// Generates secrets and configs, starts every node, waits until every node's apid
// answers and Keel's own services run (printing progress), and writes DIR/keelconfig whose context names every node.
// A node that does not come up in time stops the whole cluster again.
Status clusterCreate(const ClusterCreateOptions& options, CommandEnv& env);
// Nodes, their type, process and whether their apid answers.
Status clusterShow(const std::filesystem::path& root, CommandEnv& env);
// Stops every process the cluster started (SIGTERM, then SIGKILL) and removes DIR.
Status clusterDestroy(const std::filesystem::path& root, CommandEnv& env);

}  // namespace keel::keelctl
