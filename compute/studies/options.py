"""Options checked against the model's configuration before its weights load."""

from __future__ import annotations

from compute.answering.choose import AnswererChoiceError, strategy_for
from compute.config import RunConfig
from compute.maps import grid_shape, parse_layers
from compute.maps.layers import decoder_layer_types
from compute.model.families import UnsupportedModelError, family_for
from compute.studies.maps import attention_spec


class OptionError(ValueError):
    """An option does not fit the model (checked from its configuration before the weights load)."""


def check_options(config: RunConfig, model_config) -> None:
    """OptionError (or LayerSpecError) for options the model cannot take: an answerer that cannot
    make the maps asked for, layers it does not have, more border rings than its image grid has, a reply longer than its context.
    `model_config` None (not available without loading): only the answerer's fit to the maps."""
    family = None
    if model_config is not None:
        try:
            family = family_for(model_config)
        except UnsupportedModelError as exc:
            raise OptionError(str(exc)) from None
    try:
        strategy_for(config.answering, attention_spec(config.maps), family)
    except AnswererChoiceError as exc:
        raise OptionError(str(exc)) from None
    if model_config is None:
        return
    text_config = model_config.get_text_config()
    if config.maps.enabled:
        parse_layers(config.maps.layers, decoder_layer_types(model_config))
        tokens = getattr(model_config, "mm_tokens_per_image", None)
        if tokens and config.maps.strip_border:
            rows, cols = grid_shape(int(tokens))
            if 2 * config.maps.strip_border >= min(rows, cols):
                raise OptionError(f"--strip-border {config.maps.strip_border}: the model's image-token grid is "
                                  f"{rows}x{cols}, so at most {(min(rows, cols) - 1) // 2} rings can be stripped")
    context = getattr(text_config, "max_position_embeddings", None)
    if context and config.decode.max_new_tokens >= context:
        raise OptionError(f"--max-new-tokens {config.decode.max_new_tokens}: the model's context is {context:,} "
                          "tokens, prompt included; ask for fewer")
