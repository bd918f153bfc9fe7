#include "dashboard.h"

#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>

#include <fmt/format.h>

namespace keel::keelctl {

namespace v1 = keel::machine::v1;

namespace {

constexpr auto kCallTimeout = std::chrono::seconds(3);
constexpr auto kRefresh = std::chrono::milliseconds(1000);
constexpr int kEventLines = 4;

// `text` cut to `width` columns (one per UTF-8 character), control characters shown as '?'.
std::string fit(std::string_view text, int width) {
  std::string out;
  int columns = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    const bool continuation = (c & 0xC0) == 0x80;
    if (!continuation && columns == width) break;
    if (!continuation) ++columns;
    out += (c < 0x20 || c == 0x7F) ? '?' : static_cast<char>(c);
  }
  return out;
}

std::string duration(double seconds) {
  const auto s = static_cast<int64_t>(seconds);
  if (s >= 86400) return fmt::format("{}d{:02}h", s / 86400, s % 86400 / 3600);
  if (s >= 3600) return fmt::format("{}h{:02}m", s / 3600, s % 3600 / 60);
  return fmt::format("{}m{:02}s", s / 60, s % 60);
}

std::string nodeLine(const DashboardNode& n, bool selected) {
  const std::string mark = selected ? ">" : " ";
  if (!n.error.empty()) return fmt::format("{} {:<15} NOT ANSWERING: {}", mark, n.name, n.error);
  const std::string cpu = n.cpuPercent ? fmt::format("{:3.0f}%", *n.cpuPercent) : "  -%";
  const double usedGib = static_cast<double>(n.memTotalKb - std::min(n.memAvailableKb, n.memTotalKb)) / 1048576.0;
  // 80 columns for a version of up to 8 characters.
  return fmt::format("{} {:<15} {:<8} up {:<7} load {:.2f} {:.2f} {:.2f} cpu {} mem {:.1f}/{:.1f}G", mark,
                     n.name, n.version, duration(n.uptimeSeconds), n.load1, n.load5, n.load15, cpu, usedGib,
                     static_cast<double>(n.memTotalKb) / 1048576.0);
}

// The lines of a list of `rows` that fit `room`, keeping `selected` in view.
std::vector<std::string> window(const std::vector<std::string>& rows, std::size_t selected, std::size_t room) {
  if (rows.size() <= room) return rows;
  const std::size_t first = std::min(selected >= room / 2 ? selected - room / 2 : 0, rows.size() - room);
  return {rows.begin() + static_cast<std::ptrdiff_t>(first), rows.begin() + static_cast<std::ptrdiff_t>(first + room)};
}

}  // namespace

std::vector<std::string> renderDashboard(const DashboardState& s, int width, int height) {
  width = std::max(width, 20);
  height = std::max(height, 8);
  const auto total = static_cast<std::size_t>(height);
  std::vector<std::string> lines;
  lines.push_back(fmt::format("keelctl dashboard: {}  {} node(s)  {}   q quit, <-/-> node, up/down service", s.title,
                              s.nodes.size(), s.updated));
  std::vector<std::string> nodeRows;
  for (std::size_t i = 0; i < s.nodes.size(); ++i) nodeRows.push_back(nodeLine(s.nodes[i], i == s.node));
  // Nodes take at most a quarter of the screen, services a quarter; the log the rest.
  const std::size_t quarter = std::max<std::size_t>(2, (total - 6) / 4);
  for (auto& l : window(nodeRows, s.node, quarter)) lines.push_back(std::move(l));

  const DashboardNode* node = s.nodes.empty() ? nullptr : &s.nodes[std::min(s.node, s.nodes.size() - 1)];
  lines.push_back(fmt::format("SERVICES on {}", node ? node->name : "-"));
  std::vector<std::string> serviceRows;
  if (node != nullptr) {
    for (std::size_t i = 0; i < node->services.size(); ++i) {
      const auto& sv = node->services[i];
      serviceRows.push_back(fmt::format("{} {:<20} {:<10} restarts {}", i == s.service ? ">" : " ", sv.id, sv.state,
                                        sv.restarts));
    }
  }
  for (auto& l : window(serviceRows, s.service, quarter)) lines.push_back(std::move(l));

  const std::string service =
      node != nullptr && s.service < node->services.size() ? node->services[s.service].id : std::string("-");
  lines.push_back(fmt::format("LOG of {} (last lines)", service));
  const std::size_t footer = 1 + kEventLines + 1;  // EVENTS title, the events, the status line
  const std::size_t logRoom = total > lines.size() + footer ? total - lines.size() - footer : 0;
  const std::size_t logFirst = s.log.size() > logRoom ? s.log.size() - logRoom : 0;
  for (std::size_t i = logFirst; i < s.log.size(); ++i) lines.push_back("  " + s.log[i]);
  while (lines.size() < total - footer) lines.emplace_back();
  lines.push_back("EVENTS");
  const std::size_t eventFirst = s.events.size() > kEventLines ? s.events.size() - kEventLines : 0;
  for (std::size_t i = eventFirst; i < s.events.size(); ++i) lines.push_back("  " + s.events[i]);
  while (lines.size() < total - 1) lines.emplace_back();
  lines.push_back(s.problem);
  lines.resize(total);
  for (auto& l : lines) l = fit(l, width);
  return lines;
}

