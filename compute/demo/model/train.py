"""Train the demo model to answer yes/no questions about synthetic chest X-rays.

Two stages, because binding a question to a small image region is what is slow to learn
from the yes/no loss alone:
1. vision: the SigLIP tower with a throw-away head learns, per image token, which
   conditions' lesions cover it (and, max-pooled, which are present);
2. language: with the vision tower frozen (its outputs cached once), the projector and
   the Gemma-3 decoder learn to answer the chat-formatted question, with the loss on the
   answer token and the <end_of_turn> that follows it.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm
from transformers.modeling_outputs import BaseModelOutputWithPooling

from compute.data.conditions import CONDITION_KEYS
from compute.model.prefix import right_padded, suffix_pass_inputs
from compute.demo.model.training_data import CasePool, PromptBank, render_pool, training_question


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 0
    pool_size: int = 3000  # training cases rendered once, in memory
    finding_rate: float = 0.3  # chance that each condition is drawn on a training case
    location_rate: float = 0.3  # share of questions about lateral findings that name a location
    vision_steps: int = 4500  # ViT from scratch: 2e-3 and 5e-3 learned slower than 1e-3; 3000 left findings at chance
    vision_batch: int = 32
    vision_lr: float = 1e-3
    # Lesion cells are ~0.3% of the per-token targets. Up-weighting them lifted held-out presence
    # accuracy (balanced, mean over conditions, 1000 steps) from 0.73 (weight 1) to 0.84 (10 and 30).
    cell_pos_weight: float = 30.0
    language_steps: int = 5000  # answers sit at chance for ~400 steps before the question binds to the image
    language_images: int = 8  # images per language batch ...
    questions_per_image: int = 4  # ... each asked this many questions, half yes and half no
    language_lr: float = 1e-3
    warmup_steps: int = 100
    weight_decay: float = 0.01
    log_every: int = 25
    threads: int | None = None  # torch threads; None keeps torch's default


@dataclass
class TrainingLog:
    """The training curve: (step, loss, accuracy on the batch) per stage, plus timings."""

    vision: list[tuple[int, float, float]]
    language: list[tuple[int, float, float]]
    seconds: dict[str, float]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)


def _schedule(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def _optimizer(params, lr: float, cfg: TrainConfig, total: int):
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _schedule(s, total, cfg.warmup_steps))
    return opt, sched


class VisionProbe(nn.Module):
    """Per-token condition logits on top of the vision tower (dropped after stage 1)."""

    def __init__(self, vision_tower: nn.Module, hidden: int, n_conditions: int, grid: int):
        super().__init__()
        self.vision_tower = vision_tower
        self.head = nn.Linear(hidden, n_conditions)
        self.grid = grid

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        states = self.vision_tower(pixel_values=pixels).last_hidden_state  # (batch, patches, hidden)
        logits = self.head(states)  # (batch, patches, conditions)
        batch, patches, conditions = logits.shape
        side = int(math.isqrt(patches))
        logits = logits.transpose(1, 2).reshape(batch, conditions, side, side)
        if side != self.grid:
            logits = F.adaptive_avg_pool2d(logits, self.grid)
        return logits  # (batch, conditions, grid, grid)


def train_vision(model, pool: CasePool, cfg: TrainConfig, rng: np.random.Generator,
                 log: Callable[[str], None], progress: bool) -> list[tuple[int, float, float]]:
    vision = model.model.vision_tower
    grid = pool.lesion_grid.shape[-1]
    probe = VisionProbe(vision, model.config.vision_config.hidden_size, len(CONDITION_KEYS), grid)
    opt, sched = _optimizer(probe.parameters(), cfg.vision_lr, cfg, cfg.vision_steps)
    pos_weight = torch.tensor(cfg.cell_pos_weight)
    curve = []
    probe.train()
    for step in tqdm(range(cfg.vision_steps), desc="stage 1: vision", disable=not progress):
        idx = torch.from_numpy(rng.choice(len(pool), cfg.vision_batch, replace=False))
        logits = probe(pool.pixels[idx])  # (batch, conditions, grid, grid)
        cells = pool.lesion_grid[idx]
        present = pool.present[idx].float()
        cell_loss = F.binary_cross_entropy_with_logits(logits, (cells > 0.25).float(), pos_weight=pos_weight)
        image_logits = logits.flatten(2).amax(-1)  # (batch, conditions)
        image_loss = F.binary_cross_entropy_with_logits(image_logits, present)
        loss = cell_loss + image_loss
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(probe.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % cfg.log_every == 0 or step == cfg.vision_steps - 1:
            accuracy = ((image_logits > 0) == present.bool()).float().mean().item()
            curve.append((step, loss.item(), accuracy))
            log(f"vision step {step}: loss {loss.item():.4f}, presence accuracy {accuracy:.3f}")
    probe.eval()
    return curve


@torch.no_grad()
def cache_vision_states(model, pool: CasePool, batch: int = 64) -> torch.Tensor:
    """Frozen vision tower outputs for every case: (n, patches, hidden)."""
    vision = model.model.vision_tower.eval()
    return torch.cat([vision(pixel_values=pool.pixels[i:i + batch]).last_hidden_state
                      for i in range(0, len(pool), batch)])


def _language_batch(pool: CasePool, bank: PromptBank, cfg: TrainConfig, rng: np.random.Generator):
    """A left-padded batch: `language_images` cases, each asked about present and absent
    conditions in equal numbers (as far as the case allows)."""
    images = rng.choice(len(pool), cfg.language_images, replace=False)
    sequences, image_index, answers = [], [], []
    for i in images:
        present = [k for k, p in zip(CONDITION_KEYS, pool.present[i].tolist()) if p]
        absent = [k for k in CONDITION_KEYS if k not in present]
        q = cfg.questions_per_image
        n_yes = min(len(present), max(q // 2, q - len(absent)))  # exactly q questions, as balanced as the case allows
        asked = [(k, True) for k in rng.permutation(present)[:n_yes]]
        asked += [(k, False) for k in rng.permutation(absent)[:q - n_yes]]
        for key, answer in asked:
            question = training_question(rng, str(key), answer, pool.locations[i].get(str(key)), cfg.location_rate)
            sequences.append(bank.encode(question, answer))
            image_index.append(int(i))
            answers.append(answer)
    width = max(ids.shape[0] for ids, _ in sequences)
    pad = bank.processor.tokenizer.pad_token_id
    input_ids = torch.full((len(sequences), width), pad)
    token_type_ids = torch.zeros((len(sequences), width), dtype=torch.long)
    attention_mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, (ids, types) in enumerate(sequences):
        input_ids[row, width - len(ids):] = ids
        token_type_ids[row, width - len(ids):] = types
        attention_mask[row, width - len(ids):] = 1
    return input_ids, token_type_ids, attention_mask, torch.tensor(image_index), torch.tensor(answers)


def language_loss(model, bank: PromptBank, states: torch.Tensor, batch) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy on the answer token and <end_of_turn>; returns (loss, answer correct per row)."""
    input_ids, token_type_ids, attention_mask, image_index, _ = batch
    projected = model.model.multi_modal_projector(states[image_index])  # (batch, tokens, text_hidden)
    scored = bank.target_length
    out = model(input_ids=input_ids, token_type_ids=token_type_ids, attention_mask=attention_mask,
                mm_encoder_outputs={"image": BaseModelOutputWithPooling(pooler_output=projected)},
                logits_to_keep=scored + 1)
    logits = out.logits[:, :scored]  # positions predicting the answer, then <end_of_turn>
    targets = input_ids[:, -scored:]
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
    correct = logits[:, 0].argmax(-1) == targets[:, 0]
    return loss, correct


