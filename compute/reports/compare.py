"""Two or three runs compared on the items they share: a dict (JSON) or Markdown. Pure: the
callers fetch each run's tables from the store (store.queries.compare_rows, summary_maps).

Pairing. An item is one question asked about one image. The store's item ids cannot pair
runs: they hash the dataset name and the whole manifest row, and a phrasing run gives its
baseline rows ids of their own, so the same question on the same image has other ids in
runs over other manifests, datasets or studies. Runs are paired on content instead:
- the sha256 of the image bytes the model was shown (table image_files) and the question
  text exactly as asked;
- when a run of the comparison has no image sha256 (an imported run reads no image; runs
  stored before schema 4), every run is paired on the image id and the question text;
- the k-th occurrence of one (image, question) in a run, in manifest order, pairs with the
  k-th in the others;
- a shared item whose ground truth differs between the runs (another label policy) is left
  out, and counted.
Only answered items (status ok) take part; an item shared means shared by every run compared.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import reduce
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import pearsonr

from compute.metrics.attention import compare_maps
from compute.metrics.common_grid import COMMON_GRID, to_common_grid
from compute.metrics.stats import holm, mcnemar_exact
from compute.reports.accuracy import overall_accuracy
from compute.reports.phrasing import ReportError, phrasing_report
from compute.reports.run_report import UNKNOWN_CONDITION

PHRASING_STUDIES = ("phrasing", "phrasing-import")
IMPORT_SUFFIX = "-import"  # the study of a run imported from another tool: no maps
ANSWERS = ("yes", "no", "uncertain")  # any other stored answer (or none) counts as "uncertain"
BASES = {"image_sha256": "image sha256 + question text", "image_id": "image id + question text"}
PHRASING_FIGURES = ("groups", "variants", "baseline_accuracy", "consistency_mean", "consistency_std",
                    "fully_consistent_groups", "groups_with_changes", "flip_rate_mean")
HOLM_FAMILY = ("per pair: the exact McNemar p-values of the pair's conditions (one test per condition); the "
               "overall test and other pairs' tests are not in the family")
DEFINITIONS = {
    "pairing": "items shared by every run: same image (sha256 of the bytes shown; image id where a run has no "
               "sha256) and the same question text, k-th occurrence with k-th; answered items only; items whose "
               "ground truth differs between the runs are left out",
    "accuracy": "share of shared items answered correctly; 'uncertain' (a reply not read as yes or no) counts as "
                "wrong; 95% Wilson interval",
    "difference": "accuracy of the pair's first run minus its second's, on the same items",
    "mcnemar_p": "two-sided exact McNemar test on the items exactly one of the two runs got right (right_only)",
    "mcnemar_p_holm": HOLM_FAMILY,
    "agreement": "share of items both runs gave the same answer (yes, no or uncertain)",
    "kappa": "Cohen's kappa over the answers yes / no / uncertain, 'uncertain' a category of its own; null when "
             "chance agreement is 1 (both runs gave one and the same answer to every item)",
    "kappa_decided": "Cohen's kappa on the items both runs answered yes or no (n_decided)",
    "pearson_p_yes": "Pearson correlation of P(yes) over the items where both runs have a finite P(yes); null, with "
                     "pearson_note, below 3 such items or when a side is constant",
    "maps": "each run's summary map (the mean over layers, else its lowest layer) resampled by area onto the "
            "common grid; JS divergence base 2 in [0, 1], and Pearson over the cells",
}


class CompareError(ValueError):
    """The runs cannot be compared; the message names the run and says why."""


@dataclass(frozen=True)
class RunTables:
    """One run's tables, as the store returns them."""

    run_id: str
    study: str
    model_id: str | None
    rows: pd.DataFrame  # store.queries.compare_rows
    maps: pd.DataFrame | None = None  # store.queries.summary_maps; None: not read (no map section)

    @property
    def imported(self) -> bool:
        return self.study.endswith(IMPORT_SUFFIX)


@dataclass(frozen=True)
class Aligned:
    """The shared items: `items` one row each (condition, ground_truth, question, image_id),
    `per_run` each run's rows for them in the same order."""

    basis: str  # a key of BASES
    items: pd.DataFrame
    per_run: dict[str, pd.DataFrame]
    unshared: dict[str, int] = field(default_factory=dict)  # answered items of each run not shared
    truth_conflicts: int = 0


