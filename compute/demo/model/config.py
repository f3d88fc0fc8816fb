"""Sizes of the demo model: a Gemma-3 / MedGemma architecture shrunk to ~2M parameters."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class DemoModelConfig:
    seed: int = 0  # torch seed for the random weights

    # Tokenizer
    max_vocab_size: int = 4096  # BPE cap; the corpus saturates well below it (~900 tokens)

    # Image and vision tower (SigLIP)
    image_size: int = 224  # px, square; MedGemma: 896
    patch_size: int = 14  # px; 224 / 14 = 16 x 16 patches (MedGemma: 64 x 64)
    mm_tokens_per_image: int = 256  # soft tokens per image: a 16 x 16 grid, as on MedGemma
    vision_hidden_size: int = 128  # MedGemma: 1152
    vision_intermediate_size: int = 512  # MedGemma: 4304
    vision_num_layers: int = 2  # MedGemma: 27
    vision_num_heads: int = 4  # MedGemma: 16

    # Language model (Gemma-3 decoder)
    text_hidden_size: int = 128  # MedGemma: 2560
    text_intermediate_size: int = 512  # MedGemma: 10240
    # One entry per decoder layer. Both kinds must appear; transformers would make a
    # decoder with < 6 layers all-sliding if this were left out.
    layer_types: tuple[str, ...] = ("sliding_attention", "sliding_attention", "full_attention", "sliding_attention")
    num_attention_heads: int = 4  # MedGemma: 8
    num_key_value_heads: int = 2  # grouped-query attention, as on MedGemma (8 / 4)
    head_dim: int = 32  # MedGemma: 256; heads * head_dim need not equal the hidden size
    query_pre_attn_scalar: int = 32  # attention scale 1/sqrt(this); Gemma-3 4B uses head_dim
    sliding_window: int = 512  # tokens; longer than any prompt, as MedGemma's 1024 is
    max_position_embeddings: int = 1024
    rope_theta_full: float = 1_000_000.0  # RoPE base of full-attention layers (Gemma-3 "global")
    rope_theta_sliding: float = 10_000.0  # RoPE base of sliding layers (Gemma-3 "local")
    rope_linear_factor: float = 8.0  # linear RoPE scaling on full-attention layers, as on MedGemma; 1.0 = none
    rms_norm_eps: float = 1e-6
    initializer_range: float = 0.02  # std of the random weights

    # transformers zero-initialises the image projection, which leaves a random model blind
    # to the image; draw it from N(0, this) instead. 0.0 keeps the library's zeros.
    projector_init_std: float = 0.02

    def __post_init__(self) -> None:
        kinds = set(self.layer_types)
        if not kinds <= {"sliding_attention", "full_attention"} or len(kinds) != 2:
            raise ValueError(f"layer_types must mix sliding_attention and full_attention, got {self.layer_types}")
        if self.image_size % self.patch_size:
            raise ValueError(f"image_size {self.image_size} is not a multiple of patch_size {self.patch_size}")
        side = math.isqrt(self.mm_tokens_per_image)
        if side * side != self.mm_tokens_per_image or self.patches_per_side % side:
            raise ValueError(
                f"mm_tokens_per_image {self.mm_tokens_per_image} must be a square whose side divides "
                f"the {self.patches_per_side} patches per side"
            )
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError(
                f"num_attention_heads {self.num_attention_heads} is not a multiple of "
                f"num_key_value_heads {self.num_key_value_heads}"
            )

    @property
    def num_layers(self) -> int:
        return len(self.layer_types)

    @property
    def patches_per_side(self) -> int:
        return self.image_size // self.patch_size

    @property
    def tokens_per_side(self) -> int:
        return math.isqrt(self.mm_tokens_per_image)

    @property
    def pooling_kernel(self) -> int:
        """Side of the average-pooling window from patches to soft tokens (MedGemma: 4)."""
        return self.patches_per_side // self.tokens_per_side
