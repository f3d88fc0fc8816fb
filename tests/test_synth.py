"""Synthetic chest radiographs: anatomy conventions, finding signs, balanced manifests."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from compute.data.conditions import CONDITION_KEYS, LOCATION_PHRASES, condition
from compute.data.manifest import read_manifest
from compute.data.questions import TRAINING_TEMPLATES
from compute.demo.synth import SynthConfig, cardiothoracic_ratio, generate_dataset, plan_questions, render_case

SEEDS = range(6)
SIZE = 256
LATERAL_ZONED = ("atelectasis", "consolidation", "pneumonia", "lung_opacity", "pleural_abnormality")


def render(seed: int, conditions=(), size: int = SIZE):
    return render_case(np.random.default_rng(seed), size, conditions)


def width(mask: np.ndarray) -> int:
    cols = np.flatnonzero(mask.any(axis=0))
    return int(cols[-1] - cols[0] + 1)


def centroid(mask: np.ndarray) -> tuple[float, float]:
    rows, cols = np.nonzero(mask)
    return float(rows.mean()), float(cols.mean())


def relative_height(mask: np.ndarray, lung: np.ndarray) -> float:
    """Mask centroid height within the lung: 0 at the apex, 1 at the lung's lowest row."""
    rows = np.flatnonzero(lung.any(axis=1))
    return (centroid(mask & lung)[0] - rows[0]) / (rows[-1] - rows[0])


