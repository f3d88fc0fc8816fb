"""Maps from the vision side: Grad-CAM on the vision layer that feeds the decoder, and that
layer's activation norm (the last resort of the fallback chain). The session's family says
which layer that is and how its output splits into each sequence's patches (compute.model.families)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn
from torch.nn import functional as F


@contextmanager
def record_output(module: nn.Module) -> Iterator[dict[str, torch.Tensor]]:
    """Within the block, `store["features"]` is the module's last output (the hidden states,
    without any attention weights it also returns). The hook is removed on exit."""
    store: dict[str, torch.Tensor] = {}

    def hook(_module, _inputs, output):
        store["features"] = output[0] if isinstance(output, tuple) else output

    handle = module.register_forward_hook(hook)
    try:
        yield store
    finally:
        handle.remove()


def pool_to(grid: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """Average-pool (H, W) patch values onto the (rows, columns) token grid."""
    return F.adaptive_avg_pool2d(grid[None, None], shape)[0, 0]


def gradcam(family, model, inputs: dict, target: Callable[[torch.Tensor], torch.Tensor],
            layouts: Sequence) -> tuple[int, list[torch.Tensor]]:
    """Grad-CAM over the family's vision layer: ReLU(sum_c w_c A_c), w_c the patch-averaged
    gradient of `target(logits)` (one scalar per sequence), averaged over all of a sequence's
    patches (every tile's); `layouts`: the sequences' image-token layouts. Returns (layer index, per
    sequence its (H, W) patch-grid CAM over the image, not normalised)."""
    index, layer = family.vision_layer(model)
    with torch.enable_grad(), record_output(layer) as store:
        logits = model(**inputs, logits_to_keep=1).logits  # (batch, 1, vocab)
        features = store["features"]
        (grads,) = torch.autograd.grad(target(logits).sum(), features)  # only this gradient, no parameter .grad
    cams = []
    for units, unit_grads, layout in zip(*family.vision_units(features.detach(), grads, layouts, inputs, model)):
        weights = torch.cat(unit_grads).float().mean(0)  # (hidden,)
        cam = F.relu(torch.cat([(u.float() * weights).sum(-1) for u in units]))  # (patches,)
        cams.append(torch.from_numpy(layout.to_map(cam.numpy())).float())
    return index, cams


@torch.no_grad()
def activation_norm(family, model, inputs: dict, layouts: Sequence) -> tuple[int, list[torch.Tensor]]:
    """L2 norm of the family's vision layer's output per patch: (layer index, per sequence (H, W))."""
    index, layer = family.vision_layer(model)
    with record_output(layer) as store:
        model(**inputs, logits_to_keep=1)
    features = store["features"]
    norms = []
    for units, _, layout in zip(*family.vision_units(features, features, layouts, inputs, model)):
        values = torch.cat([u.float().norm(dim=-1) for u in units]).numpy()
        norms.append(torch.from_numpy(layout.to_map(values)).float())
    return index, norms
