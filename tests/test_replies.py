"""extract_answer on a labelled corpus of long, realistic replies (tests/data/replies.jsonl).

Each line is {"question", "reply", "expected", "structure"}: a reply written the way MedGemma,
LLaVA-Med or a GPT-style assistant answers a chest X-ray yes/no question, labelled with what a
careful radiologist reading it would say the model answered. The question is there for the
reader; extract_answer sees only the reply.
"""

import json
from collections import Counter
from pathlib import Path

import pytest

from compute.model.answers import extract_answer

CORPUS = Path(__file__).resolve().parent / "data" / "replies.jsonl"
LABELS = ("yes", "no", "uncertain")


def _entries() -> list[tuple[int, dict]]:
    lines = CORPUS.read_text(encoding="utf-8").splitlines()
    return [(number, json.loads(line)) for number, line in enumerate(lines, start=1) if line.strip()]


ENTRIES = _entries()


def test_corpus_is_large_balanced_and_varied():
    assert len(ENTRIES) >= 150
    for _, entry in ENTRIES:
        assert set(entry) >= {"reply", "expected", "structure"}
        assert entry["expected"] in LABELS
        assert isinstance(entry["reply"], str) and entry["reply"].strip()
    labels = Counter(entry["expected"] for _, entry in ENTRIES)
    assert all(labels[label] >= 30 for label in LABELS), labels
    assert len({entry["structure"] for _, entry in ENTRIES}) >= 8
    assert sum("\n" in entry["reply"] for _, entry in ENTRIES) >= 50  # many multi-line replies
    replies = [entry["reply"] for _, entry in ENTRIES]
    assert len(set(replies)) == len(replies)  # no duplicates


@pytest.mark.parametrize("entry", [e for _, e in ENTRIES],
                         ids=[f"line{n}-{e['structure']}" for n, e in ENTRIES])
def test_reply_reads_as_labelled(entry):
    assert extract_answer(entry["reply"]) == entry["expected"], entry.get("question")
