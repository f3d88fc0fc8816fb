"""`python -m compute bench --end-to-end`: the engine alone against the whole phrasing study
the user runs, on one workload, in one run.

The workload is a synthetic dataset as `make demo` writes it (PNG and DICOM files, lesion
masks, two questions an image) and every question's rewrites. The engine side answers the
study's questions on the decoded images with the study's maps and nothing else. The study
side is `run --study phrasing` into a fresh DuckDB with the same loaded model: manifest,
image reading, prompt checks, maps, their metrics, the store writes and the attention-change
study. The model loads once, outside both timings; both are warmed up first, then timed in
turns, and the median of each is reported.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from compute.answering import Group, make_answerer
from compute.config import MapConfig, ModelSpec, RunConfig, VariantConfig
from compute.data.images import read_image
from compute.data.manifest import ManifestItem, read_manifest
from compute.demo.synth import generate_dataset
from compute.demo.synth.config import SynthConfig
from compute.studies.maps import attention_spec
from compute.studies.phrasing import expand_items


@dataclass(frozen=True)
class EndToEndResult:
    images: int
    variants: int  # questions asked per side (baselines included)
    engine_s: float  # median
    study_s: float  # median
    repeats: int
    layers: str  # the maps' decoder layers (MapConfig.layers)

    @property
    def engine_rate(self) -> float:
        return self.variants / self.engine_s

    @property
    def study_rate(self) -> float:
        return self.variants / self.study_s

    @property
    def ratio(self) -> float:
        return self.study_rate / self.engine_rate

    def table(self) -> str:
        return (f"workload: {self.images} synthetic images, {self.variants} questions (each manifest question and its "
                f"rewrites), attention maps from layers {self.layers!r}; median of {self.repeats}\n"
                f"engine alone (decoded images in, answers and maps out): {self.engine_rate:8.1f} variants/s "
                f"({self.engine_s:.2f} s)\n"
                f"whole run --study phrasing into a fresh DuckDB:          {self.study_rate:8.1f} variants/s "
                f"({self.study_s:.2f} s)\n"
                f"ratio (study / engine): {self.ratio:.2f}")


def study_groups(items: list[ManifestItem]) -> list[Group]:
    """The study's questions as the engine takes them: one group per image file, in order."""
    questions: dict[Path, list[str]] = {}
    for item in items:
        questions.setdefault(item.image_path, []).append(item.question)
    return [Group(read_image(path).image, asked) for path, asked in questions.items()]


def run_end_to_end(model: str, n_images: int = 30, n_variants: int = 10, repeats: int = 3, seed: int = 0,
                   log=print) -> EndToEndResult:
    """Load `model`, write a synthetic dataset as `make demo` does, and compare (study's default maps)."""
    from compute.model.loading import load_model

    session = load_model(model)
    with tempfile.TemporaryDirectory(prefix="mgv-e2e-") as tmp:
        manifest = generate_dataset(SynthConfig(n=n_images, seed=seed), Path(tmp) / "data", progress=False)
        return compare(session, manifest, VariantConfig(n=n_variants, seed=seed), MapConfig(), repeats,
                       Path(tmp), log)


def compare(session, manifest: Path, variants: VariantConfig, maps: MapConfig, repeats: int, folder: Path,
            log=print) -> EndToEndResult:
    """The engine alone and the whole phrasing study on `manifest`'s questions with `session`, timed in
    turns after a warm-up of each; each study run writes a fresh DuckDB in `folder`."""
    from compute.studies.run import run_study

    def config(db: Path, limit: int | None = None) -> RunConfig:
        return RunConfig(run_name="bench", manifest=manifest, db=db, model=ModelSpec(session.model_id),
                         study="phrasing", variants=variants, maps=maps, limit=limit)

    base = config(folder / "unused.duckdb")
    items, _ = expand_items(read_manifest(manifest).items, base.variants)
    groups = study_groups(items)
    engine = make_answerer(session, base.answering, attention_spec(base.maps))
    engine.ask_groups(groups[:2])  # warm-up, both sides
    run_study(config(folder / "warm.duckdb", limit=4), session, progress=False, log=lambda _: None)
    engine_times, study_times = [], []
    for k in range(repeats):
        engine_times.append(_timed(session, lambda: engine.ask_groups(groups)))
        summary = None

        def study():
            nonlocal summary
            summary = run_study(config(folder / f"study-{k}.duckdb"), session, progress=False, log=lambda _: None)

        study_times.append(_timed(session, study))
        if summary.done != len(items):
            raise RuntimeError(f"the study answered {summary.done} of {len(items)} questions: {summary}")
        log(f"round {k + 1}: engine {engine_times[-1]:.2f} s, study {study_times[-1]:.2f} s")
    return EndToEndResult(len(groups), len(items), statistics.median(engine_times), statistics.median(study_times),
                          repeats, maps.layers)


def _timed(session, work) -> float:
    synchronize = torch.cuda.synchronize if session.device.type == "cuda" else (lambda: None)
    synchronize()
    start = time.perf_counter()
    work()
    synchronize()
    return time.perf_counter() - start
