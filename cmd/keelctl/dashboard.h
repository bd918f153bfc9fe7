// `keelctl dashboard`: a live view of the context's nodes in the terminal, over the same
// mutual-TLS API as every other command (any role that can read). Per node: version,
// uptime, load, CPU and memory; the selected node's services with their state and
// restarts, the last lines of the selected service's log, and its latest events. It
// refreshes about once a second; a node that stops answering is marked, not fatal.
// The screen is plain ANSI: it fits 80×24 and uses a larger terminal when it has one.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "keel/common/status.h"
#include "node_calls.h"

namespace keel::keelctl {

struct DashboardService {
  std::string id;
  std::string state;
  int restarts = 0;
};

struct DashboardNode {
  std::string name;
  std::string error;  // not empty: the node did not answer the last refresh
  std::string version;
  double uptimeSeconds = 0;
  double load1 = 0, load5 = 0, load15 = 0;
  uint64_t memTotalKb = 0, memAvailableKb = 0;
  std::optional<double> cpuPercent;  // from the last two samples
  uint64_t cpuBusy = 0, cpuTotal = 0;  // the last sample (jiffies)
  std::vector<DashboardService> services;
};

struct DashboardState {
  std::string title;                // the context
  std::vector<DashboardNode> nodes;
  std::size_t node = 0;             // selected
  std::size_t service = 0;          // selected, among the selected node's services
  std::vector<std::string> log;     // the selected service's last lines
  std::vector<std::string> events;  // the selected node's latest events
  std::string updated;              // time of the last refresh
  std::string problem;              // shown on the last line when not empty
};

// The screen for `state`: exactly `height` lines, none wider than `width` columns.
std::vector<std::string> renderDashboard(const DashboardState& state, int width, int height);

// Applies one key to the selection: ←/→ (or h/l, Tab) change node, ↑/↓ (or k/j)
// service. Returns false for q, Q, Ctrl-C and Ctrl-D.
bool dashboardKey(DashboardState& state, const std::string& key);

// Runs the dashboard until q. Errors: FAILED_PRECONDITION when stdin or stdout is not a
// terminal.
Status cmdDashboard(MachineCommandEnv& env, const std::string& title);

}  // namespace keel::keelctl
