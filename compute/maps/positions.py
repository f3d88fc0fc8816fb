"""Which prompt positions attention is read from: the answer position, the question's
tokens, or the tokens of a named term in the question (found through the tokenizer's
character offsets, so a multi-token term maps to all of its tokens)."""

from __future__ import annotations

import torch


class TermNotFoundError(ValueError):
    pass


def char_span(text: str, needle: str, *, what: str, within: tuple[int, int] | None = None) -> tuple[int, int]:
    """(start, end) of the last case-insensitive occurrence of `needle` in `text[within]`."""
    lo, hi = within or (0, len(text))
    at = text.lower().rfind(needle.lower(), lo, hi)
    if not needle.strip() or at < 0:
        raise TermNotFoundError(f"{what} {needle!r} does not occur in {text[lo:hi]!r}")
    return at, at + len(needle)


def tokens_in_span(offsets: torch.Tensor, span: tuple[int, int]) -> list[int]:
    """Positions of the tokens whose character offsets overlap `span`; offsets: (seq, 2)."""
    start, end = span
    hits = (offsets[:, 0] < end) & (offsets[:, 1] > start) & (offsets[:, 1] > offsets[:, 0])
    return hits.nonzero().flatten().tolist()


def query_positions(kind: str, offsets: torch.Tensor, texts: list[str], questions: list[str],
                    term: str | None = None) -> list[list[int]]:
    """Per sequence, the prompt positions to read attention from.

    kind: "answer" (the last prompt position, which predicts yes/no; prompts are left-padded),
    "question" (every token of the question) or "term" (the tokens of `term` within the question)."""
    seq = offsets.shape[1]
    if kind == "answer":
        return [[seq - 1] for _ in texts]
    out = []
    for row, (text, question) in enumerate(zip(texts, questions)):
        span = char_span(text, question.strip(), what="question")
        if kind == "term":
            if not term:
                raise TermNotFoundError("query 'term' needs the term to look for (term=...)")
            span = char_span(text, term.strip(), what="term", within=span)
        elif kind != "question":
            raise ValueError(f"unknown query kind {kind!r}; expected answer, question or term")
        positions = tokens_in_span(offsets[row], span)
        if not positions:
            raise TermNotFoundError(f"no tokens cover {text[span[0]:span[1]]!r} in the tokenized prompt")
        out.append(positions)
    return out


def pad_rows(positions: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """(rows (batch, R) long, valid (batch, R) bool), padding each list with its last entry."""
    width = max(len(p) for p in positions)
    rows = torch.tensor([p + [p[-1]] * (width - len(p)) for p in positions])
    valid = torch.tensor([[True] * len(p) + [False] * (width - len(p)) for p in positions])
    return rows, valid
