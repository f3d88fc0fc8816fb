"""The prefix-sharing engine gives the straightforward path's answers, P(yes) and maps."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from compute.maps import MapSpec
from compute.benchmarks.engine_bench import workload
from compute.answering import Group, PrefixSharedEngine
from compute.model.prefix import common_prefix_length as _common_prefix
from compute.model.loading import load_model
from compute.answering import BatchedGenerate


@pytest.fixture(scope="module")
def session(demo_session):
    return demo_session  # the shared one (conftest.py)


@pytest.fixture(scope="module")
def groups():
    return workload(3, 6, seed=4, size=256)


def _compare(engine_results, reference, maps=True):
    for e, r in zip(engine_results, reference, strict=True):
        assert e.answer == r.answer
        assert abs(e.p_yes - r.p_yes) <= 1e-4 and abs(e.yes_no_mass - r.yes_no_mass) <= 1e-4
        if maps:
            assert e.maps.keys() == r.maps.keys()
            for layer in e.maps:
                assert np.abs(e.maps[layer] - r.maps[layer]).max() <= 1e-4


def test_engine_equals_ask_batch_with_maps(session, groups):
    engine = PrefixSharedEngine(session, MapSpec(layers="all"), max_batch=4)  # 7 questions: two suffix batches per image
    for group in groups:
        lengths = {len(q) for q in group.questions}
        assert len(lengths) > 1, "variants of different lengths exercise the suffix padding"
        reference = BatchedGenerate(session).ask_batch([group.image] * len(group.questions), list(group.questions),
                                      maps=MapSpec(layers="all"))
        results = engine.ask_group(group)
        _compare(results, reference)
        assert [e.text for e in results] == [r.text for r in reference]


def test_several_images_per_pass_equal_ask_batch(session, groups):
    # 3 images: passes of 2 and 1; suffix batches of 5 rows mix the two images of the first pass
    engine = PrefixSharedEngine(session, MapSpec(layers="all"), max_batch=5, images_per_pass=2, workers=2)
    answered = engine.ask_groups(groups)
    assert [len(a) for a in answered] == [len(g.questions) for g in groups]
    for group, results in zip(groups, answered, strict=True):
        reference = BatchedGenerate(session).ask_batch([group.image] * len(group.questions), list(group.questions),
                                      maps=MapSpec(layers="all"))
        _compare(results, reference)
    assert engine.generated_rows == 0  # the demo model answers yes/no first: no row needed generate


def test_engine_without_maps_and_with_text(session, groups):
    group = groups[1]
    reference = BatchedGenerate(session).ask_batch([group.image] * len(group.questions), list(group.questions))
    _compare(PrefixSharedEngine(session).ask_group(group), reference, maps=False)
    texts = [r.text for r in PrefixSharedEngine(session, full_replies=True).ask_group(group)]
    assert texts == [r.text for r in reference]


def test_prefix_is_found_from_token_ids():
    import torch
    a, b, c = torch.tensor([1, 2, 3, 4]), torch.tensor([1, 2, 9]), torch.tensor([1, 2, 3])
    assert _common_prefix([a, b]) == 2 and _common_prefix([a, c]) == 3 and _common_prefix([a]) == 4


def test_single_question_groups_and_unsupported_maps(session):
    image = Image.new("RGB", (64, 64), 90)
    (alone,) = PrefixSharedEngine(session, MapSpec(layers="full")).ask_group(Group(image, ["Is there edema?"]))
    (reference,) = BatchedGenerate(session).ask_batch([image], ["Is there edema?"], maps=MapSpec(layers="full"))
    _compare([alone], [reference])
    with pytest.raises(ValueError, match="reads answer-position attention"):
        PrefixSharedEngine(session, MapSpec(layers="all", query="question"))


def test_rows_that_fit_by_hand():
    from types import SimpleNamespace

    from compute.answering.engine import rows_that_fit
    medgemma = SimpleNamespace(num_hidden_layers=34, num_key_value_heads=4, head_dim=256, vocab_size=262208)
    per_row = (2 * 34 * 4 * 256 * 512 + 262208) * 2  # bf16: 71.8 MB of cache and logits per row
    assert rows_that_fit(8 * 2**30, medgemma, 512, 2) == 8 * 2**30 // per_row == 119


class _MemoryLimitedEngine(PrefixSharedEngine):
    """Raises the out-of-memory error a GPU raises whenever a suffix batch has more than
    `fits` rows or a prefix pass more than `images_fit` images (a CPU cannot run out of memory
    on cue; gpu-bench checks the real one)."""

    fits = 2
    images_fit = 8

    def _suffixes(self, prefix_cache, rows, *args):
        if len(rows) > self.fits:
            import torch
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return super()._suffixes(prefix_cache, rows, *args)

    def _ask_images_once(self, groups, prepared):
        if len(groups) > self.images_fit:
            import torch
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return super()._ask_images_once(groups, prepared)


def test_out_of_memory_halves_the_batch_and_loses_nothing(session, groups):
    group = groups[0]
    reference = PrefixSharedEngine(session, MapSpec(layers="last:2")).ask_group(group)
    engine = _MemoryLimitedEngine(session, MapSpec(layers="last:2"), max_batch=8)
    _compare(engine.ask_group(group), reference)
    assert (engine.max_batch, engine.backoffs) == (2, 2)  # 8 -> 4 -> 2, then every chunk fits
    engine.fits = 0
    import torch
    with pytest.raises(torch.OutOfMemoryError):  # even one row does not fit: the error is not swallowed
        engine.ask_group(group)
    assert engine.max_batch == 1


def test_out_of_memory_in_the_prefix_pass_splits_the_images(session, groups):
    reference = PrefixSharedEngine(session, MapSpec(layers="last:2")).ask_groups(groups)
    engine = _MemoryLimitedEngine(session, MapSpec(layers="last:2"), max_batch=64, images_per_pass=3)
    engine.fits, engine.images_fit = 64, 1
    for results, expected in zip(engine.ask_groups(groups), reference, strict=True):
        _compare(results, expected)
    assert (engine.images_per_pass, engine.backoffs) == (1, 2)  # 3 -> (1, 2 -> (1, 1))


def test_engine_equals_ask_batch_on_cuda(groups):
    """The same equality on a GPU's kernels (fp32); skipped without CUDA. On a lent GPU machine:
    `python -m pytest tests/test_engine.py -k cuda`."""
    import torch
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    cuda = load_model("models/demo", device="cuda", dtype="float32")  # its own: another device than demo_session
    engine = PrefixSharedEngine(cuda, MapSpec(layers="all"), max_batch=4)
    for group in groups:
        reference = BatchedGenerate(cuda).ask_batch([group.image] * len(group.questions), list(group.questions),
                                                    maps=MapSpec(layers="all"))
        _compare(engine.ask_group(group), reference)


def test_the_answerer_is_chosen_by_configuration_not_by_study(session):
    from compute.answering import BatchedGenerate, PrefixSharedEngine, make_answerer, strategy_for
    from compute.config import AnswerConfig
    from compute.maps import MapSpec
    from compute.studies import OptionError, check_options

    assert strategy_for(AnswerConfig(), MapSpec()) == "prefix-shared"
    assert strategy_for(AnswerConfig(), None) == "prefix-shared"
    assert strategy_for(AnswerConfig(), MapSpec(query="generated")) == "generate"  # the engine cannot
    assert strategy_for(AnswerConfig("generate"), MapSpec()) == "generate"
    assert isinstance(make_answerer(session, AnswerConfig(), MapSpec()), PrefixSharedEngine)
    assert isinstance(make_answerer(session, AnswerConfig("generate"), MapSpec()), BatchedGenerate)
    from compute.config import MapConfig, ModelSpec, RunConfig
    config = RunConfig("r", Path("m.jsonl"), Path("d.duckdb"), ModelSpec("models/demo"), maps=MapConfig(query="generated"),
                       answering=AnswerConfig("prefix-shared"))
    with pytest.raises(OptionError, match="--answerer prefix-shared reads answer-position attention only"):
        check_options(config, None)
