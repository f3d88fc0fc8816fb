"""A small Gemma-style BPE tokenizer trained on the project's corpus.

It follows Gemma's own scheme, so that the transformers class MedGemma uses
(`GemmaTokenizer`) reloads it unchanged: spaces are normalised to "▁" (no prefix
space), BPE merges never cross a "▁", and every character outside the vocabulary
falls back to its UTF-8 bytes (`<0x00>` … `<0xFF>`), so no text maps to `<unk>`.
Training splits punctuation, digits and newlines off words, so that "Yes." is
"Yes" + "." and the answer token after "model\\n" is a word on its own.
"""

from __future__ import annotations

import json
import string
from collections.abc import Iterable, Sequence

from tokenizers import AddedToken, Regex, Tokenizer, normalizers, pre_tokenizers
from tokenizers.models import BPE
from tokenizers.trainers import BpeTrainer
from transformers.models.gemma.tokenization_gemma import GemmaTokenizer

SPACE = "▁"

# MedGemma's special tokens. The first five keep Gemma's ids (pad 0, eos 1, bos 2, unk 3, mask 4).
PAD, EOS, BOS, UNK, MASK = "<pad>", "<eos>", "<bos>", "<unk>", "<mask>"
START_OF_TURN, END_OF_TURN = "<start_of_turn>", "<end_of_turn>"
BOI, EOI, IMAGE_TOKEN = "<start_of_image>", "<end_of_image>", "<image_soft_token>"
SPECIAL_TOKENS: tuple[str, ...] = (PAD, EOS, BOS, UNK, MASK, START_OF_TURN, END_OF_TURN, BOI, EOI, IMAGE_TOKEN)
BYTE_TOKENS: tuple[str, ...] = tuple(f"<0x{b:02X}>" for b in range(256))

# Named multimodal tokens that Gemma3Processor reads as tokenizer.boi_token etc.
EXTRA_SPECIAL_TOKENS: dict[str, str] = {"boi_token": BOI, "eoi_token": EOI, "image_token": IMAGE_TOKEN}

# Words that must be one token each, bare and after a space: P(yes) is read from them.
ANSWER_WORDS: tuple[str, ...] = ("yes", "Yes", "YES", "no", "No", "NO")

# Characters that get a token of their own even if the corpus lacks them (others fall back to bytes).
ALPHABET: tuple[str, ...] = tuple(string.ascii_letters + string.digits + string.punctuation) + (SPACE, "\n")


def _training_tokenizer() -> Tokenizer:
    tok = Tokenizer(BPE(unk_token=UNK, byte_fallback=True, fuse_unk=True))
    tok.normalizer = normalizers.Replace(" ", SPACE)
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(SPACE, behavior="merged_with_next"),
            pre_tokenizers.Split(Regex(r"\n+"), behavior="isolated"),
            pre_tokenizers.Punctuation(behavior="isolated"),
            pre_tokenizers.Digits(individual_digits=True),
        ]
    )
    return tok


def _ensure_single_tokens(
    vocab: dict[str, int], merges: list[tuple[str, str]], words: Iterable[str]
) -> None:
    """Append merges (lowest priority) until each word is one token; edits in place."""
    for word in words:
        probe = Tokenizer(BPE(vocab=dict(vocab), merges=list(merges), byte_fallback=True, unk_token=UNK))
        pieces = probe.encode(word, add_special_tokens=False).tokens
        while len(pieces) > 1:
            merged = pieces[0] + pieces[1]
            merges.append((pieces[0], pieces[1]))
            vocab.setdefault(merged, len(vocab))
            pieces = [merged, *pieces[2:]]


def train_tokenizer(corpus: Sequence[str], vocab_size: int) -> GemmaTokenizer:
    """Train BPE on `corpus` and wrap it in the class MedGemma's tokenizer uses.

    Deterministic for a given corpus and vocab size. The tokenizer adds `<bos>` at the
    start of a sequence, as MedGemma's does; the chat template writes `<bos>` too, and
    the processor's `apply_chat_template` then tokenizes without special tokens.
    """
    trainer = BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=1,
        special_tokens=[*SPECIAL_TOKENS, *BYTE_TOKENS],  # ids 0.. in this order
        initial_alphabet=list(ALPHABET),
        show_progress=False,
    )
    raw = _training_tokenizer()
    raw.train_from_iterator(corpus, trainer=trainer)

    learned = json.loads(raw.to_str())["model"]
    vocab: dict[str, int] = dict(learned["vocab"])
    merges: list[tuple[str, str]] = [tuple(m.split(" ") if isinstance(m, str) else m) for m in learned["merges"]]
    _ensure_single_tokens(vocab, merges, [*ANSWER_WORDS, *(SPACE + w for w in ANSWER_WORDS)])

    tokenizer = GemmaTokenizer(
        vocab=vocab,
        merges=merges,
        unk_token=UNK,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        mask_token=MASK,
        add_bos_token=True,
        add_eos_token=False,
        extra_special_tokens=dict(EXTRA_SPECIAL_TOKENS),
    )
    tokenizer.add_tokens([AddedToken(t, special=True, normalized=False) for t in (START_OF_TURN, END_OF_TURN)])
    return tokenizer

