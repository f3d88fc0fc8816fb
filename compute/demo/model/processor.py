"""The demo model's processor: MedGemma's image preprocessing at the demo's image size."""

from __future__ import annotations

from transformers import Gemma3Processor, PreTrainedTokenizerBase
from transformers.image_utils import PILImageResampling

# Imported directly: `Gemma3ImageProcessor` needs torchvision, which the project keeps out.
from transformers.models.gemma3.image_processing_pil_gemma3 import Gemma3ImageProcessorPil

from compute.demo.model.chat_template import GEMMA_CHAT_TEMPLATE
from compute.demo.model.config import DemoModelConfig


def image_processor(cfg: DemoModelConfig) -> Gemma3ImageProcessorPil:
    return Gemma3ImageProcessorPil(
        size={"height": cfg.image_size, "width": cfg.image_size},
        resample=PILImageResampling.BILINEAR,
        do_resize=True,
        do_rescale=True,
        rescale_factor=1 / 255,
        do_normalize=True,
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
        do_convert_rgb=True,
    )


def build_processor(cfg: DemoModelConfig, tokenizer: PreTrainedTokenizerBase) -> Gemma3Processor:
    return Gemma3Processor(
        image_processor=image_processor(cfg),
        tokenizer=tokenizer,
        chat_template=GEMMA_CHAT_TEMPLATE,
        image_seq_length=cfg.mm_tokens_per_image,
    )
