// keel_bench's input and output: parsing durations and concurrency lists, describing
// the machine, and the side-by-side table with apid/nginx ratios.
#pragma once

#include <array>
#include <chrono>
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
};

// "1.23x better", "0.80x worse" or "-" when either side is missing or nginx's is 0.
std::string ratioText(const TableRow& row);

// The rows as an aligned text table with a header and the apid/nginx column.
std::string formatTable(const std::vector<TableRow>& rows);

}  // namespace keel::bench
