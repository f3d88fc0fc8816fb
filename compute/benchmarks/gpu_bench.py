"""The 600-variant workload at MedGemma 4B's exact shapes, with random weights (no download).

    python -m compute gpu-bench --json bench.json            # on a GPU machine, bf16
    python -m compute gpu-bench --tiny --device cpu          # the same code at toy sizes, to check it runs

It builds Gemma3ForConditionalGeneration from MedGemma 4B's config (34 decoder layers,
hidden 2560, vocab 262208, SigLIP 27 layers at 896 px, 16x16 image tokens) directly on the
device, runs 63 images x ~9.5 variants through the engine with maps from 4 layers, and the
original protocol (generate + eager output_attentions per variant) on a small subset for
the ratio. It prints and writes JSON: variants/s, seconds for the workload, peak GPU memory.
It needs no hub; the end-to-end part (`end_to_end`: the whole phrasing study into a fresh DuckDB
on 63 synthetic images, ~630 variants, against the engine alone) needs duckdb and pyarrow.

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

`family="qwen2_5_vl"` runs the same workload at Qwen2.5-VL-7B-Instruct's shapes instead (its
config.json: a 32-block windowed ViT, hidden 1280, full attention in blocks 7/15/23/31; a
28-layer decoder, hidden 3584, 28 heads, 4 KV heads, mRoPE [16, 24, 24], vocab 152064), built
in bf16 on the device. Its processor is the tiny Qwen model's (compute/demo/tiny/qwen2_5_vl.py:
the project's tokenizer with Qwen's special tokens, PaddleOCRVLProcessor as the image-only
processor), with min_pixels = max_pixels = 448², so the 448-px images give 32 x 32 patches and
16 x 16 = 256 image tokens, as many as MedGemma's. The vocabulary is padded to 152064 (the
tokenizer is small; the embeddings past it are never used), and the yes/no trick is the same.
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

FAMILIES = ("gemma3", "qwen2_5_vl")


@dataclass(frozen=True)
class QwenShapes:
    """The Qwen2.5-VL configuration fields the bench sets; patch 14, merge 2, temporal patch 2,
    rope_theta 1e6 and RMS-norm eps 1e-6 are the 7B's too, at every size."""

    image_px: int  # the workload's images are this square; min_pixels = max_pixels = its area
    vision_depth: int
    vision_hidden_size: int
    vision_intermediate_size: int
    vision_num_heads: int
    window_size: int  # px
    fullatt_block_indexes: tuple[int, ...]
    text_hidden_size: int  # also the vision merger's out_hidden_size
    text_intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    mrope_section: tuple[int, int, int]  # rotary pairs per (t, h, w): head_dim / 2 in all
    max_position_embeddings: int
    vocab_size: int | None  # None: the tokenizer's


# Qwen/Qwen2.5-VL-7B-Instruct's config.json (its vision_config and text fields).
QWEN2_5_VL_7B = QwenShapes(
    image_px=448, vision_depth=32, vision_hidden_size=1280, vision_intermediate_size=3420, vision_num_heads=16,
    window_size=112, fullatt_block_indexes=(7, 15, 23, 31), text_hidden_size=3584, text_intermediate_size=18944,
    num_hidden_layers=28, num_attention_heads=28, num_key_value_heads=4, mrope_section=(16, 24, 24),
    max_position_embeddings=128000, vocab_size=152064)
# 112 px: 8 x 8 patches, 4 x 4 = 16 image tokens; block 1 full attention, the last as in the 7B.
QWEN_TINY = replace(QWEN2_5_VL_7B, image_px=112, vision_depth=2, vision_hidden_size=32, vision_intermediate_size=64,
                    vision_num_heads=2, window_size=56, fullatt_block_indexes=(1,), text_hidden_size=64,
                    text_intermediate_size=128, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2,
                    mrope_section=(2, 3, 3), vocab_size=None)
QWEN_PATCH, QWEN_MERGE, QWEN_TEMPORAL = 14, 2, 2


