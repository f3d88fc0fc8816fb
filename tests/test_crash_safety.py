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

from compute.cli import main
from compute.synth import SynthConfig, generate_dataset
from store.check import check

ROOT = Path(__file__).resolve().parents[1]


def _contents(db):
    con = duckdb.connect(str(db), read_only=True)
    try:
        predictions = con.execute("SELECT item_id, status, answer, p_yes FROM predictions ORDER BY item_id").fetchall()
        maps = con.execute("SELECT item_id, layer, grid FROM attention_maps ORDER BY item_id, layer").fetchall()
        status = con.execute("SELECT status FROM runs").fetchall()
    finally:
        con.close()
    return predictions, maps, status


def test_sigkill_at_random_points_then_resume(tmp_path):
    manifest = generate_dataset(SynthConfig(n=12, seed=5, size=128, dicom_fraction=0.25), tmp_path / "synth",
                                progress=False)
    args = ["run", "--model", "models/demo", "--manifest", str(manifest), "--run", "crash", "--batch-size", "1",
            "--quiet"]
    assert main([*args, "--db", str(tmp_path / "clean.duckdb")]) == 0
    db = tmp_path / "killed.duckdb"
    rng = np.random.default_rng(0)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    kills = 0
    saw_dead_run = False
    for _ in range(8):
        process = subprocess.Popen([sys.executable, "-m", "compute", *args, "--db", str(db)], cwd=ROOT, env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(float(rng.uniform(2.5, 6.0)))
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait()
            kills += 1
            if db.exists():
                saw_dead_run |= any("marked running but its process" in p for p in check(db))
        if kills >= 5:
            break
    assert kills >= 5, "the run finished before it could be killed five times"
    assert saw_dead_run, "the store check should report a run left 'running' by a killed process"
    assert main([*args, "--db", str(db)]) == 0  # the final resume
    clean, killed = _contents(tmp_path / "clean.duckdb"), _contents(db)
    assert [(i, s, a) for i, s, a, _ in killed[0]] == [(i, s, a) for i, s, a, _ in clean[0]]  # each item once
    assert len({i for i, *_ in killed[0]}) == len(killed[0]) == 24
    np.testing.assert_allclose([p for *_, p in killed[0]], [p for *_, p in clean[0]], atol=1e-6)
    assert [(i, layer) for i, layer, _ in killed[1]] == [(i, layer) for i, layer, _ in clean[1]]
    np.testing.assert_allclose(np.array([g for *_, g in killed[1]]), np.array([g for *_, g in clean[1]]), atol=1e-6)
    assert killed[2] == [("completed",)]
    assert check(db) == []
