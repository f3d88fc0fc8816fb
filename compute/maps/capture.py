"""Read decoder self-attention rows without materialising every layer's full matrix.

A custom attention function is registered with transformers' AttentionInterface. It runs
the normal sdpa kernel for the layer's output and, for the chosen layers only, also
computes softmax(q Kᵀ · scale + mask) for the chosen query rows: exactly what eager
attention computes for those rows (a test compares the two). It is switched on for the
decoder only, inside a context manager that restores the model's implementation.

Gemma-3 has no cross-attention: these are decoder self-attention rows from text positions,
read over the image-token positions afterwards.
"""

from __future__ import annotations

import contextvars
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, eager_mask

IMPLEMENTATION = "mgv_row_capture"


@dataclass
class RowCapture:
    """What to capture and, after the forward pass, what was captured."""

    layers: tuple[int, ...]
    rows: torch.Tensor  # (batch, R) long: query positions per sequence (pad with any valid index)
    prompt_length: int  # only the pass whose query length equals this is captured (not decode steps)
    base: str = "sdpa"  # the implementation that computes the layer's output, as the model was loaded
    weights: dict[int, torch.Tensor] = field(default_factory=dict)  # layer -> (batch, heads, R, kv) float32

    def observe(self, module, query: torch.Tensor, key: torch.Tensor, attention_mask: torch.Tensor | None,
                scaling: float, softcap: float | None) -> None:
        layer = getattr(module, "layer_idx", None)
        if layer not in self.layers or layer in self.weights or query.shape[2] != self.prompt_length:
            return
        batch, heads, _, dim = query.shape  # (batch, heads, q, head_dim)
        rows = self.rows.to(query.device)
        picked = query.gather(2, rows[:, None, :, None].expand(batch, heads, rows.shape[1], dim))  # (batch, heads, R, d)
        groups = heads // key.shape[1]
        keys = key.repeat_interleave(groups, dim=1)  # (batch, heads, kv, d), as repeat_kv does
        logits = torch.matmul(picked.float(), keys.float().transpose(2, 3)) * scaling  # (batch, heads, R, kv)
        if softcap is not None:
            logits = torch.tanh(logits / softcap) * softcap
        if attention_mask is not None:  # (batch, 1, q, kv) additive
            mask = attention_mask[:, :, :, : keys.shape[2]]
            mask = mask.gather(2, rows[:, None, :, None].expand(batch, mask.shape[1], rows.shape[1], mask.shape[3]))
            logits = logits + mask.float()
        self.weights[layer] = torch.softmax(logits, dim=-1).detach()


_ACTIVE: contextvars.ContextVar[RowCapture | None] = contextvars.ContextVar("mgv_row_capture", default=None)


def _attention_with_capture(module, query, key, value, attention_mask, **kwargs):
    capture = _ACTIVE.get()
    if capture is not None:
        capture.observe(module, query, key, attention_mask, kwargs.get("scaling") or module.head_dim ** -0.5,
                        kwargs.get("softcap"))
    return _base_forward(module, capture.base if capture else "sdpa")(module, query, key, value, attention_mask,
                                                                       **kwargs)


def _base_forward(module, name: str):
    """The attention function the layer ran before capture was switched on: the model's own
    eager function (Gemma-2's, with logit soft-capping, say) or a registered one such as sdpa."""
    if name == "eager":
        return sys.modules[type(module).__module__].eager_attention_forward
    if name in (None, "sdpa", IMPLEMENTATION) or name not in AttentionInterface._global_mapping:
        return sdpa_attention_forward
    return AttentionInterface._global_mapping[name]


AttentionInterface.register(IMPLEMENTATION, _attention_with_capture)
AttentionMaskInterface.register(IMPLEMENTATION, eager_mask)  # additive float masks, as eager builds them


def text_config_key(model) -> str:
    """The sub-config name of the decoder in a multimodal config ("text_config" on Gemma-3)."""
    for key in getattr(model.config, "sub_configs", {}):
        if getattr(model.config, key, None) is model.config.get_text_config():
            return key
    raise ValueError(f"{type(model).__name__}: cannot find the decoder's sub-config to capture its attention")


@contextmanager
def decoder_implementation(model, name: str) -> Iterator[str]:
    """Within the block the decoder (only) runs attention implementation `name`; yields the one it
    had, which is restored on exit."""
    key = text_config_key(model)
    previous = model.config.get_text_config()._attn_implementation
    if previous == name:
        yield previous
        return
    model.set_attn_implementation({key: name})
    try:
        yield previous
    finally:
        model.set_attn_implementation({key: previous})


@contextmanager
def capture_rows(model, layers: Sequence[int], rows: torch.Tensor, prompt_length: int) -> Iterator[RowCapture]:
    """Within the block, forward passes of `model` record the attention of `rows` in `layers`."""
    previous = model.config.get_text_config()._attn_implementation
    capture = RowCapture(layers=tuple(layers), rows=rows, prompt_length=prompt_length, base=previous)
    token = _ACTIVE.set(capture)
    try:
        with decoder_implementation(model, IMPLEMENTATION):
            yield capture
    finally:
        _ACTIVE.reset(token)
