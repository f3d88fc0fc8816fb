"""Train the demo model in its folder, evaluate it on held-out images, and document both."""

from __future__ import annotations

import json
from pathlib import Path

from transformers import AutoModelForImageTextToText, AutoProcessor

from compute.model.loading import load_model
from compute.demo.model.evaluate import EvalReport, evaluate, save_report
from compute.demo.model.model_card import trained_model_card
from compute.demo.model.train import TrainConfig, TrainingLog, save_training_log, train


def train_and_document(folder: Path, cfg: TrainConfig, *, eval_images: int = 300, progress: bool = True) -> EvalReport:
    """Train the model saved in `folder`, save it back with its training curve, its
    held-out evaluation and a model card that quotes both."""
    folder = Path(folder)
    processor = AutoProcessor.from_pretrained(folder)
    model = AutoModelForImageTextToText.from_pretrained(folder)
    log = train(model, processor, cfg, progress=progress)
    model.save_pretrained(folder)
    save_training_log(log, cfg, folder)
    report = evaluate(load_model(str(folder)), eval_images, progress=progress)
    save_report(report, folder)
    card = trained_model_card(folder, cfg, log, report)
    (folder / "README.md").write_text(card, encoding="utf-8")
    return report


def redocument(folder: Path, report: EvalReport) -> None:
    """Rewrite evaluation.json and the model card of a trained model from a new evaluation
    (for when the evaluation code changes), keeping its saved training log."""
    folder = Path(folder)
    saved = json.loads((folder / "training_log.json").read_text())
    cfg = TrainConfig(**saved["config"])
    log = TrainingLog(vision=saved["vision"], language=saved["language"], seconds=saved["seconds"])
    save_report(report, folder)
    (folder / "README.md").write_text(trained_model_card(folder, cfg, log, report), encoding="utf-8")

