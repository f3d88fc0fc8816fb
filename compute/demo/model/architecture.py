"""The transformers configuration of the demo model: Gemma3Config from a DemoModelConfig."""

from __future__ import annotations

from transformers import Gemma3Config, Gemma3TextConfig, GenerationConfig, PreTrainedTokenizerBase, SiglipVisionConfig

from compute.demo.model.config import DemoModelConfig
from compute.demo.model.tokenizer import END_OF_TURN


def vision_config(cfg: DemoModelConfig) -> SiglipVisionConfig:
    return SiglipVisionConfig(
        hidden_size=cfg.vision_hidden_size,
        intermediate_size=cfg.vision_intermediate_size,
        num_hidden_layers=cfg.vision_num_layers,
        num_attention_heads=cfg.vision_num_heads,
        image_size=cfg.image_size,
        patch_size=cfg.patch_size,
        num_channels=3,
        layer_norm_eps=1e-6,
        vision_use_head=False,  # Gemma 3 uses the patch states, not SigLIP's pooled head
    )


def text_config(cfg: DemoModelConfig, tokenizer: PreTrainedTokenizerBase) -> Gemma3TextConfig:
    full_rope = {"rope_type": "default", "rope_theta": cfg.rope_theta_full}
    if cfg.rope_linear_factor != 1.0:
        full_rope = {**full_rope, "rope_type": "linear", "factor": cfg.rope_linear_factor}
    return Gemma3TextConfig(
        vocab_size=len(tokenizer),
        hidden_size=cfg.text_hidden_size,
        intermediate_size=cfg.text_intermediate_size,
        num_hidden_layers=cfg.num_layers,
        layer_types=list(cfg.layer_types),
        num_attention_heads=cfg.num_attention_heads,
        num_key_value_heads=cfg.num_key_value_heads,
        head_dim=cfg.head_dim,
        query_pre_attn_scalar=cfg.query_pre_attn_scalar,
        sliding_window=cfg.sliding_window,
        max_position_embeddings=cfg.max_position_embeddings,
        rope_parameters={
            "full_attention": full_rope,
            "sliding_attention": {"rope_type": "default", "rope_theta": cfg.rope_theta_sliding},
        },
        rms_norm_eps=cfg.rms_norm_eps,
        initializer_range=cfg.initializer_range,
        hidden_activation="gelu_pytorch_tanh",
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=True,
    )


def gemma3_config(cfg: DemoModelConfig, tokenizer: PreTrainedTokenizerBase) -> Gemma3Config:
    return Gemma3Config(
        text_config=text_config(cfg, tokenizer),
        vision_config=vision_config(cfg),
        mm_tokens_per_image=cfg.mm_tokens_per_image,
        image_token_index=tokenizer.image_token_id,
        boi_token_index=tokenizer.boi_token_id,
        eoi_token_index=tokenizer.eoi_token_id,
        initializer_range=cfg.initializer_range,
        tie_word_embeddings=True,
    )


def generation_config(tokenizer: PreTrainedTokenizerBase) -> GenerationConfig:
    """Greedy decoding that stops at `<eos>` or `<end_of_turn>`, as MedGemma's does ([1, 106] there)."""
    return GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=[tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids(END_OF_TURN)],
        pad_token_id=tokenizer.pad_token_id,
        do_sample=False,
    )
