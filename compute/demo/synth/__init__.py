"""Synthetic frontal chest radiographs with findings, lesion masks and a question manifest.

    case = render_case(np.random.default_rng(0), 512, ["pleural_effusion"])
    manifest = generate_dataset(SynthConfig(n=60), Path("data/synth"))

Sides are the patient's: "left" is on the image's right.
"""

from compute.demo.synth.case import Finding, SynthCase
from compute.demo.synth.config import SynthConfig
from compute.demo.synth.dataset import generate_dataset
from compute.demo.synth.measure import cardiothoracic_ratio
from compute.demo.synth.plan import ImagePlan, plan_questions
from compute.demo.synth.render import render_case

__all__ = [
    "Finding",
    "ImagePlan",
    "SynthCase",
    "SynthConfig",
    "cardiothoracic_ratio",
    "generate_dataset",
    "plan_questions",
    "render_case",
]
