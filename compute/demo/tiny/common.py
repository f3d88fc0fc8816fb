"""What every tiny random-weight checkpoint shares: the project's tokenizer given a family's
special tokens, seeded weights, and a folder that loads through `load_model` like any checkpoint.

The tokenizer is the demo model's BPE vocabulary (committed in models/demo), so "yes" and "no"
are single tokens, as P(yes) needs; each family adds its own image and turn tokens to it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from tokenizers import AddedToken
from transformers import AutoTokenizer, GenerationConfig, PreTrainedTokenizerBase

DEMO_TOKENIZER = Path(__file__).resolve().parents[3] / "models" / "demo"
TINY_MARKER = "tiny_model.json"  # written beside the weights: which family, which seed, random weights


def family_tokenizer(named: dict[str, str], extra: tuple[str, ...] = ()) -> PreTrainedTokenizerBase:
    """The demo tokenizer plus a family's special tokens. `named` become tokenizer attributes
    (image_token="<image>" gives tokenizer.image_token and tokenizer.image_token_id, which the
    family's processor reads); `extra` are added as special tokens without a name."""
    if not (DEMO_TOKENIZER / "tokenizer.json").is_file():
        raise FileNotFoundError(f"{DEMO_TOKENIZER}: the demo model's tokenizer is missing; tiny models reuse it")
    tokenizer = AutoTokenizer.from_pretrained(str(DEMO_TOKENIZER), extra_special_tokens=dict(named))
    missing = [t for t in extra if t not in tokenizer.get_vocab()]
    if missing:
        tokenizer.add_tokens([AddedToken(t, special=True, normalized=False) for t in missing])
    return tokenizer


def token_id(tokenizer: PreTrainedTokenizerBase, token: str) -> int:
    ids = tokenizer.encode(token, add_special_tokens=False)
    if len(ids) != 1:
        raise ValueError(f"{token!r} is not one token for this tokenizer ({ids})")
    return ids[0]


def greedy_generation(tokenizer: PreTrainedTokenizerBase, stop: tuple[str, ...] = ()) -> GenerationConfig:
    eos = [tokenizer.eos_token_id, *(token_id(tokenizer, t) for t in stop)]
    return GenerationConfig(bos_token_id=tokenizer.bos_token_id, eos_token_id=eos,
                            pad_token_id=tokenizer.pad_token_id, do_sample=False)


def seeded(build, seed: int):
    """`build()` with torch's generator seeded, so a family's tiny model is the same every time."""
    torch.manual_seed(seed)
    return build().eval()


def save(out_dir: Path, model, processor, family: str, seed: int) -> Path:
    """Write the checkpoint into `out_dir`: empty, new, or an earlier tiny model (replaced whole,
    so no file of the earlier build, such as a chat template, is read back with the new one)."""
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        if not (out_dir / TINY_MARKER).is_file():
            raise FileExistsError(f"{out_dir} is not empty and holds no tiny model; give a new or empty folder")
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)  # safetensors
    processor.save_pretrained(out_dir)
    marker = {"family": family, "seed": seed, "weights": "random",
              "note": "a tiny random-weight checkpoint for tests; its answers mean nothing"}
    (out_dir / TINY_MARKER).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
    return out_dir
