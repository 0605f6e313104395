"""``rhythm pretrain`` writes a fresh folder under ``var/models/`` and never replaces a model by accident;
building the CLI registers the model's simulator policies without loading torch."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner, Result

from policy.cli import default_out_dir, pretrain
from policy.model import MODEL_FILES
from policy.paths import SHIPPED_MODEL_DIR

ROOT = Path(__file__).resolve().parents[2]
# The smallest run the options allow that still trains and writes a full folder.
TINY = ["--users", "20", "--steps", "2", "--particles", "8", "--batch-tokens", "4000", "--eval-users", "0"]

_root = typer.Typer()
_root.command("pretrain")(pretrain)
_root.command("noop")(lambda: None)  # two commands, so Typer keeps `pretrain` a sub-command


def _pretrain(args: list[str]) -> Result:
    return CliRunner().invoke(_root, ["pretrain", *args])


def _said(result: Result) -> str:
    """The output as one line: rich wraps the error box at the terminal width."""
    return " ".join(result.output.replace("│", " ").split())


def _digest(folder: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()
    }


def test_default_folder_is_new_and_under_var_models() -> None:
    now = datetime(2026, 12, 1, 21, 5, 9, tzinfo=UTC)
    assert default_out_dir(3, now) == Path("var/models/rhythm-tiny-seed3-20261201T210509Z")
    assert default_out_dir(0) != default_out_dir(0, now)


def test_the_shipped_model_is_refused_without_force() -> None:
    before = _digest(SHIPPED_MODEL_DIR)
    result = _pretrain(["--out", str(SHIPPED_MODEL_DIR), *TINY])
    assert result.exit_code == 2, result.output
    assert "the shipped model" in _said(result) and "--force" in _said(result)
    assert _digest(SHIPPED_MODEL_DIR) == before


def test_a_file_or_a_non_empty_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("keep me\n")
    result = _pretrain(["--out", str(tmp_path), *TINY])
    assert result.exit_code == 2 and "--force" in _said(result), result.output
    result = _pretrain(["--out", str(tmp_path / "notes.txt"), *TINY])
    assert result.exit_code == 2 and "is a file" in _said(result), result.output
    assert (tmp_path / "notes.txt").read_text() == "keep me\n"


@pytest.mark.slow
def test_a_tiny_run_writes_under_var_models_of_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shipped = _digest(SHIPPED_MODEL_DIR)
    monkeypatch.chdir(tmp_path)
    result = _pretrain(TINY)
    assert result.exit_code == 0, result.output
    (written,) = (tmp_path / "var" / "models").iterdir()
    assert written.name.startswith("rhythm-tiny-seed0-")
    assert all((written / name).is_file() for name in MODEL_FILES)
    assert "rhythm pretrain --seed 0 --users 20 --steps 2" in (written / "README.md").read_text()
    assert _digest(SHIPPED_MODEL_DIR) == shipped
    # The folder now holds a model: a second run into it needs --force.
    again = _pretrain(["--out", str(written.relative_to(tmp_path)), *TINY])
    assert again.exit_code == 2 and "--force" in _said(again), again.output


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


@pytest.mark.parametrize("plan", ["0.5/0.5", "0.7/0.6/0/0.3", "0.1/0.1/0.1/1.5", "a/b/c/d"])
def test_a_bad_missing_meter_plan_is_refused(tmp_path: Path, plan: str) -> None:
    result = _pretrain(["--out", str(tmp_path / "m"), "--renderer-version", "2", "--missing", plan, *TINY])
    assert result.exit_code == 2 and "--missing" in _said(result), result.output
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("version", [[], ["--renderer-version", "1"]])
def test_a_missing_meter_plan_without_prompt_version_2_is_refused(tmp_path: Path, version: list[str]) -> None:
    """Version 1 trains with every meter shown: the plan would be dropped silently."""
    result = _pretrain(["--out", str(tmp_path / "m"), *version, "--missing", "0.1/0.1/0.1/0.3", *TINY])
    assert result.exit_code == 2 and "needs --renderer-version 2" in _said(result), result.output
    assert not (tmp_path / "m").exists()


@pytest.mark.slow
def test_a_version_2_run_writes_a_version_2_folder_whose_card_reproduces_it(tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    from policy.tokenizer import renderer_version_of

    out = tmp_path / "v2"
    result = _pretrain(["--out", str(out), "--renderer-version", "2", "--missing", "0.5/0.3/0.2/0.2", *TINY])
    assert result.exit_code == 0, result.output
    assert renderer_version_of(AutoTokenizer.from_pretrained(out)) == 2
    card = (out / "README.md").read_text()
    assert "--renderer-version 2 --missing 0.5/0.3/0.2/0.2" in card
    assert "prompt text version 2" in card
