"""`python -m compute …`: build the demo assets and run studies into a DuckDB store."""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from pathlib import Path

from compute.config import ANSWERERS, HEAD_AGGREGATIONS, MAP_QUERIES, STUDIES, AnswerConfig, DecodeConfig, MapConfig, RunConfig, VariantConfig
from compute.data.limits import ImageLimits
from compute.model.loading import DTYPE_CHOICES
from compute.data.questions import DEFAULT_INSTRUCTION
from compute.demo.synth.config import SynthConfig
from compute.data.validate import INT32_MAX

EXIT_USAGE = 2
EXIT_NOTHING_ANSWERED = 1
EXIT_INTERNAL = 3  # an unexpected error: a bug to report
MAX_BATCH = 4096


def _bounded_int(low: int, high: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be from {low} to {high}, got {value}")
        return value
    return parse


positive_int = _bounded_int(1, INT32_MAX)
seed_int = _bounded_int(0, INT32_MAX)


def _add_model_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--model", required=True, metavar="M",
                   help="hub id (e.g. google/medgemma-4b-it) or a local model folder (e.g. models/demo)")
    g.add_argument("--device", default=None,
                   help="torch device such as cuda, cuda:1 or cpu (default: cuda when available, else cpu)")
    g.add_argument("--dtype", default=None, choices=DTYPE_CHOICES,
                   help="weight and activation dtype (default: bf16 on CUDA, fp32 on CPU)")
    g.add_argument("--trust-remote-code", action="store_true",
                   help="allow model code from the checkpoint to run (off by default; Gemma-3 does not need it)")


def _add_prompt_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("prompt")
    g.add_argument("--instruction", default=DEFAULT_INSTRUCTION,
                   help=f"text appended to every question in the user turn (default: {DEFAULT_INSTRUCTION!r})")
    g.add_argument("--system-prompt", default=None,
                   help="optional system prompt; Gemma-3's template folds it into the user turn")
    g.add_argument("--max-new-tokens", type=positive_int, default=DecodeConfig.max_new_tokens,
                   help=f"greedy reply length cap (default: {DecodeConfig.max_new_tokens})")


def _add_map_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("attention maps", "stored with their metrics for every prediction")
    g.add_argument("--no-maps", action="store_true", help="store answers only, no attention maps")
    g.add_argument("--layers", default=MapConfig.layers,
                   help="decoder layers to read attention from: '2,7,12,17', 'all', 'last:4' or 'full' "
                        f"(the full-attention layers) (default: {MapConfig.layers})")
    g.add_argument("--query", default=MapConfig.query, choices=MAP_QUERIES,
                   help="attention rows: the answer position (the last prompt token, which predicts yes/no), "
                        f"the question's tokens, or the generated answer's tokens (default: {MapConfig.query})")
    g.add_argument("--heads", default=MapConfig.heads, choices=HEAD_AGGREGATIONS,
                   help=f"how attention heads are combined (default: {MapConfig.heads})")
    g.add_argument("--strip-border", type=_bounded_int(0, 1000), default=0, metavar="RINGS",
                   help="zero this many outer token rings before renormalising the stored map (default: 0)")
    g.add_argument("--gradcam", action="store_true",
                   help="also store Grad-CAM on the vision tower's last layer (one backward pass per batch)")
    g.add_argument("--deletion", action="store_true",
                   help="also run the deletion test per map: blur the top 10%% of cells vs random cells "
                        f"({MapConfig.deletion_random} more forward passes per prediction)")


