"""The command-line parser: every command's options, defaults, choices and value checks as they
were when the run options were still mapped by hand (frozen below from that parser), and the
round trip from the run command's options to the configuration dataclasses."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import subprocess
import sys
from pathlib import Path

import pytest

from compute.cli import RUN_OPTION_GROUPS, build_parser, main
from compute.cli_options import build, option_dest
from compute.config import AnswerConfig, DecodeConfig, MapConfig, ModelSpec, PromptConfig, RunConfig, VariantConfig
from compute.data.limits import ImageLimits

INT32_MAX = 2**31 - 1

# {command: {option strings: default}}, dumped from the hand-written parser before the change.
EXPECTED_DEFAULTS = {
    "run": {
        ("--model",): None,
        ("--device",): None,
        ("--dtype",): None,
        ("--trust-remote-code",): False,
        ("--device-map",): None,
        ("--instruction",): "Answer yes or no.",
        ("--system-prompt",): None,
        ("--max-new-tokens",): 32,
        ("--no-maps",): False,
        ("--layers",): "all",
        ("--query",): "answer",
        ("--heads",): "mean",
        ("--strip-border",): 0,
        ("--gradcam",): False,
        ("--deletion",): False,
        ("--methods",): "",  # issue 16: the map methods beyond attention, opt-in
        ("--relative-prompt",): "Describe the image.",
        ("--knockout-blocks",): 4,
        ("--knockout-question",): False,
        ("--sink-factor",): 0.0,
        ("--mask-sinks",): False,
        ("--study",): "baseline",
        ("--variants",): 10,
        ("--variant-seed",): 0,
        ("--negation-probe",): False,
        ("--answerer",): "auto",
        ("--full-replies",): False,
        ("--manifest",): None,
        ("--image-root",): None,
        ("--allow-outside-root",): False,
        ("--db",): None,
        ("--run", "--run-name"): None,
        ("--dataset",): None,
        ("--limit",): None,
        ("--batch-size",): 8,
        ("--seed",): 0,
        ("--max-image-pixels",): 50000000,
        ("--max-image-bytes",): 1073741824,
        ("--max-failure-share",): 0.5,
        ("--quiet",): False,
    },
    "synth": {("--n",): 60, ("--seed",): 0, ("--size",): 512, ("--out",): None, ("--quiet",): False},
    "demo-model": {("--out",): Path("models/demo"), ("--seed",): 0, ("--train",): False, ("--quiet",): False},
    "demo-eval": {("--model",): "models/demo", ("--n",): 300, ("--seed",): None, ("--json",): None,
                  ("--update-card",): False, ("--quiet",): False},
    "import-results": {("file",): None, ("--db",): None, ("--run",): None, ("--dataset",): None,
                       ("--model",): "imported", ("--map",): None},  # --map: added with issue 14
    "report": {("--db",): None, ("--run",): None, ("--format",): "md", ("--out",): None},
    "bench": {("--model",): "models/demo", ("--images",): None, ("--variants",): 10, ("--end-to-end",): False,
              ("--repeat",): 3},
    "gpu-bench": {("--device",): "cuda", ("--tiny",): False, ("--images",): 63, ("--json",): None,
                  ("--profile",): None, ("--family",): "gemma3", ("--no-study",): False},
    "merge": {("--db",): None, ("--run",): None, ("--world",): None},
    "demo-faithfulness": {("--model",): "models/demo", ("--n",): 6, ("--quiet",): False, ("--json",): None,
                          ("--methods",): "attention,gradcam,relevancy,relative,knockout,logit_lens"},
    "dataset": {("format",): None},  # one subcommand per format: tests/test_dataset_cli.py checks them
    "tiny-model": {("--family",): None, ("--out",): None, ("--seed",): 0},
    "compare": {("--db",): None, ("--runs",): None, ("--format",): "md", ("--method",): "attention",
                ("--out",): None},
}

EXPECTED_REQUIRED = {
    "dataset": {"format"},
    "run": {"--db", "--manifest", "--model", "--run"},
    "synth": {"--out"},
    "import-results": {"file", "--db", "--run"},
    "report": {"--db", "--run"},
    "merge": {"--world", "--db", "--run"},
    "tiny-model": {"--family", "--out"},
    "compare": {"--db", "--runs"},
}

EXPECTED_CHOICES = {
    "run": {"--dtype": ("bf16", "fp16", "fp32"), "--device-map": ("auto",), "--query": ("answer", "question", "generated"),
            "--heads": ("mean", "max", "all"), "--study": ("baseline", "phrasing"),
            "--answerer": ("auto", "generate", "prefix-shared")},
    "report": {"--format": ("md", "json", "html")},
    "tiny-model": {"--family": ("gemma3", "paligemma", "qwen2_5_vl", "llava", "idefics3", "internvl")},
    "compare": {"--format": ("md", "json")},
    "gpu-bench": {"--family": ("gemma3", "qwen2_5_vl")},
    "dataset": {"format": ("mimic-cxr-jpg", "chexpert", "medical-cxr-vqa", "mimic-cxr-vqa", "vqa-rad", "slake",
                           "nih-cxr14", "vindr-cxr", "dicom", "table")},
}

POSITIVE = (1, INT32_MAX)
# {command: {option: (low, high) of a checked whole number, or the plain type}}; None: a string.
EXPECTED_TYPES = {
    "run": {"--max-new-tokens": POSITIVE, "--strip-border": (0, 1000), "--variants": POSITIVE,
            "--variant-seed": (0, INT32_MAX), "--batch-size": (1, 4096), "--limit": POSITIVE,
            "--seed": (0, INT32_MAX), "--max-image-pixels": (1, 1 << 40), "--max-image-bytes": (1, 1 << 40),
            "--max-failure-share": float, "--manifest": Path, "--image-root": Path, "--db": Path,
            "--knockout-blocks": (1, 64), "--sink-factor": float},
    "synth": {"--n": POSITIVE, "--seed": int, "--size": POSITIVE, "--out": Path},
    "demo-model": {"--out": Path, "--seed": int},
    "demo-eval": {"--n": POSITIVE, "--seed": int, "--json": Path},
    "import-results": {"file": Path, "--db": Path},
    "report": {"--db": Path, "--out": Path},
    "bench": {"--images": POSITIVE, "--variants": POSITIVE, "--repeat": POSITIVE},
    "gpu-bench": {"--images": POSITIVE, "--json": Path, "--profile": Path},
    "merge": {"--db": Path, "--world": POSITIVE},
    "demo-faithfulness": {"--n": POSITIVE, "--json": Path},
    "dataset": {},
    "tiny-model": {"--out": Path, "--seed": int},
    "compare": {"--db": Path, "--out": Path},
}

RUN_ARGS = ["run", "--model", "m", "--manifest", "x.jsonl", "--db", "d.duckdb", "--run", "r"]


def _commands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices


def _options(command: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in command._actions if not isinstance(a, argparse._HelpAction)]


def _name(action: argparse.Action) -> str:
    return action.option_strings[0] if action.option_strings else action.dest


def test_every_command_keeps_its_options_and_defaults():
    commands = _commands()
    assert set(commands) == set(EXPECTED_DEFAULTS)
    for name, command in commands.items():
        found = {tuple(a.option_strings) or (a.dest,): a.default for a in _options(command)}
        assert found == EXPECTED_DEFAULTS[name], name
        assert all(type(found[k]) is type(v) for k, v in EXPECTED_DEFAULTS[name].items()), name


def test_every_command_keeps_its_required_options_and_choices():
    for name, command in _commands().items():
        assert {_name(a) for a in _options(command) if a.required} == EXPECTED_REQUIRED.get(name, set()), name
        choices = {_name(a): tuple(map(str, a.choices)) for a in _options(command) if a.choices is not None}
        assert choices == EXPECTED_CHOICES.get(name, {}), name


def test_every_command_keeps_its_value_checks():
    for name, command in _commands().items():
        typed = {_name(a): a.type for a in _options(command) if a.type is not None}
        assert set(typed) == set(EXPECTED_TYPES[name]), name
        for option, expected in EXPECTED_TYPES[name].items():
            parse = typed[option]
            if not isinstance(expected, tuple):
                assert parse is expected, (name, option)
                continue
            low, high = expected
            assert parse(str(low)) == low and parse(str(high)) == high
            for bad in (low - 1, high + 1):
                with pytest.raises(argparse.ArgumentTypeError, match=f"^must be from {low} to {high}, got {bad}$"):
                    parse(str(bad))
            for bad in ("abc", "1.5", ""):
                with pytest.raises(argparse.ArgumentTypeError, match="^expected a whole number, got "):
                    parse(bad)


def test_every_option_has_help_and_run_help_shows_the_groups():
    for name, command in _commands().items():
        assert all(a.help for a in command._actions), name
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exit_:
        main(["run", "--help"])
    assert exit_.value.code == 0
    text = " ".join(out.getvalue().split())
    for title in [title for _, title, _ in RUN_OPTION_GROUPS] + ["run, data and output"]:
        assert f"\n{title}:\n" in out.getvalue()
    for fragment in ("(default: 'Answer yes or no.')", "(default: 50,000,000)", "(default: 1,073,741,824)",
                     "blur the top 10% of cells vs random cells (4 more forward passes",
                     "8 images' questions (default: 8)", "--run NAME, --run-name NAME", "seed of the rewrite choice (default: 0)"):
        assert fragment in text


@pytest.mark.integration
def test_python_m_compute_run_help_works():
    done = subprocess.run([sys.executable, "-m", "compute", "run", "--help"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and "attention maps:" in done.stdout and "--max-image-bytes" in done.stdout


def test_run_options_cover_each_documented_field_once():
    actions = {a.dest: a for a in _commands()["run"]._actions}
    undocumented = {}
    for cls in [c for c, _, _ in RUN_OPTION_GROUPS] + [RunConfig]:
        for f in dataclasses.fields(cls):
            if "help" in f.metadata:
                assert option_dest(f) in actions, (cls.__name__, f.name)
            else:
                undocumented.setdefault(cls.__name__, set()).add(f.name)
    assert undocumented == {"MapConfig": {"deletion_fraction", "deletion_random"},
                            "RunConfig": {"model", "prompt", "decode", "maps", "variants", "answering", "shard",
                                          "image_limits"}}


def test_defaults_build_the_default_config():
    args = build_parser().parse_args(RUN_ARGS)
    assert build(RunConfig, args) == RunConfig(run_name="r", manifest=Path("x.jsonl"), db=Path("d.duckdb"),
                                               model=ModelSpec("m"))


def test_every_run_option_reaches_its_field():
    argv = RUN_ARGS[:-1] + ["s", "--run-name", "r2", "--device", "cpu", "--dtype", "fp16", "--trust-remote-code",
                           "--instruction", "Say yes or no.", "--system-prompt", "be brief", "--max-new-tokens", "5",
                           "--no-maps", "--layers", "last:2", "--query", "generated", "--heads", "max",
                           "--strip-border", "2", "--gradcam", "--deletion", "--study", "phrasing", "--variants", "3",
                           "--variant-seed", "7", "--negation-probe", "--answerer", "generate", "--full-replies",
                           "--image-root", "imgs", "--allow-outside-root", "--dataset", "ds", "--limit", "9",
                           "--batch-size", "16", "--seed", "11", "--max-image-pixels", "1000",
                           "--max-image-bytes", "2000", "--max-failure-share", "0.25", "--quiet"]
    args = build_parser().parse_args(argv)
    assert args.quiet and args.trust_remote_code
    assert build(RunConfig, args) == RunConfig(
        run_name="r2", manifest=Path("x.jsonl"), db=Path("d.duckdb"),
        model=ModelSpec("m", "cpu", "fp16", True), prompt=PromptConfig("Say yes or no.", "be brief"),
        decode=DecodeConfig(5),
        maps=MapConfig(enabled=False, layers="last:2", query="generated", heads="max", strip_border=2,
                       gradcam=True, deletion=True),
        variants=VariantConfig(3, 7, True), answering=AnswerConfig("generate", 16, True),
        max_failure_share=0.25, allow_outside_root=True, image_limits=ImageLimits(1000, 2000), study="phrasing",
        dataset="ds", image_root=Path("imgs"), limit=9, seed=11)


def test_dtype_choices_are_the_loaders():
    from compute.model.loading import DTYPE_CHOICES
    assert dataclasses.fields(ModelSpec)[2].metadata["choices"] == DTYPE_CHOICES


def test_importing_the_cli_does_not_import_torch():
    code = "import compute.cli, sys; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "False", done.stderr


@pytest.mark.parametrize(("extra", "message"), [
    (["--dtype", "int8"], "argument --dtype: invalid choice: 'int8' (choose from 'bf16', 'fp16', 'fp32')"),
    (["--batch-size", "5000"], "argument --batch-size: must be from 1 to 4096, got 5000"),
    (["--strip-border", "-1"], "argument --strip-border: must be from 0 to 1000, got -1"),
    (["--max-image-pixels", "0"], "argument --max-image-pixels: must be from 1 to 1099511627776, got 0"),
    (["--variant-seed", "x"], "argument --variant-seed: expected a whole number, got 'x'"),
    (["--max-failure-share", "abc"], "argument --max-failure-share: invalid float value: 'abc'"),
    (["--no-maps", "--layers"], "argument --layers: expected one argument"),
])
def test_bad_values_are_refused_with_exit_code_2(extra, message):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), pytest.raises(SystemExit) as exit_:
        main(RUN_ARGS + extra)
    assert exit_.value.code == 2
    assert err.getvalue().strip().splitlines()[-1] == f"python -m compute run: error: {message}"


def test_missing_required_options_are_all_named():
    err = io.StringIO()
    with contextlib.redirect_stderr(err), pytest.raises(SystemExit) as exit_:
        main(["run"])
    assert exit_.value.code == 2
    last = err.getvalue().strip().splitlines()[-1]
    assert last.startswith("python -m compute run: error: the following arguments are required: ")
    assert set(last.split(": ")[-1].split(", ")) == {"--model", "--manifest", "--db", "--run/--run-name"}


@pytest.mark.parametrize("share", ["0", "nan", "1.5"])
def test_a_value_the_config_refuses_is_one_line_and_exit_code_2(share, capsys):
    assert main(RUN_ARGS + ["--max-failure-share", share]) == 2
    assert capsys.readouterr().err.strip().startswith("error: max_failure_share must be in (0, 1], got ")


def test_device_map_reaches_the_model_spec():
    args = build_parser().parse_args(RUN_ARGS + ["--device-map", "auto"])
    assert build(RunConfig, args).model == ModelSpec("m", device_map="auto")


def test_runs_stored_before_the_map_methods_keep_their_identity():
    """A run stored before --methods and the sink options existed resumes: at their defaults they
    are not part of its identity; set, they are."""
    from dataclasses import asdict
    plain = MapConfig()
    before = {k: v for k, v in asdict(plain).items()
              if k not in ("methods", "relative_prompt", "knockout_blocks", "knockout_question", "sink_factor",
                           "mask_sinks")}
    assert plain.identity() == before
    assert MapConfig(methods="knockout").identity()["methods"] == "knockout"
    assert MapConfig(methods="knockout,relevancy").identity() == MapConfig(methods="relevancy, knockout").identity()
