"""The language model's decoder layers and final norm, found by walking the modules (their paths
move between families and transformers versions)."""

from __future__ import annotations

from torch import nn

NORM_NAMES = ("norm", "final_layernorm", "final_norm", "ln_f")  # the final norm's name in the decoder


def decoder_stack(model) -> tuple[nn.ModuleList, nn.Module]:
    """(decoder layers, final norm) of the language model: `model.get_decoder()` where it has both (all six
    families in transformers 5.24), else the module whose `layers` ModuleList has as many layers as the text
    configuration says and which has a final norm, the one whose config is the text config first."""
    text = model.config.get_text_config()
    n = text.num_hidden_layers
    candidates = []
    try:
        candidates.append(model.get_decoder())
    except (AttributeError, NotImplementedError, ValueError):
        pass
    walked = [m for _, m in model.named_modules() if isinstance(getattr(m, "layers", None), nn.ModuleList)]
    candidates += sorted(walked, key=lambda m: getattr(m, "config", None) is not text)  # stable: text's first
    for module in candidates:
        layers = getattr(module, "layers", None)
        norms = [getattr(module, name) for name in NORM_NAMES if isinstance(getattr(module, name, None), nn.Module)]
        if isinstance(layers, nn.ModuleList) and len(layers) == n and norms:
            return layers, norms[0]
    raise LookupError(f"{type(model).__name__}: no decoder with {n} layers and a final norm "
                      f"({', '.join(NORM_NAMES)}) found")
