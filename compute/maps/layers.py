"""Which decoder layers to read attention from: "2,7,12,17", "all", "last:4" or "full"."""

from __future__ import annotations

from collections.abc import Sequence


class LayerSpecError(ValueError):
    pass


def decoder_layer_types(config) -> list[str]:
    """One entry per decoder layer ("full_attention", "sliding_attention"); a decoder whose
    configuration does not list them (Llama, for one) attends fully in every layer."""
    text = config.get_text_config()
    return list(getattr(text, "layer_types", None) or ["full_attention"] * text.num_hidden_layers)


def parse_layers(spec: str | Sequence[int], layer_types: Sequence[str]) -> tuple[int, ...]:
    """Resolve a layer selection against the decoder's `layer_types` (one entry per layer).

    "all": every layer; "last:N": the last N; "full": the full-attention (global) layers;
    "2,7,12": those indices (negative ones count from the end). Returns sorted unique indices."""
    n = len(layer_types)
    if not isinstance(spec, str):
        chosen = [int(i) for i in spec]
    elif spec == "all":
        chosen = list(range(n))
    elif spec == "full":
        chosen = [i for i, kind in enumerate(layer_types) if kind == "full_attention"]
        if not chosen:
            raise LayerSpecError("layers 'full': this model has no full-attention layers")
    elif spec.startswith("last:"):
        count = spec.removeprefix("last:")
        if not count.isdigit() or not 1 <= int(count) <= n:
            raise LayerSpecError(f"layers {spec!r}: N in 'last:N' must be between 1 and {n} (the decoder's layers)")
        chosen = list(range(n - int(count), n))
    else:
        try:
            chosen = [int(part) for part in spec.split(",") if part.strip()]
        except ValueError:
            raise LayerSpecError(f"layers {spec!r}: expected comma-separated indices, 'all', 'last:N' or 'full'") from None
    if not chosen:
        raise LayerSpecError(f"layers {spec!r}: no layer selected")
    bad = [i for i in chosen if not -n <= i < n]
    if bad:
        raise LayerSpecError(f"layers {spec!r}: {bad} out of range; the decoder has {n} layers (0..{n - 1})")
    return tuple(sorted({i % n for i in chosen}))
