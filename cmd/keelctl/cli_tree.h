// What keelctl says about its own command tree: shell completion scripts (bash, zsh,
// fish) and the CLI reference (docs/cli.md), both generated from the CLI11 tree itself,
// so that neither can fall behind a command that is added or renamed.
#pragma once

#include <string>
#include <vector>

#include "keel/common/status.h"

namespace CLI {
class App;
}

namespace keel::keelctl {

// Every command path of the tree, depth first ("config", "config renew", …), without the
// hidden ones (no description).
std::vector<std::string> commandPaths(const CLI::App& app);

// The completion script for `shell` ("bash", "zsh" or "fish"). Words that depend on the
// cluster come from keelctl itself when the user presses Tab: the context's nodes after
// -n/--nodes, and the node's services after `logs`, `service` and `restart`.
// Errors: INVALID_ARGUMENT naming the shells supported.
Result<std::string> completionScript(const CLI::App& app, const std::string& shell);

// The reference: every command with its description and its --help text, in Markdown.
std::string cliReference(const CLI::App& app);

}  // namespace keel::keelctl
