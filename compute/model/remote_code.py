"""Checkpoints that would run their own Python code, and model types no family supports: a
clear message before anything loads. Remote code never runs unless --trust-remote-code asks."""

from __future__ import annotations

import json
from pathlib import Path

# model_type -> what the model is and how to run it here
KNOWN_ELSEWHERE = {
    "llava_mistral": "LLaVA-Med v1.5 (its own repository's code)",
    "llava_llama": "a LLaVA repository's own model (LLaVA-Rad and the original LLaVA-Med use it)",
    "llava_qwen2": "HuatuoGPT-Vision (its own repository's code)",
    "chexagent": "CheXagent (remote code)",
}
CONVERTED = ("use a checkpoint converted to the llava-hf format (model_type \"llava\": config.json with "
             "\"architectures\": [\"LlavaForConditionalGeneration\"]; community conversions of LLaVA-Med and "
             "HuatuoGPT-Vision exist, usually named ...-hf), which runs as the llava family")


def read_config(folder: Path) -> dict | None:
    try:
        return json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def checkpoint_problem(config: dict, name: str, supported: list[str], trust_remote_code: bool) -> str | None:
    """Why this checkpoint's config.json cannot be run as it is, or None."""
    model_type = config.get("model_type")
    if not model_type:
        return (f"{name}: config.json has no model_type, so its model family cannot be told; is this the folder of "
                f"a vision-language checkpoint ({', '.join(supported)})?")
    if model_type not in supported:
        what = KNOWN_ELSEWHERE.get(model_type, f"model_type {model_type!r}")
        text = (f"{name}: {what} is not one of the supported model families ({', '.join(supported)}). To compare it, "
                f"{CONVERTED}.")
        if config.get("auto_map") and not trust_remote_code:
            text += (" Its repository ships its own Python code (auto_map), which is never run unless you pass "
                     "--trust-remote-code; even then its maps need a family adapter (see README, Models).")
        return text
    if config.get("auto_map") and not trust_remote_code:
        classes = ", ".join(sorted(config["auto_map"]))
        return (f"{name}: the checkpoint asks to run its own Python code ({classes} in auto_map), which is never run "
                f"silently. Read that code, then pass --trust-remote-code to allow it; or {CONVERTED}.")
    return None
