"""The policy model as a simulator policy, so benchmarks run it through the exact production renderer.

Names, added to the simulator's registry by :func:`register_model_policies` (``sim`` never imports ``policy``;
``rhythm``'s CLI calls it when it builds the ``bench`` group, see :mod:`policy.cli`):

* ``model`` — the shipped weights; ``model:DIR`` — any model folder (e.g. a fresh ``rhythm pretrain`` output);
* ``base-model`` — the same architecture and tokenizer, untrained, initialised with the pretraining seed
  (``base-model:SEED`` for another seed): the "before pretraining" contrast;
* ``served`` — what the service samples from before its exploration floor: the model combined with each
  person's answers by :mod:`policy.evidence` with the default :class:`~policy.evidence.EvidenceConfig`
  (``served:SPEC`` wraps any other policy spec, e.g. ``served:model:DIR``; ``served:SPEC@W/S/P`` sets weight,
  sharpness and pool).

Each simulated user keeps a list of :class:`domain.Interaction`; every step renders that user's prompt
with :func:`policy.prompt.render_prompt` and asks :meth:`policy.local.LocalPolicyModel.distribution`. Users
advance in lockstep, so each user's history prefix is in the KV cache from the previous step and only the new
line and the question are run.

torch and transformers are imported where a model is built, not here: registering the names happens on every
``rhythm`` start and must stay cheap.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from domain import ACTIONS, N_ACTIONS, RESPONSES, SLOTS_PER_DAY, Interaction, Slot, SlotState
from policy.evidence import EvidenceConfig, combine_batch, day_types, slot_counts
from policy.paths import SHIPPED_MODEL_DIR, SHIPPED_SEED
from policy.prompt import render_prompt, shown_meters
from sim.env import Observation
from sim.policies import make_policy, register_policy
from sim.policies.base import Policy
from sim.profiles import ProfileBatch
from sim.response import ACCEPTED
from sim.seeds import reserve_seeds, trained_seeds

if TYPE_CHECKING:
    from policy.local import LocalPolicyModel

_MAX_TOKENS_PER_USER = 2048


def _state(obs: Observation, user: int) -> SlotState:
    # NaN is a missing meter (``missing:SPEC``, sim.policies.blind): shown as the service shows a NULL meter.
    meters = shown_meters(np.clip(obs.meters[user], 0.0, 1.0).tolist())
    return SlotState(int(obs.day[user]), Slot(int(obs.slot[user])), meters)


class ModelPolicy:
    """A :class:`policy.local.LocalPolicyModel` behind the simulator's vectorised policy interface."""

    def __init__(self, local: LocalPolicyModel, name: str = "model") -> None:
        self.local = local
        self.name = name
        self._histories: list[list[Interaction]] = []

    def reset(self, n_users: int, rng: np.random.Generator) -> None:
        from policy.local import PrefixCache

        self._histories = [[] for _ in range(n_users)]
        # One cached prefix per user must survive a whole step of the other users.
        needed = n_users * _MAX_TOKENS_PER_USER * PrefixCache.bytes_per_token(self.local.model)
        self.local.cache.max_bytes = max(self.local.cache.max_bytes, needed)

    def probs(self, obs: Observation) -> np.ndarray:
        out = np.empty((len(obs), len(ACTIONS)))
        for user, history in enumerate(self._histories):
            prompt = render_prompt(history, _state(obs, user), version=self.local.renderer_version)
            out[user] = self.local.distribution(prompt)
        return out

    def update(self, obs: Observation, actions: np.ndarray, responses: np.ndarray) -> None:
        for user, history in enumerate(self._histories):
            history.append(
                Interaction(_state(obs, user), ACTIONS[int(actions[user])], RESPONSES[int(responses[user])])
            )

    def belief(self) -> np.ndarray | None:
        return None


def _one_torch_thread() -> None:
    # Benchmarks measure the model as the service runs it (one intra-op thread, like ``bench local-model``),
    # and on a shared 2-core machine a second thread only contends with the simulator and other work.
    import torch

    torch.set_num_threads(1)


def model_training_seeds(arg: str | None) -> frozenset[int]:
    """Rollout seeds of the pretraining run that wrote ``model`` / ``model:DIR`` (from its
    ``training_metrics.json``; the default configuration when the folder has none)."""
    from policy.training.config import PretrainConfig, chunk_plan
    from policy.training.seeds import rollout_seeds

    metrics = (Path(arg) if arg else SHIPPED_MODEL_DIR) / "training_metrics.json"
    config = json.loads(metrics.read_text()).get("config", {}) if metrics.is_file() else {}
    defaults = PretrainConfig()
    return rollout_seeds(
        int(config.get("seed", defaults.seed)),
        int(config.get("users", defaults.users)),
        chunk_plan(str(config.get("recipe", defaults.recipe))),
    )


