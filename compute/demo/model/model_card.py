"""The README.md written next to the demo model's weights."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from transformers import PreTrainedModel

from compute.demo.model.config import DemoModelConfig
from compute.demo.model.evaluate import SMALL_SET


def model_card(cfg: DemoModelConfig, model: PreTrainedModel) -> str:
    settings = "\n".join(f"| `{k}` | `{v}` |" for k, v in asdict(cfg).items())
    n_params = sum(p.numel() for p in model.parameters())
    return f"""# MedGemma Visualizer demo model

A tiny `Gemma3ForConditionalGeneration` (Gemma 3 / MedGemma architecture) built by
`compute.demo.model.build_demo_model`. It is **not** a medical model: it holds
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


def trained_model_card(folder, cfg, log, report) -> str:
    """The card of a trained demo model: how it was made, its training curve and its
    held-out evaluation, quoted from `python -m compute demo-eval`."""
    config = json.loads((Path(folder) / "config.json").read_text())
    text, vision = config["text_config"], config["vision_config"]

    def curve(points):
        return "\n".join(f"| {step} | {loss:.4f} | {acc:.3f} |" for step, loss, acc in points[:: max(1, len(points) // 12)])

    return f"""# MedGemma Visualizer demo model (trained)

**A synthetic demo, not a medical model.** It was trained only on the project's synthetic
chest X-rays, to answer yes/no questions about nine conditions in a handful of fixed
phrasings. It has never seen a real radiograph. Do not use it for anything clinical.

It is a tiny `Gemma3ForConditionalGeneration` with MedGemma's interfaces: it loads with
`AutoProcessor` / `AutoModelForImageTextToText`, uses the Gemma 3 chat template, expands
`<start_of_image>` into {config["mm_tokens_per_image"]} image tokens on a 16×16 grid, and stops at `<end_of_turn>`.

| Part | Size |
|---|---|
| Vision (SigLIP) | {vision["num_hidden_layers"]} layers, hidden {vision["hidden_size"]}, {vision["image_size"]} px, patch {vision["patch_size"]} |
| Decoder (Gemma 3) | {text["num_hidden_layers"]} layers ({", ".join(t.split("_")[0] for t in text["layer_types"])}), hidden {text["hidden_size"]}, {text["num_attention_heads"]} heads / {text["num_key_value_heads"]} KV heads |

## How it was made

`python -m compute demo-model --train` (seed {cfg.seed}; `make demo-model`), on 2 CPU cores in
{log.seconds["total"] / 60:.1f} minutes:

1. {cfg.pool_size} synthetic cases rendered in memory at {vision["image_size"]} px, each condition drawn with
   probability {cfg.finding_rate} ({log.seconds["render"]:.0f} s).
2. Vision stage ({cfg.vision_steps} steps, batch {cfg.vision_batch}, {log.seconds["vision"]:.0f} s): the vision tower with a
   throw-away linear head learns which conditions' lesions cover each image token, and which
   conditions are present (max over tokens).
3. Language stage ({cfg.language_steps} steps, {cfg.language_images} images × {cfg.questions_per_image} questions per batch,
   {log.seconds["language"]:.0f} s): vision tower frozen; projector and decoder learn to answer the
   chat-formatted question with the studies' instruction ("Answer yes or no."), the loss on the
   answer token and the `<end_of_turn>` after it. Questions use only the training templates
   in `compute/data/questions.py` with each condition's canonical term; a third of questions about
   lateral findings name a location, as often for absent findings as for present ones.
   Synonyms, lay terms, UK spellings and other rewrites were never trained on.

Training curve (`training_log.json` has every logged step):

| Vision step | Loss | Presence accuracy |
|---|---|---|
{curve(log.vision)}

| Language step | Loss | Answer accuracy (batch) |
|---|---|---|
{curve(log.language)}

## Held-out evaluation

`python -m compute demo-eval --model models/demo` ({report.n_images} held-out images rendered at 512 px,
one "yes" and one "no" question each in the training phrasings; `evaluation.json`):

```
{report.table()}
```

{_small_set_line(report)}
"attn" is the answer-position attention mass inside the lesion (`compute.maps`: heads
averaged, each layer renormalised over the image tokens, then averaged over layers) divided by
the lesion's share of the body area, averaged over "yes" questions: 1.0 means no preference for
the lesion. The lesion hit rate is the pointing game: the share of "yes" questions whose map
peaks on a cell the lesion covers.
"""


def _small_set_line(report) -> str:
    if report.small_set_accuracy is None:
        return ""
    return (f"On the first {SMALL_SET} of these images ({2 * SMALL_SET} questions) the accuracy is "
            f"{report.small_set_accuracy:.1%};\n`tests/test_committed_demo_model.py` re-evaluates that small set "
            "and checks it is reproduced.\n")
