"""gpu-bench's code path at toy sizes on the CPU (the real run needs a GPU: scripts/gpu_check.sh)."""

import json

import pytest

from compute.cli import main

pytestmark = [pytest.mark.slow, pytest.mark.integration]  # the gpu-bench command, a benchmark


def test_tiny_gpu_bench_runs_on_cpu_and_writes_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["gpu-bench", "--tiny", "--device", "cpu", "--images", "3", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["shapes"] == "tiny" and result["images"] == 3
    assert result["variants"] == 9 + 10 + 9  # ~9.5 questions per image: 9 and 10 in turn
    assert result["engine_generated_rows"] == 0  # the random model answers yes/no, as a trained one does
    assert result["same_answers_on_subset"] == 1.0
    assert result["straightforward_variants"] == 19
    assert result["engine_variants_per_s"] == pytest.approx(result["variants"] / result["engine_s"])
    assert result["straightforward_variants_per_s"] == pytest.approx(19 / result["straightforward_s"])
    assert result["backoff"] is None and result["peak_memory_gb"] is None  # CUDA only
    assert json.loads(capsys.readouterr().out) == result