def _shared_prefix_batch(pool: CasePool, bank: PromptBank, cfg: TrainConfig, rng: np.random.Generator):
    """Like _language_batch, but as one shared prefix plus right-padded per-question
    suffixes: (images (M,), suffix_ids (M*Q, S), suffix_lengths (M*Q,))."""
    input_ids, _, attention_mask, image_index, _ = _language_batch(pool, bank, cfg, rng)
    lengths = attention_mask.sum(1).tolist()  # (rows,): the left-padded rows' real lengths
    n = bank.prefix_length
    suffix, suffix_len = right_padded([ids[ids.shape[0] - length + n:] for ids, length in zip(input_ids, lengths)],
                                      bank.processor.tokenizer.pad_token_id)
    return image_index[::cfg.questions_per_image], suffix, suffix_len


def shared_prefix_language_loss(model, bank: PromptBank, states: torch.Tensor, batch,
                                questions_per_image: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The same loss as language_loss, computed with the image block run once per image:
    the prefix pass fills a KV cache that all of that image's question suffixes reuse
    (equal logits; a test compares the two)."""
    images, suffix, suffix_len = batch
    prefix_ids, prefix_types, _ = bank.split("Is there edema?", True)
    m, n = len(images), prefix_ids.shape[0]
    projected = model.model.multi_modal_projector(states[images])  # (images, tokens, text_hidden)
    prefix = model.model(input_ids=prefix_ids.expand(m, -1), token_type_ids=prefix_types.expand(m, -1),
                         attention_mask=torch.ones(m, n, dtype=torch.long), use_cache=True,
                         mm_encoder_outputs={"image": BaseModelOutputWithPooling(pooler_output=projected)})
    cache = prefix.cache
    cache.batch_repeat_interleave(questions_per_image)
    rows = suffix.shape[0]
    out = model(**suffix_pass_inputs(suffix, suffix_len, n, cache), token_type_ids=torch.zeros_like(suffix))
    scored = bank.target_length
    offsets = suffix_len[:, None] - scored - 1 + torch.arange(scored)[None]  # (rows, scored): predicting positions
    logits = out.logits[torch.arange(rows)[:, None], offsets]  # (rows, scored, vocab)
    targets = suffix[torch.arange(rows)[:, None], offsets + 1]
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
    return loss, logits[:, 0].argmax(-1) == targets[:, 0]


def train_language(model, pool: CasePool, states: torch.Tensor, bank: PromptBank, cfg: TrainConfig,
                   rng: np.random.Generator, log: Callable[[str], None],
                   progress: bool) -> list[tuple[int, float, float]]:
    model.model.vision_tower.requires_grad_(False)
    params = [p for n, p in model.named_parameters() if p.requires_grad and "vision_tower" not in n]
    opt, sched = _optimizer(params, cfg.language_lr, cfg, cfg.language_steps)
    curve = []
    model.train()
    for step in tqdm(range(cfg.language_steps), desc="stage 2: language", disable=not progress):
        batch = _shared_prefix_batch(pool, bank, cfg, rng)
        loss, correct = shared_prefix_language_loss(model, bank, states, batch, cfg.questions_per_image)
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        if step % cfg.log_every == 0 or step == cfg.language_steps - 1:
            accuracy = correct.float().mean().item()
            curve.append((step, loss.item(), accuracy))
            log(f"language step {step}: loss {loss.item():.4f}, answer accuracy {accuracy:.3f}")
    model.eval()
    model.model.vision_tower.requires_grad_(True)
    return curve


def train(model, processor, cfg: TrainConfig, *, log: Callable[[str], None] = print,
          progress: bool = True) -> TrainingLog:
    """Train `model` in place; returns the training curve."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    grid = int(math.isqrt(model.config.mm_tokens_per_image))
    size = model.config.vision_config.image_size
    seconds = {}
    start = time.perf_counter()
    pool = render_pool(cfg.pool_size, cfg.seed, size, grid, cfg.finding_rate, progress)
    seconds["render"] = time.perf_counter() - start
    vision_curve = train_vision(model, pool, cfg, rng, log, progress)
    seconds["vision"] = time.perf_counter() - start - seconds["render"]
    states = cache_vision_states(model, pool)
    bank = PromptBank(processor)
    language_curve = train_language(model, pool, states, bank, cfg, rng, log, progress)
    seconds["language"] = time.perf_counter() - start - seconds["render"] - seconds["vision"]
    seconds["total"] = time.perf_counter() - start
    return TrainingLog(vision=vision_curve, language=language_curve, seconds=seconds)


def save_training_log(training_log: TrainingLog, cfg: TrainConfig, out_dir: Path) -> None:
    payload = {"config": asdict(cfg), **json.loads(training_log.to_json())}
    (Path(out_dir) / "training_log.json").write_text(json.dumps(payload, indent=1))