bool dashboardKey(DashboardState& s, const std::string& key) {
  if (key == "q" || key == "Q" || key == "\x03" || key == "\x04") return false;
  const std::size_t nodes = s.nodes.size();
  const std::size_t services = nodes == 0 ? 0 : s.nodes[std::min(s.node, nodes - 1)].services.size();
  if ((key == "right" || key == "l" || key == "\t") && nodes > 0) {
    s.node = (s.node + 1) % nodes;
    s.service = 0;
  } else if ((key == "left" || key == "h") && nodes > 0) {
    s.node = (s.node + nodes - 1) % nodes;
    s.service = 0;
  } else if ((key == "down" || key == "j") && services > 0) {
    s.service = std::min(s.service + 1, services - 1);
  } else if ((key == "up" || key == "k") && s.service > 0) {
    --s.service;
  }
  return true;
}

namespace {

// The terminal in the dashboard's mode while it lives: no echo, keys one by one, Ctrl-C
// as a key, the alternate screen, no cursor. Restored on destruction and on SIGTERM/SIGHUP.
class TerminalMode {
 public:
  TerminalMode() {
    tcgetattr(STDIN_FILENO, &saved_);
    termios raw = saved_;
    raw.c_lflag &= ~static_cast<tcflag_t>(ICANON | ECHO | ISIG);
    raw.c_cc[VMIN] = 0;
    raw.c_cc[VTIME] = 0;
    tcsetattr(STDIN_FILENO, TCSANOW, &raw);
    savedForSignal_ = saved_;
    struct sigaction sa {};
    sa.sa_handler = &TerminalMode::onSignal;
    sigaction(SIGTERM, &sa, nullptr);
    sigaction(SIGHUP, &sa, nullptr);
    write("\x1b[?1049h\x1b[?25l");
  }
  ~TerminalMode() { restore(); }
  TerminalMode(const TerminalMode&) = delete;
  TerminalMode& operator=(const TerminalMode&) = delete;

  static void write(std::string_view text) {
    while (!text.empty()) {
      const ssize_t n = ::write(STDOUT_FILENO, text.data(), text.size());
      if (n <= 0) return;
      text.remove_prefix(static_cast<std::size_t>(n));
    }
  }

 private:
  static constexpr std::string_view kLeave = "\x1b[?25h\x1b[?1049l";
  static void restore() {
    tcsetattr(STDIN_FILENO, TCSANOW, &savedForSignal_);
    write(kLeave);
  }
  static void onSignal(int sig) {
    restore();
    _exit(128 + sig);
  }
  termios saved_{};
  static inline termios savedForSignal_{};
};

std::pair<int, int> terminalSize() {
  winsize ws{};
  if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) != 0 || ws.ws_col == 0 || ws.ws_row == 0) return {80, 24};
  return {ws.ws_col, ws.ws_row};
}

