"""The original study's protocol, kept only as the reference the engine is measured against:
per variant, one `generate` and one more eager forward with `output_attentions`, from which
the answer-position attention is read (about 6 s per question on an A100 in the original)."""

from __future__ import annotations

import torch

from compute.answering import Group


@torch.no_grad()
def straightforward(session, groups: list[Group]) -> tuple[list[str], list[torch.Tensor]]:
    """The original protocol, one variant at a time, with eager attention throughout.
    Returns the replies and each variant's answer-position attention (layers, image_tokens)."""
    model, previous = session.model, session.model.config.get_text_config()._attn_implementation
    model.set_attn_implementation("eager")
    replies, maps = [], []
    try:
        for group in groups:
            for question in group.questions:
                inputs = session.encode([group.image], [question])
                out = model.generate(**inputs, max_new_tokens=session.decode.max_new_tokens, do_sample=False)
                replies.append(session.processor.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True))
                attentions = model(**inputs, output_attentions=True).attentions
                image = session.family.image_positions(inputs["input_ids"], model.config)[0]
                maps.append(torch.stack([a[0, :, -1, image].mean(0) for a in attentions]))
    finally:
        model.set_attn_implementation(previous)
    return replies, maps
