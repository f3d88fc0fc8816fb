"""gpu-bench's code path at toy sizes on the CPU (the real run needs a GPU: scripts/gpu_check.sh)."""

import json
import math
from dataclasses import asdict

import numpy as np
import pytest
import torch

from compute.cli import main

pytestmark = [pytest.mark.slow, pytest.mark.integration]  # the gpu-bench command, a benchmark


def test_tiny_gpu_bench_runs_on_cpu_and_writes_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["gpu-bench", "--tiny", "--device", "cpu", "--images", "3", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["shapes"] == "tiny" and result["images"] == 3
    assert result["family"] == "gemma3"  # the default
    assert result["variants"] == 9 + 10 + 9  # ~9.5 questions per image: 9 and 10 in turn
    assert result["engine_generated_rows"] == 0  # the random model answers yes/no, as a trained one does
    assert result["same_answers_on_subset"] == 1.0
    assert result["straightforward_variants"] == 19
    assert result["engine_variants_per_s"] == pytest.approx(result["variants"] / result["engine_s"])
    assert result["straightforward_variants_per_s"] == pytest.approx(19 / result["straightforward_s"])
    assert result["backoff"] is None and result["peak_memory_gb"] is None  # CUDA only
    study = result["end_to_end"]  # the whole phrasing study into DuckDB: 3 images x 2 questions x (1 + 4 rewrites)
    assert (study["images"], study["variants"]) == (3, 30) and study["peak_memory_gb"] is None
    assert study["ratio"] == pytest.approx(study["study_variants_per_s"] / study["engine_variants_per_s"])
    assert json.loads(capsys.readouterr().out) == result


def test_tiny_qwen_gpu_bench_runs_on_cpu():
    from compute.benchmarks.gpu_bench import run_gpu_bench

    result = asdict(run_gpu_bench("cpu", tiny=True, images=3, family="qwen2_5_vl"))
    assert result["family"] == "qwen2_5_vl" and result["shapes"] == "tiny" and result["images"] == 3
    assert result["variants"] == 9 + 10 + 9 and result["straightforward_variants"] == 19
    figures = ("engine_s", "engine_variants_per_s", "straightforward_s", "straightforward_variants_per_s", "speedup",
               "yes_share", "same_answers_on_subset")
    assert all(math.isfinite(result[k]) for k in figures)
    assert result["engine_s"] > 0 and result["straightforward_s"] > 0
    assert result["engine_variants_per_s"] == pytest.approx(result["variants"] / result["engine_s"])
    assert result["engine_generated_rows"] == 0  # the yes/no trick works on this family too
    assert result["same_answers_on_subset"] == 1.0  # fp32: the engine equals the original protocol
    assert result["backoff"] is None and result["peak_memory_gb"] is None
    assert result["end_to_end"]["variants"] == 30 and math.isfinite(result["end_to_end"]["ratio"])


def test_tiny_qwen_engine_results_are_finite():
    """Per row: P(yes) and the answer-position maps from the 4 layers the bench reads, on its tiny Qwen."""
    from compute.answering import PrefixSharedEngine
    from compute.benchmarks.engine_bench import workload
    from compute.benchmarks.gpu_bench import QWEN_TINY, build_qwen_session
    from compute.maps import MapSpec

    session = build_qwen_session(QWEN_TINY, torch.device("cpu"), torch.float32)
    assert session.family.name == "qwen2_5_vl"
    engine = PrefixSharedEngine(session, MapSpec(layers="last:4"), max_batch=128)
    results = engine.ask_groups(workload(2, 3, seed=0, size=QWEN_TINY.image_px))
    rows = [r for group in results for r in group]
    assert len(rows) == 2 * 4 and all(r.answer in ("yes", "no") for r in rows)
    assert all(math.isfinite(r.p_yes) and 0 <= r.p_yes <= 1 for r in rows)
    for r in rows:
        assert r.map.grid_shape == (4, 4) and len(r.map.layers) == 4  # 112 px: 8 x 8 patches merged 2 x 2
        assert np.isfinite(np.asarray(r.map.mean)).all()


def test_qwen_7b_shapes_and_image_tokens():
    """The 7B's configuration makes Qwen2.5-VL-7B-Instruct's 8.29 B parameters (built on the meta
    device: no memory), and its processor gives the workload's 448-px images 256 image tokens."""
    from transformers import Qwen2_5_VLForConditionalGeneration

    from compute.benchmarks.engine_bench import workload
    from compute.benchmarks.gpu_bench import QWEN2_5_VL_7B, qwen_config, qwen_processor

    processor = qwen_processor(QWEN2_5_VL_7B)
    with torch.device("meta"):
        model = Qwen2_5_VLForConditionalGeneration._from_config(qwen_config(QWEN2_5_VL_7B, processor.tokenizer),
                                                                 dtype=torch.bfloat16)
    assert sum(p.numel() for p in model.parameters()) == 8_292_166_656
    assert model.get_output_embeddings().weight.shape == (152064, 3584)
    assert len(model.model.visual.blocks) == 32 and len(model.model.language_model.layers) == 28
    image = workload(1, 1, seed=0, size=QWEN2_5_VL_7B.image_px)[0].image
    inputs = processor.image_processor(images=[image], return_tensors="pt")
    assert inputs["image_grid_thw"].tolist() == [[1, 32, 32]]
    assert len(processor.replace_image_token(inputs, image_idx=0)) == 256 * len(processor.image_token)