@dataclass(frozen=True)
class GpuBenchResult:
    date: str
    device: str
    dtype: str
    family: str
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
    end_to_end: dict | None = None  # the whole phrasing study into DuckDB against the engine alone (end_to_end)


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
    session = Session(model=model, processor=build_processor(cfg, tokenizer),
                      spec=ModelSpec("random MedGemma-4B shapes"), device=device, dtype=dtype, prompt=PromptConfig(),
                      decode=DecodeConfig(max_new_tokens=1))
    answer_yes_or_no(model, session.yes_ids, session.no_ids)
    return session


def qwen_config(shapes: QwenShapes, tokenizer):
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLTextConfig, Qwen2_5_VLVisionConfig

    from compute.demo.tiny.common import token_id
    vision = Qwen2_5_VLVisionConfig(
        depth=shapes.vision_depth, hidden_size=shapes.vision_hidden_size,
        intermediate_size=shapes.vision_intermediate_size, num_heads=shapes.vision_num_heads, patch_size=QWEN_PATCH,
        spatial_merge_size=QWEN_MERGE, temporal_patch_size=QWEN_TEMPORAL, window_size=shapes.window_size,
        out_hidden_size=shapes.text_hidden_size, fullatt_block_indexes=list(shapes.fullatt_block_indexes),
        tokens_per_second=2)
    text = Qwen2_5_VLTextConfig(
        hidden_size=shapes.text_hidden_size, intermediate_size=shapes.text_intermediate_size,
        num_hidden_layers=shapes.num_hidden_layers, num_attention_heads=shapes.num_attention_heads,
        num_key_value_heads=shapes.num_key_value_heads, max_position_embeddings=shapes.max_position_embeddings,
        max_window_layers=shapes.num_hidden_layers, rms_norm_eps=1e-6, vocab_size=shapes.vocab_size or len(tokenizer),
        rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": list(shapes.mrope_section)},
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id)
    return Qwen2_5_VLConfig(vision_config=vision, text_config=text, image_token_id=tokenizer.image_token_id,
                            video_token_id=tokenizer.video_token_id,
                            vision_start_token_id=token_id(tokenizer, "<|vision_start|>"),
                            vision_end_token_id=token_id(tokenizer, "<|vision_end|>"), tie_word_embeddings=False)


def qwen_processor(shapes: QwenShapes):
    """The tiny Qwen model's processor, resizing every image to `shapes.image_px`² pixels."""
    from transformers import PaddleOCRVLProcessor
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    from compute.demo.tiny import qwen2_5_vl as tiny_qwen
    from compute.demo.tiny.common import family_tokenizer
    tokenizer = family_tokenizer({"image_token": "<|image_pad|>", "video_token": "<|video_pad|>"}, tiny_qwen.TOKENS)
    tokenizer.add_bos_token = False  # Qwen's tokenizer adds no bos
    pixels = shapes.image_px ** 2
    image_processor = Qwen2VLImageProcessorPil(min_pixels=pixels, max_pixels=pixels, patch_size=QWEN_PATCH,
                                               merge_size=QWEN_MERGE, temporal_patch_size=QWEN_TEMPORAL)
    # Qwen2_5_VLProcessor needs torchvision (its video processor); this is the same image path without it.
    return PaddleOCRVLProcessor(image_processor=image_processor, tokenizer=tokenizer,
                                chat_template=tiny_qwen.CHAT_TEMPLATE)


