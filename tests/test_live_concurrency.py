"""The Live page's users share one cached Session: asks from two threads at once on it give
exactly what each gives alone.

Attention capture switches the shared model's attention implementation and Grad-CAM hooks its
vision tower, so without Session.lock one thread's pass runs under the other's settings: its
attention map comes out empty and silently falls back to Grad-CAM, or a map is another
thread's, or a Grad-CAM pass fails, or the model is left on the capturing implementation (after
which such races go unseen). Each of the two threads asks for an attention map and a Grad-CAM
per round, each pair of asks started together at a barrier (or the second a little later): in
the same order in even rounds and in opposite orders in odd ones, so each kind of pass overlaps
with both kinds. The decoder's layers are slowed (slow_decoder) so that passes overlap as they
do with a real model. With Session.lock made a no-op, this failed on every try.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np
import pytest
from PIL import Image

import compute.facade
from compute.answering import ask as answering_ask
from compute.demo.synth import render_case

ROUNDS = 6
LAYER_SECONDS = 0.01  # each decoder layer's wait in a prompt pass (see slow_decoder)
STAGGER = (0.0, 0.015, 0.0, 0.03)  # per round, how much later the second thread starts each ask (s)
QUESTIONS = ["Is there pleural effusion?", "Is there fluid in the pleural space on the left?"]
KINDS = {"attention": {"layers": "all"}, "gradcam": {"method": "gradcam"}}


@pytest.fixture(scope="module")
def loaded():
    """(the demo model's Session, its decoder's attention implementation as loaded)."""
    from compute.model.loading import load_model
    session = load_model("models/demo")
    return session, session.model.config.get_text_config()._attn_implementation


def _implementation(session) -> str:
    return session.model.config.get_text_config()._attn_implementation


@pytest.fixture(scope="module")
def images() -> list[Image.Image]:
    out = []
    for seed in (11, 12):
        case = render_case(np.random.default_rng(seed), 224, ["pleural_effusion"])
        out.append(Image.fromarray((np.clip(case.image, 0, 1) * 255).astype(np.uint8)))
    return out


@contextmanager
def slow_decoder(model, seconds: float = LAYER_SECONDS):
    """Each decoder layer of a prompt pass waits `seconds` first (releasing the GIL), as a big
    model's layers take time: the demo model's passes are so short that another thread's switch
    of the attention implementation seldom lands inside one. Slower, not different: the
    numbers stay the same."""
    def wait(_module, args, kwargs):
        hidden = args[0] if args else kwargs.get("hidden_states")
        if hidden is not None and hidden.shape[1] > 1:  # not a one-token decode step
            time.sleep(seconds)

    handles = [m.register_forward_pre_hook(wait, with_kwargs=True) for m in model.modules()
               if type(m).__name__.endswith("DecoderLayer")]
    assert handles
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


ASKS = {"compute.answering.ask": answering_ask,  # the strategies' own locking
        "compute.facade.ask": lambda s, i, q, **kw: compute.facade.ask(  # what the Live page calls
            s, i, q, method=kw.get("method", "attention"), layers=kw.get("layers"))}


def _same(got, expected, what: str) -> None:
    assert got.answer == expected.answer and got.text == expected.text, what
    assert got.p_yes == pytest.approx(expected.p_yes, abs=1e-6), what
    assert got.map.method == expected.map.method and got.map.fallback_reason == expected.map.fallback_reason, what
    assert got.map.layers == expected.map.layers, what
    for layer, grid in expected.map.maps.items():
        np.testing.assert_allclose(got.map.maps[layer], grid, atol=1e-6, err_msg=f"{what}, layer {layer}")
    np.testing.assert_allclose(got.map.mean, expected.map.mean, atol=1e-6, err_msg=what)


@pytest.mark.parametrize("ask", ASKS.values(), ids=ASKS.keys())
def test_two_users_asking_at_once_get_what_each_gets_alone(loaded, images, ask):
    session, implementation = loaded
    assert _implementation(session) == implementation  # an earlier test left the model as it found it
    jobs = [(user, kind) for user in range(2) for kind in KINDS]
    expected = {(user, kind): ask(session, images[user], QUESTIONS[user], **KINDS[kind]) for user, kind in jobs}
    for (user, kind), result in expected.items():
        assert result.map.method == kind and result.map.fallback_reason is None, (user, kind, result.map)
    assert not np.allclose(expected[0, "attention"].map.mean, expected[1, "attention"].map.mean, atol=1e-4)

    barrier = threading.Barrier(2, timeout=120)

    def user(k: int, round_: int) -> list[tuple[str, object]]:
        # Even rounds: both threads in the same order (attention beside attention, Grad-CAM beside
        # Grad-CAM); odd rounds: in opposite orders (attention beside Grad-CAM).
        order = list(KINDS) if k == 0 or round_ % 2 == 0 else list(KINDS)[::-1]
        out = []
        for kind in order:
            barrier.wait()  # each pair of asks starts together, or the second a little later
            if k == 1:
                time.sleep(STAGGER[round_ % len(STAGGER)])
            out.append((kind, ask(session, images[k], QUESTIONS[k], **KINDS[kind])))
        return out

    with slow_decoder(session.model), ThreadPoolExecutor(2) as pool:
        for round_ in range(ROUNDS):
            futures = [pool.submit(user, k, round_) for k in range(2)]
            for k, future in enumerate(futures):
                for kind, result in future.result(timeout=300):  # a thread's exception is raised here
                    what = f"round {round_}, user {k}, {kind}"
                    assert result.map.method == kind, f"{what}: fell back: {result.map.fallback_reason}"
                    assert result.map.fallback_reason is None, what
                    _same(result, expected[k, kind], what)
            # Overlapping captures can leave the model on the capturing implementation (one thread
            # "restores" what the other had set), after which such races go unseen.
            assert _implementation(session) == implementation, f"round {round_}: the model was left switched"
