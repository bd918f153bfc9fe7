#include "cli_tree.h"

#include <algorithm>
#include <functional>
#include <set>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>

namespace keel::keelctl {

namespace {

struct Node {
  const CLI::App* app;
  std::string path;  // "" for keelctl itself
};

bool visible(const CLI::App* app) { return !app->get_group().empty() && !app->get_name().empty(); }

std::vector<const CLI::App*> children(const CLI::App* app) {
  return app->get_subcommands([](const CLI::App* sub) { return visible(sub); });
}

void walk(const CLI::App* app, const std::string& path, std::vector<Node>& out) {
  out.push_back({app, path});
  for (const auto* sub : children(app)) walk(sub, path.empty() ? sub->get_name() : path + " " + sub->get_name(), out);
}

std::vector<Node> allNodes(const CLI::App& app) {
  std::vector<Node> out;
  walk(&app, "", out);
  return out;
}

// An option's names as typed: "-n", "--nodes".
std::vector<std::string> flagNames(const CLI::Option* opt) {
  std::vector<std::string> names;
  for (const auto& s : opt->get_snames()) names.push_back("-" + s);
  for (const auto& l : opt->get_lnames()) names.push_back("--" + l);
  return names;
}

bool visibleOption(const CLI::Option* opt) { return opt->nonpositional() && !opt->get_group().empty(); }

// Options offered at `node`: its own and its ancestors' (keelctl's options may follow a
// command), --help included.
std::vector<const CLI::Option*> optionsAt(const CLI::App* app) {
  std::vector<const CLI::Option*> out;
  for (const CLI::App* a = app; a != nullptr; a = a->get_parent()) {
    for (const auto* opt : a->get_options(visibleOption)) out.push_back(opt);
  }
  return out;
}

std::string words(const std::vector<std::string>& list) { return fmt::format("{}", fmt::join(list, " ")); }

std::string quoteFish(const std::string& text) {
  std::string out = "'";
  for (const char c : text) {
    if (c == '\'' || c == '\\') out += '\\';
    out += c;
  }
  return out + "'";
}

// Options that take a value, anywhere in the tree: after one, the word is its value.
std::set<std::string> valueOptions(const std::vector<Node>& nodes) {
  std::set<std::string> out;
  for (const auto& n : nodes) {
    for (const auto* opt : n.app->get_options(visibleOption)) {
      if (opt->get_type_size_max() == 0) continue;
      for (const auto& name : flagNames(opt)) out.insert(name);
    }
  }
  return out;
}

std::string bashScript(const CLI::App& app) {
  const auto nodes = allNodes(app);
  std::string table;
  for (const auto& n : nodes) {
    std::vector<std::string> subs;
    for (const auto* sub : children(n.app)) subs.push_back(sub->get_name());
    std::vector<std::string> flags;
    for (const auto* opt : optionsAt(n.app)) {
      for (const auto& name : flagNames(opt)) {
        if (std::find(flags.begin(), flags.end(), name) == flags.end()) flags.push_back(name);
      }
    }
    table += fmt::format("    \"{}\") echo \"{}|{}\" ;;\n", n.path, words(subs), words(flags));
  }
  // Commands whose -o/--output is the output format (elsewhere it names a file).
  std::vector<std::string> formatPaths;
  for (const auto& n : nodes) {
    for (const auto* opt : n.app->get_options(visibleOption)) {
      if (opt->get_lnames() == std::vector<std::string>{"output"} &&
          opt->get_description().starts_with("Output format")) {
        std::string path = n.path;
        std::replace(path.begin(), path.end(), ' ', '/');
        formatPaths.push_back(path);
      }
    }
  }
  const auto values = valueOptions(nodes);
  const std::vector<std::string> valueList(values.begin(), values.end());
  return fmt::format(R"SH(# keelctl completion for bash, generated from keelctl's command tree.
# Load it with: source <(keelctl completion bash)
_keelctl_words() {{
  case "$1" in
{}    *) echo "|" ;;
  esac
}}

# The words keelctl itself knows: the context's nodes, a node's services. The global
# options already typed (client config, endpoints, nodes) are passed on.
_keelctl_ask() {{
  local what=$1 i w pass=()
  for ((i = 1; i < COMP_CWORD; i++)); do
    w="${{COMP_WORDS[i]}}"
    case "$w" in
      --keelconfig|-e|--endpoints|-n|--nodes|--root|--socket) pass+=("$w" "${{COMP_WORDS[i+1]}}") ;;
    esac
  done
  "${{COMP_WORDS[0]}}" "${{pass[@]}}" "$what" 2>/dev/null
}}

_keelctl() {{
  local cur="${{COMP_WORDS[COMP_CWORD]}}" prev="${{COMP_WORDS[COMP_CWORD-1]}}"
  local path="" i w entry subs flags args=0 skip=0
  for ((i = 1; i < COMP_CWORD; i++)); do
    w="${{COMP_WORDS[i]}}"
    if ((skip)); then skip=0; continue; fi
    case " {} " in *" $w "*) skip=1; continue ;; esac
    [[ $w == -* ]] && continue
    entry="$(_keelctl_words "$path")"
    subs="${{entry%%|*}}"
    if [[ " $subs " == *" $w "* ]]; then path="${{path:+$path }}$w"; args=0; else args=$((args + 1)); fi
  done
  case "$prev" in
    -n|--nodes) COMPREPLY=($(compgen -W "$(_keelctl_ask __node-names)" -- "$cur")); return 0 ;;
    -o|--output)
      if [[ " {} " == *" ${{path// //}} "* ]]; then COMPREPLY=($(compgen -W "table json yaml" -- "$cur")); return 0; fi ;;
  esac
  case " {} " in *" $prev "*) COMPREPLY=($(compgen -f -- "$cur")); return 0 ;; esac
  entry="$(_keelctl_words "$path")"
  subs="${{entry%%|*}}"
  flags="${{entry#*|}}"
  if [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W "$flags" -- "$cur"))
  elif [[ ($path == logs || $path == service) && $args == 0 ]]; then
    COMPREPLY=($(compgen -W "$(_keelctl_ask __service-names)" -- "$cur"))
  elif [[ $path == service && $args == 1 ]]; then
    COMPREPLY=($(compgen -W "status start stop restart" -- "$cur"))
  elif [[ $path == completion && $args == 0 ]]; then
    COMPREPLY=($(compgen -W "bash zsh fish" -- "$cur"))
  elif [[ -n $subs ]]; then
    COMPREPLY=($(compgen -W "$subs" -- "$cur"))
  else
    COMPREPLY=($(compgen -f -- "$cur"))
  fi
  return 0
}}
complete -F _keelctl keelctl
)SH",
                     table, words(valueList), words(formatPaths), words(valueList));
}