def _add_demo_model_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="models/demo", help="model folder or hub id (default: models/demo)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m compute", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser(
        "run", help="run the baseline or phrasing study over a manifest into a DuckDB file",
        description="Ask every manifest question once; store the reply, the extracted answer, P(yes), "
                    "correctness and timing. Rerunning the same --run resumes where it stopped.")
    _add_model_options(run)
    _add_prompt_options(run)
    _add_map_options(run)
    g = run.add_argument_group("study")
    g.add_argument("--study", choices=STUDIES, default="baseline",
                   help="baseline: every question once; phrasing: every question plus --variants "
                        "meaning-preserving rewrites of it (compute.variants), on the same image (default: baseline)")
    g.add_argument("--variants", type=positive_int, default=VariantConfig.n,
                   help=f"rewrites per question in the phrasing study (default: {VariantConfig.n})")
    g.add_argument("--variant-seed", type=seed_int, default=VariantConfig.seed,
                   help="seed of the rewrite choice (default: 0)")
    g.add_argument("--negation-probe", action="store_true",
                   help="phrasing study: add one opposite question per group, its expected answer inverted")
    g.add_argument("--answerer", choices=ANSWERERS, default=AnswerConfig.strategy,
                   help="how questions are answered (the answers are the same): prefix-shared runs each image's "
                        "prompt prefix once and all its questions against it; generate runs one generate call per "
                        "batch; auto: prefix-shared unless --map-query needs the generated reply (default: auto)")
    g.add_argument("--full-replies", action="store_true",
                   help="prefix-shared answerer: generate every reply in full; by default it reads P(yes) and the "
                        "answer from the first token and generates text only where that token is not yes or no")
    g = run.add_argument_group("data and output")
    g.add_argument("--manifest", required=True, type=Path,
                   help="JSONL or CSV with columns image, question, answer (yes/no), condition; optional "
                        "image_id, group_id, variant_index, strategy, location")
    g.add_argument("--image-root", type=Path, default=None,
                   help="folder that relative image paths start from (default: the manifest's folder)")
    g.add_argument("--allow-outside-root", action="store_true",
                   help="allow manifest image paths outside the image root (absolute paths, '..', links out); "
                        "off by default so a manifest cannot point the run at arbitrary files")
    g.add_argument("--db", required=True, type=Path, help="DuckDB file to write (created if missing)")
    g.add_argument("--run", "--run-name", required=True, dest="run_name",
                   help="run name; reusing a name resumes that run (its configuration must match)")
    g.add_argument("--dataset", default=None, help="dataset label (default: the manifest's folder name)")
    g.add_argument("--limit", type=positive_int, default=None, metavar="N", help="only the first N manifest rows")
    g.add_argument("--batch-size", type=_bounded_int(1, MAX_BATCH), default=AnswerConfig.batch_size,
                   help=f"questions per forward pass and per write, at most {MAX_BATCH} (default: {AnswerConfig.batch_size})")
    g.add_argument("--seed", type=seed_int, default=0, help="random seed recorded with the run (default: 0)")
    g.add_argument("--max-image-pixels", type=_bounded_int(1, 1 << 40), default=ImageLimits.max_pixels, metavar="N",
                   help="refuse (as a failed item) any image whose header declares more pixels than this, before "
                        f"decoding it (default: {ImageLimits.max_pixels:,})")
    g.add_argument("--max-image-bytes", type=_bounded_int(1, 1 << 40), default=ImageLimits.max_file_bytes, metavar="N",
                   help="refuse (as a failed item) any image file larger than this many bytes; each file is read "
                        f"into memory once, hashed and decoded (default: {ImageLimits.max_file_bytes:,})")
    g.add_argument("--max-failure-share", type=float, default=RunConfig.max_failure_share, metavar="SHARE",
                   help="stop the run once more than this share of the items tried (at least 20) failed; the "
                        f"results so far are kept (default: {RunConfig.max_failure_share})")
    g.add_argument("--quiet", action="store_true", help="no progress bar")

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
        "import-results", help="import per-variant results written elsewhere into a run",
        description="Reads CSV or JSONL with the columns study_id, baseline_question, ground_truth, variant_index "
                    "(0 = baseline), strategy (free text), question, generated_text, extracted_answer, is_correct. "
                    "Strategy labels are mapped to categories (the raw label is kept). Importing the same file "
                    "into the same run again replaces its rows; a bad row is stored as failed, with its reason.")
    imp.add_argument("file", type=Path, help="the results file (.csv, .tsv or .jsonl)")
    imp.add_argument("--db", required=True, type=Path, help="DuckDB file to write (created if missing)")
    imp.add_argument("--run", required=True, dest="run_name", help="run name for the imported results")
    imp.add_argument("--dataset", default=None, help="dataset label (default: the file's name without extension)")
    imp.add_argument("--model", default="imported", help="model that produced the results, for the record "
                                                         "(default: imported)")

    rep = sub.add_parser("report", help="phrasing-sensitivity report of a run (JSON or Markdown)",
                         description="Group consistency, flip rates, accuracy by strategy and category with 95% "
                                     "Wilson intervals, exact McNemar tests of each category against the baseline "
                                     "(Holm-adjusted) and the most sensitive groups.")
    rep.add_argument("--db", required=True, type=Path, help="DuckDB file to read")
    rep.add_argument("--run", required=True, dest="run_name", help="run to report on")
    rep.add_argument("--format", choices=("json", "md"), default="md", help="output format (default: md)")
    rep.add_argument("--out", type=Path, default=None, help="write here instead of standard output")

    bench = sub.add_parser("bench", help="the phrasing workload through the straightforward path and the engine",
                           description="Times the same workload (synthetic images x rewrites, answer-position "
                                       "attention from every layer) through the original study's protocol (one "
                                       "generate and one eager output_attentions forward per variant) and through "
                                       "the prefix-sharing engine, in one run; prints both rates and their ratio.")
    _add_demo_model_option(bench)
    bench.add_argument("--images", type=positive_int, default=20, help="images (default: 20)")
    bench.add_argument("--variants", type=positive_int, default=10, help="rewrites per question (default: 10)")

    gpu = sub.add_parser("gpu-bench", help="the 600-variant workload at MedGemma 4B's shapes (random weights)",
                         description="Builds a random-weight model with MedGemma 4B's exact configuration on the "
                                     "device (bf16 on CUDA; no download), runs 63 images x ~9.5 variants through the "
                                     "engine with maps from 4 layers, and the original protocol on a small subset; "
                                     "prints variants/s, seconds and peak GPU memory, and writes them as JSON.")
    gpu.add_argument("--device", default="cuda", help="torch device (default: cuda)")
    gpu.add_argument("--tiny", action="store_true", help="toy sizes with the same code path, to check it runs")
    gpu.add_argument("--images", type=positive_int, default=63, help="images (default: 63)")
    gpu.add_argument("--json", type=Path, default=None, help="also write the figures here as JSON")
    gpu.add_argument("--profile", type=Path, default=None, metavar="DIR",
                     help="also profile one pass of the engine (8 images) and write operators.txt and python.txt here")

    merge = sub.add_parser("merge", help="merge the part stores of a multi-process run into its store",
                           description="A run launched on several processes (accelerate launch or torchrun) writes "
                                       "one part store per rank next to --db and merges them when all ranks finish. "
                                       "If a rank failed or was stopped, rerun it, then merge here.")
    merge.add_argument("--db", required=True, type=Path, help="the run's --db")
    merge.add_argument("--run", required=True, dest="run_name", help="the run name")
    merge.add_argument("--world", required=True, type=positive_int, help="how many processes the run had")

    faith = sub.add_parser("demo-faithfulness", help="are a model's maps faithful on synthetic X-rays?",
                           description="Per condition, on synthetic images showing the finding: the deletion test "
                                       "of attention and Grad-CAM maps (their top 10% of cells blurred vs random "
                                       "cells), the pointing game, and the correlation with a weight-randomised "
                                       "model's attention map.")
    _add_demo_model_option(faith)
    faith.add_argument("--n", type=positive_int, default=6, help="images per condition (default: 6)")
    faith.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = {"run": _run, "synth": _synth, "demo-model": _demo_model, "demo-eval": _demo_eval,
               "demo-faithfulness": _demo_faithfulness, "import-results": _import_results,
               "report": _report, "bench": _bench, "gpu-bench": _gpu_bench,
               "merge": _merge}[args.command]
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
        config = _run_config(args)
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
        print(f"\ninterrupted; rerun the same command to resume run {args.run_name!r}", file=sys.stderr)
        return 130
    print(summary)
    if summary.failed and not summary.done and not summary.skipped:
        print("error: no item was answered; see the reasons above", file=sys.stderr)
        return EXIT_NOTHING_ANSWERED
    return 0


