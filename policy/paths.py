"""Where the shipped policy model lives (inside the package, so an installed wheel carries it)."""

from __future__ import annotations

from pathlib import Path

MODEL_NAME = "rhythm-tiny"
SHIPPED_MODEL_DIR = Path(__file__).resolve().parent / "weights" / MODEL_NAME
