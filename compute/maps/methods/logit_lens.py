"""The logit lens on image tokens (Jiang et al., ICLR 2025, arXiv 2410.02762): the probability of a term's
tokens when each image token's hidden state at decoder layer L is read out as if it were the last layer's.

For every chosen decoder layer L (`spec.layers`, as attention's), the OUTPUT of decoder layer L at each image
position (recorded by forward hooks on the decoder's layers) goes through the language model's final norm and
the LM head (`model.get_output_embeddings()`); the final logit soft-capping is applied where the decoder's
configuration has one (`final_logit_softcapping`: Gemma-2 and PaliGemma 2); then a softmax over the whole
vocabulary. The map is, per image token, the summed probability of the term's distinct token ids.

The term's token ids (`term_token_ids`): the ids of `tokenizer.encode(" " + term)` followed by those of
`tokenizer.encode(term)`, both without special tokens, `term` stripped of surrounding whitespace, duplicates
dropped, in that order; a token that decodes to whitespace only (a SentencePiece "▁" split off before the
word) is left out. A multi-token term sums every piece's probability ("effusion" -> "eff", "usion" and
" effusion" on the demo tokenizer), so its map reads "the state points at any piece of the term".

Cost: 1 forward pass (no gradients; hooks keep only the image positions of the chosen layers), plus, per
chosen layer, the image tokens through the norm and the LM head (image tokens x vocabulary logits, in chunks).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

import torch
from torch import nn

from compute.maps.decoder import decoder_stack
from compute.maps.layers import decoder_layer_types, parse_layers
from compute.maps.methods import MethodOutput

if TYPE_CHECKING:
    from compute.maps.extract import Prompts
    from compute.maps.spec import MapSpec

_LOGIT_ELEMENTS = 1 << 24  # logits held at once: image tokens per chunk x vocabulary


def final_softcap(model) -> float | None:
    """The final logit soft-capping of the decoder's configuration (or the model's), None where it has none."""
    cap = getattr(model.config.get_text_config(), "final_logit_softcapping", None)
    if cap is None:
        cap = getattr(model.config, "final_logit_softcapping", None)
    return float(cap) if cap else None


def term_token_ids(tokenizer, term: str) -> list[int]:
    """The distinct token ids of " term" and of "term" (see the module's docstring)."""
    term = term.strip()
    ids: list[int] = []
    for text in (" " + term, term):
        for i in tokenizer.encode(text, add_special_tokens=False):
            if i not in ids and tokenizer.decode([i]).strip():
                ids.append(i)
    return ids


@contextmanager
def record_layers(layers: nn.ModuleList, chosen: Sequence[int], where: torch.Tensor) -> Iterator[dict]:
    """Within the block, store[l] is decoder layer l's output at the positions `where` (batch, seq) bool,
    (image tokens of every sequence in order, hidden), for each l in `chosen`. Hooks are removed on exit."""
    store: dict[int, torch.Tensor] = {}

    def hook_for(index: int):
        def hook(_module, _inputs, output):
            hidden = output[0] if isinstance(output, tuple) else output
            if hidden.shape[:2] == where.shape:  # the prompt pass (not a decode step)
                store[index] = hidden[where.to(hidden.device)].detach()
        return hook

    handles = [layers[i].register_forward_hook(hook_for(i)) for i in chosen]
    try:
        yield store
    finally:
        for handle in handles:
            handle.remove()


@torch.no_grad()
def term_probability(hidden: torch.Tensor, norm: nn.Module, head: nn.Module, ids: Sequence[int],
                     softcap: float | None) -> torch.Tensor:
    """(tokens, hidden) decoder states -> (tokens,) float32: softmax(head(norm(h)))[ids].sum()."""
    chunk = max(1, _LOGIT_ELEMENTS // head.weight.shape[0])
    index = torch.tensor(list(ids), device=head.weight.device)
    out = []
    for start in range(0, len(hidden), chunk):
        logits = head(norm(hidden[start:start + chunk].to(head.weight.device))).float()
        if softcap is not None:
            logits = torch.tanh(logits / softcap) * softcap
        log_p = logits[:, index] - logits.logsumexp(-1, keepdim=True)
        out.append(log_p.exp().sum(-1))
    return torch.cat(out) if out else hidden.new_zeros(0, dtype=torch.float32)


def weights(session, prompts: Prompts, spec: MapSpec) -> MethodOutput:
    term = (spec.term or "").strip()
    if not term:
        raise ValueError("method 'logit_lens' needs term=..., the word whose probability is mapped over the image "
                         "tokens (e.g. term='effusion')")
    model = session.model
    ids = term_token_ids(session.processor.tokenizer, term)
    if not ids:
        raise ValueError(f"term {term!r} has no token of its own for this tokenizer")
    chosen = parse_layers(spec.layers, decoder_layer_types(model.config))
    layers, norm = decoder_stack(model)
    head = model.get_output_embeddings()
    input_ids = prompts.inputs["input_ids"]
    where = session.family.image_positions(input_ids, model.config)  # (batch, seq)
    with torch.no_grad(), record_layers(layers, chosen, where) as store:
        model(**prompts.inputs, logits_to_keep=1)
    missing = [layer for layer in chosen if layer not in store]
    if missing:
        from compute.maps.extract import MapUnavailableError  # extract may import this module
        raise MapUnavailableError(f"decoder layers {missing} did not run on the prompt")
    counts = where.sum(1).tolist()
    softcap = final_softcap(model)
    out = {}
    for layer in chosen:
        p = term_probability(store[layer], norm, head, ids, softcap).cpu()
        out[layer] = list(torch.split(p, counts))
    details = [{"term": term, "term_token_ids": list(ids)} for _ in counts]
    return MethodOutput(weights=out, layers=chosen, details=details)