def _run_config(args: argparse.Namespace) -> RunConfig:
    from compute.config import ModelSpec, PromptConfig
    return RunConfig(
        run_name=args.run_name, manifest=args.manifest, db=args.db,
        model=ModelSpec(args.model, args.device, args.dtype, args.trust_remote_code),
        prompt=PromptConfig(args.instruction, args.system_prompt),
        decode=DecodeConfig(args.max_new_tokens), dataset=args.dataset, image_root=args.image_root,
        maps=MapConfig(enabled=not args.no_maps, layers=args.layers, query=args.query, heads=args.heads,
                       strip_border=args.strip_border, gradcam=args.gradcam, deletion=args.deletion),
        study=args.study, variants=VariantConfig(args.variants, args.variant_seed, args.negation_probe),
        answering=AnswerConfig(args.answerer, args.batch_size, args.full_replies), max_failure_share=args.max_failure_share,
        allow_outside_root=args.allow_outside_root, image_limits=ImageLimits(args.max_image_pixels, args.max_image_bytes),
        limit=args.limit, seed=args.seed,
    )


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
    from compute.demo.model.faithfulness_report import faithfulness_report, table

    session = _load_or_explain(args.model)
    if session is None:
        return EXIT_USAGE
    print(table(faithfulness_report(session, args.n, progress=not args.quiet)))
    return 0


def _import_results(args: argparse.Namespace) -> int:
    from store import RunConfigMismatch, StoreError

    from compute.studies.import_results import ImportError_, import_results
    try:
        summary = import_results(args.file, args.db, args.run_name, dataset=args.dataset, model_id=args.model,
                                 log=lambda m: print(m, file=sys.stderr))
    except (ImportError_, RunConfigMismatch, StoreError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(summary)
    return 0 if summary.imported else EXIT_NOTHING_ANSWERED


def _report(args: argparse.Namespace) -> int:
    import json

    from store import StoreError

    from compute.reports.report import ReportError, phrasing_report, to_markdown
    try:
        report = phrasing_report(args.db, args.run_name)
    except (ReportError, StoreError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    text = json.dumps(report, indent=1) + "\n" if args.format == "json" else to_markdown(report)
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
        result = run_bench(args.model, args.images, args.variants)
    except ModelNotAvailableError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(result.table())
    return 0


def _gpu_bench(args: argparse.Namespace) -> int:
    import json
    from dataclasses import asdict

    from compute.benchmarks.gpu_bench import run_gpu_bench, save

    result = run_gpu_bench(args.device, args.tiny, args.images, profile=args.profile)
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