def align(runs: Sequence[RunTables]) -> Aligned:
    """The items every run answered (see the module's docstring). CompareError for fewer than
    2 or more than 3 runs, a run named twice, a run with no answered item, or no shared item."""
    _check(runs)
    basis = "image_sha256" if all(r.rows["image_sha256"].notna().all() for r in runs) else "image_id"
    keyed = {r.run_id: _keyed(r.rows, basis) for r in runs}
    common = reduce(lambda a, b: a.intersection(b), (k.index for k in keyed.values()))
    first = keyed[runs[0].run_id]
    order = first.index[first.index.isin(common)]
    truths = pd.DataFrame({rid: k.loc[order, "ground_truth"].to_numpy() for rid, k in keyed.items()})
    same_truth = (truths.nunique(axis=1, dropna=False) == 1).to_numpy()
    order = order[same_truth]
    if len(order) == 0:
        raise CompareError(_nothing_shared(runs, basis, conflicts=int((~same_truth).sum())))
    per_run = {rid: k.loc[order].reset_index() for rid, k in keyed.items()}
    condition = reduce(lambda a, b: a.fillna(b), (p["condition"] for p in per_run.values()))
    head = per_run[runs[0].run_id]
    items = pd.DataFrame({"condition": condition.fillna(UNKNOWN_CONDITION).astype(str),
                          "ground_truth": head["ground_truth"], "question": head["question"],
                          "image_id": head["image_id"]})
    return Aligned(basis, items, per_run, {r.run_id: len(r.rows) - len(order) for r in runs},
                   int((~same_truth).sum()))


def check_names(names: Sequence[str]) -> None:
    """CompareError unless `names` are 2 or 3 runs, none named twice."""
    names = list(names)
    if not 2 <= len(names) <= 3:
        raise CompareError(f"compare takes 2 or 3 runs, got {len(names)}: {', '.join(map(repr, names)) or 'none'}")
    twice = [n for n in dict.fromkeys(names) if names.count(n) > 1]
    if twice:
        raise CompareError(f"run {twice[0]!r} is named twice; name each run once")


def _check(runs: Sequence[RunTables]) -> None:
    check_names([r.run_id for r in runs])
    for r in runs:
        if r.rows.empty:
            raise CompareError(f"run {r.run_id!r} has no answered items to compare")


def _keyed(rows: pd.DataFrame, basis: str) -> pd.DataFrame:
    """Rows with an image identity and a question, indexed by (image, question, occurrence)."""
    r = rows[rows[basis].notna() & rows["question"].notna()].copy()
    r["answer"] = r["answer"].where(r["answer"].isin(ANSWERS[:2]), "uncertain")
    r["correct"] = r["correct"].fillna(False).astype(bool)
    r["occurrence"] = r.groupby([basis, "question"], sort=False).cumcount()
    return r.set_index([basis, "question", "occurrence"], drop=False).rename_axis(["_image", "_question", "_k"])


def _nothing_shared(runs: Sequence[RunTables], basis: str, conflicts: int) -> str:
    names = " and ".join(f"{r.run_id!r}" for r in runs)
    text = f"runs {names} share no answered item (paired on {BASES[basis]})"
    if conflicts:
        text += f"; {conflicts} items matched but their ground truths differ"
    if basis == "image_id":
        without = [r.run_id for r in runs if r.rows["image_sha256"].isna().any()]
        text += (f"; run {without[0]!r} records no image sha256 (an imported run reads no image), so the runs "
                 "are paired on image ids: give it the image ids the other runs use (import-results --map "
                 "image_id=COLUMN)")
    return text


def cohen_kappa(a: Sequence, b: Sequence) -> float | None:
    """Cohen's kappa of two raters' labels on the same items: (p_o - p_e) / (1 - p_e), with p_o
    the observed agreement and p_e = sum over labels of the product of the two raters' shares.
    None for no items, or where p_e is 1 (both gave one and the same label to every item)."""
    x, y = np.asarray(a, dtype=object), np.asarray(b, dtype=object)
    if x.shape != y.shape:
        raise ValueError(f"the raters labelled different numbers of items: {len(x)} and {len(y)}")
    if len(x) == 0:
        return None
    p_o = float(np.mean(x == y))
    p_e = sum(float(np.mean(x == label)) * float(np.mean(y == label)) for label in set(x.tolist()) | set(y.tolist()))
    if math.isclose(p_e, 1.0):
        return None
    return (p_o - p_e) / (1 - p_e)


