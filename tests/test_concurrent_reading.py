"""The dashboard's reads while a study writes: neither side fails on DuckDB's file lock (both
use short-lived connections with bounded retries), and new results show on the next read."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from compute.demo.synth import SynthConfig, generate_dataset
from store import queries

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.slow, pytest.mark.integration]  # a `python -m compute run` study while the test reads


def test_reading_every_few_hundred_ms_while_a_study_writes(tmp_path):
    manifest = generate_dataset(SynthConfig(n=10, seed=12, size=128, dicom_fraction=0.0), tmp_path / "synth",
                                progress=False)
    db = tmp_path / "live.duckdb"
    process = subprocess.Popen(
        [sys.executable, "-m", "compute", "run", "--model", "models/demo", "--manifest", str(manifest), "--db", str(db),
         "--run", "live", "--batch-size", "1", "--quiet"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen, reads = [], 0
    deadline = time.monotonic() + 240
    while process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.3)
        if not db.exists() or not queries.has_runs(db):
            continue
        runs = queries.list_runs(db)  # the same calls the pages make
        queries.condition_counts(db, "live")
        queries.mapped_items(db, "live")
        seen.append(int(runs.n_done.iloc[0]))
        reads += 1
    _, err = process.communicate(timeout=60)
    assert process.returncode == 0, err[-2000:]
    assert "lock" not in err.lower()
    assert reads >= 3 and seen == sorted(seen), seen  # reads saw the run grow, never shrink
    assert seen[0] < 20 and queries.list_runs(db).n_done.iloc[0] == 20  # a read after the end shows everything
