"""Security properties that are not covered where their feature is tested."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_pickled_checkpoints_are_refused(tmp_path):
    """Weights load from safetensors only: a folder with just a pickled pytorch_model.bin is an error."""
    import shutil

    import torch
    from safetensors.torch import load_file

    from compute.model.loading import ModelNotAvailableError, load_model
    folder = shutil.copytree("models/demo", tmp_path / "pickled")
    torch.save(load_file(folder / "model.safetensors"), folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()
    with pytest.raises(ModelNotAvailableError, match="safetensors"):
        load_model(str(folder))


def _streamlit_command(target: str, *variables: str) -> list[str]:
    """The `streamlit run` command line that `make <target>` would execute, from make's dry run."""
    import shlex
    import shutil
    import subprocess
    if shutil.which("make") is None:
        pytest.skip("needs make")
    dry_run = subprocess.run(["make", "-n", "--no-print-directory", target, *variables], cwd=ROOT,
                             capture_output=True, text=True, timeout=60, check=True).stdout
    commands = [shlex.split(line) for line in dry_run.replace("\\\n", " ").splitlines() if line.strip()]
    runs = [words for words in commands if words[1:4] == ["-m", "streamlit", "run"]]
    assert len(runs) == 1, dry_run
    return runs[0]


def _streamlit_options(command: list[str]) -> dict:
    """What Streamlit makes of `command`'s flags: its own CLI parses them, then its config
    loader lays them over the config files it would read from here (the dashboard's folder)."""
    from streamlit import config
    from streamlit.web import bootstrap, cli
    params = cli.main_run.make_context("run", command[4:]).params
    flags = {name: value for name, value in params.items() if name not in ("target", "args")}
    try:
        bootstrap.load_config_options(flag_options=flags)
        return {name: config.get_option(name) for name in ("server.address", "server.port", "server.headless")}
    finally:
        config.get_config_options(force_reparse=True)  # leave Streamlit's global config as other tests expect it


def test_make_serves_the_dashboard_on_localhost_only():
    """`make serve` (and so `make demo`) binds the dashboard to the loopback address only:
    dropping or changing --server.address in the Makefile fails this."""
    command = _streamlit_command("serve", "PORT=8765")
    assert command[4] == "dashboard/app.py"
    options = _streamlit_options(command)
    assert options == {"server.address": "127.0.0.1", "server.port": 8765, "server.headless": True}


def _record_from_pretrained(monkeypatch) -> list[tuple[str, object]]:
    """Patch the transformers auto classes that compute.model.loading uses (and those they call
    in turn) to record each from_pretrained call's trust_remote_code, then load for real."""
    import transformers
    calls = []
    for cls in (transformers.AutoConfig, transformers.AutoProcessor, transformers.AutoModelForImageTextToText,
                transformers.AutoTokenizer, transformers.AutoImageProcessor):
        def recording(*args, _cls=cls, _original=cls.from_pretrained, **kwargs):
            calls.append((_cls.__name__, kwargs.get("trust_remote_code", "not passed")))
            return _original(*args, **kwargs)
        monkeypatch.setattr(cls, "from_pretrained", staticmethod(recording))
    return calls


@pytest.mark.parametrize("trust", [False, True], ids=["default", "asked"])
def test_the_loader_passes_trust_remote_code_only_when_asked(monkeypatch, trust):
    from compute.model.loading import load_model
    calls = _record_from_pretrained(monkeypatch)
    session = load_model("models/demo") if not trust else load_model("models/demo", trust_remote_code=True)
    assert session.spec.trust_remote_code is trust
    assert {"AutoProcessor", "AutoModelForImageTextToText"} <= {name for name, _ in calls}, calls
    assert all(value is trust for _, value in calls), calls  # nested loads (tokenizer, config) included


@pytest.mark.integration
@pytest.mark.parametrize("flag", [[], ["--trust-remote-code"]], ids=["default", "asked"])
def test_a_run_passes_trust_remote_code_only_when_asked(monkeypatch, tmp_path, flag):
    """Through the CLI: `compute run` checks options against the model's config, then loads it."""
    from compute.cli import main
    from compute.demo.synth import SynthConfig, generate_dataset
    manifest = generate_dataset(SynthConfig(n=1, seed=1, size=64, dicom_fraction=0.0), tmp_path / "synth",
                                progress=False)
    calls = _record_from_pretrained(monkeypatch)
    assert main(["run", "--model", "models/demo", "--manifest", str(manifest), "--db", str(tmp_path / "t.duckdb"),
                 "--run", "t", "--limit", "1", "--no-maps", "--quiet", *flag]) == 0
    assert {"AutoConfig", "AutoProcessor", "AutoModelForImageTextToText"} <= {name for name, _ in calls}, calls
    assert all(value is bool(flag) for _, value in calls), calls


def test_uploads_are_judged_by_content_and_capped():
    import io

    from PIL import Image

    from compute.data.images import ImageLoadError
    from compute.data.uploads import load_upload
    buffer = io.BytesIO()
    Image.new("L", (32, 32), 200).save(buffer, format="PNG")
    png = buffer.getvalue()
    assert load_upload(png, "scan.dcm").size == (32, 32)  # a PNG named .dcm is read as the PNG it is
    with pytest.raises(ImageLoadError, match="notes.png: not a PNG, JPEG or DICOM file"):
        load_upload(b"hello, not an image", "notes.png")
    with pytest.raises(ImageLoadError, match="over the 0 MiB upload limit"):
        load_upload(png, "big.png", max_bytes=10)
