"""Where the shipped policy model lives (inside the package, so a wheel carries it), and its seed."""

from __future__ import annotations

from pathlib import Path

MODEL_NAME = "rhythm-tiny"
SHIPPED_MODEL_DIR = Path(__file__).resolve().parent / "weights" / MODEL_NAME
# The seed the shipped weights were pretrained with (``rhythm pretrain``'s default ``--seed``); the untrained
# ``base-model`` benchmark policy starts from the same initialisation.
SHIPPED_SEED = 0
