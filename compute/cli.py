"""`python -m compute …`: build the demo assets and run studies into a DuckDB store."""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from pathlib import Path

from compute.cli_compare import add_compare_parser, run_compare
from compute.cli_dataset import add_dataset_parser, run_dataset
from compute.cli_options import add_options, bounded_int, build
from compute.config import (FAITHFULNESS_METHODS, AnswerConfig, DecodeConfig, MapConfig, ModelSpec, PromptConfig,
                            RunConfig, VariantConfig)
from compute.data.limits import ImageLimits
from compute.data.validate import INT32_MAX
from compute.demo.synth.config import SynthConfig
from compute.demo.tiny import SUMMARIES as TINY_SUMMARIES
from compute.demo.tiny import TINY_FAMILIES

EXIT_USAGE = 2
EXIT_NOTHING_ANSWERED = 1
EXIT_INTERNAL = 3  # an unexpected error: a bug to report

positive_int = bounded_int(1, INT32_MAX)

RUN_OPTION_GROUPS = (  # (dataclass, title, description): the run command's option groups in --help order
    (ModelSpec, "model", None),
    (PromptConfig, "prompt", None),
    (DecodeConfig, "decoding", None),
    (MapConfig, "attention maps", "stored with their metrics for every prediction"),
    (VariantConfig, "phrasing study", None),
    (AnswerConfig, "answering", None),
    (ImageLimits, "image limits", "checked from each file's header before decoding it"),
)


def _add_demo_model_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="models/demo", help="model folder or hub id (default: models/demo)")