void draw(const DashboardState& state) {
  const auto [width, height] = terminalSize();
  std::string frame = "\x1b[H";
  const auto lines = renderDashboard(state, width, height);
  for (std::size_t i = 0; i < lines.size(); ++i) {
    frame += lines[i] + "\x1b[K";
    if (i + 1 < lines.size()) frame += "\r\n";
  }
  TerminalMode::write(frame);
}

// The keys waiting on stdin: arrows as "up", "down", "left", "right", others as typed.
std::vector<std::string> readKeys() {
  char buf[64];
  const ssize_t n = ::read(STDIN_FILENO, buf, sizeof buf);
  std::vector<std::string> keys;
  for (ssize_t i = 0; i < n; ++i) {
    if (buf[i] == '\x1b' && i + 2 < n && buf[i + 1] == '[') {
      static const std::string_view kArrows[] = {"up", "down", "right", "left"};
      const char code = buf[i + 2];
      if (code >= 'A' && code <= 'D') keys.emplace_back(kArrows[code - 'A']);
      i += 2;
      continue;
    }
    keys.emplace_back(1, buf[i]);
  }
  return keys;
}

DashboardNode* nodeNamed(DashboardState& s, const keel::common::v1::Metadata& m) {
  const std::string& name = nodeOf(m);
  for (auto& n : s.nodes) {
    if (n.name == name) return &n;
  }
  // Without target nodes, the one node is whatever the endpoint's apid calls itself.
  return s.nodes.size() == 1 ? &s.nodes.front() : nullptr;
}

template <typename Resp, typename Fill>
void fanOut(MachineCommandEnv& env, const std::vector<std::string>& targets, MachineUnary<keel::common::v1::Empty, Resp> method,
            DashboardState& s, Fill fill) {
  const auto ctx = env.client.contextFor(targets, kCallTimeout);
  Resp resp;
  const auto st = (env.client.stub().*method)(ctx.get(), keel::common::v1::Empty(), &resp);
  if (!st.ok()) {
    for (auto& n : s.nodes) n.error = fromGrpc(st, env.client.target()).message();
    return;
  }
  for (const auto& m : resp.messages()) {
    DashboardNode* n = nodeNamed(s, m.metadata());
    if (n == nullptr) continue;
    if (!m.metadata().error().empty()) {
      n->error = m.metadata().error();
      continue;
    }
    fill(*n, m);
  }
}

void refreshNodes(MachineCommandEnv& env, const std::vector<std::string>& targets, DashboardState& s) {
  for (auto& n : s.nodes) n.error.clear();
  fanOut(env, targets, &v1::MachineService::Stub::Version, s,
         [](DashboardNode& n, const v1::Version& m) { n.version = m.version(); });
  fanOut(env, targets, &v1::MachineService::Stub::Uptime, s,
         [](DashboardNode& n, const v1::Uptime& m) { n.uptimeSeconds = m.uptime_seconds(); });
  fanOut(env, targets, &v1::MachineService::Stub::LoadAvg, s, [](DashboardNode& n, const v1::LoadAvg& m) {
    n.load1 = m.load1();
    n.load5 = m.load5();
    n.load15 = m.load15();
  });
  fanOut(env, targets, &v1::MachineService::Stub::Memory, s, [](DashboardNode& n, const v1::Memory& m) {
    n.memTotalKb = m.meminfo().total_kb();
    n.memAvailableKb = m.meminfo().available_kb();
  });
  fanOut(env, targets, &v1::MachineService::Stub::SystemStat, s, [](DashboardNode& n, const v1::SystemStat& m) {
    if (m.cpus().empty()) return;
    const auto& c = m.cpus(0);
    const uint64_t busy = c.user() + c.nice() + c.system() + c.irq() + c.softirq() + c.steal();
    const uint64_t total = busy + c.idle() + c.iowait();
    if (n.cpuTotal != 0 && total > n.cpuTotal) {
      n.cpuPercent = 100.0 * static_cast<double>(busy - std::min(busy, n.cpuBusy)) / static_cast<double>(total - n.cpuTotal);
    }
    n.cpuBusy = busy;
    n.cpuTotal = total;
  });
  fanOut(env, targets, &v1::MachineService::Stub::ServiceList, s, [](DashboardNode& n, const v1::ServiceList& m) {
    n.services.clear();
    for (const auto& sv : m.services()) n.services.push_back({sv.id(), sv.state(), sv.restarts()});
    // machined supervises the others; it answered, so it runs. Listed for its log.
    n.services.push_back({"machined", "running", 0});
  });
}

