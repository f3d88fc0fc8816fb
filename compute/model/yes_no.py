"""P(yes) from the next-token distribution at the answer position."""

from __future__ import annotations

import torch

_FORMS = ("{w}", "{W}", "{U}", " {w}", " {W}", " {U}")


class YesNoTokenError(ValueError):
    pass


def yes_no_token_ids(tokenizer) -> tuple[list[int], list[int]]:
    """Ids of every spelling of "yes" and "no" ("Yes", " yes", "YES", ...) that the
    tokenizer encodes as one token. Multi-token spellings cannot start an answer in one
    step, so they are left out."""
    def ids_for(word: str) -> list[int]:
        found: list[int] = []
        for form in _FORMS:
            text = form.format(w=word, W=word.capitalize(), U=word.upper())
            ids = tokenizer.encode(text, add_special_tokens=False)
            if len(ids) == 1 and ids[0] not in found:
                found.append(ids[0])
        return found

    yes_ids, no_ids = ids_for("yes"), ids_for("no")
    if not yes_ids or not no_ids:
        raise YesNoTokenError("the tokenizer has no single-token spelling of "
                              f"{'yes' if not yes_ids else 'no'}; P(yes) cannot be read from one step")
    return yes_ids, no_ids


def yes_no_probabilities(logits: torch.Tensor, yes_ids: list[int], no_ids: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """logits: (batch, vocab) at the answer position.
    Returns (p_yes, yes_no_mass), each (batch,): p_yes = yes / (yes + no) and the
    yes-plus-no share of the whole distribution, which is low when the reply is not yes/no.
    p_yes is NaN where that share underflows to 0."""
    probs = torch.softmax(logits.float(), dim=-1)  # (batch, vocab)
    yes = probs[:, yes_ids].sum(dim=-1)
    no = probs[:, no_ids].sum(dim=-1)
    mass = yes + no
    return torch.where(mass > 0, yes / mass, torch.nan), mass  # NaN: no mass to split


def yes_no_log_odds(logits: torch.Tensor, yes_ids: list[int], no_ids: list[int]) -> torch.Tensor:
    """log(P(yes) / P(no)) from (batch, vocab) answer-position logits: (batch,). Unlike
    P(yes), it keeps its scale when the model is confident, and it has a gradient."""
    logits = logits.float()
    return logits[:, yes_ids].logsumexp(-1) - logits[:, no_ids].logsumexp(-1)
