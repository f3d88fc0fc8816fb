"""Loading checkpoints of any family: the family comes from model_type; a checkpoint of no
supported family, or one that would run its own code, is refused with a message that says what
to use instead, and its code never runs; a processor that needs torchvision falls back to the
same image path without it; --device-map auto loads through accelerate and answers the same."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from compute.demo.tiny import build_tiny
from compute.model.loading import ModelNotAvailableError, UnsupportedCheckpointError, load_model

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny-load")
    return {f: build_tiny(f, root / f) for f in ("llava", "qwen2_5_vl", "internvl")}


def _copy_with(src: Path, dst: Path, **config) -> Path:
    shutil.copytree(src, dst)
    data = json.loads((dst / "config.json").read_text())
    data.update(config)
    (dst / "config.json").write_text(json.dumps(data))
    return dst


def _code_that_leaves_a_mark(folder: Path, mark: Path) -> None:
    (folder / "modeling_custom.py").write_text(f"open({str(mark)!r}, 'w').write('ran')\nclass Custom: pass\n")
    (folder / "configuration_custom.py").write_text(f"open({str(mark)!r}, 'w').write('ran')\nclass C: pass\n")


@pytest.mark.parametrize("model_type, named", [("llava_mistral", "LLaVA-Med"), ("llava_llama", "LLaVA-Rad"),
                                               ("chexagent", "CheXagent")])
def test_remote_code_families_are_refused_with_what_to_use(tiny, tmp_path, model_type, named):
    mark = tmp_path / "ran"
    code = {"AutoConfig": "configuration_custom.C", "AutoModelForCausalLM": "modeling_custom.Custom"}
    folder = _copy_with(tiny["llava"], tmp_path / "m", model_type=model_type, auto_map=code)
    _code_that_leaves_a_mark(folder, mark)
    with pytest.raises(UnsupportedCheckpointError) as error:
        load_model(str(folder))
    message = str(error.value)
    assert named in message and "llava-hf" in message and "--trust-remote-code" in message
    assert "gemma3" in message and "qwen2_5_vl" in message  # the supported families are listed
    assert not mark.exists()  # the checkpoint's code never ran


def test_a_supported_family_that_asks_for_its_own_code_needs_the_flag(tiny, tmp_path):
    mark = tmp_path / "ran"
    folder = _copy_with(tiny["llava"], tmp_path / "m", auto_map={"AutoConfig": "configuration_custom.C"})
    _code_that_leaves_a_mark(folder, mark)
    with pytest.raises(UnsupportedCheckpointError, match="never run silently.*--trust-remote-code"):
        load_model(str(folder))
    assert not mark.exists()


def test_the_cli_prints_the_message_and_exits_2(tiny, tmp_path):
    folder = _copy_with(tiny["llava"], tmp_path / "m", model_type="llava_mistral")
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"image": "x.png", "question": "Is there edema?", "ground_truth": "yes"}) + "\n")
    done = subprocess.run([sys.executable, "-m", "compute", "run", "--model", str(folder), "--manifest", str(manifest),
                           "--db", str(tmp_path / "s.duckdb"), "--run", "r", "--quiet"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "LLaVA-Med" in done.stderr and "llava-hf" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("family, real_class", [("qwen2_5_vl", "Qwen2_5_VLProcessor"),
                                                ("internvl", "InternVLProcessor")])
def test_a_processor_that_needs_torchvision_falls_back_to_its_image_path(tiny, tmp_path, family, real_class):
    """The real checkpoints name processors whose video half needs torchvision; the image path is
    the same without it, so the prompts and inputs are those of the tiny model's stand-in."""
    folder = shutil.copytree(tiny[family], tmp_path / "m")
    for name in ("processor_config.json", "tokenizer_config.json"):
        data = json.loads((folder / name).read_text())
        data["processor_class"] = real_class
        (folder / name).write_text(json.dumps(data))
    real, stand_in = load_model(str(folder)), load_model(str(tiny[family]))
    assert type(real.processor).__name__ == type(stand_in.processor).__name__
    from PIL import Image
    image = Image.new("RGB", (90, 60), (120, 120, 120))
    a, b = real.encode([image], ["Is there edema?"]), stand_in.encode([image], ["Is there edema?"])
    assert a["input_ids"].tolist() == b["input_ids"].tolist()


def test_a_model_spread_by_accelerate_answers_the_same(tiny, tmp_path):
    """One CPU here, so `auto` places everything on it; a map that puts one decoder layer on disk
    makes accelerate dispatch the model with its hooks, as it does across GPUs."""
    from PIL import Image

    from compute.answering import Group, PrefixSharedEngine
    from compute.maps import MapSpec
    image = Image.new("RGB", (64, 64), (100, 110, 120))
    placed = {"model.vision_tower": "cpu", "model.multi_modal_projector": "cpu",
              "model.language_model.embed_tokens": "cpu", "model.language_model.layers.0": "cpu",
              "model.language_model.layers.1": "disk", "model.language_model.norm": "cpu",
              "model.language_model.rotary_emb": "cpu", "lm_head": "cpu"}
    spread = load_model(str(tiny["llava"]), device_map=placed, offload_folder=tmp_path / "offload")
    auto = load_model(str(tiny["llava"]), device_map="auto")
    plain = load_model(str(tiny["llava"]))
    assert spread.model.hf_device_map == placed and auto.spec.device_map == "auto"
    spec = MapSpec(layers="all")
    group = [Group(image, ["Is there edema?", "Any effusion?"])]
    expected = PrefixSharedEngine(plain, spec).ask_groups(group)[0]
    for session in (spread, auto):
        for got, ref in zip(PrefixSharedEngine(session, spec).ask_groups(group)[0], expected):
            assert got.text == ref.text and got.p_yes == pytest.approx(ref.p_yes, abs=1e-6)
            for layer in ref.map.maps:
                assert abs(got.map.maps[layer] - ref.map.maps[layer]).max() < 1e-6
    with pytest.raises(ValueError, match="--device or --device-map"):
        load_model(str(tiny["llava"]), device="cpu", device_map="auto")


def test_an_unsupported_model_type_is_refused_before_weights_load(tiny, tmp_path):
    folder = _copy_with(tiny["llava"], tmp_path / "m", model_type="blip-2")
    with pytest.raises(ModelNotAvailableError, match="'blip-2' is not one of the supported model families"):
        load_model(str(folder))


@pytest.mark.parametrize("device, cuda, local_rank, expected", [
    (None, False, "1", "cpu"), (None, True, None, "cuda"), (None, True, "", "cuda"), (None, True, "3", "cuda:3"),
    ("cuda:1", True, "3", "cuda:1"), ("cpu", True, "0", "cpu")])
def test_each_launched_process_gets_its_own_gpu(device, cuda, local_rank, expected):
    from compute.model.loading import resolve_device
    assert str(resolve_device(device, cuda=cuda, local_rank=local_rank if local_rank is not None else "")) == expected


def test_device_map_under_a_launcher_is_refused(tiny, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ValueError, match="use one or the other"):
        load_model(str(tiny["llava"]), device_map="auto")


def test_a_config_without_model_type_says_so(tiny, tmp_path):
    folder = shutil.copytree(tiny["llava"], tmp_path / "m")
    data = json.loads((folder / "config.json").read_text())
    del data["model_type"]
    (folder / "config.json").write_text(json.dumps(data))
    with pytest.raises(UnsupportedCheckpointError, match="has no model_type"):
        load_model(str(folder))
