#!/usr/bin/env bash
# Every check that needs a GPU, as one command for a lent GPU machine:
#     bash scripts/gpu_check.sh OUT_DIR
# 1. gpu-bench: the 600-variant workload at MedGemma 4B's shapes in bf16 (random weights),
#    the straightforward path on a subset for the ratio, and the out-of-memory back-off on a
#    real GPU, then the whole phrasing study into a fresh DuckDB on 63 synthetic images (~630
#    variants, maps from 4 layers) against the engine alone (its "end_to_end" figures; the study
#    needs duckdb and pyarrow: carry their wheels in .whl/ if the machine lacks them); figures in
#    OUT_DIR/gpu_bench.json, where the time goes in OUT_DIR/profile/.
# 2. The same gpu-bench at Qwen2.5-VL 7B's shapes (bf16, random weights), figures in
#    OUT_DIR/gpu_bench_qwen2_5_vl.json: the second family measured in the same call.
# 3. The engine equals Session.ask_batch on CUDA's kernels (fp32, the demo model).
# Where the machine's transformers differs from requirements.txt, carry the pinned wheel in
# .whl/ (pip download --no-deps transformers==<pin> -d .whl); it is installed first.
set -uo pipefail
out=${1:-.}
mkdir -p "$out"
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        && export PYTHONPATH=/tmp/site
fi
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
python3 -c "import torch, transformers; print('torch', torch.__version__, '| transformers', transformers.__version__)"
python3 -m compute gpu-bench --json "$out/gpu_bench.json" --profile "$out/profile" 2>&1 | tee "$out/gpu_bench.log"
python3 -m compute gpu-bench --family qwen2_5_vl --json "$out/gpu_bench_qwen2_5_vl.json" 2>&1 \
    | tee "$out/gpu_bench_qwen2_5_vl.log"
python3 -m pytest -q -rs tests/test_engine.py 2>&1 | tee "$out/engine_tests.log"
