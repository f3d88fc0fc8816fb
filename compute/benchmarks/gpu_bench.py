"""The 600-variant workload at MedGemma 4B's exact shapes, with random weights (no download).

    python -m compute gpu-bench --json bench.json            # on a GPU machine, bf16
    python -m compute gpu-bench --tiny --device cpu          # the same code at toy sizes, to check it runs

It builds Gemma3ForConditionalGeneration from MedGemma 4B's config (34 decoder layers,
hidden 2560, vocab 262208, SigLIP 27 layers at 896 px, 16x16 image tokens) directly on the
device, runs 63 images x ~9.5 variants through the engine with maps from 4 layers, and the
original protocol (generate + eager output_attentions per variant) on a small subset for
the ratio. It prints and writes JSON: variants/s, seconds for the workload, peak GPU memory.
It needs neither duckdb nor the hub.

Random weights put a yes/no word first only by chance, and the engine generates a reply for
every row that lacks one, which a trained model rarely needs (the demo model: 0 of 660 rows
of `bench`'s workload at 60 images). So the random model is made to answer like a trained one: the yes and
no tokens' output embeddings point in opposite directions with a large norm, and the first
token is yes or no. `engine_generated_rows` reports how many rows still needed generation.
The straightforward path generates one token per variant, the answer word: the least any
reply costs (a trained model adds at least <end_of_turn>), so the speed-up is a lower bound.

On CUDA it also checks the out-of-memory back-off for real: it caps the process's GPU memory
at half of what one 512-row batch needs, runs that batch, and compares with the uncapped
results (`backoff`).
"""

from __future__ import annotations

import json
import platform
import sys
import time
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

import torch

from compute.model.answers import extract_answer
from compute.maps import MapSpec
from compute.config import DecodeConfig, ModelSpec, PromptConfig
from compute.demo.model import DemoModelConfig
from compute.demo.model.architecture import gemma3_config, generation_config
from compute.demo.model.corpus import question_corpus
from compute.demo.model.processor import build_processor
from compute.demo.model.tokenizer import train_tokenizer
from compute.answering import Group, PrefixSharedEngine
from compute.benchmarks.engine_bench import straightforward, workload
from compute.model.loading import dtype_name
from compute.model.session import Session

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
    engine_generated_rows: int
    yes_share: float
    same_answers_on_subset: float  # engine vs straightforward, on the straightforward subset
    backoff: dict | None
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
    session = Session(model=model, processor=build_processor(cfg, tokenizer), spec=ModelSpec("random MedGemma-4B shapes"),
                      device=device, dtype=dtype, prompt=PromptConfig(), decode=DecodeConfig(max_new_tokens=1))
    answer_yes_or_no(model, session.yes_ids, session.no_ids)
    return session


@torch.no_grad()
def answer_yes_or_no(model, yes_ids: list[int], no_ids: list[int], scale: float = 1000.0) -> None:
    """Sets the yes and no tokens' output embeddings to +v and -v, `scale` times the mean
    embedding norm, so one of them outscores every other token for any final hidden state."""
    weight = model.get_output_embeddings().weight
    direction = torch.randn(weight.shape[1], generator=torch.Generator().manual_seed(0))
    direction = (direction / direction.norm() * weight.float().norm(dim=1).mean().cpu() * scale).to(weight)
    weight[yes_ids] = direction
    weight[no_ids] = -direction


