"""Attention knockout: a causal map. The attention FROM the answer position (the last prompt
position; with `knockout_question`, also from the question's tokens) TO one region of image
tokens is blocked in a window of decoder layers (`spec.layers`), and the change in the answer's
log-odds log(P(yes)/P(no)) is measured ("Cross-modal Information Flow in Multimodal LLMs",
arXiv 2411.18620; Neo et al., arXiv 2410.07149; Basu et al., arXiv 2406.04236):

    Δ_region = (log-odds intact - log-odds with the region blocked) * sign(log-odds intact),

positive where the region supports the answer the model gives. Regions are blocks of
`knockout_block` x `knockout_block` tokens of each tile of the sequence's layout (smaller at a
tile's edge). A token's weight is max(Δ_region, 0) / (tokens in its region), so a region's mass
is its supporting effect; all zero (no region supports the answer) is a valid result.

Two figures go with the map: `image_reliance`, the same Δ with every image token blocked from
the same query positions (how much the answer rests on the image at all, against the language
prior), and `blank_image_reliance`, that Δ on a blank (uniform gray 128) image of the same size
with the same question (the control; signed toward the answer the model gives on the blank).
Blocked only from the answer (and question) positions, the image still reaches the answer through
the text positions between the image and the answer (the chat template's tokens), so these two
understate the reliance; `image_reliance_all_text` and `blank_image_reliance_all_text` block every
image token from every position after the image block, which cuts the image off in the window's
layers: with the whole decoder as the window, `prior_log_odds` (= `blank_prior_log_odds`) is the
language prior. (Text inside a tiled image block, such as Idefics3's tile markers, is not blocked.)

The blocking is an additive mask: a registered attention function (the pattern of
compute.maps.capture) sets the entries (blocked query row, blocked key column) of the layer's
float mask to the dtype's minimum in the window's layers, per batch row, and then runs the
implementation the model was loaded with; it is switched on for the decoder only.

Cost in passes, per sequence with R regions (R + 6 rows: the image intact, R regions, every
image token, the image cut off; the blank intact, every image token, the blank cut off):
- families whose image tokens do not attend to the question (all but PaliGemma): blocking edges
  from positions after the image block leaves the image block's states unchanged, so the engine's
  shared prefix applies: 1 prefix pass over the prompt up to the end of the image block (2 rows:
  the image and its blank control; the vision tower runs on both), then the R + 6 rows over the
  tokens after the image block only, as ceil((R + 6) / max_rows) suffix passes against copies of
  the prefix's KV cache. The demo model's 16x16 grid with block 4: R = 16, so 1 prefix pass of
  2 rows x 261 tokens and 1 suffix pass of 22 rows x about 20 tokens (the question's length):
  on CPU about 0.06 s, twice one plain forward pass (0.03 s) and a fifth of the same rows run
  as full forward passes (0.3 s).
- PaliGemma (`image_sees_question`: the image tokens attend to the answer position and the
  question, so blocking changes the image block's states too), or a prompt whose question comes
  before the image: R + 6 rows of full forward passes (vision tower included), in
  ceil((R + 6) / max_full_rows) passes.
details["passes"] says which path ran, with its passes and rows.
"""

from __future__ import annotations

import contextvars
import copy
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from PIL import Image
from transformers import AttentionInterface
from transformers.masking_utils import AttentionMaskInterface, eager_mask

from compute.maps.capture import _base_forward, decoder_implementation
from compute.maps.layers import decoder_layer_types, parse_layers
from compute.maps.methods import MethodOutput
from compute.model.prefix import suffix_pass_inputs
from compute.maps.positions import query_positions
from compute.model.layout import ImageLayout
from compute.model.yes_no import yes_no_log_odds

IMPLEMENTATION = "mgv_knockout"
BLANK_GRAY = 128
MAX_ROWS = 32  # suffix rows per pass
MAX_FULL_ROWS = 8  # rows per full forward pass (each carries its own image)


