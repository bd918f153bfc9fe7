#!/usr/bin/env python3
"""The table bench/compare.sh prints: HEAD/BASE for every figure of keel_bench and trustd_bench.

Reads <results>/<tool>-<side>-<round>.json (tool keel_bench or trustd_bench, side head or
base, round 1..N), as written by their --json option, one measured round per file.
"""

import argparse
import json
import statistics
import sys
import textwrap
from pathlib import Path

SIDES = ("head", "base")
# compare.sh runs keel_bench with --no-nginx; these are the paths it measures.
KEEL_PATHS = ("direct", "apid")


def load(path):
    """The JSON document at path, or None when the run wrote none (it failed)."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except json.JSONDecodeError as e:
        print(f"compare_report: {path} is not JSON ({e}); that run is left out", file=sys.stderr)
        return None


def figures(tool, doc):
    """(row name, better, value, head_only) for each figure of one run."""
    if tool == "keel_bench":
        # Path-major, so that each path's rows stay together in the table.
        for path in KEEL_PATHS:
            for row in doc["rows"]:
                value = row["paths"].get(path, {}).get("median")
                if value is not None:
                    yield f"{path} {row['label']}", row["better"], value, False
    else:
        for row in doc["rows"]:
            yield row["label"], row["better"], row["value"], row.get("in_process", False)


def collect(results, rounds):
    """Row name -> {"better", "head_only", "head": [per round], "base": [per round]}, in table order."""
    rows = {}
    for tool in ("keel_bench", "trustd_bench"):
        # Rows appear in the order of the first run that has them, HEAD's first.
        for side in SIDES:
            for r in range(1, rounds + 1):
                doc = load(results / f"{tool}-{side}-{r}.json")
                if doc is None:
                    continue
                for name, better, value, head_only in figures(tool, doc):
                    row = rows.setdefault(
                        name,
                        {"better": better, "head_only": head_only,
                         "head": [None] * rounds, "base": [None] * rounds})
                    row[side][r - 1] = value
    return rows


def median(values):
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def number(v):
    """The way keel_bench prints a figure: three significant digits or whole units."""
    if v is None:
        return "-"
    if v >= 100:
        return f"{v:.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def verdict(ratio, better):
    """'1.05x better', '0.93x worse' or '1.00x same' (within 0.5 %), by the metric's direction."""
    if abs(ratio - 1.0) < 0.005:
        return f"{ratio:.2f}x same"
    is_better = ratio > 1.0 if better == "higher" else ratio < 1.0
    return f"{ratio:.2f}x {'better' if is_better else 'worse'}"


def summarize(name, row):
    """The printed cells of one row, and whether every round's pair said worse (or better)."""
    head, base = median(row["head"]), median(row["base"])
    if row["head_only"]:
        return [name, number(head), "n/a", "HEAD only", ""], None
    if head is None or base is None or base <= 0:
        return [name, number(head), number(base), "-", ""], None
    pairs = [h / b for h, b in zip(row["head"], row["base"]) if h is not None and b is not None and b > 0]
    spread = f"{min(pairs):.2f}-{max(pairs):.2f}" if len(pairs) >= 2 else ""
    every = None
    if len(pairs) >= 2:
        worse = [(p < 1.0 if row["better"] == "higher" else p > 1.0) for p in pairs]
        if all(worse):
            every = "worse"
        elif not any(worse) and all(abs(p - 1.0) >= 0.005 for p in pairs):
            every = "better"
    return [name, number(head), number(base), verdict(head / base, row["better"]), spread], every


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", required=True, type=Path, help="compare.sh's run directory")
    parser.add_argument("--rounds", required=True, type=int)
    parser.add_argument("--head", default="HEAD", help="what HEAD is (printed)")
    parser.add_argument("--base", default="BASE", help="what BASE is (printed)")
    args = parser.parse_args()

    rows = collect(args.results, args.rounds)
    if not rows:
        print("no figures: every benchmark run failed (see the logs above)")
        return 1
    header = ["metric", "HEAD", "BASE", "HEAD/BASE", "spread" if args.rounds > 1 else ""]
    table, every_round = [], {"worse": [], "better": []}
    for name, row in rows.items():
        cells, every = summarize(name, row)
        table.append(cells)
        if every:
            every_round[every].append(f"{name} ({cells[3].split()[0]}, rounds {cells[4]})")
    widths = [max(len(r[i]) for r in [header] + table) for i in range(len(header))]

    def line(cells):
        return (f"{cells[0]:<{widths[0]}}  {cells[1]:>{widths[1]}}  {cells[2]:>{widths[2]}}  "
                f"{cells[3]:<{widths[3]}}  {cells[4]}").rstrip()

    print(f"HEAD: {args.head}")
    print(f"BASE: {args.base}")
    print(f"{args.rounds} round(s); HEAD and BASE columns: medians over the rounds")
    print()
    print(line(header))
    print("-" * len(line(header)))
    for cells in table:
        print(line(cells))
    notes = ["HEAD/BASE: HEAD's median over BASE's, better or worse by the metric's direction "
             "(requests/s, handshakes/s, CSRs/s: higher is better; latency, CPU, RSS: lower is better)."]
    if args.rounds > 1:
        notes.append("spread: the lowest and highest HEAD/BASE of the rounds, each round's HEAD run "
                     "against the BASE run next to it; a verdict whose spread includes 1.00 is "
                     "within the noise.")
    if any(cells[3] == "-" for cells in table):
        notes.append("-: that side has no figure for the row (its runs failed or could not set that "
                     "path up; compare.sh printed why after each run).")
    if any(r["head_only"] for r in rows.values()):
        notes.append("HEAD only: trustd_bench signs in its own process with HEAD's libs/pki on both "
                     "sides, so that row does not compare the two commits.")
    if args.rounds > 1:
        # Noise alone puts a row on one given side in every round with probability 1/2^rounds,
        # so among many rows a few land there by chance.
        compared = sum(1 for row in rows.values() if not row["head_only"] and
                       sum(1 for h, b in zip(row["head"], row["base"]) if h is not None and b) >= 2)
        expected = compared / 2 ** args.rounds
        chance = (f"noise alone does this to a row 1 time in {2 ** args.rounds}, so to about "
                  f"{expected:.1f} of these {compared} rows on each side; more rounds make it rarer")
        for kind in ("worse", "better"):
            found = every_round[kind]
            notes.append(f"{kind.capitalize()} in every round ({chance}): "
                         f"{'; '.join(found) if found else 'none'}")
    print()
    for note in notes:
        print(textwrap.fill(note, width=100, subsequent_indent="  "))
    return 0


if __name__ == "__main__":
    sys.exit(main())