def p_yes_correlation(x: np.ndarray, y: np.ndarray, names: tuple[str, str]) -> dict[str, Any]:
    """Pearson r of two P(yes) columns over the items where both are finite; None with a note
    below 3 such items or when a side is constant."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    both = np.isfinite(x) & np.isfinite(y)
    n = int(both.sum())
    note = None
    if n < 3:
        note = f"fewer than 3 shared items have P(yes) in both runs ({n})"
    else:
        constant = [name for name, v in zip(names, (x[both], y[both]), strict=True) if np.ptp(v) == 0]
        if constant:
            note = f"run {constant[0]!r}'s P(yes) is constant on these items"
    r = None if note else float(pearsonr(x[both], y[both]).statistic)
    return {"pearson_p_yes": r, "n_p_yes": n, "pearson_note": note}


def map_similarity(a: np.ndarray, b: np.ndarray) -> dict[str, float | None]:
    """JS divergence (base 2) and Pearson of two maps of any shapes on the common grid."""
    result = compare_maps(to_common_grid(a), to_common_grid(b))
    return {"js_divergence": result["js_divergence"], "pearson": _number(result["pearson"])}


def compare_report(runs: Sequence[RunTables], method: str = "attention") -> dict[str, Any]:
    """One object per run and one per pair (every two runs, in the order given), each overall
    and per condition, on the shared items; see DEFINITIONS, which the dict carries. `method`
    names the map method of the runs' `maps`, for the record."""
    aligned = align(runs)
    conditions = sorted(set(aligned.items["condition"]))
    return {
        "shared": {"n_items": len(aligned.items), "paired_on": BASES[aligned.basis], "conditions": conditions,
                   "left_out_ground_truth_differs": aligned.truth_conflicts, "not_shared": aligned.unshared},
        "runs": [_run_object(r, aligned, conditions) for r in runs],
        "pairs": [_pair_object(a, b, aligned, conditions, method) for a, b in combinations(runs, 2)],
        "definitions": DEFINITIONS,
    }


def _accuracy(correct: pd.Series) -> dict[str, Any]:
    n, k = len(correct), int(correct.sum())
    accuracy, ci = overall_accuracy(k, n)
    return {"n": n, "n_correct": k, "accuracy": accuracy, "ci_low": ci[0] if ci else None,
            "ci_high": ci[1] if ci else None}


def _run_object(run: RunTables, aligned: Aligned, conditions: list[str]) -> dict[str, Any]:
    rows = aligned.per_run[run.run_id]
    by = aligned.items["condition"]
    return {"run": run.run_id, "study": run.study, "model": run.model_id, "n_answered": len(run.rows),
            "n_shared": len(rows), "n_uncertain": int((rows["answer"] == "uncertain").sum()),
            "overall": _accuracy(rows["correct"]),
            "by_condition": {c: _accuracy(rows.loc[by == c, "correct"]) for c in conditions},
            "phrasing": _phrasing(run, rows)}


def _phrasing(run: RunTables, rows: pd.DataFrame) -> dict[str, Any] | None:
    """The phrasing report's group figures on the run's shared rows (None: not a phrasing run)."""
    if run.study not in PHRASING_STUDIES:
        return None
    grouped = rows[rows["group_id"].notna() & rows["variant_index"].notna()]
    try:
        report = phrasing_report(grouped, pd.DataFrame(), run.run_id, top=0)
    except ReportError as exc:
        return {"note": str(exc)}
    return {k: _number(report[k]) if isinstance(report[k], float) else report[k] for k in PHRASING_FIGURES}


def _pair_block(a: pd.DataFrame, b: pd.DataFrame, names: tuple[str, str]) -> dict[str, Any]:
    right_a, right_b = a["correct"].to_numpy(bool), b["correct"].to_numpy(bool)
    only_a, only_b = int((right_a & ~right_b).sum()), int((~right_a & right_b).sum())
    answers_a, answers_b = a["answer"].to_numpy(object), b["answer"].to_numpy(object)
    decided = np.isin(answers_a, ANSWERS[:2]) & np.isin(answers_b, ANSWERS[:2])
    n = len(a)
    return {
        "n": n,
        "accuracy": {names[0]: right_a.mean() if n else None, names[1]: right_b.mean() if n else None},
        "difference": float(right_a.mean() - right_b.mean()) if n else None,
        "right_only": {names[0]: only_a, names[1]: only_b},
        "mcnemar_p": mcnemar_exact(only_a, only_b),
        "agreement": float(np.mean(answers_a == answers_b)) if n else None,
        "kappa": cohen_kappa(answers_a, answers_b),
        "kappa_decided": cohen_kappa(answers_a[decided], answers_b[decided]),
        "n_decided": int(decided.sum()),
        **p_yes_correlation(a["p_yes"].to_numpy(float), b["p_yes"].to_numpy(float), names),
    }


