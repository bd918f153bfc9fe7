#include "report.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <sstream>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <sys/utsname.h>

#include "process.h"

namespace keel::bench {

Result<std::chrono::microseconds> parseDuration(std::string_view text) {
  const auto bad = [&] {
    return invalidArgument("expected a duration such as 5s, 200ms, 0.5s, 1m or 1500us, found '" +
                           std::string(text) + "'");
  };
  size_t unitStart = 0;
  while (unitStart < text.size() &&
         (std::isdigit(static_cast<unsigned char>(text[unitStart])) != 0 || text[unitStart] == '.')) {
    ++unitStart;
  }
  if (unitStart == 0) return bad();
  double number = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + unitStart, number);
  if (ec != std::errc() || end != text.data() + unitStart) return bad();
  const std::string_view unit = text.substr(unitStart);
  double scale = 0;
  if (unit == "us") {
    scale = 1;
  } else if (unit == "ms") {
    scale = 1e3;
  } else if (unit == "s") {
    scale = 1e6;
  } else if (unit == "m") {
    scale = 60e6;
  } else {
    return bad();
  }
  const double us = number * scale;
  if (!(us >= 1) || us > 3600e6) {
    return invalidArgument("a duration must be between 1us and 1h, found '" + std::string(text) + "'");
  }
  return std::chrono::microseconds(static_cast<int64_t>(std::llround(us)));
}

Result<std::vector<int>> parseConcurrencyList(std::string_view text) {
  std::vector<int> out;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t comma = std::min(text.find(',', start), text.size());
    const std::string_view item = text.substr(start, comma - start);
    int n = 0;
    const auto [end, ec] = std::from_chars(item.data(), item.data() + item.size(), n);
    if (item.empty() || ec != std::errc() || end != item.data() + item.size() || n < 1 || n > 10000) {
      return invalidArgument(
          "expected a comma-separated list of concurrencies from 1 to 10000 (\"1,32\"), found '" +
          std::string(text) + "'");
    }
    out.push_back(n);
    start = comma + 1;
  }
  return out;
}

std::string describeMachine() {
  std::string model = "unknown CPU";
  std::istringstream in(readTextFile("/proc/cpuinfo"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      const auto colon = line.find(':');
      if (colon != std::string::npos) model = line.substr(line.find_first_not_of(' ', colon + 1));
      break;
    }
  }
  utsname u{};
  const std::string kernel = uname(&u) == 0 ? std::string(u.release) : "unknown";
  return fmt::format("{} ({} cores online), Linux {}", model, std::thread::hardware_concurrency(), kernel);
}

std::string ratioText(const TableRow& row) {
  const auto& apid = row.values[1];
  const auto& nginx = row.values[2];
  if (!apid || !nginx || *nginx <= 0) return "-";
  const double ratio = *apid / *nginx;
  if (std::fabs(ratio - 1.0) < 0.005) return fmt::format("{:.2f}x same", ratio);
  const bool better = row.better == Better::kHigher ? ratio > 1.0 : ratio < 1.0;
  return fmt::format("{:.2f}x {}", ratio, better ? "better" : "worse");
}

std::optional<double> medianOf(const std::vector<std::optional<double>>& values) {
  std::vector<double> v;
  for (const auto& x : values) {
    if (x) v.push_back(*x);
  }
  if (v.empty()) return std::nullopt;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

TableRow summarize(std::string label, Better better, const std::array<std::vector<std::optional<double>>, 3>& perRound) {
  TableRow row{std::move(label), better, {}, {}, perRound};
  for (size_t i = 0; i < 3; ++i) row.values[i] = medianOf(perRound[i]);
  const auto& apid = perRound[1];
  const auto& nginx = perRound[2];
  for (size_t k = 0; k < std::min(apid.size(), nginx.size()); ++k) {
    if (apid[k] && nginx[k] && *nginx[k] > 0) row.roundRatios.push_back(*apid[k] / *nginx[k]);
  }
  return row;
}

std::string spreadText(const TableRow& row) {
  if (row.roundRatios.size() < 2) return "";
  const auto [lo, hi] = std::minmax_element(row.roundRatios.begin(), row.roundRatios.end());
  return fmt::format("rounds {:.2f}-{:.2f}", *lo, *hi);
}

namespace {

std::string formatValue(const std::optional<double>& v) {
  if (!v) return "-";
  if (*v >= 100) return fmt::format("{:.0f}", *v);
  if (*v >= 10) return fmt::format("{:.1f}", *v);
  return fmt::format("{:.2f}", *v);
}

}  // namespace

std::string formatTable(const std::vector<TableRow>& rows) {
  size_t labelWidth = std::string_view("metric").size();
  for (const auto& r : rows) labelWidth = std::max(labelWidth, r.label.size());
  constexpr size_t kValueWidth = 12;
  std::string out = fmt::format("{:<{}}", "metric", labelWidth);
  for (const auto c : kColumns) out += fmt::format(" {:>{}}", c, kValueWidth);
  const bool spread = std::any_of(rows.begin(), rows.end(), [](const TableRow& r) { return !spreadText(r).empty(); });
  constexpr size_t kRatioWidth = 13;
  out += spread ? fmt::format("  {:<{}} {}\n", "apid/nginx", kRatioWidth, "spread") : "  apid/nginx\n";
  out += std::string(labelWidth + 3 * (kValueWidth + 1) + 2 + kRatioWidth + (spread ? 18 : 0), '-') + "\n";
  for (const auto& r : rows) {
    out += fmt::format("{:<{}}", r.label, labelWidth);
    for (const auto& v : r.values) out += fmt::format(" {:>{}}", formatValue(v), kValueWidth);
    const std::string s = spreadText(r);
    out += s.empty() ? fmt::format("  {}\n", ratioText(r)) : fmt::format("  {:<{}} {}\n", ratioText(r), kRatioWidth, s);
  }
  return out;
}

std::string formatJson(const std::vector<TableRow>& rows, const std::map<std::string, std::string>& run) {
  nlohmann::json out = {{"tool", "keel_bench"}, {"run", run}, {"rows", nlohmann::json::array()}};
  const auto number = [](const std::optional<double>& v) {
    return v ? nlohmann::json(*v) : nlohmann::json();
  };
  for (const auto& r : rows) {
    std::string label;
    for (const char c : r.label) {
      if (c != ' ' || (!label.empty() && label.back() != ' ')) label += c;
    }
    while (!label.empty() && label.back() == ' ') label.pop_back();
    nlohmann::json paths = nlohmann::json::object();
    for (size_t i = 0; i < kColumns.size(); ++i) {
      nlohmann::json rounds = nlohmann::json::array();
      for (const auto& v : r.perRound[i]) rounds.push_back(number(v));
      paths[std::string(kColumns[i])] = {{"median", number(r.values[i])}, {"rounds", rounds}};
    }
    out["rows"].push_back(
        {{"label", label}, {"better", r.better == Better::kHigher ? "higher" : "lower"}, {"paths", paths}});
  }
  return out.dump(2) + "\n";
}

}  // namespace keel::bench
