"""Simulator policies behind one interface (:class:`sim.policies.base.Policy`) and a name registry.

Built-in names: ``random``, ``heuristic``, ``thompson``, ``bayes`` (exact Bayes over the archetypes),
``particle`` (particle posterior over continuous profiles, posterior sampling; ``particle:M`` sets the
particle count), ``particle-greedy`` (same posterior, greedy on the posterior-mean P(accept): more
acceptance, less exploration) and ``oracle`` (knows the true profiles). For the held-out families
(:mod:`sim.heldout`): ``ref-sparse`` and ``ref-rules``, posterior sampling with that family's generator as
prior (:mod:`sim.policies.reference`; ``ref-sparse:M`` sets the particles per user and action).
``blind:SPEC`` runs any policy with neutral meters (no device connected, :mod:`sim.policies.blind`);
``missing:SPEC`` with missing ones (NaN: the model policies render them as the service does).

Extending: call ``register_policy(name, factory)`` where ``factory(arg, profiles) -> Policy`` receives the
text after ``name:`` in the spec (or ``None``) and the users' true profiles (only the oracle should look).
The registry is filled by its callers: the simulator sits below everything that uses it and imports none of
them, so a package with policies of its own registers them before asking for them by name (the policy model's
``model`` / ``base-model`` are registered by ``rhythm``'s CLI when it builds ``rhythm bench``). No entry
points, no string imports.
"""

from __future__ import annotations

from collections.abc import Callable

from sim.policies.base import Policy
from sim.policies.baselines import HeuristicPolicy, OraclePolicy, RandomPolicy
from sim.policies.bayes import ExactBayesPolicy, exact_bayes_distribution
from sim.policies.blind import BlindPolicy
from sim.policies.particle import ParticlePolicy
from sim.policies.reference import FamilyReferencePolicy
from sim.policies.thompson import ThompsonPolicy
from sim.profiles import ProfileBatch
from sim.seeds import reserve_seeds, trained_seeds

PolicyFactory = Callable[[str | None, ProfileBatch], Policy]

_REGISTRY: dict[str, PolicyFactory] = {}


def register_policy(name: str, factory: PolicyFactory) -> None:
    """Make ``name`` (or ``name:ARG``) available to :func:`make_policy` and the benchmark CLI."""
    if ":" in name or "," in name:
        raise ValueError(f"policy name {name!r} may not contain ':' or ','")
    _REGISTRY[name] = factory


def available_policies() -> list[str]:
    return sorted(_REGISTRY)


def make_policy(spec: str, profiles: ProfileBatch) -> Policy:
    """Build the policy named by ``spec`` (``NAME`` or ``NAME:ARG``) for users with these true profiles."""
    name, sep, arg = spec.partition(":")
    if name not in _REGISTRY:
        raise KeyError(f"unknown policy {name!r}; known: {', '.join(available_policies())}")
    return _REGISTRY[name](arg if sep else None, profiles)


def _no_arg(name: str, arg: str | None) -> None:
    if arg is not None:
        raise ValueError(f"policy {name!r} takes no argument")


def _particle(arg: str | None, profiles: ProfileBatch) -> Policy:
    if arg is None:
        return ParticlePolicy()
    if not arg.isdigit() or int(arg) < 1:
        raise ValueError(f"particle:M needs a positive particle count, got {arg!r}")
    return ParticlePolicy(n_particles=int(arg))


def _greedy(policy: Policy) -> Policy:
    assert isinstance(policy, ParticlePolicy)
    policy.act = "mean"
    policy.name = "particle-greedy"
    return policy


def _simple(name: str, cls: Callable[[], Policy]) -> PolicyFactory:
    def factory(arg: str | None, profiles: ProfileBatch) -> Policy:
        _no_arg(name, arg)
        return cls()

    return factory


def _oracle(arg: str | None, profiles: ProfileBatch) -> Policy:
    _no_arg("oracle", arg)
    return OraclePolicy(profiles)


def _reference(family: str) -> PolicyFactory:
    def factory(arg: str | None, profiles: ProfileBatch) -> Policy:
        if arg is None:
            return FamilyReferencePolicy(family)
        if not arg.isdigit() or int(arg) < 1:
            raise ValueError(f"ref:M needs a positive particle count, got {arg!r}")
        return FamilyReferencePolicy(family, n_particles=int(arg))

    return factory


def _blind(arg: str | None, profiles: ProfileBatch) -> Policy:
    if not arg:
        raise ValueError("blind needs the policy to wrap: blind:SPEC (e.g. blind:model)")
    return BlindPolicy(make_policy(arg, profiles), name=f"blind:{arg}")


def _missing(arg: str | None, profiles: ProfileBatch) -> Policy:
    if not arg:
        raise ValueError("missing needs the policy to wrap: missing:SPEC (e.g. missing:model)")
    return BlindPolicy(make_policy(arg, profiles), name=f"missing:{arg}", value=float("nan"))


register_policy("random", _simple("random", RandomPolicy))
register_policy("heuristic", _simple("heuristic", HeuristicPolicy))
register_policy("thompson", _simple("thompson", ThompsonPolicy))
register_policy("bayes", _simple("bayes", ExactBayesPolicy))
register_policy("particle", _particle)
register_policy("particle-greedy", lambda arg, profiles: _greedy(_particle(arg, profiles)))
register_policy("oracle", _oracle)
register_policy("ref-sparse", _reference("heldout-sparse"))
register_policy("ref-rules", _reference("heldout-rules"))
register_policy("blind", _blind)
reserve_seeds("blind", lambda arg: trained_seeds(arg) if arg else frozenset())
register_policy("missing", _missing)
reserve_seeds("missing", lambda arg: trained_seeds(arg) if arg else frozenset())

__all__ = [
    "ExactBayesPolicy",
    "FamilyReferencePolicy",
    "HeuristicPolicy",
    "OraclePolicy",
    "ParticlePolicy",
    "Policy",
    "PolicyFactory",
    "RandomPolicy",
    "ThompsonPolicy",
    "available_policies",
    "exact_bayes_distribution",
    "make_policy",
    "register_policy",
]