def _pair_object(a: RunTables, b: RunTables, aligned: Aligned, conditions: list[str], method: str) -> dict[str, Any]:
    rows_a, rows_b, names = aligned.per_run[a.run_id], aligned.per_run[b.run_id], (a.run_id, b.run_id)
    by = aligned.items["condition"]
    blocks = {c: _pair_block(rows_a[by == c], rows_b[by == c], names) for c in conditions}
    for block, p in zip(blocks.values(), holm([blk["mcnemar_p"] for blk in blocks.values()]), strict=True):
        block["mcnemar_p_holm"] = float(p)
    overall = _pair_block(rows_a, rows_b, names)
    for block in (overall, *blocks.values()):
        block["accuracy"] = {k: _number(v) for k, v in block["accuracy"].items()}
    return {"runs": list(names), "overall": overall, "by_condition": blocks, "mcnemar_p_holm_family": HOLM_FAMILY,
            "maps": {"method": method, **_maps(a, b, aligned, conditions)}}


def _grids(maps: pd.DataFrame) -> dict[str, np.ndarray]:
    return {r.item_id: np.asarray(r.grid, dtype=np.float64).reshape(int(r.grid_rows), int(r.grid_cols))
            for r in maps.itertuples()}


def _maps(a: RunTables, b: RunTables, aligned: Aligned, conditions: list[str]) -> dict[str, Any]:
    """Similarity of the two runs' summary maps on the shared items both have one for."""
    for run in (a, b):
        if run.imported:
            return {"n": 0, "note": f"run {run.run_id!r} was imported from another tool: it has no maps"}
        if run.maps is None:
            return {"n": 0, "note": "maps were not read"}
    grids_a, grids_b = _grids(a.maps), _grids(b.maps)
    ids_a, ids_b = aligned.per_run[a.run_id]["item_id"], aligned.per_run[b.run_id]["item_id"]
    found = [(k, ia, ib) for k, (ia, ib) in enumerate(zip(ids_a, ids_b, strict=True))
             if ia in grids_a and ib in grids_b]
    if not found:
        return {"n": 0, "note": "no shared item has a map of this method in both runs"}

    scores = pd.DataFrame([{"condition": aligned.items["condition"].iloc[k], **map_similarity(grids_a[ia], grids_b[ib])}
                           for k, ia, ib in found])
    shapes = {run.run_id: sorted({f"{int(r)}x{int(c)}" for r, c in zip(run.maps.grid_rows, run.maps.grid_cols,
                                                                        strict=True)}) for run in (a, b)}
    return {"common_grid": list(COMMON_GRID), "grids": shapes, **_map_summary(scores),
            "by_condition": {c: _map_summary(scores[scores["condition"] == c]) for c in conditions
                             if (scores["condition"] == c).any()}}


def _map_summary(scores: pd.DataFrame) -> dict[str, Any]:
    js, r = scores["js_divergence"].astype(float), scores["pearson"].astype(float).dropna()
    return {"n": len(scores), "js_divergence_mean": float(js.mean()), "js_divergence_sd": float(js.std(ddof=0)),
            "js_divergence_median": float(js.median()), "pearson_mean": _number(r.mean()) if len(r) else None,
            "pearson_sd": _number(r.std(ddof=0)) if len(r) else None, "n_pearson": len(r)}


def _number(value) -> float | None:
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.1%}"


def _num(x: float | None, fmt: str = ".3f") -> str:
    return "n/a" if x is None else format(x, fmt)


