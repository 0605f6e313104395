"""Rhythm's simulator of people with hidden profiles, its policies and the personalization benchmark.

Pure Python + numpy, vectorised over users, deterministic per seed. It speaks the shared vocabulary of
:mod:`domain` (actions, slots, meters, responses, interactions). Map of the package:

* :mod:`sim.profiles` — the continuous trait space, the 3 archetypes, ``ProfileBatch``, ``sample_profiles``;
* :mod:`sim.heldout` — the held-out families (``heldout-sparse``, ``heldout-rules``): other generators of
  people, never used in training;
* :mod:`sim.dynamics` — how actions change the 5 meters (base effects, time of day, vitality, modifiers);
* :mod:`sim.response` — P(accepted / ignored / rescheduled) for every action, per profile and state;
* :mod:`sim.env` — ``LifeEnv``, N users stepping through 28-slot weeks;
* :mod:`sim.policies` — one policy interface, the built-in policies, ``register_policy`` / ``make_policy``,
  and ``exact_bayes_distribution`` (the service's single-user fallback);
* :mod:`sim.observe` — what a wearable measures of a person with given true meters (``rhythm simulate``);
* :mod:`sim.rollout` — ``rollout(policy, profiles, weeks, seed) -> Trajectories`` (benchmarks, training data);
* :mod:`sim.bench` and :mod:`sim.cli` — metrics and ``rhythm bench personalization`` / ``calibration`` /
  ``exploration`` (:mod:`sim.calibration`, :mod:`sim.exploration`);
* :mod:`sim.seeds` — the seeds a policy was trained on (filled by its caller), which benchmarks refuse.

Nothing here imports ``app`` or ``workers``.
"""
