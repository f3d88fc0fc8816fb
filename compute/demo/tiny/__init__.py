"""Tiny random-weight checkpoints of every supported model family, for tests without downloads:
`python -m compute tiny-model --family NAME --out DIR`. Each module's `build(out_dir, seed)`
writes a folder that `load_model` and `compute run --model DIR` take like any checkpoint."""

from __future__ import annotations

import importlib
from pathlib import Path

TINY_FAMILIES = ("gemma3", "paligemma", "qwen2_5_vl", "llava", "idefics3", "internvl")

SUMMARIES = {
    "gemma3": "Gemma-3 / MedGemma: SigLIP, 16x16 token grid, bidirectional image tokens",
    "paligemma": "PaliGemma 2: SigLIP, prefix-LM prompt without chat template",
    "qwen2_5_vl": "Qwen2.5-VL: dynamic resolution from image_grid_thw, 2x2 merge, mRoPE",
    "llava": "LLaVA-1.5 (llava-hf, converted LLaVA-Med): CLIP layer -2, USER/ASSISTANT prompt",
    "idefics3": "Idefics3 / SmolVLM: image tiles plus a global image",
    "internvl": "InternVL (-hf): 16x16 tokens per tile, tiles plus a thumbnail",
}


def build_tiny(family: str, out_dir: Path, seed: int = 0) -> Path:
    if family not in TINY_FAMILIES:
        raise ValueError(f"unknown family {family!r}; choose one of {', '.join(TINY_FAMILIES)}")
    if family == "gemma3":
        from compute.demo.model import DemoModelConfig, build_demo_model
        return build_demo_model(Path(out_dir), DemoModelConfig(seed=seed))  # the demo architecture, untrained
    return importlib.import_module(f"compute.demo.tiny.{family}").build(Path(out_dir), seed)
