"""Shared builders for the policy tests: seeded histories and a small saved model folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from domain import ACTIONS, RESPONSES, Interaction, Meters, Slot, SlotState
from policy.model import ModelSpec, build_model, save_model_folder


def make_history(n: int, seed: int = 0) -> tuple[list[Interaction], SlotState]:
    """``n`` past interactions in slot order from Monday Morning, plus the state right after them."""
    rng = np.random.default_rng(seed)
    items = []
    for t in range(n + 1):
        state = SlotState((t // 4) % 7, Slot(t % 4), Meters.from_sequence(rng.random(5).tolist()))
        items.append(Interaction(state, ACTIONS[int(rng.integers(10))], RESPONSES[int(rng.integers(3))]))
    return items[:n], items[n].state


@pytest.fixture(scope="session")
def random_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with the production architecture and random weights (scaled up so outputs are not flat)."""
    model, tokenizer = build_model(ModelSpec(), seed=1)
    for parameter in model.parameters():
        parameter.data.mul_(5.0)
    directory = tmp_path_factory.mktemp("random-model")
    save_model_folder(model, tokenizer, directory, "# test model\n")
    return directory
