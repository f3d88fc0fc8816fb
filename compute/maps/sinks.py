"""Attention sinks (Kang et al., ICLR 2025): a few image tokens whose hidden states have a norm
far above the others' absorb attention whatever the text asks. A token is a sink in a layer when
the norm of its hidden state entering that layer exceeds `factor` times the median norm of the
sequence's image tokens there (MapSpec.sink_factor; 0 turns detection off; Kang et al. report
massive activations tens of times the typical norm, so 5-10 is a reasonable start). The map keeps
its sinks unless MapSpec.mask_sinks zeroes them before renormalising; either way the raw map's
mass on them is reported (`sink_mass`) and their cells are listed in the map's details.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn

from compute.maps.decoder import decoder_stack


def decoder_layers(model) -> nn.ModuleList:
    return decoder_stack(model)[0]


@contextmanager
def record_norms(model, layers: Sequence[int], prompt_length: int) -> Iterator[dict[int, torch.Tensor]]:
    """Within the block, norms[layer] is (batch, seq): the L2 norm of the hidden state entering each
    chosen decoder layer, from the pass over the whole prompt (not later decoding steps)."""
    norms: dict[int, torch.Tensor] = {}
    modules = decoder_layers(model)
    handles = []
    for layer in layers:
        def hook(_module, args, kwargs, layer=layer):
            hidden = args[0] if args else kwargs.get("hidden_states")
            if hidden is not None and hidden.shape[1] == prompt_length and layer not in norms:
                norms[layer] = hidden.detach().float().norm(dim=-1)
        handles.append(modules[layer].register_forward_pre_hook(hook, with_kwargs=True))
    try:
        yield norms
    finally:
        for handle in handles:
            handle.remove()


def sink_tokens(norms: torch.Tensor, factor: float) -> torch.Tensor:
    """(image_tokens,) bool: the tokens whose norm exceeds `factor` x the median norm."""
    return norms > factor * norms.median()


def sink_mass(weights: torch.Tensor, sinks: torch.Tensor) -> float:
    """Share of the map's mass on the sink tokens."""
    total = weights.sum()
    return float(weights[sinks].sum() / total) if total > 0 else float("nan")
