"""The embedded backend refuses a model folder that cannot read the prompt text the service renders."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.recommend.backends.embedded import EmbeddedBackend, ModelVersionError
from policy.model import ModelSpec, build_model, save_model_folder
from policy.prompt import RENDERER_VERSION, RENDERER_VERSIONS

TINY = ModelSpec(hidden_size=32, intermediate_size=64, num_hidden_layers=1)


def _folder(tmp_path: Path, version: int) -> Path:
    model, tokenizer = build_model(TINY, seed=0, renderer_version=version)
    directory = tmp_path / f"v{version}"
    save_model_folder(model, tokenizer, directory, "# test model\n")
    return directory


@pytest.mark.parametrize("version", RENDERER_VERSIONS)
async def test_a_model_older_than_the_renderer_is_refused_at_start(tmp_path: Path, version: int) -> None:
    folder = _folder(tmp_path, version)
    if version < RENDERER_VERSION:
        with pytest.raises(ModelVersionError, match=f"version {version}"):
            await EmbeddedBackend.load(folder)
        return
    backend = await EmbeddedBackend.load(folder)
    try:
        assert backend.model.renderer_version == version
    finally:
        await backend.aclose()


async def test_the_shipped_model_reads_the_text_the_service_renders() -> None:
    backend = await EmbeddedBackend.load()
    try:
        assert backend.model.renderer_version == RENDERER_VERSION
    finally:
        await backend.aclose()