// The selected node's log of the selected service and its latest events.
void refreshSelected(MachineCommandEnv& env, const std::vector<std::string>& targets, DashboardState& s) {
  s.log.clear();
  s.events.clear();
  if (s.nodes.empty()) return;
  s.node = std::min(s.node, s.nodes.size() - 1);
  const DashboardNode& node = s.nodes[s.node];
  if (!node.error.empty() || node.services.empty()) return;
  s.service = std::min(s.service, node.services.size() - 1);
  const std::vector<std::string> one = targets.empty() ? targets : std::vector<std::string>{node.name};
  v1::LogsRequest logs;
  logs.set_service(node.services[s.service].id);
  logs.set_tail_lines(200);
  auto ctx = env.client.contextFor(one, kCallTimeout);
  auto reader = env.client.stub().Logs(ctx.get(), logs);
  v1::LogLine line;
  while (reader->Read(&line)) s.log.push_back(line.line());
  if (const auto st = reader->Finish(); !st.ok()) s.log.push_back("(log: " + st.error_message() + ")");
  v1::EventsRequest events;
  events.set_tail_events(kEventLines);
  auto ectx = env.client.contextFor(one, kCallTimeout);
  auto ereader = env.client.stub().Events(ectx.get(), events);
  v1::Event e;
  while (ereader->Read(&e)) {
    const auto when = TimePoint(std::chrono::duration_cast<TimePoint::duration>(std::chrono::nanoseconds(e.unix_nanos())));
    s.events.push_back(fmt::format("{} {} {} {} {}", formatTime(when), e.kind(), e.subject(), e.state(), e.message()));
  }
  ereader->Finish();
}

}  // namespace

Status cmdDashboard(MachineCommandEnv& env, const std::string& title) {
  if (isatty(STDIN_FILENO) == 0 || isatty(STDOUT_FILENO) == 0) {
    return failedPrecondition("the dashboard needs a terminal; for scripts use 'keelctl services -o json' and friends");
  }
  const std::vector<std::string> targets = env.client.target().nodes;
  DashboardState s;
  s.title = title;
  if (targets.empty()) {
    const std::string& endpoint = env.client.target().endpoint;
    s.nodes.emplace_back().name = endpoint.empty() ? "local" : endpoint;
  } else {
    for (const auto& t : targets) s.nodes.emplace_back().name = t;
  }
  TerminalMode mode;
  for (;;) {
    refreshNodes(env, targets, s);
    refreshSelected(env, targets, s);
    s.updated = formatTime(std::chrono::time_point_cast<std::chrono::seconds>(std::chrono::system_clock::now()));
    draw(s);
    const auto next = std::chrono::steady_clock::now() + kRefresh;
    for (auto now = std::chrono::steady_clock::now(); now < next; now = std::chrono::steady_clock::now()) {
      pollfd in{STDIN_FILENO, POLLIN, 0};
      const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(next - now).count();
      if (poll(&in, 1, static_cast<int>(wait)) <= 0) continue;
      const auto keys = readKeys();
      if (keys.empty()) return Status::ok();  // the terminal went away
      const auto before = std::make_pair(s.node, s.service);
      for (const auto& key : keys) {
        if (!dashboardKey(s, key)) return Status::ok();
      }
      if (before != std::make_pair(s.node, s.service)) {
        refreshSelected(env, targets, s);
        draw(s);
      }
    }
  }
}

}  // namespace keel::keelctl
