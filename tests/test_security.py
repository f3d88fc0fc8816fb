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


def test_make_serves_the_dashboard_on_localhost_only():
    makefile = (ROOT / "Makefile").read_text()
    assert "--server.address 127.0.0.1" in makefile and "0.0.0.0" not in makefile


def test_trust_remote_code_is_off_unless_asked():
    from compute.cli import build_parser
    args = build_parser().parse_args(["run", "--model", "m", "--manifest", "x", "--db", "d", "--run", "r"])
    assert args.trust_remote_code is False


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