std::string fishScript(const CLI::App& app) {
  const auto nodes = allNodes(app);
  std::string out =
      "# keelctl completion for fish, generated from keelctl's command tree.\n"
      "# Load it with: keelctl completion fish | source\n"
      "complete -c keelctl -f\n"
      "complete -c keelctl -s n -l nodes -x -a '(keelctl __node-names 2>/dev/null)'\n";
  for (const auto& n : nodes) {
    const auto subs = children(n.app);
    std::vector<std::string> names;
    for (const auto* sub : subs) names.push_back(sub->get_name());
    // The condition: the words of this command are on the line and none of its subcommands yet.
    std::string condition = n.path.empty() ? "__fish_use_subcommand"
                                           : fmt::format("__fish_seen_subcommand_from {}", n.path.substr(n.path.rfind(' ') + 1));
    for (const auto* sub : subs) {
      out += fmt::format("complete -c keelctl -n {} -a {} -d {}\n",
                         quoteFish(condition + (n.path.empty() ? "" : "; and not __fish_seen_subcommand_from " + words(names))),
                         sub->get_name(), quoteFish(sub->get_description()));
    }
    for (const auto* opt : n.app->get_options(visibleOption)) {
      std::string line = "complete -c keelctl";
      if (!n.path.empty()) line += " -n " + quoteFish(condition);
      for (const auto& s : opt->get_snames()) line += " -s " + s;
      for (const auto& l : opt->get_lnames()) line += " -l " + l;
      if (opt->get_type_size_max() != 0) line += " -r";
      out += line + " -d " + quoteFish(opt->get_description()) + "\n";
    }
  }
  out += "complete -c keelctl -n '__fish_seen_subcommand_from logs service' -a '(keelctl __service-names 2>/dev/null)'\n";
  out += "complete -c keelctl -n '__fish_seen_subcommand_from completion' -a 'bash zsh fish'\n";
  return out;
}

}  // namespace

std::vector<std::string> commandPaths(const CLI::App& app) {
  std::vector<std::string> out;
  for (const auto& n : allNodes(app)) {
    if (!n.path.empty()) out.push_back(n.path);
  }
  return out;
}

Result<std::string> completionScript(const CLI::App& app, const std::string& shell) {
  if (shell == "bash") return bashScript(app);
  // zsh runs the bash function through its own bash-completion layer.
  if (shell == "zsh") {
    return "# keelctl completion for zsh. Load it with: source <(keelctl completion zsh)\n"
           "autoload -U +X compinit && compinit\nautoload -U +X bashcompinit && bashcompinit\n" +
           bashScript(app);
  }
  if (shell == "fish") return fishScript(app);
  return invalidArgument(fmt::format("expected a shell among bash, zsh and fish, found '{}'", shell));
}

std::string cliReference(const CLI::App& app) {
  const auto nodes = allNodes(app);
  std::string out =
      "# keelctl command reference\n\n"
      "Written by `keelctl docs -o docs/cli.md` from keelctl's own command tree (a test fails when it is out of\n"
      "date); `keelctl <command> --help` prints the same text.\n\n";
  for (const auto& n : nodes) {
    if (n.path.empty()) continue;
    const auto depth = static_cast<std::size_t>(std::count(n.path.begin(), n.path.end(), ' '));
    out += fmt::format("{}- [`keelctl {}`](#{}): {}\n", std::string(depth * 2, ' '), n.path,
                       "keelctl-" + [&] {
                         std::string anchor = n.path;
                         std::replace(anchor.begin(), anchor.end(), ' ', '-');
                         return anchor;
                       }(),
                       n.app->get_description());
  }
  for (const auto& n : nodes) {
    const std::string name = n.path.empty() ? "keelctl" : "keelctl " + n.path;
    std::string help = n.app->get_formatter()->make_help(n.app, name, CLI::AppFormatMode::Normal);
    while (!help.empty() && help.back() == '\n') help.pop_back();
    out += fmt::format("\n## {}\n\n```text\n{}\n```\n", name, help);
  }
  return out;
}

}  // namespace keel::keelctl
