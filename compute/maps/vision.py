"""Maps from the vision side: Grad-CAM on the vision tower's last encoder layer, and the
activation norm of that layer (the last resort of the fallback chain)."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import nn
from torch.nn import functional as F


def vision_feature_layer(model) -> tuple[int, nn.Module]:
    """(index, module) of the vision tower's last encoder layer, found by walking the
    modules (transformers 4.57 and 5.x nest it differently)."""
    found = [(int(m.group(1)), module) for name, module in model.named_modules()
             if (m := re.fullmatch(r".*vision_tower.*encoder\.layers\.(\d+)", name))]
    if not found:
        raise LookupError(f"{type(model).__name__}: no vision_tower ... encoder.layers.N module to take features from")
    return max(found, key=lambda pair: pair[0])


@contextmanager
def record_output(module: nn.Module) -> Iterator[dict[str, torch.Tensor]]:
    """Within the block, `store["features"]` is the module's last output (batch, patches, hidden).
    The hook is removed on exit."""
    store: dict[str, torch.Tensor] = {}

    def hook(_module, _inputs, output):
        store["features"] = output[0] if isinstance(output, tuple) else output

    handle = module.register_forward_hook(hook)
    try:
        yield store
    finally:
        handle.remove()


def patch_grid(values: torch.Tensor) -> torch.Tensor:
    """(batch, patches) -> (batch, side, side); SigLIP patches are row-major and square."""
    side = math.isqrt(values.shape[1])
    if side * side != values.shape[1]:
        raise ValueError(f"{values.shape[1]} vision patches do not form a square grid")
    return values.reshape(values.shape[0], side, side)


def pool_to(grid: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """Average-pool (batch, H, W) patch values onto the (rows, columns) token grid."""
    return F.adaptive_avg_pool2d(grid[:, None], shape)[:, 0]


def gradcam(model, inputs: dict, target: Callable[[torch.Tensor], torch.Tensor]) -> tuple[int, torch.Tensor]:
    """Grad-CAM over the vision tower's last encoder layer: ReLU(sum_c w_c A_c) with w_c the
    patch-averaged gradient of `target(logits)` (one scalar per sequence). Returns
    (layer index, (batch, side, side) patch-grid CAM, not normalised)."""
    index, layer = vision_feature_layer(model)
    with torch.enable_grad(), record_output(layer) as store:
        logits = model(**inputs, logits_to_keep=1).logits  # (batch, 1, vocab)
        features = store["features"]  # (batch, patches, hidden)
        (grads,) = torch.autograd.grad(target(logits).sum(), features)  # only this gradient, no parameter .grad
    weights = grads.mean(dim=1, keepdim=True)  # (batch, 1, hidden)
    cam = F.relu((weights * features).sum(-1))  # (batch, patches)
    return index, patch_grid(cam.detach().float())


@torch.no_grad()
def activation_norm(model, inputs: dict) -> tuple[int, torch.Tensor]:
    """L2 norm of the last vision encoder layer's output per patch: (layer index, (batch, side, side))."""
    index, layer = vision_feature_layer(model)
    with record_output(layer) as store:
        model.model.get_image_features(pixel_values=inputs["pixel_values"]) if hasattr(model.model, "get_image_features") \
            else model(**inputs)
    return index, patch_grid(store["features"].float().norm(dim=-1))