def run_gpu_bench(device: str = "cuda", tiny: bool = False, images: int = 63, variants: int = 9,
                  subset_images: int = 2, layers: str = "last:4", profile: Path | None = None) -> GpuBenchResult:
    dev = torch.device(device)
    dtype = torch.bfloat16 if dev.type == "cuda" else torch.float32
    cfg = TINY if tiny else MEDGEMMA_4B
    _progress(f"building a random-weight model of {'tiny' if tiny else 'MedGemma 4B'} shapes on {dev}")
    session = build_session(cfg, None if tiny else MEDGEMMA_VOCAB, dev, dtype)
    groups = workload(images, variants, seed=0)
    groups = [replace(g, questions=g.questions[: variants + (i % 2)]) for i, g in enumerate(groups)]  # ~9.5 each
    engine = PrefixSharedEngine(session, MapSpec(layers=layers), max_batch=128)
    _progress(f"workload: {len(groups)} images, {sum(len(g.questions) for g in groups)} variants; warm-up")
    engine.ask_groups(groups[:engine.images_per_pass])  # warm-up
    engine.generated_rows = 0
    _synchronize(dev)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    answers = [[r.answer for r in results] for results in engine.ask_groups(groups)]
    _synchronize(dev)
    engine_s = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated() / 2**30 if dev.type == "cuda" else None
    if profile:
        _progress(f"profiling the engine on {engine.images_per_pass} images into {profile}")
        write_profile(engine, groups[:engine.images_per_pass], profile)
    _progress(f"engine: {engine_s:.1f} s; straightforward path on {subset_images} images")
    subset = groups[:subset_images]
    start = time.perf_counter()
    replies, _ = straightforward(session, subset)
    _synchronize(dev)
    slow_s = time.perf_counter() - start
    n = sum(len(g.questions) for g in groups)
    n_slow = sum(len(g.questions) for g in subset)
    engine_subset = [a for group_answers in answers[:subset_images] for a in group_answers]
    same = sum(a == extract_answer(r) for a, r in zip(engine_subset, replies, strict=True)) / n_slow
    return GpuBenchResult(
        date=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        device=torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor() or "cpu",
        dtype=dtype_name(dtype), shapes="tiny" if tiny else "MedGemma 4B", images=len(groups), variants=n,
        engine_s=engine_s, engine_variants_per_s=n / engine_s, peak_memory_gb=peak, straightforward_variants=n_slow,
        straightforward_s=slow_s, straightforward_variants_per_s=n_slow / slow_s,
        speedup=(n / engine_s) / (n_slow / slow_s), engine_generated_rows=engine.generated_rows,
        yes_share=sum(a == "yes" for g in answers for a in g) / n, same_answers_on_subset=same,
        backoff=backoff_check(session, groups[0], layers) if dev.type == "cuda" else None,
        torch=torch.__version__, python=platform.python_version())


def backoff_check(session: Session, group: Group, layers: str, rows: int = 512) -> dict:
    """Caps the process's GPU memory at half of what a `rows`-row suffix batch needs, runs that
    batch through the engine, and compares with the uncapped results: the engine must halve its
    batch on out-of-memory errors and lose nothing. The batch is large (512 rows: about 19 GB of
    KV cache at MedGemma's shapes) so that its need dwarfs the allocator's cached fragments,
    which serve the prefix pass without counting against the cap."""
    big = Group(group.image, (list(group.questions) * rows)[:rows])
    engine = PrefixSharedEngine(session, MapSpec(layers=layers), max_batch=rows)
    engine.max_batch = rows  # the whole batch at once, past the start that free memory would pick
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    device = session.device.index if session.device.index is not None else torch.cuda.current_device()
    base = torch.cuda.memory_reserved(device)
    torch.cuda.reset_peak_memory_stats(device)
    reference = engine.ask_group(big)
    need = torch.cuda.max_memory_reserved(device) - base
    cap = base + need // 2
    _progress(f"out-of-memory back-off: {rows} rows under a cap of half their memory")
    report = {"rows": rows, "uncapped_extra_gb": need / 2**30, "cap_gb": cap / 2**30}
    torch.cuda.empty_cache()
    torch.cuda.set_per_process_memory_fraction(cap / torch.cuda.get_device_properties(device).total_memory, device)
    try:
        capped = engine.ask_group(big)
    except torch.OutOfMemoryError as exc:  # the prefix pass itself did not fit under the cap
        return {**report, "error": str(exc).splitlines()[0]}
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0, device)
    return {**report, "backoffs": engine.backoffs, "final_batch": engine.max_batch,
            "same_answers": sum(a.answer == b.answer for a, b in zip(capped, reference, strict=True)) / rows,
            "max_p_yes_diff": max(abs(a.p_yes - b.p_yes) for a, b in zip(capped, reference))}


def write_profile(engine: PrefixSharedEngine, groups: list[Group], folder: Path) -> None:
    """Where the engine's time goes: torch.profiler's operator table (GPU kernels too, on
    CUDA) and cProfile's Python functions by cumulative time, as text files in `folder`."""
    import cProfile
    import io
    import pstats

    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    folder.mkdir(parents=True, exist_ok=True)
    cuda = engine.session.device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with torch_profile(activities=activities) as prof:
        engine.ask_groups(groups)
        _synchronize(engine.session.device)
    table = prof.key_averages()
    (folder / "operators.txt").write_text(
        table.table(sort_by="self_cuda_time_total" if cuda else "self_cpu_time_total", row_limit=40)
        + "\n\n" + table.table(sort_by="cpu_time_total", row_limit=40))
    profiler = cProfile.Profile()
    profiler.enable()
    engine.ask_groups(groups)
    _synchronize(engine.session.device)
    profiler.disable()
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(60)
    (folder / "python.txt").write_text(text.getvalue())


def _progress(message: str) -> None:
    print(f"gpu-bench: {message}", file=sys.stderr, flush=True)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def save(result: GpuBenchResult, path: Path) -> None:
    path.write_text(json.dumps(asdict(result), indent=1))
