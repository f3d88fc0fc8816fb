"""Relative attention (Zhang et al., "MLLMs Know Where to Look", ICLR 2025): the answer
position's attention onto the image under the real question, divided by the attention the same
image gets under a generic, condition-free prompt (MapSpec.relative_prompt, "Describe the
image."). Patches that draw attention whatever is asked cancel out.

Cost: the question's own attention rows (read in the answer's pass where the caller has one; here
one forward) plus one forward under the generic prompt per distinct image, shared by all of that
image's questions in the batch.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace

import torch

from compute.maps.capture import capture_rows
from compute.maps.layers import decoder_layer_types, parse_layers
from compute.maps.methods import MethodOutput

EPSILON = 1e-6  # added to the generic attention, as a share of its mean, so that no patch divides by zero


def answer_attention(session, inputs: dict, layers: tuple[int, ...], heads: str) -> dict[int, list[torch.Tensor]]:
    """Per layer and sequence, the answer position's attention onto the image tokens, from one forward."""
    from compute.maps.extract import attention_grids  # here: extract dispatches to this module

    rows = torch.full((inputs["input_ids"].shape[0], 1), inputs["input_ids"].shape[1] - 1)
    with torch.no_grad(), capture_rows(session.model, layers, rows, inputs["input_ids"].shape[1]) as capture:
        session.model(**inputs, logits_to_keep=1)
    where = session.family.image_positions(inputs["input_ids"], session.model.config)
    return attention_grids(capture.weights, torch.ones_like(rows, dtype=torch.bool), where, heads, "mean")


def _content_key(image) -> str:
    return hashlib.sha1(image.tobytes() + repr((image.size, image.mode)).encode()).hexdigest()


def weights(session, prompts, spec) -> MethodOutput:
    layers = parse_layers(spec.layers, decoder_layer_types(session.model.config))
    asked = answer_attention(session, prompts.inputs, layers, spec.heads)
    keys = [_content_key(image) for image in prompts.images]
    distinct: dict[str, int] = {}  # image content -> its row in the generic batch
    images = []
    for key, image in zip(keys, prompts.images):
        if key not in distinct:
            distinct[key] = len(images)
            images.append(image)
    generic_prompt = replace(session.prompt, instruction="")  # the generic prompt asks for no yes/no answer
    generic_inputs = session.encode(images, [spec.relative_prompt] * len(images), prompt=generic_prompt)
    generic = answer_attention(session, generic_inputs, layers, spec.heads)
    out: dict[int, list[torch.Tensor]] = {}
    for layer in layers:
        out[layer] = []
        for b in range(len(prompts.images)):
            base = generic[layer][distinct[keys[b]]]
            mine = asked[layer][b]
            if base.shape != mine.shape:
                raise ValueError(f"the generic prompt's image has {base.numel()} tokens, the question's {mine.numel()}")
            out[layer].append(mine / (base + EPSILON * base.mean()))
    passes = 1 + len(images) / len(prompts.images)  # per item: its own, plus its share of the generic passes
    details = [{"generic_prompt": spec.relative_prompt, "epsilon": EPSILON, "forward_passes": passes}
               for _ in prompts.images]
    return MethodOutput(out, layers, details)
