"""Fixtures shared by the test files.

- `demo_session`: the committed demo model (models/demo), loaded once per test session with
  load_model's default arguments. It is shared, so a test must leave it as it found it: a test
  that patches layers, swaps weights for good or needs another dtype, device or attention
  implementation loads a copy of its own.
- `xray_pixels`: four synthetic 128 x 128 chest X-rays as arrays, for tests that lay out a
  dataset's files (tests/dataset_support.py writes them where a format expects its images).
- `tiny_store`: writes a small store straight through store.StoreWriter (runs, questions,
  predictions and, if asked, one attention map per prediction), for tests where a study run
  is not the point.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DEMO_MODEL = ROOT / "models" / "demo"

# The tiny store's items, one per image: q{k} on image i{k}.
TINY_GROUND_TRUTH = ("yes", "no", "no", "yes")
TINY_CONDITIONS = ("edema", "edema", "pneumothorax", "pneumothorax")


@pytest.fixture(scope="session")
def demo_session():
    """The committed demo model as load_model("models/demo") returns it (CPU, fp32, sdpa)."""
    from compute.model.loading import load_model
    return load_model(str(DEMO_MODEL))


@pytest.fixture(scope="session")
def xray_pixels(tmp_path_factory) -> list:
    """Four synthetic chest X-rays (uint8, 128 x 128) for tests that lay out a dataset's files."""
    import numpy as np
    from PIL import Image

    from compute.demo.synth import SynthConfig, generate_dataset
    manifest = generate_dataset(SynthConfig(n=4, seed=21, size=128, dicom_fraction=0.0),
                                tmp_path_factory.mktemp("xrays"), progress=False)
    files = sorted((manifest.parent / "images").glob("*.png"))
    return [np.asarray(Image.open(f).convert("L")) for f in files]


def tiny_map(run_id: str, item_id: str, grid: Sequence[float] | None = None, layer: int = -1):
    """A 16x16 attention MapRecord of the demo model's shape; uniform unless `grid` is given."""
    from store import MapRecord
    grid = list(grid) if grid is not None else [1 / 256] * 256
    return MapRecord(run_id=run_id, item_id=item_id, method="attention", layer=layer, requested_method="attention",
                     fallback_reason=None, layers=[0, 1, 2, 3], heads="mean", query="answer", query_positions=None,
                     term=None, strip_border=0, attn_implementation="sdpa", model_id="models/demo",
                     image_height=128, image_width=128, grid_rows=16, grid_cols=16, grid=grid,
                     attention_entropy=5.545)


def write_tiny_store(db: str | Path, runs: Mapping[str, Sequence[str]], *,
                     ground_truth: Sequence[str] = TINY_GROUND_TRUTH, conditions: Sequence[str] = TINY_CONDITIONS,
                     p_yes: float = 0.7, yes_no_mass: float = 0.9, maps: bool = False,
                     status: str = "completed") -> Path:
    """Write `runs` ({run_id: one answer per item}) into the store at `db`, in that order,
    each run finished with `status`. Item k is question q{k} ("Is there x?") on image i{k}
    (/data/images/i{k}.png) with ground_truth[k] and conditions[k]; a prediction is correct
    when its answer equals the ground truth. With `maps`, each prediction gets a uniform
    attention map (tiny_map). Returns the store's path."""
    from store import ImageRecord, PredictionRecord, QuestionRecord, RunRecord, StoreWriter
    db = Path(db)
    writer = StoreWriter(db)
    for run_id, answers in runs.items():
        if len(answers) > len(ground_truth):
            raise ValueError(f"run {run_id!r}: {len(answers)} answers for {len(ground_truth)} items")
        n = len(answers)
        writer.start_run(RunRecord(run_id=run_id, study="baseline", dataset="synth", model_id="models/demo",
                                   config={"run": run_id}, package_versions={}, instruction="Answer yes or no."))
        writer.write_batch(
            [ImageRecord.of(f"sha{k}", f"/data/images/i{k}.png") for k in range(n)],
            [QuestionRecord(f"q{k}", "synth", f"i{k}", "Is there x?", ground_truth[k], conditions[k]) for k in range(n)],
            [PredictionRecord(run_id, f"q{k}", k + 1, "ok", answer=a, correct=a == ground_truth[k], p_yes=p_yes,
                              yes_no_mass=yes_no_mass) for k, a in enumerate(answers)],
            [tiny_map(run_id, f"q{k}") for k in range(n)] if maps else [])
        writer.finish_run(run_id, status)
    return db


@pytest.fixture(scope="session")
def tiny_store(tmp_path_factory):
    """write_tiny_store, into a fresh temporary folder unless a path is given:
    `db = tiny_store({"r1": ["yes", "no"]})`. Session-scoped, so module fixtures can use it."""
    def write(runs: Mapping[str, Sequence[str]], db: str | Path | None = None, **options) -> Path:
        return write_tiny_store(db or tmp_path_factory.mktemp("tiny") / "tiny.duckdb", runs, **options)
    return write