def build_qwen_session(shapes: QwenShapes, device: torch.device, dtype: torch.dtype) -> Session:
    """A random-weight Qwen2.5-VL of `shapes`, made directly on `device` in `dtype` (the
    parameters are created there in that dtype and initialised there: no CPU copy, no cast)."""
    from transformers import Qwen2_5_VLForConditionalGeneration

    from compute.demo.tiny.common import greedy_generation
    processor = qwen_processor(shapes)
    tokenizer = processor.tokenizer
    config = qwen_config(shapes, tokenizer)
    torch.manual_seed(0)
    with torch.device(device):
        model = Qwen2_5_VLForConditionalGeneration._from_config(config, dtype=dtype).eval()
    model.generation_config = greedy_generation(tokenizer, stop=("<|im_end|>", "<|endoftext|>"))
    name = "random Qwen2.5-VL-7B shapes" if shapes.vocab_size else "random tiny Qwen2.5-VL shapes"
    session = Session(model=model, processor=processor, spec=ModelSpec(name), device=device, dtype=dtype,
                      prompt=PromptConfig(), decode=DecodeConfig(max_new_tokens=1))
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
                  subset_images: int = 2, layers: str = "last:4", profile: Path | None = None,
                  family: str = "gemma3", study: bool = True) -> GpuBenchResult:
    """`family`: "gemma3" (MedGemma 4B's shapes) or "qwen2_5_vl" (Qwen2.5-VL 7B's); `study`: also the
    whole phrasing study into DuckDB (end_to_end)."""
    if family not in FAMILIES:
        raise ValueError(f"gpu-bench: unknown family {family!r}; choose from {', '.join(FAMILIES)}")
    dev = torch.device(device)
    dtype = torch.bfloat16 if dev.type == "cuda" else torch.float32
    if family == "gemma3":
        shapes, image_px = "tiny" if tiny else "MedGemma 4B", 512
    else:
        qwen = QWEN_TINY if tiny else QWEN2_5_VL_7B
        shapes, image_px = "tiny" if tiny else "Qwen2.5-VL 7B", qwen.image_px
    _progress(f"building a random-weight model of {shapes} shapes on {dev}")
    start = time.perf_counter()
    if family == "gemma3":
        session = build_session(TINY if tiny else MEDGEMMA_4B, None if tiny else MEDGEMMA_VOCAB, dev, dtype)
    else:
        session = build_qwen_session(qwen, dev, dtype)
    _synchronize(dev)
    _progress(f"built in {time.perf_counter() - start:.1f} s")
    groups = workload(images, variants, seed=0, size=image_px)
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
        dtype=dtype_name(dtype), family=family, shapes=shapes, images=len(groups), variants=n,
        engine_s=engine_s, engine_variants_per_s=n / engine_s, peak_memory_gb=peak, straightforward_variants=n_slow,
        straightforward_s=slow_s, straightforward_variants_per_s=n_slow / slow_s,
        speedup=(n / engine_s) / (n_slow / slow_s), engine_generated_rows=engine.generated_rows,
        yes_share=sum(a == "yes" for g in answers for a in g) / n, same_answers_on_subset=same,
        backoff=backoff_check(session, groups[0], layers) if dev.type == "cuda" else None,
        torch=torch.__version__, python=platform.python_version(),
        end_to_end=end_to_end(session, images, layers, dev) if study else None)


def end_to_end(session: Session, images: int, layers: str, device: torch.device) -> dict:
    """The engine alone and the whole `run --study phrasing` into a fresh DuckDB on one synthetic
    dataset (`images` images, two questions each with 4 rewrites: about 600 variants at 63), maps from
    `layers`; with the peak GPU memory of the study. Needs duckdb and pyarrow, unlike the rest."""
    import tempfile

    from compute.benchmarks.end_to_end import compare
    from compute.config import MapConfig, VariantConfig
    from compute.demo.synth import SynthConfig, generate_dataset

    _progress(f"end to end: {images} synthetic images into a phrasing study in DuckDB, against the engine alone")
    with tempfile.TemporaryDirectory(prefix="mgv-gpu-e2e-") as tmp:
        manifest = generate_dataset(SynthConfig(n=images, seed=0), Path(tmp) / "data", progress=False)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        result = compare(session, manifest, VariantConfig(n=4), MapConfig(layers=layers), repeats=2,
                         folder=Path(tmp), log=_progress)
        peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    _progress(result.table())
    return {"images": result.images, "variants": result.variants, "engine_s": result.engine_s,
            "engine_variants_per_s": result.engine_rate, "study_s": result.study_s,
            "study_variants_per_s": result.study_rate, "ratio": result.ratio, "peak_memory_gb": peak}


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
