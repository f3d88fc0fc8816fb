"""Render one synthetic frontal chest radiograph with the requested findings."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from compute.data.conditions import CONDITION_KEYS, condition
from compute.demo.synth.acquisition import expose
from compute.demo.synth.anatomy import build_scene
from compute.demo.synth.case import Finding, SynthCase
from compute.demo.synth.findings import RENDERERS, Lesion
from compute.demo.synth.grid import make_grid
from compute.demo.synth.measure import cardiothoracic_ratio
from compute.demo.synth.patient import sample_patient


def render_case(rng: np.random.Generator, size: int = 512, conditions: Iterable[str] = ()) -> SynthCase:
    """Draw a random patient and the requested findings, each with a random side, zone, size
    and contrast.

    The patient, its texture and the image noise are drawn before any finding, and every
    finding has its own generator, so the same `rng` state with or without a finding gives
    the same patient: the difference between the two images is the finding.
    """
    keys = _ordered(conditions)
    patient = sample_patient(rng)
    texture_seed, noise_seed, findings_seed = (int(s) for s in rng.integers(0, 2**63 - 1, size=3))
    finding_rngs = {k: np.random.default_rng([findings_seed, CONDITION_KEYS.index(k)]) for k in keys}
    placements = {k: RENDERERS[k].place(finding_rngs[k]) for k in keys}

    thorax = patient.thorax
    for k in keys:
        if RENDERERS[k].adjust is not None:
            thorax = RENDERERS[k].adjust(thorax, placements[k], finding_rngs[k])

    grid = make_grid(size, patient.pose)
    scene = build_scene(grid, thorax, np.random.default_rng(texture_seed))
    density = scene.density.copy()
    markings_keep = np.ones_like(density)
    findings: list[Finding] = []
    for k in keys:
        lesion = RENDERERS[k].draw(scene, placements[k], finding_rngs[k])
        if lesion.density is not None:
            density += lesion.density
        if lesion.markings_keep is not None:
            markings_keep *= lesion.markings_keep
        findings.append(Finding(condition=k, side=placements[k].side, zone=placements[k].zone,
                                mask=_lesion_mask(lesion, scene.body > 0.5)))

    image = expose(density + scene.markings * markings_keep, grid, patient.acquisition,
                   np.random.default_rng(noise_seed))
    anatomy = scene.anatomy_masks()
    params = patient.describe()
    params["ctr_planned"] = round(thorax.heart.ctr, 4)
    params["ctr"] = round(cardiothoracic_ratio(anatomy["heart"], anatomy["right_lung"], anatomy["left_lung"]), 4)
    return SynthCase(image=image, findings=findings, anatomy=anatomy, params=params)


def _lesion_mask(lesion: Lesion, body: np.ndarray) -> np.ndarray:
    """The lesion's mask inside the body; at tiny image sizes a thin lesion can fall between
    pixel centres, and then its strongest pixels stand in for it."""
    mask = lesion.mask & body
    if not mask.any() and lesion.density is not None:
        strength = np.abs(lesion.density)
        mask = (strength >= 0.5 * strength.max()) & (strength > 0) & body
    return mask


def _ordered(conditions: Iterable[str]) -> list[str]:
    """Validated, de-duplicated condition keys in lexicon order (so the result does not depend
    on the order they were asked in)."""
    asked = set()
    for key in conditions:
        condition(key)  # raises with the list of valid keys
        asked.add(key)
    return [k for k in CONDITION_KEYS if k in asked]
