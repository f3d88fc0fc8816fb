"""The `compare` command: two or three runs side by side on the items they share."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

EXIT_OK, EXIT_USAGE = 0, 2

DESCRIPTION = """\
Compare two or three runs of a store (other models, prompts or imported results) on the
items every run answered: the same image (the sha256 of the bytes shown; the image id
when a run, such as an imported one, has none) and the same question text. Overall and
per condition:
  - each run's accuracy with a 95% Wilson interval ('uncertain' counts as wrong);
  - per pair: the paired accuracy difference with an exact McNemar p (Holm-adjusted
    across the pair's conditions), answer agreement and Cohen's kappa, and the Pearson
    correlation of P(yes) where both runs have it;
  - phrasing runs: group consistency, fully consistent groups, groups with changes and
    flip rate, side by side, on the shared groups;
  - where both runs stored maps: JS divergence and Pearson of the two maps of each item,
    resampled onto a common 48x48 image grid (imported runs have no maps).
The JSON output has one object per run and one per pair, and says how each figure is
defined ("definitions")."""


def add_compare_parser(sub) -> None:
    p = sub.add_parser("compare", help="compare 2 or 3 runs on the items they share (accuracy, McNemar, kappa, maps)",
                       formatter_class=argparse.RawDescriptionHelpFormatter, description=DESCRIPTION)
    p.add_argument("--db", required=True, type=Path, help="DuckDB file holding the runs (read only)")
    p.add_argument("--runs", required=True, metavar="A,B[,C]",
                   help="two or three run names separated by commas; pairs are taken in this order, and a pair's "
                        "difference is its first run's accuracy minus its second's")
    p.add_argument("--format", choices=("md", "json"), default="md",
                   help="md: readable tables; json: one object per run and per pair (default: md)")
    p.add_argument("--method", default="attention",
                   help="the map method whose maps are compared: attention, token, gradcam or activation "
                        "(default: attention)")
    p.add_argument("--out", type=Path, default=None, help="write here instead of standard output")


def run_names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def run_compare(args: argparse.Namespace) -> int:
    from store import StoreError, queries

    from compute.reports.compare import CompareError, RunTables, check_names, compare_markdown, compare_report

    names = run_names(args.runs)
    try:
        check_names(names)
    except CompareError as exc:
        print(f"error: --runs: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        for name in names:
            queries.require_run(args.db, name)
        listed = queries.list_runs(args.db).set_index("run_id")
        runs = [RunTables(n, str(listed.loc[n, "study"]), str(listed.loc[n, "model_id"]),
                          queries.compare_rows(args.db, n),
                          queries.summary_maps(args.db, n, args.method)) for n in names]
        report = compare_report(runs, args.method)
    except (CompareError, StoreError, queries.RunNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    text = json.dumps(report, indent=1, allow_nan=False) + "\n" if args.format == "json" else compare_markdown(report)
    if args.out:
        args.out.write_text(text, encoding="utf-8")
        print(f"wrote {args.out}")
    else:
        sys.stdout.write(text)
    return EXIT_OK

