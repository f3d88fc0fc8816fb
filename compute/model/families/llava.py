"""LLaVA-1.5 and the converted LLaVA-Med checkpoints (`llava`): one `<image>` expanded to 576
tokens, a fixed 24x24 grid (CLIP-L/14 at 336 px), features from the vision layer before the
last without its CLS token, causal attention throughout, and a `USER: ... ASSISTANT:` template.
llava-hf's processor crops the image's centre square: the grid then covers that square."""

from __future__ import annotations

from compute.model.families.base import Family


class Llava(Family):
    name = "llava"
    model_types = ("llava",)
    leading_vision_tokens = 1  # CLS

    def feeding_layer(self, model) -> int:
        layer = getattr(model.config, "vision_feature_layer", -1)
        if not isinstance(layer, int):
            raise LookupError(f"vision_feature_layer {layer!r}: Grad-CAM needs the one layer the features come from")
        # hidden_states[k] is the output of encoder layer k - 1 (index 0 is the embeddings)
        return layer if layer < 0 else layer - 1


FAMILY = Llava()
