"""Where the phrasing study's time goes beyond the engine, and whether it can overlap the model.

On the workload of `python -m compute bench --end-to-end` (30 synthetic images, 660 variants,
maps from every layer, the demo model loaded once), this prints:

1. the engine alone against the whole `run --study phrasing` into a fresh DuckDB, and their ratio;
2. the study's own stages, timed inside that same study by wrapping the functions it calls
   (reading images, body masks, map metrics and rows, Arrow tables, DuckDB transactions, the
   attention-change study, the run's start and end);
3. an overlap test: the study's image reading and body masks alone, the engine alone, and both at
   once on two threads. If the machine had spare cores while the model runs, "both" would take
   about as long as the engine; where the model's own threads already fill the cores, it takes
   the sum, and no background thread or process can hide the study's work.

    .venv/bin/python benchmarks/study_overhead.py
    .venv/bin/python benchmarks/study_overhead.py --images 60 --repeat 5
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

import compute.studies.answer_items as answer_items  # noqa: E402
import compute.studies.kinds as kinds  # noqa: E402
import compute.studies.maps as maps  # noqa: E402
import compute.studies.run as run  # noqa: E402
import store.writer as writer  # noqa: E402
from compute.answering import make_answerer  # noqa: E402
from compute.benchmarks.end_to_end import study_groups  # noqa: E402
from compute.config import MapConfig, ModelSpec, RunConfig, VariantConfig  # noqa: E402
from compute.data.images import read_image  # noqa: E402
from compute.data.manifest import read_manifest  # noqa: E402
from compute.demo.synth import generate_dataset  # noqa: E402
from compute.demo.synth.config import SynthConfig  # noqa: E402
from compute.metrics.regions import BODY_MASK_SIDE, body_mask, reduced  # noqa: E402
from compute.model.loading import load_model  # noqa: E402
from compute.studies.phrasing import expand_items  # noqa: E402

# (owner, attribute, what it is): the study's stages, in the order they run
STAGES = [
    (run, "_items", "manifest and rewrites"),
    (writer.StoreWriter, "__init__", "store schema (fresh file)"),
    (writer.StoreWriter, "start_run", "run start"),
    (answer_items, "_prompt_problems", "prompt checks"),
    (answer_items, "_read", "image reading and hashing"),
    (answer_items, "ask_items", "the engine, inside the study"),
    (maps.BodyCells, "__call__", "body masks"),
    (maps, "_image_metrics", "map metrics (body masks included)"),
    (maps, "_item_rows", "map rows"),
    (writer.StoreWriter, "prepare_batch", "Arrow tables"),
    (writer.StoreWriter, "write_prepared", "DuckDB transactions (background thread)"),
    (kinds, "run_attention_change", "attention-change study"),
    (writer.StoreWriter, "finish_run", "run end and summary tables"),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="models/demo")
    parser.add_argument("--images", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)

    session = load_model(args.model)
    folder = Path(tempfile.mkdtemp(prefix="mgv-overhead-"))
    manifest = generate_dataset(SynthConfig(n=args.images, seed=0), folder / "data", progress=False)

    def config(db: Path, limit: int | None = None) -> RunConfig:
        return RunConfig(run_name="bench", manifest=manifest, db=db, model=ModelSpec(session.model_id),
                         study="phrasing", variants=VariantConfig(n=10, seed=0), maps=MapConfig(), limit=limit)

    items, _ = expand_items(read_manifest(manifest).items, VariantConfig(n=10, seed=0))
    groups = study_groups(items)
    engine = make_answerer(session, config(folder / "x.duckdb").answering, maps.attention_spec(MapConfig()))
    engine.ask_groups(groups[:2])
    run.run_study(config(folder / "warm.duckdb", limit=4), session, progress=False, log=lambda _: None)

    spent: dict[str, float] = defaultdict(float)  # seconds in each stage, all rounds so far
    per_round: dict[str, list[float]] = defaultdict(list)
    engine_s, study_s = [], []
    with _wrapped(spent):
        for k in range(args.repeat):
            engine_s.append(_timed(lambda: engine.ask_groups(groups)))
            before = dict(spent)
            study_s.append(_timed(lambda: run.run_study(config(folder / f"study-{k}.duckdb"), session,
                                                        progress=False, log=lambda _: None)))
            for _, name, _ in STAGES:
                per_round[name].append(spent[name] - before.get(name, 0.0))
    engine_med, study_med = statistics.median(engine_s), statistics.median(study_s)
    print(f"workload: {len(groups)} images, {len(items)} variants; torch threads {torch.get_num_threads()}; "
          f"median of {args.repeat}")
    print(f"engine alone {engine_med:.3f} s, whole study {study_med:.3f} s, ratio {engine_med / study_med:.2f}")
    print("the study's stages (seconds a round; nested stages are also in their parents):")
    for _, name, what in STAGES:
        print(f"  {what:42s} {statistics.median(per_round[name]):.3f}")

    paths = sorted({item.image_path for item in items})

    def study_side_work() -> None:
        for path in paths:
            body_mask(reduced(read_image(path).image, BODY_MASK_SIDE))

    alone, model, both = [], [], []
    for _ in range(args.repeat):
        alone.append(_timed(study_side_work))
        model.append(_timed(lambda: engine.ask_groups(groups)))
        worker = threading.Thread(target=study_side_work)

        def together() -> None:
            worker.start()
            engine.ask_groups(groups)
            worker.join()

        both.append(_timed(together))
    a, m, b = (statistics.median(x) for x in (alone, model, both))
    print(f"overlap test: reading + body masks alone {a:.3f} s, engine alone {m:.3f} s, both at once {b:.3f} s; "
          f"hidden {max(0.0, a + m - b) / a:.0%} of the reading (100%: free cores; 0%: the model fills them)")
    return 0


class _wrapped:
    """Time every STAGES function while the block runs (seconds added to spent[name])."""

    def __init__(self, spent: dict[str, float]):
        self.spent, self.saved = spent, []

    def __enter__(self):
        for owner, name, _ in STAGES:
            original = getattr(owner, name)  # AttributeError: a stage was renamed; update STAGES
            self.saved.append((owner, name, original))
            setattr(owner, name, self._timing(name, original))
        return self

    def _timing(self, name, original):
        spent = self.spent

        @functools.wraps(original)
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                spent[name] += time.perf_counter() - start
        return timed

    def __exit__(self, *exc):
        for owner, name, original in reversed(self.saved):
            setattr(owner, name, original)


def _timed(work) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


if __name__ == "__main__":
    raise SystemExit(main())
