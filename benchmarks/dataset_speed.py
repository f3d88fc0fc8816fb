"""How long `dataset chexpert` takes on a label file the size of CheXpert's training set.

Writes, in a temporary folder, a CheXpert-v1.0-small layout: `train.csv` with 220,000 rows
(columns and label codes as CheXpert ships them, each label drawn with the share of 1.0 /
0.0 / -1.0 / blank that the real training labels have, e.g. Pleural Effusion about 86k yes,
35k no, 12k uncertain, 90k blank) and an empty file at every path it names. Making those
files is setup and is not timed; the figure is `build_dataset("chexpert", ...)` from reading
the CSV to the written manifest, under the default label policy.

    .venv/bin/python benchmarks/dataset_speed.py            # 220,000 rows
    .venv/bin/python benchmarks/dataset_speed.py --rows 50000 --keep /tmp/chexpert-bench
    .venv/bin/python benchmarks/dataset_speed.py --profile   # cProfile of the timed part, top 25
"""

from __future__ import annotations

import argparse
import cProfile
import csv
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from compute.data.datasets import BuildLog, build_dataset  # noqa: E402
from compute.data.datasets.chexpert import CHEXPERT_LABELS, ChexpertOptions  # noqa: E402

TARGET_S = 30.0
FRONTAL_SHARE = 0.855  # CheXpert train: 191,027 frontal of 223,414
# label -> share of rows coded 1.0, 0.0, -1.0 (the rest blank), from CheXpert's 223,414 training rows
LABEL_MIX: dict[str, tuple[float, float, float]] = {
    "No Finding": (0.100, 0.0, 0.0),
    "Enlarged Cardiomediastinum": (0.048, 0.097, 0.056),
    "Cardiomegaly": (0.121, 0.050, 0.036),
    "Lung Opacity": (0.473, 0.030, 0.025),
    "Lung Lesion": (0.041, 0.006, 0.007),
    "Edema": (0.234, 0.093, 0.058),
    "Consolidation": (0.066, 0.126, 0.124),
    "Pneumonia": (0.027, 0.013, 0.084),
    "Atelectasis": (0.149, 0.006, 0.151),
    "Pneumothorax": (0.087, 0.252, 0.014),
    "Pleural Effusion": (0.386, 0.158, 0.052),
    "Pleural Other": (0.016, 0.001, 0.012),
    "Fracture": (0.040, 0.011, 0.003),
    "Support Devices": (0.519, 0.027, 0.005),
}
assert tuple(LABEL_MIX) == CHEXPERT_LABELS


def write_dataset(folder: Path, rows: int, seed: int = 0) -> Path:
    """`folder/CheXpert-v1.0-small/` with train.csv of `rows` rows and an empty file per row."""
    rng = np.random.default_rng(seed)
    root = folder / "CheXpert-v1.0-small"
    frontal = rng.random(rows) < FRONTAL_SHARE
    codes = np.array(["1.0", "0.0", "-1.0", ""])
    labels = {}
    for name, (yes, no, uncertain) in LABEL_MIX.items():
        labels[name] = codes[np.searchsorted(np.cumsum([yes, no, uncertain]), rng.random(rows), side="right")]
    paths = []
    for i in range(rows):  # about 3 images per patient, 2 per study, as in CheXpert
        patient, study, view = i // 3 + 1, (i % 3) // 2 + 1, (i % 3) % 2 + 1
        kind = "frontal" if frontal[i] else "lateral"
        paths.append(f"train/patient{patient:05d}/study{study}/view{view}_{kind}.jpg")
    root.mkdir(parents=True)
    made: set[str] = set()
    for path in paths:
        folder_name = path.rsplit("/", 1)[0]
        if folder_name not in made:
            os.makedirs(root / folder_name, exist_ok=True)
            made.add(folder_name)
        os.close(os.open(root / path, os.O_CREAT | os.O_WRONLY, 0o644))
    ap_pa = rng.choice(["AP", "PA"], size=rows, p=[0.846, 0.154])
    with (root / "train.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Path", "Sex", "Age", "Frontal/Lateral", "AP/PA", *CHEXPERT_LABELS])
        for i, path in enumerate(paths):
            writer.writerow([f"CheXpert-v1.0-small/{path}", "Female", "60", "Frontal" if frontal[i] else "Lateral",
                             ap_pa[i] if frontal[i] else "", *(labels[name][i] for name in CHEXPERT_LABELS)])
    return root


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=220_000, help="label rows to write (default: 220000)")
    parser.add_argument("--keep", type=Path, help="write the dataset here and keep it (default: a temp folder)")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of the timed build")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="chexpert-bench-") as tmp:
        folder = args.keep or Path(tmp)
        start = time.perf_counter()
        root = write_dataset(folder, args.rows)
        print(f"setup: {args.rows:,} label rows and image files in {time.perf_counter() - start:.1f} s "
              f"({root})", flush=True)
        profile = cProfile.Profile() if args.profile else None
        log = BuildLog(log=lambda line: None)
        start = time.perf_counter()
        if profile:
            profile.enable()
        result = build_dataset("chexpert", root, folder / "manifest.jsonl", ChexpertOptions(), log)
        if profile:
            profile.disable()
        seconds = time.perf_counter() - start
    read = sum(log.rows_read.values())
    print(f"rows read: {read:,}\nquestions written: {len(result.written.rows):,}\n"
          f"build_dataset('chexpert'): {seconds:.1f} s (target: under {TARGET_S:.0f} s) "
          f"{'ok' if seconds < TARGET_S else 'SLOW'}")
    if profile:
        pstats.Stats(profile).sort_stats("cumulative").print_stats(25)
    return 0 if seconds < TARGET_S else 1


if __name__ == "__main__":
    raise SystemExit(main())