IMPORT_DESCRIPTION = """\
Reads a per-row results table (CSV, TSV or JSONL): a baseline table (one answer per
question) or a phrasing table (baseline questions with their rewrites). --map names the
file's column for each key; a key left out uses the column of its default name (the
original study's shape) when the file has one, else it is derived where it can be.

  key                default column     holds
  image_id           study_id           image or study id (optional)
  question           question           the question asked (required)
  ground_truth       ground_truth       yes or no (also y/n, true/false, 1/0; required)
  reply              generated_text     the reply text (the answer is extracted from it)
  answer             extracted_answer   yes, no or uncertain (else extracted from reply)
  correct            is_correct         true or false (else answer == ground truth;
                                        uncertain is never correct)
  condition          condition          condition or short term ("effusion"); else parsed
                                        from the baseline question or the question
  baseline_question  baseline_question  the baseline question of the row's group
  variant_index      variant_index      0 = the baseline; with baseline_question, a
                                        phrasing import, without both a baseline import
  strategy           strategy           the rewrite strategy (free text, categorised)

Example, another tool's baseline table with columns ImagePath, q, gt, model_output:
  python -m compute import-results results.csv --db data/s.duckdb --run other-tool \\
      --map image_id=ImagePath,question=q,ground_truth=gt,reply=model_output

A phrasing import's group is one image id with one baseline question (the baseline
question alone without an image id). Importing the same file into the same run again
replaces its rows; a bad row (a ground truth that is not yes or no, a correctness that
contradicts the answers) is stored as failed, with its row number and reason."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m compute", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser(
        "run", help="run the baseline or phrasing study over a manifest into a DuckDB file",
        description="Ask every manifest question once; store the reply, the extracted answer, P(yes), "
                    "correctness and timing. Rerunning the same --run resumes where it stopped.")
    for cls, title, description in RUN_OPTION_GROUPS:
        add_options(run, cls, title, description)
    add_options(run, RunConfig, "run, data and output").add_argument("--quiet", action="store_true",
                                                                      help="no progress bar")

    synth = sub.add_parser("synth", help="write synthetic chest X-rays, lesion masks and a question manifest",
                           description="Frontal radiograph-like images with findings for the nine study "
                                       "conditions; some images are written as DICOM.")
    synth.add_argument("--n", type=positive_int, default=SynthConfig.n, help=f"number of images (default: {SynthConfig.n})")
    synth.add_argument("--seed", type=int, default=0, help="random seed; same seed, same files (default: 0)")
    synth.add_argument("--size", type=positive_int, default=SynthConfig.size,
                       help=f"image side in pixels, at least 64 (default: {SynthConfig.size})")
    synth.add_argument("--out", type=Path, required=True, help="output folder (manifest.jsonl is written there)")
    synth.add_argument("--quiet", action="store_true", help="no progress bar")

    demo = sub.add_parser("demo-model", help="build the tiny Gemma-3 demo model and its processor",
                          description="A tiny Gemma3ForConditionalGeneration with the project's own tokenizer, "
                                      "saved with save_pretrained so that it loads like MedGemma.")
    demo.add_argument("--out", type=Path, default=Path("models/demo"), help="output folder (default: models/demo)")
    demo.add_argument("--seed", type=int, default=0, help="weight initialisation and training seed (default: 0)")
    demo.add_argument("--train", action="store_true",
                      help="then train it on synthetic X-rays (tens of minutes on a CPU; the schedule is "
                           "compute.demo.model.train.TrainConfig), evaluate it on held-out images, and write the "
                           "training curve, the evaluation and a model card quoting both into the folder")
    demo.add_argument("--quiet", action="store_true", help="no progress bars")

    evaluate = sub.add_parser("demo-eval", help="held-out accuracy and attention of a model on synthetic X-rays",
                              description="Renders held-out synthetic images, asks each one 'yes' and one 'no' "
                                          "question in the training phrasings, and prints accuracy per condition, "
                                          "the share of well-formed replies, and how much answer-position "
                                          "attention falls inside the lesion relative to its share of the body.")
    _add_demo_model_option(evaluate)
    evaluate.add_argument("--n", type=positive_int, default=300, help="held-out images (default: 300)")
    evaluate.add_argument("--seed", type=int, default=None, help="held-out seed (default: the fixed one)")
    evaluate.add_argument("--json", type=Path, default=None, help="also write the report as JSON here")
    evaluate.add_argument("--update-card", action="store_true",
                          help="rewrite the model folder's evaluation.json and model card from this evaluation "
                               "(a trained folder with training_log.json; the default 300 images and seed only)")
    evaluate.add_argument("--quiet", action="store_true", help="no progress bar")
    imp = sub.add_parser(
        "import-results", help="import per-row results (baseline or phrasing) written elsewhere into a run",
        formatter_class=argparse.RawDescriptionHelpFormatter, description=IMPORT_DESCRIPTION)
    imp.add_argument("file", type=Path, help="the results file (.csv, .tsv or .jsonl)")
    imp.add_argument("--db", required=True, type=Path, help="DuckDB file to write (created if missing)")
    imp.add_argument("--run", required=True, dest="run_name", help="run name for the imported results")
    imp.add_argument("--dataset", default=None, help="dataset label (default: the file's name without extension)")
    imp.add_argument("--model", default="imported", help="model that produced the results, for the record "
                                                         "(default: imported)")
    imp.add_argument("--map", default=None, metavar="KEY=COLUMN,...",
                     help="the file's column for each key (see the table above), e.g. "
                          "image_id=ImagePath,question=q,ground_truth=gt,reply=model_output "
                          "(default: the original study's column names)")

    rep = sub.add_parser("report", help="accuracy report of any run, with the phrasing figures of a phrasing run",
                         description="Every run (baseline, phrasing, imported): accuracy and n overall and per "
                                     "condition, with 95% Wilson intervals. A run with variant groups adds group "
                                     "consistency, flip rates, accuracy by strategy and category, exact McNemar "
                                     "tests of each category against the baseline (Holm-adjusted), the most "
                                     "sensitive groups and, where maps were compared, the attention change. Every run "
                                     "with P(yes) adds its calibration: ECE, Brier score and AUROC with a bootstrap "
                                     "interval, overall and per condition.")
    rep.add_argument("--db", required=True, type=Path, help="DuckDB file to read")
    rep.add_argument("--run", required=True, dest="run_name", help="run to report on")
    rep.add_argument("--format", choices=("md", "json", "html"), default="md",
                     help="md (default), json, or html: one self-contained page with the tables and figures "
                          "(accuracy by condition, calibration and ROC, phrasing, attention change) to share or "
                          "print")
    rep.add_argument("--out", type=Path, default=None, help="write here instead of standard output")

    bench = sub.add_parser("bench", help="the phrasing workload through the straightforward path and the engine",
                           description="Times the same workload (synthetic images x rewrites, answer-position "
                                       "attention from every layer) through the original study's protocol (one "
                                       "generate and one eager output_attentions forward per variant) and through "
                                       "the prefix-sharing engine, in one run; prints both rates and their ratio.")
    _add_demo_model_option(bench)
    bench.add_argument("--images", type=positive_int, default=None,
                       help="images (default: 20; with --end-to-end 30, two questions each)")
    bench.add_argument("--variants", type=positive_int, default=10, help="rewrites per question (default: 10)")
    bench.add_argument("--end-to-end", action="store_true",
                       help="instead: the engine alone against the whole `run --study phrasing` into a fresh DuckDB "
                            "(image reading, maps, metrics, store writes and the attention-change study included) "
                            "on a synthetic dataset as `make demo` writes it; prints both rates and their ratio")
    bench.add_argument("--repeat", type=positive_int, default=3,
                       help="--end-to-end: timed rounds, the median reported (default: 3)")

    gpu = sub.add_parser("gpu-bench", help="the 600-variant workload at MedGemma 4B's (or Qwen2.5-VL 7B's) shapes",
                         description="Builds a random-weight model with MedGemma 4B's (--family qwen2_5_vl: "
                                     "Qwen2.5-VL 7B's) exact configuration on the "
                                     "device (bf16 on CUDA; no download), runs 63 images x ~9.5 variants through the "
                                     "engine with maps from 4 layers, the original protocol on a small subset, and the "
                                     "whole phrasing study into a fresh DuckDB on 63 synthetic images (~630 variants) "
                                     "against the engine alone; prints variants/s, seconds and peak GPU memory, and "
                                     "writes them as JSON.")
    gpu.add_argument("--device", default="cuda", help="torch device (default: cuda)")
    gpu.add_argument("--tiny", action="store_true", help="toy sizes with the same code path, to check it runs")
    gpu.add_argument("--images", type=positive_int, default=63, help="images (default: 63)")
    gpu.add_argument("--json", type=Path, default=None, help="also write the figures here as JSON")
    gpu.add_argument("--profile", type=Path, default=None, metavar="DIR",
                     help="also profile one pass of the engine (8 images) and write operators.txt and python.txt here")
    gpu.add_argument("--family", choices=("gemma3", "qwen2_5_vl"), default="gemma3",
                     help="whose shapes: gemma3 (MedGemma 4B, the default) or qwen2_5_vl (Qwen2.5-VL 7B)")
    gpu.add_argument("--no-study", action="store_true",
                     help="skip the end-to-end study into DuckDB (the engine figures only)")

    tiny = sub.add_parser(
        "tiny-model", help="build a tiny random-weight checkpoint of a model family (for tests; no download)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Write a tiny random-weight checkpoint of one model family, built from its transformers "
                    "config classes with the project's tokenizer and the family's processor, saved with "
                    "save_pretrained. `compute run --model DIR` takes it like any checkpoint; its answers "
                    "mean nothing.\n\nfamilies:\n"
                    + "\n".join(f"  {name:<12} {text}" for name, text in TINY_SUMMARIES.items()))
    tiny.add_argument("--family", required=True, choices=TINY_FAMILIES, metavar="NAME",
                      help=f"one of: {', '.join(TINY_FAMILIES)}")
    tiny.add_argument("--out", type=Path, required=True, help="folder to write the checkpoint to")
    tiny.add_argument("--seed", type=int, default=0, help="seed of the random weights (default 0)")

    merge = sub.add_parser("merge", help="merge the part stores of a multi-process run into its store",
                           description="A run launched on several processes (accelerate launch or torchrun) writes "
                                       "one part store per rank next to --db and merges them when all ranks finish. "
                                       "If a rank failed or was stopped, rerun it, then merge here.")
    merge.add_argument("--db", required=True, type=Path, help="the run's --db")
    merge.add_argument("--run", required=True, dest="run_name", help="the run name")
    merge.add_argument("--world", required=True, type=positive_int, help="how many processes the run had")

    faith = sub.add_parser("demo-faithfulness", help="are a model's maps faithful on synthetic X-rays?",
                           description="Per map method and condition, on synthetic images showing the finding: "
                                       "the deletion test (the map's top 10% of cells blurred vs random cells), the "
                                       "pointing game and the in-lesion mass against the lesion masks, the "
                                       "correlation with a weight-randomised model's map, and the cost in passes "
                                       "and seconds per item.")
    _add_demo_model_option(faith)
    faith.add_argument("--n", type=positive_int, default=6, help="images per condition (default: 6)")
    faith.add_argument("--methods", default=",".join(FAITHFULNESS_METHODS), metavar="LIST",
                       help="map methods to compare, comma-separated (default: all: %(default)s)")
    faith.add_argument("--json", type=Path, default=None,
                       help="also write the table as JSON (the Methods page reads benchmarks/faithfulness-demo.json)")
    faith.add_argument("--quiet", action="store_true", help="no progress bar")
    add_dataset_parser(sub)
    add_compare_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = {"run": _run, "synth": _synth, "demo-model": _demo_model, "demo-eval": _demo_eval,
               "demo-faithfulness": _demo_faithfulness, "import-results": _import_results,
               "report": _report, "bench": _bench, "gpu-bench": _gpu_bench,
               "merge": _merge, "dataset": run_dataset, "tiny-model": _tiny_model,
               "compare": run_compare}[args.command]
    try:
        return handler(args)
    except Exception as exc:  # noqa: BLE001 - the last resort: one line for the user, the trace on request
        if os.environ.get("MGV_TRACEBACK"):
            traceback.print_exc()
        first = str(exc).splitlines()[0][:300] if str(exc) else ""
        print(f"error: unexpected {type(exc).__name__}: {first}\nThis is a bug; rerun with MGV_TRACEBACK=1 "
              "for the traceback and report it.", file=sys.stderr)
        return EXIT_INTERNAL


def _run(args: argparse.Namespace) -> int:
    from store import RunConfigMismatch, StoreError

    from compute.maps import LayerSpecError
    from compute.model.loading import ModelNotAvailableError
    from compute.data.manifest import ManifestError
    from compute.studies import run_study
    from compute.studies import OptionError, TooManyFailuresError

    try:
        config = build(RunConfig, args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.quiet:
        from transformers.utils import logging as transformers_logging
        transformers_logging.disable_progress_bar()
    try:
        summary = run_study(config, progress=not args.quiet, log=lambda m: print(m, file=sys.stderr))
    except (ModelNotAvailableError, ManifestError, RunConfigMismatch, StoreError, LayerSpecError, OptionError,
            TooManyFailuresError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"\ninterrupted; rerun the same command to resume run {config.run_name!r}", file=sys.stderr)
        return 130
    print(summary)
    if summary.failed and not summary.done and not summary.skipped:
        print("error: no item was answered; see the reasons above", file=sys.stderr)
        return EXIT_NOTHING_ANSWERED
    return 0


def _synth(args: argparse.Namespace) -> int:
    from compute.demo.synth import generate_dataset

    manifest = generate_dataset(SynthConfig(n=args.n, seed=args.seed, size=args.size), args.out,
                                progress=not args.quiet)
    print(f"wrote {manifest}")
    return 0


def _demo_model(args: argparse.Namespace) -> int:
    from compute.demo.model import DemoModelConfig, build_demo_model

    out = build_demo_model(args.out, DemoModelConfig(seed=args.seed))
    if args.train:
        from compute.demo.model.pipeline import train_and_document
        from compute.demo.model.train import TrainConfig

        report = train_and_document(out, TrainConfig(seed=args.seed), progress=not args.quiet)
        print(report.table())
    print(f"wrote {out}")
    return 0


def _tiny_model(args: argparse.Namespace) -> int:
    from compute.demo.tiny import build_tiny

    out = build_tiny(args.family, args.out, args.seed)
    print(f"wrote a tiny random-weight {args.family} checkpoint to {out}")
    return 0


def _load_or_explain(model: str):
    """The session, or None after printing why the model cannot be loaded."""
    from compute.model.loading import ModelNotAvailableError, load_model

    try:
        return load_model(model)
    except ModelNotAvailableError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None


def _demo_eval(args: argparse.Namespace) -> int:
    from compute.demo.model.evaluate import HELD_OUT_SEED, evaluate

    session = _load_or_explain(args.model)
    if session is None:
        return EXIT_USAGE
    if args.update_card and (args.n != 300 or args.seed is not None or not (Path(args.model) / "training_log.json").is_file()):
        print("error: --update-card needs a trained local model folder (with training_log.json) and the default "
              "--n and --seed, the ones the card reports", file=sys.stderr)
        return EXIT_USAGE
    report = evaluate(session, args.n, HELD_OUT_SEED if args.seed is None else args.seed, progress=not args.quiet)
    print(report.table())
    if args.json:
        args.json.write_text(report.to_json())
    if args.update_card:
        from compute.demo.model.pipeline import redocument
        redocument(Path(args.model), report)
        print(f"rewrote {Path(args.model) / 'evaluation.json'} and {Path(args.model) / 'README.md'}")
    return 0


def _demo_faithfulness(args: argparse.Namespace) -> int:
    from compute.demo.model.faithfulness_report import faithfulness_report, save, table

    methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    unknown = [m for m in methods if m not in FAITHFULNESS_METHODS]
    if unknown or not methods:
        print(f"error: --methods: {', '.join(unknown) or 'none given'}: choose from {', '.join(FAITHFULNESS_METHODS)}",
              file=sys.stderr)
        return EXIT_USAGE
    session = _load_or_explain(args.model)
    if session is None:
        return EXIT_USAGE
    rows = faithfulness_report(session, args.n, methods=methods, progress=not args.quiet)
    print(table(rows))
    if args.json:
        save(rows, args.json, args.model)
        print(f"wrote {args.json}")
    return 0


def _import_results(args: argparse.Namespace) -> int:
    from store import RunConfigMismatch, StoreError

    from compute.studies.import_results import ImportError_, import_results
    try:
        summary = import_results(args.file, args.db, args.run_name, dataset=args.dataset, model_id=args.model,
                                 columns=args.map, log=lambda m: print(m, file=sys.stderr))
    except (ImportError_, RunConfigMismatch, StoreError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(summary)
    return 0 if summary.imported else EXIT_NOTHING_ANSWERED


def _report(args: argparse.Namespace) -> int:
    from store import StoreError, queries

    from compute.reports import ReportError
    from compute.reports.study_report import render
    from compute.stored_report import gather
    try:
        text = render(gather(args.db, args.run_name), args.format)
    except (ReportError, StoreError, queries.RunNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.out:
        args.out.write_text(text, encoding="utf-8")
        print(f"wrote {args.out}")
    else:
        sys.stdout.write(text)
    return 0


def _bench(args: argparse.Namespace) -> int:
    from compute.benchmarks.engine_bench import run_bench
    from compute.model.loading import ModelNotAvailableError

    try:
        if args.end_to_end:
            from compute.benchmarks.end_to_end import run_end_to_end
            result = run_end_to_end(args.model, args.images or 30, args.variants, args.repeat)
        else:
            result = run_bench(args.model, args.images or 20, args.variants)
    except ModelNotAvailableError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(result.table())
    return 0


def _gpu_bench(args: argparse.Namespace) -> int:
    import json
    from dataclasses import asdict

    from compute.benchmarks.gpu_bench import run_gpu_bench, save

    result = run_gpu_bench(args.device, args.tiny, args.images, profile=args.profile, family=args.family,
                           study=not args.no_study)
    print(json.dumps(asdict(result), indent=1))
    if args.json:
        save(result, args.json)
    return 0


def _merge(args: argparse.Namespace) -> int:
    from store import StoreError
    from store.merge import merge_parts, part_path

    try:
        merged = merge_parts(args.db, [part_path(args.db, r, args.world) for r in range(args.world)], args.run_name)
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(f"run {args.run_name}: {merged} predictions in {args.db}")
    return 0
