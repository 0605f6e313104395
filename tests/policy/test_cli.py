"""Building the CLI registers the model's simulator policies without loading torch."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_building_the_cli_registers_the_model_policies_without_torch() -> None:
    code = textwrap.dedent(
        """
        import sys
        from sim.policies import available_policies
        assert "model" not in available_policies()
        import policy.cli
        assert {"model", "base-model"} <= set(available_policies()), available_policies()
        heavy = sorted(m for m in ("torch", "transformers") if m in sys.modules)
        assert not heavy, heavy
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
