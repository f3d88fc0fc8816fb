"""Determinism and scale-out. The same configuration twice gives bit-identical results; two
processes under a real launcher (torchrun, and accelerate launch with 2 CPU processes; both set
RANK and WORLD_SIZE) give the store one process writes: same items and answers, P(yes) and maps within 1e-6
(float32 rounding of other batch shapes), no duplicates, one completed run."""

import os
import subprocess
import sys
from pathlib import Path

import duckdb
import numpy as np
import pytest

from compute.cli import main
from compute.demo.synth import SynthConfig, generate_dataset

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.integration  # every test runs CLI commands (studies under torchrun, merge)


def _rows(db):
    con = duckdb.connect(str(db), read_only=True)
    try:
        predictions = con.execute("SELECT item_id, answer, p_yes FROM predictions ORDER BY item_id").fetchall()
        maps = con.execute("SELECT item_id, layer, grid FROM attention_maps ORDER BY item_id, layer").fetchall()
        changes = con.execute("SELECT item_id, js_divergence FROM attention_changes ORDER BY item_id").fetchall()
        runs = con.execute("SELECT run_id, status, n_items FROM runs").fetchall()
    finally:
        con.close()
    return predictions, maps, changes, runs


LAUNCHERS = {
    "torchrun": [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29611"],
    # accelerate's own launcher, no config file. Its --cpu runs one process (several need MPI), and
    # --multi_gpu is its torch.distributed launcher, which runs CPU processes on a machine without GPUs.
    "accelerate": [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                   "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                   "--main_process_port", "29612"],
}


@pytest.mark.slow
@pytest.mark.parametrize("launcher", sorted(LAUNCHERS))
def test_two_processes_match_one(tmp_path, launcher):
    manifest = generate_dataset(SynthConfig(n=3, seed=9, size=128, dicom_fraction=0.0), tmp_path / "synth",
                                progress=False)
    args = ["run", "--model", "models/demo", "--manifest", str(manifest), "--run-name", "s", "--study", "phrasing",
            "--variants", "3", "--quiet"]
    assert main([*args, "--db", str(tmp_path / "one.duckdb")]) == 0
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    launched = subprocess.run([*LAUNCHERS[launcher], "-m", "compute", *args, "--db", str(tmp_path / "two.duckdb")],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert launched.returncode == 0, launched.stderr[-2000:]
    assert "merged 2 parts" in launched.stdout + launched.stderr
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("two")) == ["two.duckdb"]  # parts removed
    one, two = _rows(tmp_path / "one.duckdb"), _rows(tmp_path / "two.duckdb")
    assert [(i, a) for i, a, _ in one[0]] == [(i, a) for i, a, _ in two[0]] and len(one[0]) == 24
    np.testing.assert_allclose([p for *_, p in one[0]], [p for *_, p in two[0]], atol=1e-6)
    assert [(i, layer) for i, layer, _ in one[1]] == [(i, layer) for i, layer, _ in two[1]]
    one_maps, two_maps = np.array([g for *_, g in one[1]]), np.array([g for *_, g in two[1]])
    np.testing.assert_allclose(one_maps, two_maps, atol=1e-6)  # float32 rounding of other batch shapes: ~2e-8
    assert [i for i, _ in one[2]] == [i for i, _ in two[2]]
    assert two[3] == [("s", "completed", 24)] == one[3]


def test_merge_command_names_missing_parts(tmp_path, capsys):
    assert main(["merge", "--db", str(tmp_path / "x.duckdb"), "--run", "s", "--world", "2"]) == 2
    assert "part stores missing" in capsys.readouterr().err


def test_same_config_twice_gives_identical_results(tmp_path):
    manifest = generate_dataset(SynthConfig(n=2, seed=10, size=128, dicom_fraction=0.5), tmp_path / "synth",
                                progress=False)
    args = ["run", "--model", "models/demo", "--manifest", str(manifest), "--run", "d", "--gradcam", "--quiet"]
    assert main([*args, "--db", str(tmp_path / "a.duckdb")]) == 0
    assert main([*args, "--db", str(tmp_path / "b.duckdb")]) == 0
    a, b = _rows(tmp_path / "a.duckdb"), _rows(tmp_path / "b.duckdb")
    assert a[0] == b[0]  # same items, answers and P(yes), to the bit
    assert [(i, layer) for i, layer, _ in a[1]] == [(i, layer) for i, layer, _ in b[1]]
    assert all(np.array_equal(x, y) for (*_, x), (*_, y) in zip(a[1], b[1]))
