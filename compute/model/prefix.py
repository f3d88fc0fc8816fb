"""Prefix/suffix primitives: every prompt about one image shares its tokens up to the end of the
image block, so that prefix runs once and the question suffixes run as one right-padded batch
against its KV cache, positions continuing after it. The engine, the knockout maps and the demo model's trainer
both build their suffix passes from these."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def common_prefix_length(ids: Sequence[torch.Tensor]) -> int:
    """Length of the longest common prefix of the token id sequences, found from the ids."""
    n = min(len(i) for i in ids)
    for other in ids[1:]:
        differ = (ids[0][:n] != other[:n]).nonzero()
        if len(differ):
            n = int(differ[0])
    return n


def right_padded(suffixes: Sequence[torch.Tensor], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The suffixes as one right-padded batch: (ids (rows, width), lengths (rows,))."""
    lengths = torch.tensor([len(s) for s in suffixes])  # (rows,)
    batch = torch.full((len(suffixes), int(lengths.max())), pad_id, dtype=torch.long)
    for row, ids in enumerate(suffixes):
        batch[row, : len(ids)] = ids
    return batch, lengths


def suffix_pass_inputs(suffix: torch.Tensor, lengths: torch.Tensor, prefix_length: int, cache,
                       device: torch.device | str = "cpu", position_ids: torch.Tensor | None = None) -> dict:
    """Keyword arguments for the model's forward pass over right-padded `suffix` (rows, width)
    against `cache`, which holds `prefix_length` positions per row: the attention mask covers
    prefix plus suffix, and positions continue after the prefix (or are `position_ids`, (width,)
    or (..., width) on families whose positions are not the sequence index, as Qwen2.5-VL's)."""
    rows, width = suffix.shape
    suffix_mask = (torch.arange(width)[None] < lengths[:, None]).long()  # (rows, width)
    cache_positions = prefix_length + torch.arange(width)  # (width,)
    positions = cache_positions if position_ids is None else position_ids.cpu()
    mask = torch.cat([torch.ones(rows, prefix_length, dtype=torch.long), suffix_mask], 1)
    return dict(input_ids=suffix.to(device), attention_mask=mask.to(device),
                position_ids=positions[..., None, :].expand(*positions.shape[:-1], rows, width).to(device),
                cache_position=cache_positions.to(device), cache=cache)
