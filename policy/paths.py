"""Where the shipped policy model lives (inside the package, so a wheel carries it), and its seed."""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

MODEL_NAME = "rhythm-tiny"
SHIPPED_MODEL_DIR = Path(__file__).resolve().parent / "weights" / MODEL_NAME
# The seed the shipped weights were pretrained with (``rhythm pretrain``'s default ``--seed``); the untrained
# ``base-model`` benchmark policy starts from the same initialisation.
SHIPPED_SEED = 0


def model_folder(model_dir: Path | None) -> Path:
    """The model folder a backend loads: ``model_dir``, or the shipped one when ``None``."""
    return Path(model_dir) if model_dir is not None else SHIPPED_MODEL_DIR


@lru_cache(maxsize=8)
def base_model_version(model_dir: Path | None = None) -> str:
    """``<name>@<sha256 of the weights, 12 hex>``: a LoRA adapter belongs to exactly this base model, so a
    changed base (same name, new weights) does not serve last week's adapters."""
    directory = model_folder(model_dir)
    digest = hashlib.sha256((directory / "model.safetensors").read_bytes()).hexdigest()[:12]
    name = MODEL_NAME if model_dir is None else directory.name
    return f"{name}@{digest}"