def dome_row(lung: np.ndarray, heart: np.ndarray, side: str) -> int:
    """Highest point of a hemidiaphragm: the topmost lung bottom among the columns lateral to
    the heart (the outer tenth of the lung's columns left out)."""
    heart_cols = np.flatnonzero(heart.any(axis=0))
    cols = np.flatnonzero(lung.any(axis=0))
    margin = max(2, len(cols) // 10)
    cols = cols[margin:-margin]
    cols = cols[cols < heart_cols[0]] if side == "right" else cols[cols > heart_cols[-1]]
    return min(int(np.flatnonzero(lung[:, c]).max()) for c in cols)


def fine_texture(image: np.ndarray) -> np.ndarray:
    """Thin bright/dark structures (vessels) with pixel noise and broad edges suppressed."""
    return ndimage.gaussian_filter(image, 0.8) - ndimage.median_filter(image, size=7)


# --------------------------------------------------------------------------- rendering


def test_render_is_deterministic_per_seed():
    a, b, c = render(3, ["pleural_effusion", "edema"]), render(3, ["pleural_effusion", "edema"]), render(4, ["pleural_effusion", "edema"])
    assert np.array_equal(a.image, b.image)
    assert all(np.array_equal(fa.mask, fb.mask) for fa, fb in zip(a.findings, b.findings))
    assert [(f.side, f.zone) for f in a.findings] == [(f.side, f.zone) for f in b.findings]
    assert not np.array_equal(a.image, c.image)


@pytest.mark.parametrize("size", [64, 224, 333])
def test_render_any_size(size):
    case = render(1, CONDITION_KEYS, size=size)
    assert case.image.shape == (size, size) and case.image.dtype == np.float32
    assert 0.0 <= case.image.min() and case.image.max() <= 1.0
    assert case.image.std() > 0.1  # a picture, not a flat field
    assert set(case.anatomy) == {"body", "right_lung", "left_lung", "heart"}
    for mask in (*case.anatomy.values(), *(f.mask for f in case.findings)):
        assert mask.shape == (size, size) and mask.dtype == bool


def test_unknown_condition_is_rejected_with_the_known_keys():
    with pytest.raises(KeyError, match="pleural_effusion"):
        render(0, ["pleural_efusion"])


def test_patient_right_is_on_the_image_left():
    for seed in SEEDS:
        a = render(seed).anatomy
        half = SIZE / 2
        assert centroid(a["right_lung"])[1] < half < centroid(a["left_lung"])[1]
        heart_cols = np.flatnonzero(a["heart"].any(axis=0))
        # The heart bulges to the patient's left: more of it lies right of the image midline.
        assert heart_cols[-1] - half > half - heart_cols[0]
        assert centroid(a["heart"])[1] > half


def test_right_hemidiaphragm_is_higher():
    for seed in range(12):
        a = render(seed).anatomy
        right = dome_row(a["right_lung"], a["heart"], "right")
        left = dome_row(a["left_lung"], a["heart"], "left")
        assert right < left, f"seed {seed}: right dome row {right} not above left {left}"


def test_image_is_bright_where_dense_and_dark_in_the_lungs():
    for seed in SEEDS:
        case = render(seed)
        lungs = case.anatomy["right_lung"] | case.anatomy["left_lung"]
        outside = ~ndimage.binary_dilation(case.anatomy["body"], iterations=4)
        assert case.image[case.anatomy["heart"]].mean() > case.image[lungs].mean() + 0.25
        assert case.image[lungs].mean() > case.image[outside].mean()


def test_cardiothoracic_ratio_separates_cardiomegaly():
    for seed in SEEDS:
        others = [k for k in CONDITION_KEYS if k != "cardiomegaly"][seed % 8 : seed % 8 + 1]
        normal, big = render(seed, others), render(seed, ["cardiomegaly", *others])
        for case in (normal, big):
            a = case.anatomy
            measured = width(a["heart"]) / width(a["right_lung"] | a["left_lung"])
            assert measured == pytest.approx(cardiothoracic_ratio(a["heart"], a["right_lung"], a["left_lung"]))
            assert case.params["ctr"] == pytest.approx(measured, abs=1e-4)
        assert normal.params["ctr"] < 0.5 < big.params["ctr"]
        assert np.array_equal(big.finding("cardiomegaly").mask, big.anatomy["heart"])


def test_lesion_masks_are_nonempty_inside_the_body_on_the_stated_side():
    for key in CONDITION_KEYS:
        for seed in range(4):
            case = render(seed, [key])
            f = case.finding(key)
            assert f.mask.sum() > 0, f"{key} seed {seed}: empty mask"
            assert not (f.mask & ~case.anatomy["body"]).any()
            c = condition(key)
            if not c.lateral:
                assert f.side is None and f.zone is None
                continue
            assert f.side in ("right", "left", "bilateral") and f.zone in c.zones
            in_right, in_left = (f.mask & case.anatomy["right_lung"]).sum(), (f.mask & case.anatomy["left_lung"]).sum()
            if f.side == "right":
                assert in_right > 0 and in_left == 0
            elif f.side == "left":
                assert in_left > 0 and in_right == 0
            else:
                assert in_right > 0 and in_left > 0


@pytest.mark.parametrize("key", LATERAL_ZONED)
def test_findings_sit_in_their_zone(key):
    expected = {"upper": (0.0, 0.3), "middle": (0.2, 0.55), "lower": (0.45, 1.0)}
    for seed in range(8):
        case = render(seed, [key])
        f = case.finding(key)
        sides = ("right", "left") if f.side == "bilateral" else (f.side,)
        for side in sides:
            low, high = expected[f.zone]
            assert low <= relative_height(f.mask, case.anatomy[f"{side}_lung"]) <= high, (seed, side, f.zone)


def test_effusion_is_dependent_brighter_and_has_a_meniscus():
    checked = 0
    for seed in range(10):
        with_fluid, without = render(seed, ["pleural_effusion"]), render(seed)
        f = with_fluid.finding("pleural_effusion")
        assert f.zone == "lower"
        for side in ("right", "left") if f.side == "bilateral" else (f.side,):
            lung = with_fluid.anatomy[f"{side}_lung"]
            fluid = f.mask & lung
            assert fluid.sum() > 0
            assert relative_height(fluid, lung) > 0.6  # dependent: at the base
            assert with_fluid.image[fluid].mean() > without.image[fluid].mean() + 0.1
            # Meniscus: the fluid climbs higher at the chest wall than beside the heart.
            cols = np.flatnonzero(fluid.any(axis=0))
            tops = np.array([np.flatnonzero(fluid[:, c])[0] for c in cols])
            quarter = max(1, len(cols) // 4)
            lateral, medial = (tops[:quarter], tops[-quarter:]) if side == "right" else (tops[-quarter:], tops[:quarter])
            assert lateral.mean() < medial.mean()
            checked += 1
    assert checked >= 10


def test_pneumothorax_region_is_dark_and_has_no_lung_markings():
    size = 512
    for seed in range(5):
        with_air, without = render(seed, ["pneumothorax"], size), render(seed, [], size)
        f = with_air.finding("pneumothorax")
        assert f.side in ("right", "left") and f.zone == "upper"
        region = ndimage.binary_erosion(f.mask, iterations=5)  # away from the pleural line and chest wall
        other = "left_lung" if f.side == "right" else "right_lung"
        mirror = region[:, ::-1] & ndimage.binary_erosion(with_air.anatomy[other], iterations=5)
        assert region.sum() > 100 and mirror.sum() > 100
        texture = fine_texture(with_air.image)
        assert texture[region].var() < 0.8 * texture[mirror].var()
        assert fine_texture(without.image)[region].var() > texture[region].var()
        assert with_air.image[f.mask].mean() < without.image[f.mask].mean() - 0.05
        # The pneumothorax lies toward the apex of its lung.
        assert relative_height(f.mask, with_air.anatomy[f"{f.side}_lung"]) < 0.5


def test_opacities_brighten_their_region():
    for key in ("consolidation", "pneumonia", "lung_opacity", "atelectasis", "edema", "pleural_abnormality"):
        for seed in range(3):
            sick, healthy = render(seed, [key]), render(seed)
            mask = sick.finding(key).mask
            assert sick.image[mask].mean() > healthy.image[mask].mean() + 0.03, (key, seed)


def test_a_finding_changes_the_image_only_around_its_lesion():
    for key in ("lung_opacity", "pleural_effusion", "consolidation"):
        sick, healthy = render(2, [key]), render(2)
        near = ndimage.binary_dilation(sick.finding(key).mask, iterations=12)
        assert np.abs(sick.image - healthy.image)[~near].max() < 1e-3


def test_edema_is_bilateral_and_perihilar():
    for seed in range(4):
        case = render(seed, ["edema"])
        mask = case.finding("edema").mask
        for side in ("right", "left"):
            lung = case.anatomy[f"{side}_lung"]
            part = mask & lung
            assert part.sum() > 0.05 * lung.sum()
            # Perihilar: nearer the midline than the lung's own centre.
            assert abs(centroid(part)[1] - SIZE / 2) < abs(centroid(lung)[1] - SIZE / 2)


def test_atelectasis_raises_the_hemidiaphragm_on_its_side():
    raised = 0
    for seed in range(12):
        sick, healthy = render(seed, ["atelectasis"]), render(seed)
        side = sick.finding("atelectasis").side
        if side == "bilateral":
            continue
        lung = f"{side}_lung"
        assert sick.anatomy[lung].sum() < healthy.anatomy[lung].sum()  # volume loss
        raised += dome_row(sick.anatomy[lung], sick.anatomy["heart"], side) < dome_row(healthy.anatomy[lung], healthy.anatomy["heart"], side)
    assert raised >= 6


# --------------------------------------------------------------------------- question plan


@pytest.mark.parametrize("pairs", [1, 2, 3, 4])
@pytest.mark.parametrize("n", [1, 5, 9, 10, 31, 60])
def test_plan_is_balanced_and_disjoint(n, pairs):
    plans = plan_questions(n, pairs)
    yes = Counter(k for p in plans for k in p.present)
    no = Counter(k for p in plans for k in p.absent)
    for key in CONDITION_KEYS:
        assert abs(yes[key] - no[key]) <= 1, (key, yes[key], no[key])
    for p in plans:
        assert len(set(p.present)) == len(set(p.absent)) == pairs
        assert not set(p.present) & set(p.absent)
    if n >= 9:
        assert set(yes) == set(no) == set(CONDITION_KEYS)


def test_config_rejects_odd_question_counts():
    with pytest.raises(ValueError, match="even"):
        SynthConfig(questions_per_image=3)


# --------------------------------------------------------------------------- dataset


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> tuple[SynthConfig, Path]:
    config = SynthConfig(n=40, seed=7, size=96, dicom_fraction=0.25, questions_per_image=2)
    out = tmp_path_factory.mktemp("synth")
    generate_dataset(config, out, progress=False)
    return config, out


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_manifest_is_balanced_per_condition(dataset):
    config, out = dataset
    rows = read_jsonl(out / "manifest.jsonl")
    assert len(rows) == config.n * config.questions_per_image
    counts = Counter((r["condition"], r["answer"]) for r in rows)
    for key in CONDITION_KEYS:
        assert counts[(key, "yes")] > 0
        assert abs(counts[(key, "yes")] - counts[(key, "no")]) <= 1


def test_answers_match_the_findings(dataset):
    _, out = dataset
    findings = {r["image_id"]: r for r in read_jsonl(out / "findings.jsonl")}
    for row in read_jsonl(out / "manifest.jsonl"):
        record = findings[row["image_id"]]
        present = {f["condition"]: f for f in record["findings"]}
        assert row["group_id"] == f"{row['image_id']}:{row['condition']}"
        assert row["image"] == record["image"]
        if row["answer"] == "yes":
            finding = present[row["condition"]]
            assert row["mask"] == finding["mask"] and row["location"] == finding["location"]
            mask = np.asarray(Image.open(out / row["mask"]))
            assert set(np.unique(mask)) <= {0, 255} and mask.any()
        else:
            assert row["condition"] not in present
            assert row["mask"] is None
            assert row["location"] is None or row["question"].endswith(f" in the {row['location']}?")


def test_questions_use_the_canonical_wording(dataset):
    _, out = dataset
    located = 0
    for row in read_jsonl(out / "manifest.jsonl"):
        term = condition(row["condition"]).term
        stems = [t.format(term=term)[:-1] for t in TRAINING_TEMPLATES]
        question = row["question"]
        if question.endswith(f" in the {row['location']}?") and row["location"]:
            located += 1
            question = question[: -len(f" in the {row['location']}?")] + "?"
            assert row["location"] in {p for phrases in LOCATION_PHRASES.values() for p in phrases}
        assert question[:-1] in stems
    assert located > 0


def test_naming_a_location_does_not_give_the_answer_away():
    """Over many images, "no" questions name a location about as often as "yes" ones."""
    from compute.demo.synth import SynthConfig
    from compute.demo.synth.dataset import generate_dataset
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        rows = read_jsonl(generate_dataset(SynthConfig(n=120, seed=5, size=64, dicom_fraction=0.0),
                                           Path(tmp), progress=False))
    lateral = [r for r in rows if condition(r["condition"]).lateral]
    rate = {a: sum(" in the " in r["question"] for r in lateral if r["answer"] == a) /
            sum(r["answer"] == a for r in lateral) for a in ("yes", "no")}
    assert rate["no"] > 0.15 and abs(rate["yes"] - rate["no"]) < 0.12, rate


def test_images_masks_and_formats(dataset):
    config, out = dataset
    records = read_jsonl(out / "findings.jsonl")
    formats = Counter(r["format"] for r in records)
    assert formats["dicom"] == round(config.n * config.dicom_fraction)
    assert {r["photometric"] for r in records if r["format"] == "dicom"} == {"MONOCHROME1", "MONOCHROME2"}
    for r in records:
        path = out / r["image"]
        assert path.suffix == (".dcm" if r["format"] == "dicom" else ".png") and path.is_file()
        for f in r["findings"]:
            assert Image.open(out / f["mask"]).size == (config.size, config.size)


def test_dicoms_display_like_the_pngs(dataset):
    """Both photometric interpretations read back bright = dense: air outside the body dark."""
    from compute.data.dicom import read_dicom

    config, out = dataset
    for r in read_jsonl(out / "findings.jsonl"):
        if r["format"] != "dicom":
            continue
        pixels = read_dicom(out / r["image"]).pixels
        assert pixels.shape == (config.size, config.size)
        corner = pixels[:4, :4].mean()
        abdomen = pixels[-10:, config.size // 2 - 5 : config.size // 2 + 5].mean()
        assert corner < 40 < 150 < abdomen, (r["image"], r["photometric"], corner, abdomen)


def test_manifest_reads_without_errors(dataset):
    config, out = dataset
    manifest = read_manifest(out / "manifest.jsonl")
    assert not manifest.errors
    assert len(manifest.items) == config.n * config.questions_per_image
    assert all(item.image_path.is_file() for item in manifest.items)


def test_generation_is_byte_identical_for_a_seed(tmp_path):
    config = SynthConfig(n=6, seed=3, size=64, dicom_fraction=0.5)
    first, second, other = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    generate_dataset(config, first, progress=False)
    generate_dataset(config, second, progress=False)
    generate_dataset(SynthConfig(n=6, seed=4, size=64, dicom_fraction=0.5), other, progress=False)
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(second) for p in second.rglob("*") if p.is_file())
    for rel in files:
        assert (first / rel).read_bytes() == (second / rel).read_bytes(), rel
    assert (first / "manifest.jsonl").read_bytes() != (other / "manifest.jsonl").read_bytes()
