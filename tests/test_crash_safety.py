"""Kill a running study with SIGKILL at random points, resume it each time, and get exactly
what an uninterrupted run stores; the store's own check finds the dead run, then nothing."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import numpy as np
import pytest

from compute.cli import main
from compute.demo.synth import SynthConfig, generate_dataset
from store import connect
from store.check import check
from store.schema import current_version

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.slow, pytest.mark.integration]  # five killed and resumed study runs


def _contents(db):
    con = duckdb.connect(str(db), read_only=True)
    try:
        predictions = con.execute("SELECT item_id, status, answer, p_yes FROM predictions ORDER BY item_id").fetchall()
        maps = con.execute("SELECT item_id, layer, grid FROM attention_maps ORDER BY item_id, layer").fetchall()
        status = con.execute("SELECT status FROM runs").fetchall()
    finally:
        con.close()
    return predictions, maps, status


def _stored(db) -> int:
    if not db.exists():
        return 0
    with connect(db, read_only=True) as con:
        return con.execute("SELECT count(*) FROM predictions").fetchone()[0] if current_version(con) else 0


def test_sigkill_at_random_points_then_resume(tmp_path):
    manifest = generate_dataset(SynthConfig(n=20, seed=5, size=128, dicom_fraction=0.25), tmp_path / "synth",
                                progress=False)
    # One question per transaction (the batched generate at --batch-size 1), so kills land between many of them.
    args = ["run", "--model", "models/demo", "--manifest", str(manifest), "--run", "crash", "--batch-size", "1",
            "--answerer", "generate",
            "--quiet"]
    assert main([*args, "--db", str(tmp_path / "clean.duckdb")]) == 0
    db = tmp_path / "killed.duckdb"
    rng = np.random.default_rng(0)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    saw_dead_run = False
    for _ in range(5):
        if _stored(db) >= 30:
            break  # on a fast machine the kills can run ahead; leave the resume work to do
        # Kill mid-run: once 1-3 more items have landed, after a random extra moment.
        target = _stored(db) + int(rng.integers(1, 4))
        process = subprocess.Popen([sys.executable, "-m", "compute", *args, "--db", str(db)], cwd=ROOT, env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while process.poll() is None and _stored(db) < target and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(float(rng.uniform(0.0, 0.1)))
        assert process.poll() is None, "the run finished before it could be killed"
        process.send_signal(signal.SIGKILL)
        process.wait()
        saw_dead_run |= any("marked running but its process" in p for p in check(db))
    assert 5 <= _stored(db) < 40, "the kills must land mid-run"
    assert saw_dead_run, "the store check should report a run left 'running' by a killed process"
    assert main([*args, "--db", str(db)]) == 0  # the final resume
    clean, killed = _contents(tmp_path / "clean.duckdb"), _contents(db)
    assert [(i, s, a) for i, s, a, _ in killed[0]] == [(i, s, a) for i, s, a, _ in clean[0]]  # each item once
    assert len({i for i, *_ in killed[0]}) == len(killed[0]) == 40
    np.testing.assert_allclose([p for *_, p in killed[0]], [p for *_, p in clean[0]], atol=1e-6)
    assert [(i, layer) for i, layer, _ in killed[1]] == [(i, layer) for i, layer, _ in clean[1]]
    np.testing.assert_allclose(np.array([g for *_, g in killed[1]]), np.array([g for *_, g in clean[1]]), atol=1e-6)
    assert killed[2] == [("completed",)]
    assert check(db) == []
