// Plain-text tables for keelctl's human-readable output: columns padded to their
// widest cell, separated by three spaces, no trailing blanks.
#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace keel::keelctl {

// Writes `header` then `rows`; every row must have as many cells as the header.
void printTable(std::ostream& out, const std::vector<std::string>& header,
                const std::vector<std::vector<std::string>>& rows);

}  // namespace keel::keelctl
