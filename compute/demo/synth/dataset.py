"""Write a synthetic dataset: images (PNG or DICOM), lesion masks, a question manifest and a
per-image findings record."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from compute.data.conditions import CONDITION_KEYS, condition
from compute.data.questions import TRAINING_TEMPLATES, canonical_question, location_phrase, possible_locations
from compute.demo.synth.case import SynthCase
from compute.demo.synth.config import SynthConfig
from compute.demo.synth.plan import ImagePlan, plan_questions
from compute.demo.synth.render import render_case

DICOM_MAX = 4095  # 12 bits stored
MAX_EXTRA_FINDINGS = 2


@dataclass(frozen=True)
class ImageFormat:
    kind: str  # "png" | "dicom"
    photometric: str | None = None  # "MONOCHROME1" | "MONOCHROME2" for DICOM

    @property
    def suffix(self) -> str:
        return ".dcm" if self.kind == "dicom" else ".png"


def generate_dataset(config: SynthConfig, out_dir: Path, progress: bool = True) -> Path:
    """Render `config.n` cases into `out_dir` and return the manifest's path.

    Deterministic: the same config writes byte-identical files.
    """
    out_dir = Path(out_dir)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    (out_dir / "masks").mkdir(parents=True, exist_ok=True)
    plans = plan_questions(config.n, config.questions_per_image // 2)
    formats = choose_formats(config)
    width = max(4, len(str(config.n - 1)))

    manifest_path = out_dir / "manifest.jsonl"
    with manifest_path.open("w", encoding="utf-8") as manifest, \
            (out_dir / "findings.jsonl").open("w", encoding="utf-8") as findings_file:
        for index in tqdm(range(config.n), desc="synthetic CXRs", unit="img", disable=not progress):
            image_id = f"{config.id_prefix}_{index:0{width}d}"
            rng = np.random.default_rng([config.seed, index])
            plan = plans[index]
            present = (*plan.present, *extra_findings(plan, config.extra_finding_rate, rng))
            case = render_case(rng, config.size, present)
            image_rel = f"images/{image_id}{formats[index].suffix}"
            write_image(case.image, out_dir / image_rel, formats[index])
            mask_rels = write_masks(case, image_id, out_dir)
            for row in question_rows(case, plan, image_id, image_rel, mask_rels, config, rng):
                manifest.write(json.dumps(row) + "\n")
            findings_file.write(json.dumps(findings_record(case, plan, image_id, image_rel, mask_rels,
                                                           formats[index])) + "\n")
    (out_dir / "synth_config.json").write_text(json.dumps(config.to_dict(), indent=2) + "\n", encoding="utf-8")
    return manifest_path


def choose_formats(config: SynthConfig) -> list[ImageFormat]:
    """Exactly round(n * dicom_fraction) DICOMs at seeded positions; among them,
    round(count * monochrome1_fraction) are MONOCHROME1."""
    rng = np.random.default_rng([config.seed, 0xD1C0])
    n_dicom = int(round(config.n * config.dicom_fraction))
    n_mono1 = int(round(n_dicom * config.monochrome1_fraction))
    dicom_at = rng.permutation(config.n)[:n_dicom]
    formats = [ImageFormat("png")] * config.n
    for rank, index in enumerate(dicom_at):
        formats[int(index)] = ImageFormat("dicom", "MONOCHROME1" if rank < n_mono1 else "MONOCHROME2")
    return formats


def extra_findings(plan: ImagePlan, rate: float, rng: np.random.Generator) -> tuple[str, ...]:
    """Up to two further findings, never one the image is asked "no" about."""
    allowed = [k for k in CONDITION_KEYS if k not in plan.present and k not in plan.absent]
    count = int((rng.random(MAX_EXTRA_FINDINGS) < rate).sum())
    return tuple(str(k) for k in rng.choice(allowed, size=min(count, len(allowed)), replace=False))


def question_rows(case: SynthCase, plan: ImagePlan, image_id: str, image_rel: str, mask_rels: dict[str, str],
                  config: SynthConfig, rng: np.random.Generator) -> list[dict[str, object]]:
    rows = []
    for key, answer in [*((k, "yes") for k in plan.present), *((k, "no") for k in plan.absent)]:
        finding = case.finding(key)
        location = location_phrase(finding.side, finding.zone) if finding else None
        asked_location = None
        if condition(key).lateral and rng.random() < config.location_rate:
            # "no" questions name a location as often as "yes" ones, so the phrase says nothing about the answer
            asked_location = location if answer == "yes" else str(rng.choice(possible_locations(condition(key))))
        template = int(rng.integers(len(TRAINING_TEMPLATES)))
        rows.append({
            "image": image_rel,
            "question": canonical_question(condition(key), template, asked_location),
            "answer": answer,
            "condition": key,
            "image_id": image_id,
            "group_id": f"{image_id}:{key}",
            "location": asked_location or location,  # where the question points, else where the finding is
            "mask": mask_rels.get(key) if answer == "yes" else None,
        })
    order = rng.permutation(len(rows))  # yes and no in no fixed order within an image
    return [rows[i] for i in order]


def findings_record(case: SynthCase, plan: ImagePlan, image_id: str, image_rel: str, mask_rels: dict[str, str],
                    fmt: ImageFormat) -> dict[str, object]:
    return {
        "image_id": image_id,
        "image": image_rel,
        "format": fmt.kind,
        "photometric": fmt.photometric,
        "size": int(case.image.shape[0]),
        "findings": [{
            "condition": f.condition,
            "side": f.side,
            "zone": f.zone,
            "location": location_phrase(f.side, f.zone),
            "mask": mask_rels[f.condition],
            "area_fraction": round(float(f.mask.mean()), 6),
            "asked": f.condition in plan.present,
        } for f in case.findings],
        "asked_absent": list(plan.absent),
        "params": case.params,
    }


def write_image(image: np.ndarray, path: Path, fmt: ImageFormat) -> None:
    if fmt.kind == "png":
        Image.fromarray(np.round(image * 255).astype(np.uint8)).save(path, format="PNG")
        return
    from compute.demo.dicom_writer import write_dicom

    stored = np.round(image * DICOM_MAX).astype(np.uint16)
    if fmt.photometric == "MONOCHROME1":
        stored = (DICOM_MAX - stored).astype(np.uint16)
    low, high = np.percentile(stored, [0.5, 99.5])
    window = (round(float(low + high) / 2, 1), round(max(float(high - low), 1.0), 1))
    write_dicom(stored, path, photometric=fmt.photometric or "MONOCHROME2", window=window)


def write_masks(case: SynthCase, image_id: str, out_dir: Path) -> dict[str, str]:
    """One 0/255 PNG per finding; returns condition -> path relative to `out_dir`."""
    paths = {}
    for f in case.findings:
        rel = f"masks/{image_id}__{f.condition}.png"
        Image.fromarray(f.mask.astype(np.uint8) * 255).save(out_dir / rel, format="PNG")
        paths[f.condition] = rel
    return paths
