"""Load any Gemma-3-family checkpoint, by local folder or hub id, into a Session."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from urllib.parse import urlparse

import torch

from compute.config import DecodeConfig, ModelSpec, PromptConfig
from compute.model.families import UnsupportedModelError
from compute.model.provenance import hub_revision, weights_fingerprint
from compute.model.remote_code import CONVERTED, checkpoint_problem, read_config

DTYPES = {"bf16": torch.bfloat16, "bfloat16": torch.bfloat16, "fp16": torch.float16, "float16": torch.float16,
          "fp32": torch.float32, "float32": torch.float32}
DTYPE_CHOICES = ("bf16", "fp16", "fp32")  # the short names the CLI offers


class ModelNotAvailableError(RuntimeError):
    """The weights are neither a local folder nor reachable on the hub."""


class UnsupportedCheckpointError(ModelNotAvailableError):
    """The checkpoint is of no supported family, or would run its own code without leave."""


def _require_accelerate() -> None:
    try:
        import accelerate  # noqa: F401
    except ImportError:
        raise ModelNotAvailableError("--device-map needs accelerate: pip install -r requirements.txt "
                                     "(it pins accelerate)") from None


def resolve_device(device: str | None, cuda: bool | None = None, local_rank: str | None = None) -> torch.device:
    """`device` as given; else CUDA when there is one (under a launcher, the GPU of this process's
    LOCAL_RANK, so that each process of `accelerate launch` or torchrun gets its own), else CPU."""
    if device:
        return torch.device(device)
    cuda = torch.cuda.is_available() if cuda is None else cuda
    local_rank = os.environ.get("LOCAL_RANK") if local_rank is None else local_rank
    if not cuda:
        return torch.device("cpu")
    return torch.device(f"cuda:{int(local_rank)}") if local_rank and local_rank.isdigit() else torch.device("cuda")


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def resolve_dtype(dtype: str | None, device: torch.device) -> torch.dtype:
    if dtype is None:
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    try:
        return DTYPES[dtype.lower()]
    except KeyError:
        raise ValueError(f"unknown dtype {dtype!r}; use one of {', '.join(sorted(DTYPES))}") from None


def _not_available(name: str, reason: Exception | None) -> ModelNotAvailableError:
    if _hub_offline():
        why = "HF_HUB_OFFLINE is set"
    elif reason is None:
        why = "the hub cannot be reached"
    else:
        why = f"the hub could not provide it ({str(reason).splitlines()[0][:200]})"
    return ModelNotAvailableError(
        f"model {name!r} is not a local folder, and {why}.\n"
        f"To get it: on a machine with internet access, accept the model's licence on huggingface.co, run\n"
        f"    huggingface-cli download {name} --local-dir medgemma-4b-it\n"
        f"then copy that folder here and pass --model /path/to/medgemma-4b-it.\n"
        f"To try the tool without it, use the demo model: --model models/demo (built by `make demo`).")


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def _hub_reachable(timeout: float = 5.0) -> bool:
    """One TCP connect to the hub, so an unreachable hub fails in seconds instead of
    minutes of huggingface_hub retries."""
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    try:
        with socket.create_connection((url.hostname, url.port or 443), timeout=timeout):
            return True
    except OSError:
        return False


def _local_folder(name: str) -> Path | None:
    path = Path(name).expanduser()
    if path.is_dir():
        return path
    try:
        from huggingface_hub import try_to_load_from_cache
        cached = try_to_load_from_cache(name, "config.json")
    except Exception:  # not a valid repo id either; from_pretrained will say so
        return None
    return Path(cached).parent if isinstance(cached, str) else None


def load_model_config(name_or_path: str, trust_remote_code: bool = False):
    """The model's configuration alone (no weights), to check options against it before the
    model loads; None when it cannot be had cheaply (load_model then says why)."""
    from transformers import AutoConfig

    local = Path(name_or_path).expanduser()
    folder = local if local.is_dir() else _local_folder(name_or_path)
    if folder is None or not (folder / "config.json").is_file():
        return None
    try:
        return AutoConfig.from_pretrained(str(folder), trust_remote_code=trust_remote_code, local_files_only=True)
    except Exception:  # noqa: BLE001 - load_model reports the real problem
        return None


def load_model(name_or_path: str, device: str | None = None, dtype: str | None = None, *,
               prompt: PromptConfig | None = None, decode: DecodeConfig | None = None,
               trust_remote_code: bool = False, attn_implementation: str | None = None,
               device_map: str | dict | None = None, offload_folder: str | Path | None = None):
    """Load processor and model through AutoProcessor / AutoModelForImageTextToText and
    return a Session. bf16 on CUDA and fp32 on CPU unless `dtype` says otherwise.
    `device_map` ("auto", or a {module: device} dict): accelerate places the weights over this
    machine's GPUs (then CPU, then `offload_folder` on disk) and moves activations between them."""
    from transformers import AutoConfig, AutoModelForImageTextToText

    from compute.model.families import family_for, supported_model_types
    from compute.model.session import Session

    spec = ModelSpec(name_or_path, device, dtype, trust_remote_code,
                     device_map if device_map is None or isinstance(device_map, str) else "custom")
    if device_map is not None and device is not None:
        raise ValueError("give --device or --device-map, not both: a device map places every layer itself")
    if device_map is not None:
        _require_accelerate()
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise ValueError("--device-map spreads one model over every GPU, while under a launcher each process "
                             "takes its own GPU: use one or the other")
    torch_device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, torch_device)
    local = Path(name_or_path).expanduser()
    if not local.is_dir() and (local.is_absolute() or name_or_path.startswith((".", "~"))):
        raise ModelNotAvailableError(f"model folder {name_or_path!r} does not exist")
    if local.is_dir() and not (local / "config.json").is_file():
        raise ModelNotAvailableError(f"{name_or_path}: no config.json here; is this a model folder?")
    folder = _local_folder(name_or_path)
    cache_only = not local.is_dir() and (_hub_offline() or not _hub_reachable())
    if cache_only and folder is None:
        raise _not_available(name_or_path, None)
    raw = read_config(folder) if folder else None
    problem = checkpoint_problem(raw, name_or_path, supported_model_types(), trust_remote_code) if raw else None
    if problem:
        raise UnsupportedCheckpointError(problem)
    try:
        config = AutoConfig.from_pretrained(name_or_path, trust_remote_code=trust_remote_code,
                                            local_files_only=cache_only)
        family = family_for(config)
        processor = family.load_processor(name_or_path, trust_remote_code=trust_remote_code,
                                          local_files_only=cache_only)
        placement = {"device_map": device_map, "offload_folder": offload_folder} if device_map else {}
        model = AutoModelForImageTextToText.from_pretrained(
            name_or_path, dtype=torch_dtype, trust_remote_code=trust_remote_code,
            attn_implementation=attn_implementation, local_files_only=cache_only,
            use_safetensors=True, **placement)  # never unpickle a checkpoint
    except UnsupportedModelError as exc:
        raise UnsupportedCheckpointError(f"{name_or_path}: {exc}") from exc
    except (OSError, ValueError) as exc:
        if "trust_remote_code" in str(exc) and not trust_remote_code:  # a hub checkpoint's auto_map, found on download
            raise UnsupportedCheckpointError(f"{name_or_path}: the checkpoint asks to run its own Python code, which "
                                             f"is never run silently; read it, then pass --trust-remote-code; or "
                                             f"{CONVERTED}") from exc
        if local.is_dir():
            reason = str(exc).splitlines()[0][:300]
            raise ModelNotAvailableError(f"{name_or_path}: cannot load this model folder ({reason})") from exc
        raise _not_available(name_or_path, exc) from exc
    if device_map is None:
        model.to(torch_device)
    else:  # inputs go where the embeddings are; accelerate moves activations between the layers
        torch_device = model.get_input_embeddings().weight.device
    model.eval()
    folder = folder or _local_folder(name_or_path)  # a first download has just filled the cache
    return Session(
        model=model, processor=processor, spec=spec, device=torch_device, dtype=torch_dtype,
        prompt=prompt or PromptConfig(), decode=decode or DecodeConfig(),
        revision=hub_revision(folder) if folder else None,
        fingerprint=weights_fingerprint(folder) if folder else None,
    )
