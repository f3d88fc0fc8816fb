"""The 600-variant workload at MedGemma 4B's exact shapes, with random weights (no download).

    python -m compute gpu-bench --json bench.json            # on a GPU machine, bf16
    python -m compute gpu-bench --tiny --device cpu          # the same code at toy sizes, to check it runs

It builds Gemma3ForConditionalGeneration from MedGemma 4B's config (34 decoder layers,
hidden 2560, vocab 262208, SigLIP 27 layers at 896 px, 16x16 image tokens) directly on the
device, runs 63 images x ~9.5 variants through the engine with maps from 4 layers, and the
original protocol (generate + eager output_attentions per variant) on a small subset for
the ratio. It prints and writes JSON: variants/s, seconds for the workload, peak GPU memory.
It needs neither duckdb nor the hub.
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

import torch

from .attention import MapSpec
from .config import DecodeConfig, ModelSpec, PromptConfig
from .demo_model import DemoModelConfig
from .demo_model.architecture import gemma3_config, generation_config
from .demo_model.corpus import question_corpus
from .demo_model.processor import build_processor
from .demo_model.tokenizer import train_tokenizer
from .engine import Engine
from .bench import straightforward, workload
from .loading import dtype_name
from .session import Session

MEDGEMMA_4B = DemoModelConfig(
    image_size=896, patch_size=14, mm_tokens_per_image=256,
    vision_hidden_size=1152, vision_intermediate_size=4304, vision_num_layers=27, vision_num_heads=16,
    text_hidden_size=2560, text_intermediate_size=10240,
    layer_types=tuple("full_attention" if (i + 1) % 6 == 0 else "sliding_attention" for i in range(34)),
    num_attention_heads=8, num_key_value_heads=4, head_dim=256, query_pre_attn_scalar=256, sliding_window=1024,
    max_position_embeddings=131072,
)
MEDGEMMA_VOCAB = 262208
TINY = replace(MEDGEMMA_4B, image_size=224, vision_hidden_size=64, vision_intermediate_size=128, vision_num_layers=2,
               vision_num_heads=2, text_hidden_size=64, text_intermediate_size=128,
               layer_types=MEDGEMMA_4B.layer_types[:6], num_attention_heads=2, num_key_value_heads=1, head_dim=32,
               query_pre_attn_scalar=32)


@dataclass(frozen=True)
class GpuBenchResult:
    date: str
    device: str
    dtype: str
    shapes: str
    images: int
    variants: int
    engine_s: float
    engine_variants_per_s: float
    peak_memory_gb: float | None
    straightforward_variants: int
    straightforward_s: float
    straightforward_variants_per_s: float
    speedup: float
    torch: str
    python: str


def build_session(cfg: DemoModelConfig, vocab: int | None, device: torch.device, dtype: torch.dtype) -> Session:
    """A random-weight Gemma-3 of `cfg`'s shapes, made directly on `device` in `dtype`."""
    from transformers import Gemma3ForConditionalGeneration
    tokenizer = train_tokenizer(question_corpus(), cfg.max_vocab_size)
    config = gemma3_config(cfg, tokenizer)
    if vocab:
        config.text_config.vocab_size = vocab
    torch.manual_seed(0)
    with torch.device(device):
        model = Gemma3ForConditionalGeneration(config).to(dtype).eval()
    model.generation_config = generation_config(tokenizer)
    return Session(model=model, processor=build_processor(cfg, tokenizer), spec=ModelSpec("random MedGemma-4B shapes"),
                   device=device, dtype=dtype, prompt=PromptConfig(), decode=DecodeConfig(max_new_tokens=8))


def run_gpu_bench(device: str = "cuda", tiny: bool = False, images: int = 63, variants: int = 9,
                  subset_images: int = 2, layers: str = "last:4") -> GpuBenchResult:
    dev = torch.device(device)
    dtype = torch.bfloat16 if dev.type == "cuda" else torch.float32
    cfg = TINY if tiny else MEDGEMMA_4B
    session = build_session(cfg, None if tiny else MEDGEMMA_VOCAB, dev, dtype)
    groups = workload(images, variants, seed=0)
    groups = [replace(g, questions=g.questions[: variants + (i % 2)]) for i, g in enumerate(groups)]  # ~9.5 each
    engine = Engine(session, MapSpec(layers=layers))
    engine.ask_group(groups[0])  # warm-up
    if dev.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for g in groups:
        engine.ask_group(g)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    engine_s = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated() / 2**30 if dev.type == "cuda" else None
    subset = groups[:subset_images]
    start = time.perf_counter()
    straightforward(session, subset)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    slow_s = time.perf_counter() - start
    n = sum(len(g.questions) for g in groups)
    n_slow = sum(len(g.questions) for g in subset)
    return GpuBenchResult(
        date=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        device=torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor() or "cpu",
        dtype=dtype_name(dtype), shapes="tiny" if tiny else "MedGemma 4B", images=len(groups), variants=n,
        engine_s=engine_s, engine_variants_per_s=n / engine_s, peak_memory_gb=peak, straightforward_variants=n_slow,
        straightforward_s=slow_s, straightforward_variants_per_s=n_slow / slow_s,
        speedup=(n / engine_s) / (n_slow / slow_s), torch=torch.__version__,
        python=platform.python_version())


def save(result: GpuBenchResult, path: Path) -> None:
    path.write_text(json.dumps(asdict(result), indent=1))
