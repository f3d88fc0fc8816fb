"""Relevancy propagation on the decoder (Chefer, Gur and Wolf, ICCV 2021, arXiv 2103.15679), the rule for
self-attention.

Per decoder layer l, Ā_l = mean over heads of (∇A_l ⊙ A_l)⁺, where A_l (batch, heads, seq, seq) is the layer's
attention probabilities and ∇A_l the gradient of the target with respect to them; R starts from the identity
and accumulates R ← R + Ā_l · R for l = 1..L, so R = (I + Ā_L) ··· (I + Ā_1). The map is the answer position's
row of R (the last prompt position) at the image-token columns.

Only that row is needed, so R is never formed: the row vector v = e_answerᵀ is propagated from the last layer
down, v ← v + v · Ā_l for l = L..1, which gives e_answerᵀ (I + Ā_L) ··· (I + Ā_1) in O(L · seq²) per sequence
instead of the O(L · seq³) of the full product.

Target (one scalar per sequence, at the answer position): the yes-minus-no log-odds (log-sum-exp over the yes
and no spellings, as Grad-CAM's default), or `spec.gradcam_token`'s logit.

Left-padded positions get no relevance: Ā is zeroed on their rows and columns.

Cost: 1 forward pass with eager attention on every decoder layer and `output_attentions` (every layer's
(batch, heads, seq, seq) probabilities are held for the backward), plus 1 backward pass to those probabilities
only (no parameter gradients).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import torch

from compute.maps.capture import decoder_implementation
from compute.maps.methods import MethodOutput

if TYPE_CHECKING:
    from compute.maps.extract import Prompts
    from compute.maps.spec import MapSpec

RULE = "chefer2021"


@contextmanager
def eager_decoder(model) -> Iterator[None]:
    """Within the block the decoder (only) runs eager attention, which returns its probabilities with their
    autograd graph; the previous implementation is restored on exit."""
    with decoder_implementation(model, "eager"):
        yield


def answer_row(attentions, grads, valid: torch.Tensor) -> torch.Tensor:
    """e_lastᵀ (I + Ā_L) ··· (I + Ā_1) as a (batch, seq) float32 row, from each layer's attention
    probabilities and their gradients (batch, heads, seq, seq), layers in order; `valid`: (batch, seq) bool,
    False at padding."""
    keep = (valid[:, :, None] & valid[:, None, :]).float()
    row = torch.zeros(valid.shape, dtype=torch.float32, device=valid.device)
    row[:, -1] = 1.0
    for a, g in zip(reversed(attentions), reversed(grads)):
        bar = (g.float() * a.detach().float()).clamp(min=0).mean(1) * keep.to(a.device)  # (batch, seq, seq)
        row = row.to(a.device)
        row = row + torch.bmm(row[:, None, :], bar)[:, 0]
    return row


def weights(session, prompts: Prompts, spec: MapSpec) -> MethodOutput:
    from compute.maps.extract import MapUnavailableError, _gradcam_target  # extract may import this module
    model = session.model
    inputs = prompts.inputs
    input_ids = inputs["input_ids"]
    layers = model.config.get_text_config().num_hidden_layers
    target_of = _gradcam_target(session, spec.gradcam_token)  # ValueError: a token that is not one token
    with eager_decoder(model), torch.enable_grad():
        output = model(**inputs, output_attentions=True, logits_to_keep=1)
        attentions = output.attentions
        if attentions is None or len(attentions) != layers or any(a is None for a in attentions):
            raise MapUnavailableError(f"{type(model).__name__} returned no attention probabilities for each of its "
                                      f"{layers} decoder layers")
        if any(a.shape[-1] != input_ids.shape[1] for a in attentions):
            raise MapUnavailableError(f"{type(model).__name__}: attention is not over the {input_ids.shape[1]} "
                                      "prompt positions")
        if not all(a.requires_grad for a in attentions):
            raise MapUnavailableError("the attention probabilities have no gradient (are the model's weights "
                                      "frozen with requires_grad=False?)")
        target = target_of(output.logits)  # (batch,)
        grads = torch.autograd.grad(target.sum(), attentions)  # only these gradients, no parameter .grad
    mask = inputs.get("attention_mask")
    valid = torch.ones_like(input_ids, dtype=torch.bool) if mask is None else mask.bool()
    with torch.no_grad():
        row = answer_row(attentions, grads, valid.to(attentions[-1].device))
    where = session.family.image_positions(input_ids, model.config).to(row.device)
    per_sequence = [row[b][where[b]].detach().cpu() for b in range(len(row))]
    name = "yes-no log-odds" if spec.gradcam_token is None else spec.gradcam_token
    details = [{"target": name, "rule": RULE} for _ in per_sequence]
    return MethodOutput(weights={layers - 1: per_sequence}, layers=tuple(range(layers)), details=details)