def _change_counts(db: str | Path, run_id: str) -> dict[str, int]:
    """Per change type, how many variants' answers (and correctness) differ from their group's
    baseline's, counted from the stored predictions, not from the comparisons the study stored."""
    import duckdb
    con = duckdb.connect(str(db), read_only=True)
    try:
        pairs = con.execute("SELECT b.answer, v.answer, b.correct, v.correct FROM prediction_details v"
                            " JOIN prediction_details b ON b.run_id = v.run_id AND b.group_id = v.group_id"
                            " AND b.variant_index = 0 WHERE v.run_id = ? AND v.variant_index > 0 AND v.status = 'ok'",
                            [run_id]).fetchall()
    finally:
        con.close()
    counts = dict.fromkeys(("yes→no", "no→yes", "other", "unchanged", "correct→wrong", "wrong→correct"), 0)
    for base, variant, base_correct, variant_correct in pairs:
        kind = "unchanged" if base == variant else f"{base}→{variant}" if {base, variant} == {"yes", "no"} else "other"
        counts[kind] += 1
        if base_correct != variant_correct:
            counts["correct→wrong" if base_correct else "wrong→correct"] += 1
    return counts


@pytest.fixture(scope="session")
def change_counts():
    """(db, run_id) -> {change type: variants}, counted independently of the study's own code."""
    return _change_counts


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory) -> dict:
    """Every family's tiny random-weight checkpoint (compute tiny-model), built once per test session."""
    from compute.demo.tiny import TINY_FAMILIES, build_tiny
    root = tmp_path_factory.mktemp("tiny-checkpoints")
    return {family: build_tiny(family, root / family) for family in TINY_FAMILIES}


def prompts_for(session, images, questions):
    """The tokenized batch (compute.maps.extract.Prompts) a map method is given, as map_batch builds it."""
    from compute.maps.extract import map_prompts
    conversations = session.conversations(images, questions)
    return map_prompts(session, conversations, session.tokenize(conversations, offsets=True), questions)


@pytest.fixture(scope="session")
def xray():
    """A synthetic chest X-ray showing a pleural effusion (224 px), for the map methods' tests."""
    import numpy as np
    from PIL import Image

    from compute.demo.synth import render_case
    case = render_case(np.random.default_rng(5), 224, ["pleural_effusion"])
    return Image.fromarray((np.clip(case.image, 0, 1) * 255).astype(np.uint8))


@pytest.fixture(scope="session")
def textures():
    """Two random-texture images of different sizes (square and 1:2), for every family's map tests."""
    import numpy as np
    from PIL import Image
    rng = np.random.default_rng(3)
    return [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for h, w in ((64, 64), (60, 120))]


APP = str(ROOT / "dashboard" / "app.py")


def open_page(db: str | Path, monkeypatch, view: str, **params):
    """The dashboard over `db` with these query parameters, switched to `view` (e.g.
    "views/calibration.py") and run, after checking it raised nothing."""
    from streamlit.testing.v1 import AppTest
    monkeypatch.setenv("MGV_DB", str(db))
    at = AppTest.from_file(APP, default_timeout=60)
    for k, v in params.items():
        at.query_params[k] = v
    at.run()
    at.switch_page(view).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def write_imported_run(db: str | Path, run_id: str = "imp") -> Path:
    """A store holding one run imported from another tool's results: one answer, as text, without P(yes)."""
    import json

    from compute.cli import main
    results = Path(db).with_name("imported.jsonl")
    row = {"study_id": "s1", "baseline_question": "Is there edema?", "ground_truth": "yes", "variant_index": 0,
           "question": "Is there edema?", "extracted_answer": "yes"}
    results.write_text(json.dumps(row) + "\n")
    assert main(["import-results", str(results), "--db", str(db), "--run", run_id]) == 0
    return Path(db)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (for a server a test starts)."""
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_process(process) -> None:
    """Terminate a subprocess.Popen a test started, killing it after 10 s."""
    import subprocess
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def phrasing_store(base: Path, run_id: str, variants: int, n: int = 2, seed: int = 6) -> Path:
    """base/phrasing.duckdb holding a real phrasing run of the committed demo model: n images x 2
    questions x (baseline + `variants` rewrites)."""
    from compute.cli import main
    from compute.demo.synth import SynthConfig, generate_dataset
    manifest = generate_dataset(SynthConfig(n=n, seed=seed, size=128, dicom_fraction=0.0), base / "synth",
                                progress=False)
    db = base / "phrasing.duckdb"
    assert main(["run", "--model", "models/demo", "--manifest", str(manifest), "--db", str(db), "--run", run_id,
                 "--study", "phrasing", "--variants", str(variants), "--quiet"]) == 0
    return db
