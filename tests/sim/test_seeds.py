"""Evaluation seeds stay apart from training seeds: the formula, the model's reservation, the refusal."""

from __future__ import annotations

import json

import typer
from typer.testing import CliRunner

from policy.sim_policy import model_training_seeds, register_model_policies
from policy.training.config import WEEK_MIX, PretrainConfig
from policy.training.data import _chunks
from policy.training.seeds import chunk_seed, rollout_seeds
from sim.cli import bench_app
from sim.policies import RandomPolicy, register_policy
from sim.seeds import EVALUATION_SEEDS, reserve_seeds, training_seed_overlap

_root = typer.Typer()
_root.add_typer(bench_app, name="bench")


def test_rollout_seeds_are_the_seeds_the_data_generator_uses() -> None:
    for config in (PretrainConfig(), PretrainConfig(seed=3, users=1200)):
        used = {chunk_seed(config.seed, c.mix_index, c.part) for c in _chunks(config)}
        assert used == rollout_seeds(config.seed, config.users, WEEK_MIX)
        assert sum(c.users for c in _chunks(config)) == config.users


def test_shipped_model_seeds_are_outside_the_evaluation_range() -> None:
    seeds = model_training_seeds(None)
    assert seeds == {0, 1, 2, 3, 4, 1000, 1001, 1002, 2000, 3000, 3001}
    assert not seeds & set(EVALUATION_SEEDS)
    register_model_policies()
    assert training_seed_overlap(["model", "base-model", "bayes"], [2, 123]) == {"model": [2]}


def test_bench_refuses_a_training_seed_unless_allowed_and_then_flags_it() -> None:
    register_policy("seeded-random", lambda arg, profiles: RandomPolicy())
    reserve_seeds("seeded-random", lambda arg: frozenset({7, 8}))
    base = ["bench", "personalization", "--policy", "random,seeded-random", "--users", "4", "--json"]
    refused = CliRunner().invoke(_root, [*base, "--seed", "7"])
    assert refused.exit_code == 2
    assert "training seed" in refused.output
    allowed = CliRunner().invoke(_root, [*base, "--seed", "7", "--allow-training-seeds"])
    assert allowed.exit_code == 0, allowed.output
    assert json.loads(allowed.stdout)["training_seed_overlap"] == {"seeded-random": [7]}
    clean = CliRunner().invoke(_root, [*base, "--seed", "123"])
    assert clean.exit_code == 0 and "training_seed_overlap" not in json.loads(clean.stdout)
    calib = [
        "bench",
        "calibration",
        "--policy",
        "seeded-random",
        "--users",
        "4",
        "--weeks",
        "1",
        "--seed",
        "8",
    ]
    assert CliRunner().invoke(_root, calib).exit_code == 2
