"""The `dataset` command: a question manifest from a dataset in one of the known formats.

Each format is a subcommand (`python -m compute dataset chexpert --help`) whose options come
from its adapter's options dataclass, label-policy options included where the format has
label files.
"""

from __future__ import annotations

import argparse
import sys
import typing
from dataclasses import fields, is_dataclass
from pathlib import Path

from compute.cli_options import add_options, build

EXIT_OK, EXIT_NOTHING_WRITTEN, EXIT_USAGE = 0, 1, 2


def add_dataset_parser(sub) -> None:
    from compute.data.datasets import available_formats

    formats = available_formats()
    listing = "\n".join(f"  {f.name:<16} {f.summary}\n  {'':<16} options: {_option_list(f.options)}"
                        for f in formats)
    parser = sub.add_parser(
        "dataset", help="write a question manifest from a dataset you hold (MIMIC-CXR, CheXpert, VQA-RAD, ...)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Write a manifest that every study runs as it is, from the files of a dataset as its "
                    "publisher ships them.\n\nformats:\n" + listing +
                    "\n\n`python -m compute dataset FORMAT --help` lists a format's options.")
    formats_sub = parser.add_subparsers(dest="format", required=True, metavar="FORMAT",
                                        help="the dataset's format (listed above)")
    for fmt in formats:
        p = formats_sub.add_parser(fmt.name, help=fmt.summary, description=f"{fmt.summary}. {fmt.description}")
        p.add_argument("--root", type=Path, required=True, help="the dataset's folder, as downloaded")
        p.add_argument("--out", type=Path, required=True, help="the manifest to write (.jsonl)")
        p.add_argument("--quiet", action="store_true", help="no progress lines, only the summary")
        add_options(p, fmt.options, f"{fmt.name} options")
        hints = typing.get_type_hints(fmt.options)
        for f in fields(fmt.options):
            if "help" not in f.metadata and is_dataclass(hints[f.name]):
                add_options(p, hints[f.name], "label policy" if f.name == "policy" else f.name.replace("_", " "))


def _option_list(cls: type) -> str:
    """The format's own option flags, and "the label policy" where it has one."""
    from compute.cli_options import option_flag

    hints = typing.get_type_hints(cls)
    flags = [option_flag(f) for f in fields(cls) if "help" in f.metadata]
    if any("help" not in f.metadata and is_dataclass(hints[f.name]) for f in fields(cls)):
        flags.append("the label policy (--uncertain, --blank-as-no, --no-finding-as-no, --per-condition, ...)")
    return ", ".join(flags) or "none"


def run_dataset(args: argparse.Namespace) -> int:
    from compute.data.datasets import BuildLog, DatasetError, build_dataset, dataset_format

    fmt = dataset_format(args.format)
    try:
        options = build(fmt.options, args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    log = BuildLog(log=(lambda line: None) if args.quiet else (lambda line: print(line, file=sys.stderr)))
    try:
        result = build_dataset(args.format, args.root, args.out, options, log)
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(result.summary)
    written = result.written
    if written.rows.empty:
        print(f"error: no questions written to {written.manifest}", file=sys.stderr)
        return EXIT_NOTHING_WRITTEN
    root_flag = f" --image-root {written.image_root}" if written.image_root else ""
    print(f"wrote {written.manifest}\nnext: python -m compute run --manifest {written.manifest}{root_flag} "
          "--db results.duckdb --run NAME")
    return EXIT_OK
