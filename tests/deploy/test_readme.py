"""README keeps up with the code: every setting documented, the Quick start is exactly its three commands."""

from __future__ import annotations

import re
from pathlib import Path

from app.core.config import Settings

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_every_setting_is_in_the_configuration_table() -> None:
    missing = [name for name in Settings.model_fields if f"`RHYTHM_{name.upper()}`" not in README]
    assert missing == [], f"document these in README's configuration table: {missing}"


def test_quick_start_is_make_run_make_demo_and_make_test() -> None:
    section = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    first_block = re.search(r"```bash\n(.*?)```", section, flags=re.DOTALL)
    assert first_block is not None
    commands = [line.split("#", 1)[0].strip() for line in first_block.group(1).splitlines()]
    # From clone to a recommendation in two commands, then the test command CI runs.
    assert [c for c in commands if c] == ["make run", "make demo", "make test"]
