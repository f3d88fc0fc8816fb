"""Maps for a batch of prompts, by the requested method, falling back along
attention -> Grad-CAM -> activation norm, with the method used and the reasons stored."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from compute.config import PromptConfig
from compute.maps.capture import IMPLEMENTATION, capture_rows
from compute.maps.grid import to_grid
from compute.maps.layers import decoder_layer_types, parse_layers
from compute.model.layout import ImageLayout, single_grid
from compute.maps.positions import pad_rows, query_positions
from compute.maps.sinks import record_norms, sink_mass, sink_tokens
from compute.maps.spec import MapResult, MapSpec
from compute.model.prompts import conversation_images
from compute.model.yes_no import yes_no_log_odds
from compute.maps.vision import activation_norm, gradcam, pool_to
from vocabulary import Heads, Method, Query


class MapUnavailableError(RuntimeError):
    """A method could not produce a map for this model or input (the chain moves on).
    `output` keeps the generation that ran before the failure, so it is not repeated."""

    def __init__(self, message: str, output: object = None):
        super().__init__(message)
        self.output = output


@dataclass
class Prompts:
    """A tokenized batch with what map extraction needs besides the model inputs."""

    inputs: dict  # model inputs (left-padded), offsets removed
    offsets: torch.Tensor  # (batch, seq, 2) character offsets into `texts`
    texts: list[str]  # each prompt as the tokenizer saw it (image placeholders expanded)
    questions: list[str]
    image_sizes: list[tuple[int, int]]  # (height, width) of each sequence's image as given
    images: list = field(default_factory=list)  # each sequence's image (PIL), for methods that ask again


def attention_grids(weights: dict[int, torch.Tensor], valid: torch.Tensor, image_positions: torch.Tensor,
                    heads: str, rows: str) -> dict[int, list[torch.Tensor]]:
    """Per layer and sequence, the (image_tokens,) attention onto that sequence's image: heads
    combined by `heads` (mean or max), query rows by `rows` (mean or max, over the valid rows
    only). Sequences may hold different numbers of image tokens (dynamic resolution).
    weights[layer]: (batch, heads, R, kv); valid: (batch, R); image_positions: (batch, kv) bool."""
    out = {}
    for layer, w in weights.items():
        per_row = w.amax(dim=1) if heads == Heads.MAX else w.mean(dim=1)  # (batch, R, kv); all: the mean
        mask = valid[:, :, None].to(per_row.device)
        if rows == "mean":
            pooled = (per_row * mask).sum(1) / mask.sum(1)  # (batch, kv)
        else:
            pooled = per_row.masked_fill(~mask, float("-inf")).amax(1)
        where = image_positions.to(pooled.device)
        out[layer] = [pooled[b][where[b]] for b in range(len(pooled))]
    return out


def make_maps(session, prompts: Prompts, spec: MapSpec,
              generate: Callable[[], object]) -> tuple[object, list[MapResult]]:
    """Run `generate` (the batch's one generation call) and make the maps `spec` asks for.
    A sequence whose map fails (say, a Grad-CAM that ReLU zeroes everywhere) moves on to the
    next method of the chain on its own. Returns (generate's output, one MapResult per sequence)."""
    chain = [spec.method] if not spec.fallback else _chain_from(spec.method)
    batch = len(prompts.questions)
    results: list[MapResult | None] = [None] * batch
    reasons: list[list[str]] = [[] for _ in range(batch)]
    output = None
    for method in chain:
        pending = [b for b in range(batch) if results[b] is None]
        if not pending:
            break
        try:
            sinks, heads, details = None, None, [None] * batch
            if method in (Method.ATTENTION, Method.TOKEN):
                output, grids, layers, positions, layouts, (sinks, heads) = _attention(session, prompts, spec, method,
                                                                                      generate)
            elif method in METHOD_MODULES:
                output = output if output is not None else generate()
                grids, layers, positions, layouts, details = _method(session, prompts, spec, method)
            else:
                output = output if output is not None else generate()
                grids, layers, positions, layouts = _vision(session, prompts, spec, method)
        except MapUnavailableError as error:
            output = output if output is not None else error.output
            for b in pending:
                reasons[b].append(f"{method}: {error}")
            continue
        usable = _usable(grids)
        for b in pending:
            if not usable[b]:
                reasons[b].append(f"{method}: the map is all zero or not finite")
                continue
            try:
                results[b] = map_result(spec, method, grids, b, layouts[b], layers, positions[b], reasons[b],
                                        details=details[b],
                                        sinks={k: v[b] for k, v in sinks.items()} if sinks else None,
                                        heads={k: v[b] for k, v in heads.items()} if heads else None)
            except ValueError as error:  # --strip-border wider than this image's grid (grids vary by family and image)
                reasons[b].append(f"{method}: {error}")
    failed = [b for b in range(batch) if results[b] is None]
    if failed:
        raise MapUnavailableError(f"no method produced a map for sequences {failed}: "
                                  + " | ".join("; ".join(reasons[b]) for b in failed))
    return output if output is not None else generate(), results


def head_grids(weights: dict[int, torch.Tensor], valid: torch.Tensor,
               image_positions: torch.Tensor) -> dict[int, list[torch.Tensor]]:
    """Per layer and sequence, (heads, image_tokens): each head's attention onto the image, the
    valid query rows averaged. weights[layer]: (batch, heads, R, kv)."""
    out = {}
    for layer, w in weights.items():
        mask = valid[:, None, :, None].to(w.device)
        pooled = (w * mask).sum(2) / mask.sum(2)  # (batch, heads, kv)
        where = image_positions.to(pooled.device)
        out[layer] = [pooled[b][:, where[b]] for b in range(len(pooled))]
    return out


def _usable(grids: dict[int, list[torch.Tensor]]) -> list[bool]:
    """Per sequence: every layer's map is finite with positive mass."""
    per_layer = list(grids.values())
    return [all(bool(torch.isfinite(g[b]).all() and g[b].sum() > 0) for g in per_layer)
            for b in range(len(per_layer[0]))]


def _chain_from(method: str) -> list[str]:
    order = [Method.ATTENTION, Method.GRADCAM, Method.ACTIVATION]
    if method not in order:  # token and the methods of compute.maps.methods fall back on Grad-CAM
        return [method, Method.GRADCAM, Method.ACTIVATION]
    return order[order.index(method):]


METHOD_MODULES = {Method.RELEVANCY: "relevancy", Method.RELATIVE: "relative", Method.KNOCKOUT: "knockout",
                  Method.LOGIT_LENS: "logit_lens"}


def _method(session, prompts: Prompts, spec: MapSpec, method: str):
    """A method of compute.maps.methods: its weights over each sequence's image tokens."""
    module = importlib.import_module(f"compute.maps.methods.{METHOD_MODULES[method]}")
    try:
        made = module.weights(session, prompts, spec)
        counts = [len(w) for w in next(iter(made.weights.values()))]
        layouts = session.family.layouts(prompts.inputs, session.processor, counts, prompts.image_sizes)
    except ValueError as error:
        raise MapUnavailableError(str(error)) from None
    positions = [[prompts.inputs["input_ids"].shape[1] - 1] for _ in prompts.questions]
    details = made.details or [{} for _ in prompts.questions]
    if method == Method.KNOCKOUT:  # no region supports the answer: a finding in itself, kept with its figures
        for key, per_sequence in made.weights.items():
            for b, w in enumerate(per_sequence):
                if torch.isfinite(w).all() and w.sum() == 0:
                    per_sequence[b] = torch.ones_like(w)
                    details[b] = {**details[b], "no_supporting_region": True}
    return made.weights, made.layers, positions, layouts, details


def _attention(session, prompts: Prompts, spec: MapSpec, method: str, generate):
    model = session.model
    layers = parse_layers(spec.layers, decoder_layer_types(model.config))
    input_ids = prompts.inputs["input_ids"]
    image_positions = session.family.image_positions(input_ids, model.config)  # (batch, seq)
    if method == "token":
        kind, rows_pool = "term", "max"  # a multi-token term: max over its tokens
    else:
        kind, rows_pool = spec.query, "mean"
    generate = _with_sink_norms(model, spec, layers, input_ids.shape[1], generate, norms := {})
    if kind == "generated":
        output = generate()
        try:
            weights, valid, positions, image_positions = _generated_rows(session, prompts, output, layers)
        except MapUnavailableError as error:
            raise MapUnavailableError(str(error), output) from None
    else:
        positions = query_positions(kind, prompts.offsets, prompts.texts, prompts.questions, spec.term)
        rows, valid = pad_rows(positions)
        with capture_rows(model, layers, rows, input_ids.shape[1]) as capture:
            output = generate()
        weights = capture.weights
    missing = [layer for layer in layers if layer not in weights]
    if missing:
        raise MapUnavailableError(f"{type(model).__name__} did not route layers {missing} through transformers' "
                                  "AttentionInterface, so their attention could not be read", output)
    try:
        grids = attention_grids(weights, valid, image_positions, spec.heads, rows_pool)
        counts = [len(g) for g in next(iter(grids.values()))]
        layouts = session.family.layouts(prompts.inputs, session.processor, counts, prompts.image_sizes)
        prompt_positions = image_positions[:, :input_ids.shape[1]]
        sinks = _sinks(norms, prompt_positions, spec.sink_factor) if spec.sink_factor else None
        heads = head_grids(weights, valid, image_positions) if spec.heads == Heads.ALL else None
    except (MapUnavailableError, ValueError) as error:
        raise MapUnavailableError(str(error), output) from None  # keep the generation for the next method
    return output, grids, layers, positions, layouts, (sinks, heads)


def _with_sink_norms(model, spec: MapSpec, layers, prompt_length: int, generate, norms: dict):
    """`generate`, recording the hidden-state norms entering `layers` into `norms` when sinks are looked for."""
    if not spec.sink_factor:
        return generate

    def recorded():
        with record_norms(model, layers, prompt_length) as found:
            out = generate()
        norms.update(found)
        return out
    return recorded


def _sinks(norms: dict[int, torch.Tensor], image_positions: torch.Tensor,
           factor: float) -> dict[int, list[torch.Tensor]]:
    """Per layer and sequence, which of the sequence's image tokens are sinks."""
    if not norms:
        raise MapUnavailableError("the decoder layers' hidden states could not be read to find attention sinks")
    return {layer: [sink_tokens(n[b][image_positions[b]], factor) for b in range(len(n))] for layer, n in norms.items()}


def _generated_rows(session, prompts: Prompts, output, layers):
    """Attention rows of the generated answer tokens, from one more forward pass over
    prompt + generated tokens: the rows at the reply tokens' own positions (each sees itself
    and everything before it), up to the first end-of-sequence token."""
    sequences = output.sequences  # (batch, prompt + generated)
    prompt_length = prompts.inputs["input_ids"].shape[1]
    eos = session.model.generation_config.eos_token_id
    stop = set(eos if isinstance(eos, list) else [eos]) | {session.processor.tokenizer.pad_token_id}
    positions, keep = [], torch.ones_like(sequences, dtype=torch.long)
    keep[:, :prompt_length] = prompts.inputs["attention_mask"]
    for b, row in enumerate(sequences[:, prompt_length:].tolist()):
        n = next((j for j, token in enumerate(row) if token in stop), len(row))
        keep[b, prompt_length + n:] = 0
        positions.append([prompt_length + j for j in range(n)])
    if not all(positions):
        empty = [b for b, p in enumerate(positions) if not p]
        raise MapUnavailableError(f"sequences {empty} generated no answer tokens to read attention from")
    inputs = dict(prompts.inputs)
    extra = sequences.shape[1] - prompt_length
    inputs["input_ids"] = sequences
    inputs["attention_mask"] = keep
    for key in ("token_type_ids", "mm_token_type_ids"):  # the reply is text, type 0
        if key in inputs:
            inputs[key] = torch.nn.functional.pad(inputs[key], (0, extra))
    rows, valid = pad_rows(positions)
    with torch.no_grad(), capture_rows(session.model, layers, rows, sequences.shape[1]) as capture:
        session.model(**inputs)
    return capture.weights, valid, positions, session.family.image_positions(sequences, session.model.config)


def _vision(session, prompts: Prompts, spec: MapSpec, method: str):
    model, family, inputs = session.model, session.family, prompts.inputs
    counts = family.image_positions(inputs["input_ids"], model.config).sum(1).tolist()
    token_layouts = family.layouts(inputs, session.processor, counts, prompts.image_sizes)
    if method == Method.GRADCAM:
        layer, patches = gradcam(family, model, inputs, _gradcam_target(session, spec.gradcam_token), token_layouts)
    else:
        layer, patches = activation_norm(family, model, inputs, token_layouts)
    full = method == Method.GRADCAM and spec.gradcam_full_resolution
    grids = [p if full else pool_to(p, t.grid) for p, t in zip(patches, token_layouts)]
    layouts = [single_grid(g.numel(), t.size, tuple(g.shape)) for g, t in zip(grids, token_layouts)]
    positions = [[inputs["input_ids"].shape[1] - 1] for _ in prompts.questions]
    return {layer: [g.flatten() for g in grids]}, (layer,), positions, layouts


def _gradcam_target(session, token: str | None) -> Callable[[torch.Tensor], torch.Tensor]:
    """(batch, seq, vocab) logits -> (batch,): the yes-minus-no logit at the answer position
    (log-sum-exp over the yes and no spellings), or one chosen token's logit."""
    if token is None:
        return lambda logits: yes_no_log_odds(logits[:, -1], session.yes_ids, session.no_ids)
    ids = session.processor.tokenizer.encode(token, add_special_tokens=False)
    if len(ids) != 1:
        raise ValueError(f"Grad-CAM target {token!r} is {len(ids)} tokens for this tokenizer; give a single token")
    return lambda logits: logits[:, -1, ids[0]].float()


def map_result(spec: MapSpec, method: str, grids: dict[int, list[torch.Tensor]], b: int, layout: ImageLayout,
               layers: tuple[int, ...], positions: list[int], reasons: list[str],
               implementation: str | None = None, details: dict | None = None,
               sinks: dict[int, torch.Tensor] | None = None, heads: dict[int, torch.Tensor] | None = None) -> MapResult:
    """Sequence `b`'s grids as a MapResult with its provenance. grids[layer][b]: (image_tokens,),
    laid over the image by `layout`; `sinks[layer]`: which of those tokens are attention sinks;
    `heads[layer]`: (heads, image_tokens), each head's weights (--heads all)."""
    shape = layout.grid
    attention = method in ATTENTION_LIKE
    strip = spec.strip_border if attention else 0
    details = dict(details or {})
    tokens = {layer: g[b].float().cpu() for layer, g in grids.items()}
    if sinks:
        tokens, details = _apply_sinks(tokens, sinks, layout, spec, details)
    flat = {layer: layout.to_map(w.numpy()).ravel() for layer, w in tokens.items()}
    maps = {layer: to_grid(w, shape, strip) for layer, w in flat.items()}
    unstripped = {layer: to_grid(w, shape) for layer, w in flat.items()} if strip else None
    head_maps = None
    if heads:
        head_maps = {layer: np.stack([to_grid(layout.to_map(h.float().cpu().numpy()).ravel(), shape) for h in per_head])
                     for layer, per_head in heads.items()}
    return MapResult(
        maps=maps, mean=np.mean(list(maps.values()), axis=0), unstripped=unstripped, grid_shape=shape, method=method,
        requested_method=spec.method, fallback_reason="; ".join(reasons) or None, layers=layers,
        heads=spec.heads if attention else "n/a", query=_query_name(spec, method), query_positions=positions,
        term=spec.term if method == "token" else None, strip_border=strip,
        attn_implementation=implementation or _implementation(method),
        image_size=layout.size, details=details, head_maps=head_maps)


ATTENTION_LIKE = (Method.ATTENTION, Method.TOKEN, Method.RELATIVE)  # maps of attention rows: heads, border stripping
IMPLEMENTATIONS = {Method.GRADCAM: "autograd", Method.RELEVANCY: "eager+autograd", Method.KNOCKOUT: "blocked attention",
                   Method.LOGIT_LENS: "hidden states"}


def _apply_sinks(tokens: dict[int, torch.Tensor], sinks: dict[int, torch.Tensor], layout: ImageLayout,
                 spec: MapSpec, details: dict) -> tuple[dict[int, torch.Tensor], dict]:
    """The raw maps' mass on their layer's sinks (mean over layers), the sink cells over the image,
    and, with mask_sinks, the maps with their sinks zeroed."""
    masses = [sink_mass(w, sinks[layer]) for layer, w in tokens.items()]
    anywhere = torch.stack([sinks[layer] for layer in tokens]).any(0)
    cells = np.argwhere(layout.to_map(anywhere.double().numpy()) > 0).tolist()
    details = {**details, "sink_factor": spec.sink_factor, "sinks_masked": spec.mask_sinks,
               "sink_tokens": anywhere.nonzero().flatten().tolist(), "sink_cells": cells,
               "sink_mass": float(np.mean(masses))}
    if spec.mask_sinks:
        tokens = {layer: w.masked_fill(sinks[layer], 0.0) for layer, w in tokens.items()}
    return tokens, details


def _implementation(method: str) -> str:
    return IMPLEMENTATION if method in ATTENTION_LIKE else IMPLEMENTATIONS.get(method, "none")


def _query_name(spec: MapSpec, method: str) -> str:
    if method == "token":
        return "term"
    if method in (Method.ACTIVATION, Method.LOGIT_LENS):
        return "none"  # read from the image tokens themselves
    if method != Method.ATTENTION:
        return Query.ANSWER
    return spec.query


def map_prompts(session, conversations, inputs, questions: Sequence[str]) -> Prompts:
    """Take the offsets out of `inputs` (the model does not accept them) and pair them with the
    prompt texts they index into."""
    offsets = inputs.pop("offset_mapping")
    images = [img for c in conversations for img in conversation_images(c)[:1]]
    sizes = [(img.height, img.width) for img in images]
    return Prompts(dict(inputs), offsets.cpu(), session.rendered_prompts(conversations), list(questions), sizes,
                   images)


@torch.no_grad()  # not inference_mode: Grad-CAM re-enables autograd on these inputs
def map_batch(session, images: Sequence, questions: Sequence[str], spec: MapSpec, *,
              prompt: PromptConfig | None = None) -> list[MapResult]:
    """Maps only: one forward pass over the prompts (no generation) plus what the method needs.
    A query of generated tokens needs a reply: answer with compute.answering instead."""
    if spec.query == "generated":
        raise ValueError("maps from the generated reply need the reply: use compute.answering.BatchedGenerate")
    with session.lock:
        conversations = session.conversations(images, questions, prompt)
        inputs = session.tokenize(conversations, offsets=True)
        prompts = map_prompts(session, conversations, inputs, questions)
        return make_maps(session, prompts, spec, lambda: session.model(**prompts.inputs))[1]
