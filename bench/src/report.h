// keel_bench's input and output: parsing durations and concurrency lists, describing
// the machine, the side-by-side table with apid/nginx ratios, and the same rows as JSON
// for scripts (bench/compare.sh).
#pragma once

#include <array>
#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "keel/common/status.h"

namespace keel::bench {

// "5s", "200ms", "0.2s", "1m", "1500us". Errors: INVALID_ARGUMENT naming the accepted
// forms; a duration must be positive and at most an hour.
Result<std::chrono::microseconds> parseDuration(std::string_view text);

// "1,32" -> {1, 32}. Each entry 1..10000. Errors: INVALID_ARGUMENT.
Result<std::vector<int>> parseConcurrencyList(std::string_view text);

// "CPU model (N cores), kernel <release>" from /proc/cpuinfo and uname.
std::string describeMachine();

// Which direction of a metric is better, for the ratio column.
enum class Better { kLower, kHigher };

// The three measured paths, in column order.
inline constexpr std::array<std::string_view, 3> kColumns = {"direct", "apid", "nginx"};

struct TableRow {
  std::string label;
  Better better = Better::kHigher;
  std::array<std::optional<double>, 3> values;  // direct, apid, nginx; nullopt prints "-"
  // apid's figure over nginx's in each round that measured both: how far the ratio moves
  // from one round to the next.
  std::vector<double> roundRatios;
  // Each path's figure in each round (nullopt: that round measured nothing), for --json.
  std::array<std::vector<std::optional<double>>, 3> perRound;
};

// The median of the values present (nullopt when none is).
std::optional<double> medianOf(const std::vector<std::optional<double>>& values);

// A row from each path's figure per round (nullopt: that round measured nothing): the
// median per path, and apid/nginx in each round that has both.
TableRow summarize(std::string label, Better better, const std::array<std::vector<std::optional<double>>, 3>& perRound);

// The lowest and highest of the round ratios ("rounds 0.88-1.10"), or "" with fewer
// than two.
std::string spreadText(const TableRow& row);

// "1.23x better", "0.80x worse" or "-" when either side is missing or nginx's is 0.
std::string ratioText(const TableRow& row);

// The rows as an aligned text table with a header, the apid/nginx column and the spread
// of that ratio over the rounds.
std::string formatTable(const std::vector<TableRow>& rows);

// The rows as one JSON document: `run` (the header's facts, as given), then per row its
// label (runs of spaces folded to one), "higher" or "lower" is better, and for each
// path its median and its figure in every round (null where a round measured nothing).
std::string formatJson(const std::vector<TableRow>& rows, const std::map<std::string, std::string>& run);

}  // namespace keel::bench