def compare_markdown(report: dict[str, Any]) -> str:
    """Tables: accuracy per run, each pair, the phrasing figures side by side, map similarity."""
    runs = [r["run"] for r in report["runs"]]
    shared = report["shared"]
    lines = [f"# Comparing runs {', '.join(f'`{_cell(r)}`' for r in runs)}", "",
             f"- shared items: {shared['n_items']}, paired on {shared['paired_on']}",
             f"- left out because their ground truths differ: {shared['left_out_ground_truth_differs']}",
             "- answered but not shared: " + ", ".join(f"{_cell(k)} {v}" for k, v in shared["not_shared"].items()),
             "", "## Accuracy on the shared items", "", "'uncertain' counts as wrong; 95% Wilson intervals.", "",
             "| condition | n | " + " | ".join(_cell(r) for r in runs) + " |", "|---" * (len(runs) + 2) + "|"]

    def acc(block):
        return f"{_pct(block['accuracy'])} ({_pct(block['ci_low'])} – {_pct(block['ci_high'])})"

    for name in ["overall", *shared["conditions"]]:
        blocks = [r["overall"] if name == "overall" else r["by_condition"][name] for r in report["runs"]]
        lines.append(f"| {_cell(name)} | {blocks[0]['n']} | " + " | ".join(acc(b) for b in blocks) + " |")
    for pair in report["pairs"]:
        a, b = (_cell(x) for x in pair["runs"])
        lines += ["", f"## {a} vs {b}", "",
                  f"| condition | n | {a} − {b} | right only in {a} | right only in {b} | McNemar p | p (Holm) | "
                  "agreement | kappa | kappa (yes/no) | Pearson P(yes) |", "|---" * 11 + "|"]
        for name in ["overall", *shared["conditions"]]:
            blk = pair["overall"] if name == "overall" else pair["by_condition"][name]
            r = _num(blk["pearson_p_yes"]) if blk["pearson_p_yes"] is not None else f"n/a (n = {blk['n_p_yes']})"
            lines.append(f"| {_cell(name)} | {blk['n']} | {_num(blk['difference'], '+.1%')} | "
                         f"{blk['right_only'][pair['runs'][0]]} | {blk['right_only'][pair['runs'][1]]} | "
                         f"{blk['mcnemar_p']:.3g} | {_num(blk.get('mcnemar_p_holm'), '.3g')} | "
                         f"{_pct(blk['agreement'])} | {_num(blk['kappa'])} | {_num(blk['kappa_decided'])} | {r} |")
        lines += ["", f"Holm's adjustment: {pair['mcnemar_p_holm_family']}."]
    lines += _phrasing_markdown(report)
    lines += _maps_markdown(report)
    return "\n".join(lines) + "\n"


def _phrasing_markdown(report: dict[str, Any]) -> list[str]:
    phrasing = [r for r in report["runs"] if r["phrasing"] is not None]
    if not phrasing:
        return []
    lines = ["", "## Phrasing, on the shared groups", "",
             "| figure | " + " | ".join(_cell(r["run"]) for r in phrasing) + " |", "|---" * (len(phrasing) + 1) + "|"]
    for figure in PHRASING_FIGURES:
        cells = []
        for r in phrasing:
            value = r["phrasing"].get(figure)
            cells.append(_pct(value) if figure in ("baseline_accuracy", "flip_rate_mean") else
                         _num(value) if isinstance(value, float) else "n/a" if value is None else str(value))
        lines.append(f"| {figure.replace('_', ' ')} | " + " | ".join(cells) + " |")
    notes = [f"- {_cell(r['run'])}: {_cell(r['phrasing']['note'])}" for r in phrasing if "note" in r["phrasing"]]
    return lines + ([""] + notes if notes else [])


def _maps_markdown(report: dict[str, Any]) -> list[str]:
    lines = ["", "## Map similarity on the common grid", "",
             "| pair | condition | n | JS divergence (mean ± SD) | Pearson (mean ± SD) |", "|---|---|---|---|---|"]
    for pair in report["pairs"]:
        maps, name = pair["maps"], " vs ".join(_cell(r) for r in pair["runs"])
        if not maps["n"]:
            lines.append(f"| {name} | | 0 | {_cell(maps['note'])} | |")
            continue
        for cond, m in [("overall", maps), *maps["by_condition"].items()]:
            r = "n/a" if m["pearson_mean"] is None else f"{m['pearson_mean']:.3f} ± {m['pearson_sd']:.3f}"
            lines.append(f"| {name} | {_cell(cond)} | {m['n']} | {m['js_divergence_mean']:.3f} ± "
                         f"{m['js_divergence_sd']:.3f} | {r} |")
    return lines
