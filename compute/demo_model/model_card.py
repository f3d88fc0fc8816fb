"""The README.md written next to the demo model's weights."""

from __future__ import annotations

from dataclasses import asdict

from transformers import PreTrainedModel

from .config import DemoModelConfig


def model_card(cfg: DemoModelConfig, model: PreTrainedModel) -> str:
    settings = "\n".join(f"| `{k}` | `{v}` |" for k, v in asdict(cfg).items())
    n_params = sum(p.numel() for p in model.parameters())
    return f"""# MedGemma Visualizer demo model

A tiny `Gemma3ForConditionalGeneration` (Gemma 3 / MedGemma architecture) built by
`compute.demo_model.build_demo_model`. It is **not** a medical model: it holds
{n_params:,} parameters, built with random weights (seed {cfg.seed}); only the project's
training script, if it has run since, has taught it anything.

It exists so that the project runs without a model hub: it loads with the same code as
`google/medgemma-4b-it`,

```python
processor = AutoProcessor.from_pretrained(path)
model = AutoModelForImageTextToText.from_pretrained(path)
```

and has MedGemma's prompt format (Gemma 3 chat template, `<start_of_image>` expanded to
{cfg.mm_tokens_per_image} `<image_soft_token>`s, a {cfg.tokens_per_side}×{cfg.tokens_per_side} image-token grid,
generation stopping at `<end_of_turn>`). Its tokenizer is a small Gemma-style BPE with byte
fallback, trained on the project's question corpus.

| Setting | Value |
|---|---|
{settings}
"""