@dataclass
class Blocking:
    """Which attention edges to block: in `layers`, per batch row, from the query positions
    `queries[row]` to the key positions `keys[row]`. Positions are absolute over the whole sequence
    (prefix included), so `queries` and `keys` span every position the pass's last query sees."""

    layers: frozenset[int]
    queries: torch.Tensor  # (rows, positions) bool
    keys: torch.Tensor  # (rows, positions) bool
    base: str = "sdpa"  # the implementation the model was loaded with, which computes the layer's output

    def apply(self, module, query: torch.Tensor, key: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """The layer's additive (or bool) mask with the blocked entries masked: (rows, 1, q, kv)."""
        q_len, kv_len, total = query.shape[2], key.shape[2], self.keys.shape[1]
        if q_len > total or kv_len > total:
            raise ValueError(f"a pass of {q_len} queries over {kv_len} keys; the blocking covers {total} positions")
        # queries are the last q_len positions; keys the last kv_len (a sliding-window cache drops the oldest)
        queries = self.queries[:, total - q_len:].to(query.device)
        keys = self.keys[:, total - kv_len:].to(query.device)
        block = queries[:, None, :, None] & keys[:, None, None, :]  # (rows, 1, q, kv)
        if mask is None:  # no bias needed: all visible, or causal where the module is
            visible = torch.ones(q_len, kv_len, dtype=torch.bool, device=query.device)
            if getattr(module, "is_causal", True):
                at_q = torch.arange(total - q_len, total, device=query.device)
                at_kv = torch.arange(total - kv_len, total, device=query.device)
                visible = at_kv[None, :] <= at_q[:, None]
            mask = torch.where(visible, 0.0, torch.finfo(query.dtype).min).to(query.dtype)[None, None]
        mask = mask[..., :kv_len]
        if mask.dtype == torch.bool:  # True: attend
            return mask & ~block
        return torch.where(block, torch.finfo(mask.dtype).min, mask)


_ACTIVE: contextvars.ContextVar[Blocking | None] = contextvars.ContextVar("mgv_knockout", default=None)


def _attention_with_knockout(module, query, key, value, attention_mask, **kwargs):
    blocking = _ACTIVE.get()
    if blocking is not None and getattr(module, "layer_idx", None) in blocking.layers:
        attention_mask = blocking.apply(module, query, key, attention_mask)
    return _base_forward(module, blocking.base if blocking else "sdpa")(module, query, key, value, attention_mask,
                                                                         **kwargs)


AttentionInterface.register(IMPLEMENTATION, _attention_with_knockout)
AttentionMaskInterface.register(IMPLEMENTATION, eager_mask)  # additive float masks, as eager builds them


@contextmanager
def blocked(model, layers: Sequence[int], queries: torch.Tensor, keys: torch.Tensor) -> Iterator[Blocking]:
    """Within the block, forward passes of `model` block the attention from each row's `queries`
    to its `keys` in the decoder `layers` (see Blocking)."""
    previous = model.config.get_text_config()._attn_implementation
    blocking = Blocking(frozenset(layers), queries, keys, base=previous)
    token = _ACTIVE.set(blocking)
    try:
        with decoder_implementation(model, IMPLEMENTATION):
            yield blocking
    finally:
        _ACTIVE.reset(token)


def regions(layout: ImageLayout, block: int) -> list[torch.Tensor]:
    """Blocks of `block` x `block` tokens of each tile (smaller at a tile's edge), as indices into
    the sequence's image tokens (sequence order, tile by tile, each tile row-major)."""
    out, start = [], 0
    for tile in layout.tiles:
        grid = torch.arange(tile.n_tokens).reshape(tile.rows, tile.cols) + start
        for top in range(0, tile.rows, block):
            for left in range(0, tile.cols, block):
                out.append(grid[top:top + block, left:left + block].flatten())
        start += tile.n_tokens
    return out


def blank_like(image: Image.Image) -> Image.Image:
    """A uniform gray (128) image of the same size: the control."""
    return Image.new("RGB", image.size, (BLANK_GRAY,) * 3)


@dataclass(frozen=True)
class _Row:
    """One variant: which image (0: the sequence's, 1: the blank), and the edges it blocks."""

    image: int
    queries: torch.Tensor  # (positions,) bool
    keys: torch.Tensor  # (positions,) bool


@torch.no_grad()
def weights(session, prompts, spec, *, max_rows: int = MAX_ROWS, max_full_rows: int = MAX_FULL_ROWS,
            shared_prefix: bool | None = None) -> MethodOutput:
    """The knockout map of every sequence of `prompts` (compute.maps.extract.Prompts), keyed by
    the window's last layer. `shared_prefix`: None picks the prefix-cache path where it is exact;
    False forces full forward passes (a test compares the two)."""
    with session.lock:  # the decoder's attention implementation is switched meanwhile
        return _weights(session, prompts, spec, max_rows, max_full_rows, shared_prefix)


def _weights(session, prompts, spec, max_rows: int, max_full_rows: int, shared_prefix: bool | None) -> MethodOutput:
    model, family = session.model, session.family
    window = parse_layers(spec.layers, decoder_layer_types(model.config))
    ids_all, mask_all = prompts.inputs["input_ids"], prompts.inputs["attention_mask"]
    batch, length = ids_all.shape
    if len(prompts.images) != batch:
        raise ValueError(f"knockout needs each sequence's image (prompts.images): {len(prompts.images)} for {batch}")
    counts = family.image_positions(ids_all, model.config).sum(1).tolist()
    layouts = family.layouts(prompts.inputs, session.processor, counts, prompts.image_sizes)
    questions = (query_positions("question", prompts.offsets, prompts.texts, prompts.questions)
                 if spec.knockout_question else None)
    maps, details = [], []
    for b in range(batch):
        keep = mask_all[b].bool().cpu()
        pad = length - int(keep.sum())
        if not keep[pad:].all():
            raise ValueError(f"sequence {b}: the attention mask is not left padding")
        ids = ids_all[b, pad:].cpu()
        image_at = family.image_positions(ids[None], model.config)[0].nonzero().flatten()  # (image tokens,)
        if len(image_at) != layouts[b].n_tokens:
            raise ValueError(f"sequence {b}: {len(image_at)} image tokens for a layout of {layouts[b].n_tokens}")
        n = int(image_at.max()) + 1  # the prefix: up to the end of the image block
        queries = _mask(len(ids), [len(ids) - 1])  # the answer position
        if questions is not None:
            queries |= _mask(len(ids), [p - pad for p in questions[b]])
        after = _mask(len(ids), range(n, len(ids)))  # every position after the image block
        parts = regions(layouts[b], spec.knockout_block)
        every, none = _mask(len(ids), image_at), _mask(len(ids), [])
        # per image (0: the sequence's, 1: the blank): intact, [regions,] every image token, the image cut off
        rows = ([_Row(0, queries, none)] + [_Row(0, queries, _mask(len(ids), image_at[idx])) for idx in parts]
                + [_Row(0, queries, every), _Row(0, after, every)]
                + [_Row(1, queries, none), _Row(1, queries, every), _Row(1, after, every)])
        image = prompts.images[b]
        pixels = [_image_inputs(session, image), _image_inputs(session, blank_like(image))]
        exact = not family.image_sees_question and n < len(ids) and not queries[:n].any()
        if shared_prefix if shared_prefix is not None else exact:
            if not exact:
                raise ValueError(f"sequence {b}: the prefix cache would change under the blocking")
            odds, passes = _prefix_shared(session, ids, n, pixels, rows, window, max_rows)
        else:
            text = {k: v[b:b + 1, pad:] for k, v in prompts.inputs.items()
                    if isinstance(v, torch.Tensor) and k not in pixels[0] and v.shape[:2] == (batch, length)}
            why = ("the image attends to the question" if family.image_sees_question else
                   "asked for" if exact else "the question or answer lies inside the image block's prefix")
            odds, passes = _full(session, text, pixels, rows, window, max_full_rows, why)
        intact, *blocked_odds, all_image, prior, blank_intact, blank_all, blank_prior = odds.tolist()
        sign, blank_sign = _sign(intact), _sign(blank_intact)
        deltas = [(intact - o) * sign for o in blocked_odds]
        w = torch.zeros(len(image_at))
        for idx, delta in zip(parts, deltas):
            w[idx] = max(delta, 0.0) / len(idx)
        maps.append(w)
        details.append({
            "log_odds": intact, "image_reliance": (intact - all_image) * sign,
            "blank_log_odds": blank_intact, "blank_image_reliance": (blank_intact - blank_all) * blank_sign,
            "regions": len(parts), "block": spec.knockout_block, "layers": list(window),
            "query": "answer+question" if questions is not None else "answer",
            "deltas": deltas, "region_log_odds": blocked_odds, "all_image_log_odds": all_image,
            "blank_all_image_log_odds": blank_all,
            # every image token blocked from every position after the image block: the image cut off
            "prior_log_odds": prior, "image_reliance_all_text": (intact - prior) * sign,
            "blank_prior_log_odds": blank_prior,
            "blank_image_reliance_all_text": (blank_intact - blank_prior) * blank_sign,
            "passes": passes,
        })
    return MethodOutput({window[-1]: maps}, window, details)


def _sign(x: float) -> float:
    return math.copysign(1.0, x) if x else 0.0


def _mask(total: int, positions) -> torch.Tensor:
    out = torch.zeros(total, dtype=torch.bool)
    out[torch.as_tensor(list(positions) if not isinstance(positions, torch.Tensor) else positions,
                        dtype=torch.long)] = True
    return out


def _image_inputs(session, image: Image.Image) -> dict[str, torch.Tensor]:
    """The image processor's tensors for one image, as the engine makes them."""
    out = session.processor.image_processor(images=[image], return_tensors="pt", **session.image_kwargs)
    out = {k: v.to(session.device) for k, v in out.items() if isinstance(v, torch.Tensor)}
    out["pixel_values"] = out["pixel_values"].to(session.dtype)
    return out


def _odds(session, logits: torch.Tensor) -> torch.Tensor:
    return yes_no_log_odds(logits[:, -1], session.yes_ids, session.no_ids).cpu()


def _stack(chunk: Sequence[_Row]) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.stack([r.queries for r in chunk]), torch.stack([r.keys for r in chunk])


def _prefix_shared(session, ids: torch.Tensor, n: int, pixels: list[dict], rows: Sequence[_Row],
                   window: tuple[int, ...], max_rows: int) -> tuple[torch.Tensor, str]:
    """One prefix pass over ids[:n] for the image and the blank (2 rows), then every row's suffix
    against a copy of its image's cache, the blocking applied in the suffix pass only."""

    model, family, device = session.model, session.family, session.device
    prefix_ids = ids[:n][None].expand(len(pixels), -1).to(device)
    image_inputs = {k: torch.cat([p[k] for p in pixels]) for k in pixels[0]}
    prefix_inputs = dict(input_ids=prefix_ids, attention_mask=torch.ones_like(prefix_ids), **image_inputs,
                         **family.prefix_inputs(prefix_ids, model.config))
    prefix = model(**prefix_inputs, use_cache=True, logits_to_keep=1)
    width = len(ids) - n
    positions = family.suffix_positions(model, prefix_inputs, n, width)
    odds, passes = [], 0
    for lo in range(0, len(rows), max_rows):
        chunk = rows[lo:lo + max_rows]
        suffix = ids[n:][None].expand(len(chunk), -1)
        cache = copy.deepcopy(prefix.cache)
        cache.reorder_cache(torch.tensor([r.image for r in chunk], device=device))
        inputs = suffix_pass_inputs(suffix, torch.full((len(chunk),), width), n, cache, device,
                                    position_ids=positions[..., :width])
        inputs["logits_to_keep"] = 1
        with blocked(model, window, *_stack(chunk)):
            odds.append(_odds(session, model(**inputs).logits))
        passes += 1
    return torch.cat(odds), (f"prefix cache: 1 prefix pass ({len(pixels)} rows x {n} tokens), {passes} suffix "
                             f"pass{'es' if passes > 1 else ''} ({len(rows)} rows x {width} tokens)")


def _full(session, text: dict, pixels: list[dict], rows: Sequence[_Row], window: tuple[int, ...], max_rows: int,
          why: str) -> tuple[torch.Tensor, str]:
    """Full forward passes (vision tower included), each row with its own image and blocking."""
    model, device = session.model, session.device
    odds, passes = [], 0
    for lo in range(0, len(rows), max_rows):
        chunk = rows[lo:lo + max_rows]
        inputs = {k: v.expand(len(chunk), -1).to(device) for k, v in text.items()}
        inputs.update({k: torch.cat([pixels[r.image][k] for r in chunk]) for k in pixels[0]})
        with blocked(model, window, *_stack(chunk)):
            odds.append(_odds(session, model(**inputs, logits_to_keep=1).logits))
        passes += 1
    length = next(iter(text.values())).shape[1]
    return torch.cat(odds), (f"full forward: {passes} pass{'es' if passes > 1 else ''} ({len(rows)} rows x {length} "
                             f"tokens; {why})")