def model_policy(arg: str | None, profiles: ProfileBatch) -> ModelPolicy:
    """``model`` (the shipped weights) or ``model:DIR`` (a model folder)."""
    from policy.local import LocalPolicyModel

    _one_torch_thread()

    directory = Path(arg) if arg else None
    return ModelPolicy(LocalPolicyModel.load(directory), name=f"model:{arg}" if arg else "model")


def base_model_policy(arg: str | None, profiles: ProfileBatch) -> ModelPolicy:
    """``base-model`` (untrained, the shipped model's initialisation) or ``base-model:SEED``."""
    from policy.local import LocalPolicyModel
    from policy.model import ModelSpec, build_model

    _one_torch_thread()
    seed = int(arg) if arg else SHIPPED_SEED
    model, tokenizer = build_model(ModelSpec(), seed)
    return ModelPolicy(
        LocalPolicyModel(model, tokenizer, model_name="rhythm-tiny-untrained"), name="base-model"
    )


class EvidencePolicy:
    """Any simulator policy combined with each user's answers exactly as the service does
    (:func:`policy.evidence.combine_batch`), counts kept per (day type, slot, action)."""

    def __init__(self, base: Policy, config: EvidenceConfig, name: str = "served") -> None:
        self.base = base
        self.config = config
        self.name = name
        self._accepted = np.zeros((0, 2, SLOTS_PER_DAY, N_ACTIONS))
        self._rejected = np.zeros((0, 2, SLOTS_PER_DAY, N_ACTIONS))

    def reset(self, n_users: int, rng: np.random.Generator) -> None:
        self.base.reset(n_users, rng)
        self._accepted = np.zeros((n_users, 2, SLOTS_PER_DAY, N_ACTIONS))
        self._rejected = np.zeros((n_users, 2, SLOTS_PER_DAY, N_ACTIONS))

    def probs(self, obs: Observation) -> np.ndarray:
        return combine_batch(
            self.base.probs(obs),
            slot_counts(self._accepted, obs.day, obs.slot, self.config.pool),
            slot_counts(self._rejected, obs.day, obs.slot, self.config.pool),
            self._accepted.sum(axis=(1, 2, 3)),
            self._rejected.sum(axis=(1, 2, 3)),
            self.config,
        )

    def update(self, obs: Observation, actions: np.ndarray, responses: np.ndarray) -> None:
        self.base.update(obs, actions, responses)
        rows = np.arange(len(obs))
        here = day_types(obs.day)
        accepted = responses == ACCEPTED
        self._accepted[rows, here, obs.slot, actions] += accepted
        self._rejected[rows, here, obs.slot, actions] += ~accepted

    def belief(self) -> np.ndarray | None:
        return self.base.belief()


def served_policy(arg: str | None, profiles: ProfileBatch) -> EvidencePolicy:
    """``served`` (the model with the default evidence settings), ``served:SPEC`` or ``served:SPEC@W/S/P``."""
    spec, _, params = (arg or "model").partition("@")
    config = EvidenceConfig()
    if params:
        try:
            weight, sharpness, pool = (float(x) for x in params.split("/"))
        except ValueError:
            raise ValueError(f"served:{arg}: expected SPEC@WEIGHT/SHARPNESS/POOL") from None
        config = EvidenceConfig(weight=weight, sharpness=sharpness, pool=pool)
    name = "served" if arg is None else f"served:{arg}"
    return EvidencePolicy(make_policy(spec or "model", profiles), config, name=name)


def served_training_seeds(arg: str | None) -> frozenset[int]:
    """The training seeds of the model inside ``served[:SPEC]`` (none for a policy that was not trained)."""
    return trained_seeds((arg or "model").partition("@")[0] or "model")


def register_model_policies() -> None:
    """Add ``model``, ``base-model`` and ``served`` to :mod:`sim.policies`' registry (idempotent), and
    reserve the model's training seeds (:mod:`sim.seeds`; the untrained ``base-model`` has none)."""
    register_policy("model", model_policy)
    register_policy("base-model", base_model_policy)
    register_policy("served", served_policy)
    reserve_seeds("model", model_training_seeds)
    reserve_seeds("served", served_training_seeds)
