"""The model as a simulator policy: registry names, the renderer it uses, and that the weights learned."""

from __future__ import annotations

import numpy as np
import pytest

from policy.prompt import parse_prompt
from policy.sim_policy import ModelPolicy, register_model_policies
from sim.policies import make_policy
from sim.profiles import sample_profiles
from sim.rollout import rollout


@pytest.fixture(autouse=True, scope="module")
def _model_policies() -> None:
    # The simulator's registry is filled by its caller (rhythm's CLI does this when it builds `bench`).
    register_model_policies()


def test_registry_resolves_model_names(random_model_dir: object) -> None:
    profiles = sample_profiles(np.random.default_rng(0), 2, "archetypes")
    for spec in ("model", "base-model", f"model:{random_model_dir}"):
        policy = make_policy(spec, profiles)
        assert isinstance(policy, ModelPolicy)
    with pytest.raises(FileNotFoundError):
        make_policy("model:/nonexistent/folder", profiles)


def test_adapter_feeds_the_model_the_rendered_history() -> None:
    profiles = sample_profiles(np.random.default_rng(1), 3, "continuous")
    policy = make_policy("base-model", profiles)
    assert isinstance(policy, ModelPolicy)
    seen: list[str] = []
    original = policy.local.distribution

    def recording(prompt: str) -> np.ndarray:
        seen.append(prompt)
        return original(prompt)

    policy.local.distribution = recording  # type: ignore[method-assign,assignment]
    traj = rollout(policy, profiles, 1, seed=4)
    assert len(seen) == 3 * 28
    # The last prompt of user 0 holds its whole week except the final step, as the renderer wrote it.
    history, current = parse_prompt(seen[-3])
    assert [i.action.index for i in history] == list(traj.actions[0, :27])
    assert (current.day, int(current.slot)) == (int(traj.day[0, 27]), int(traj.slot[0, 27]))


@pytest.mark.parametrize("mode", ["archetypes", "continuous"])
def test_shipped_model_beats_random(mode: str) -> None:
    profiles = sample_profiles(np.random.default_rng(7), 40, mode)
    model = rollout(make_policy("model", profiles), profiles, 1, seed=8).accepted.mean()
    random = rollout(make_policy("random", profiles), profiles, 1, seed=8).accepted.mean()
    assert model > random + 0.1, (model, random)


@pytest.mark.parametrize("version", [1, 2])
def test_missing_meters_reach_the_model_in_the_version_it_reads(version: int) -> None:
    from policy.local import LocalPolicyModel
    from policy.model import ModelSpec, build_model
    from sim.policies.blind import BlindPolicy

    model, tokenizer = build_model(
        ModelSpec(hidden_size=32, intermediate_size=64, num_hidden_layers=1), 0, version
    )
    local = LocalPolicyModel(model, tokenizer, model_name=f"tiny-v{version}")
    assert local.renderer_version == version
    profiles = sample_profiles(np.random.default_rng(2), 2, "archetypes")
    seen: list[str] = []
    original = local.distribution

    def recording(prompt: str) -> np.ndarray:
        seen.append(prompt)
        return original(prompt)

    local.distribution = recording  # type: ignore[method-assign, assignment]
    rollout(BlindPolicy(ModelPolicy(local), "missing:tiny", value=float("nan")), profiles, 1, 3)
    missing_prompts = list(seen)
    seen.clear()
    rollout(BlindPolicy(ModelPolicy(local), "blind:tiny"), profiles, 1, 3)
    if version == 1:
        # Version 1 has no word for a missing meter: the model sees what the service showed before, 0.50.
        assert missing_prompts == seen
    else:
        assert all(
            "Vitality=?, Cognition=?, Progress=?, Serenity=?, Connection=?" in p for p in missing_prompts
        )
        assert all(tokenizer.unk_token_id not in tokenizer(p)["input_ids"] for p in missing_prompts[:5])
        assert "=?" not in "".join(seen)
