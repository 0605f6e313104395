"""policy.evidence: how a person's answers move the model's distribution (the service and the benchmarks
run this arithmetic)."""

from __future__ import annotations

import numpy as np
import pytest

from domain import ACTIONS, N_ACTIONS, Action, Interaction, Meters, Response, Slot, SlotState
from policy.evidence import Evidence, EvidenceConfig, combine, day_type, reapply

CONFIDENT = np.array([0.96, 0.03, *([0.01 / 8] * 8)])  # a model 3.5 nats sure of DEEP_WORK over ADMIN_WORK
MONDAY, SATURDAY = 0, 5


def _answers(
    evidence: Evidence, weekday: int, slot: Slot, action: Action, accepted: int, rejected: int
) -> None:
    evidence.add(weekday, slot, action, True, accepted)
    evidence.add(weekday, slot, action, False, rejected)


def test_no_answers_keep_the_models_ranking_and_only_soften_it() -> None:
    out = combine(CONFIDENT, Evidence(), MONDAY, Slot.MORNING, EvidenceConfig(sharpness=0.25)).probabilities
    assert out.argmax() == CONFIDENT.argmax()
    assert list(np.argsort(-out)[:2]) == list(np.argsort(-CONFIDENT)[:2])
    assert out.max() < CONFIDENT.max() and out.sum() == pytest.approx(1.0)
    # log-probability gaps shrink by the sharpness exactly.
    gap = np.log(out[0] / out[1])
    assert gap == pytest.approx(0.25 * np.log(CONFIDENT[0] / CONFIDENT[1]))


def test_refusing_the_top_choice_moves_the_mass_to_the_next_one() -> None:
    evidence = Evidence()
    _answers(evidence, MONDAY, Slot.MORNING, ACTIONS[0], accepted=0, rejected=4)
    out = combine(CONFIDENT, evidence, MONDAY, Slot.MORNING, EvidenceConfig()).probabilities
    assert out.argmax() == 1
    # Only this slot's answers count: the evening still follows the model.
    evening = combine(CONFIDENT, evidence, MONDAY, Slot.EVENING, EvidenceConfig()).probabilities
    assert evening.argmax() == 0


def test_an_accepted_action_the_model_ranked_low_rises_to_the_top() -> None:
    evidence = Evidence()
    low = ACTIONS[7]
    _answers(evidence, SATURDAY, Slot.NIGHT, low, accepted=3, rejected=0)
    _answers(evidence, SATURDAY, Slot.NIGHT, ACTIONS[0], accepted=0, rejected=3)
    out = combine(CONFIDENT, evidence, SATURDAY, Slot.NIGHT, EvidenceConfig()).probabilities
    assert out.argmax() == low.index


def test_a_person_who_accepts_the_model_is_moved_less_by_one_refusal() -> None:
    """The weight is weight × (1 − acceptance rate): the same refusal of the top choice costs it less mass
    for a person who accepts most of what they are offered than for one who refuses most of it."""
    config = EvidenceConfig()
    agreeable, refusing = Evidence(), Evidence()
    for slot in (Slot.AFTERNOON, Slot.EVENING, Slot.NIGHT):
        _answers(agreeable, MONDAY, slot, ACTIONS[2], accepted=8, rejected=1)
        _answers(refusing, MONDAY, slot, ACTIONS[2], accepted=1, rejected=8)
    for evidence in (agreeable, refusing):
        _answers(evidence, MONDAY, Slot.MORNING, ACTIONS[0], accepted=0, rejected=1)
    a = combine(CONFIDENT, agreeable, MONDAY, Slot.MORNING, config)
    r = combine(CONFIDENT, refusing, MONDAY, Slot.MORNING, config)
    assert a.weight < r.weight
    assert a.probabilities[0] > 1.5 * r.probabilities[0]


def test_pool_sets_how_much_the_other_kind_of_day_counts() -> None:
    evidence = Evidence()
    _answers(evidence, SATURDAY, Slot.MORNING, ACTIONS[0], accepted=0, rejected=6)
    for pool, expected in ((0.0, 0.0), (0.5, 3.0), (1.0, 6.0)):
        mixed = combine(CONFIDENT, evidence, MONDAY, Slot.MORNING, EvidenceConfig(pool=pool))
        assert mixed.rejected[0] == expected
    assert (
        combine(CONFIDENT, evidence, MONDAY, Slot.MORNING, EvidenceConfig(pool=0.0)).probabilities.argmax()
        == 0
    )
    assert (
        combine(CONFIDENT, evidence, SATURDAY, Slot.MORNING, EvidenceConfig(pool=0.0)).probabilities.argmax()
        == 1
    )
    assert (day_type(4), day_type(5), day_type(6)) == (0, 1, 1)


def test_weight_zero_is_the_model_unchanged_and_zero_stays_zero() -> None:
    evidence = Evidence()
    _answers(evidence, MONDAY, Slot.MORNING, ACTIONS[0], accepted=0, rejected=9)
    off = combine(CONFIDENT, evidence, MONDAY, Slot.MORNING, EvidenceConfig(weight=0.0))
    assert np.allclose(off.probabilities, CONFIDENT) and off.weight == 0.0
    excluded = CONFIDENT.copy()
    excluded[1] = 0.0
    excluded /= excluded.sum()
    on = combine(excluded, evidence, MONDAY, Slot.MORNING, EvidenceConfig()).probabilities
    assert on[1] == 0.0 and on.sum() == pytest.approx(1.0)


def test_evidence_from_interactions_counts_ignored_and_rescheduled_as_refusals() -> None:
    state = SlotState(SATURDAY, Slot.EVENING, Meters.neutral())
    items = [
        Interaction(state, Action.SOCIALIZE, Response.ACCEPTED),
        Interaction(state, Action.SOCIALIZE, Response.IGNORED),
        Interaction(state, Action.SOCIALIZE, Response.RESCHEDULED),
    ]
    evidence = Evidence.from_interactions(items)
    assert evidence.answers == 3
    assert evidence.accepted[1, Slot.EVENING, Action.SOCIALIZE.index] == 1
    assert evidence.rejected[1, Slot.EVENING, Action.SOCIALIZE.index] == 2
    assert evidence.accepted.sum() + evidence.rejected.sum() == 3


@pytest.mark.parametrize(
    "kwargs",
    [{"weight": -1.0}, {"weight": float("nan")}, {"sharpness": 0.0}, {"sharpness": 1.5}, {"pool": 2.0}],
)
def test_bad_settings_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        EvidenceConfig(**kwargs)


def test_bad_distributions_are_refused() -> None:
    with pytest.raises(ValueError):
        combine([0.5, 0.5], Evidence(), MONDAY, Slot.MORNING, EvidenceConfig())
    with pytest.raises(ValueError):
        combine([0.0] * N_ACTIONS, Evidence(), MONDAY, Slot.MORNING, EvidenceConfig())
    with pytest.raises(ValueError):
        Evidence().add(MONDAY, Slot.MORNING, Action.SLEEP, True, -1)


def test_the_logged_combination_recomputes_the_served_distribution_for_another_model() -> None:
    """A gate re-applies each row's logged combination to a candidate's distribution; on the model that was
    served it must give back exactly what was served (the log carries everything the arithmetic used)."""
    evidence = Evidence()
    _answers(evidence, SATURDAY, Slot.EVENING, ACTIONS[3], accepted=2, rejected=1)
    _answers(evidence, MONDAY, Slot.EVENING, ACTIONS[0], accepted=0, rejected=3)
    _answers(evidence, MONDAY, Slot.MORNING, ACTIONS[5], accepted=4, rejected=0)
    config = EvidenceConfig(weight=9.0, sharpness=0.4, pool=0.5)
    served = combine(CONFIDENT, evidence, SATURDAY, Slot.EVENING, config)
    log = served.log(config)
    assert np.allclose(reapply(CONFIDENT, log), served.probabilities, atol=1e-6)
    candidate = np.roll(CONFIDENT, 3)
    expected = combine(candidate, evidence, SATURDAY, Slot.EVENING, config).probabilities
    assert np.allclose(reapply(candidate, log), expected, atol=1e-6)
    assert np.allclose(reapply(candidate, None), candidate)
    with pytest.raises(ValueError):
        reapply([1.0], log)


def test_the_service_settings_default_to_the_measured_evidence_config() -> None:
    """app.core.config repeats the defaults as literals (importing numpy there would slow every start-up):
    they must stay the settings docs/benchmarks.md measured."""
    from app.core.config import Settings

    fields = Settings.model_fields
    defaults = EvidenceConfig()
    assert (
        fields["evidence_weight"].default,
        fields["evidence_sharpness"].default,
        fields["evidence_pool"].default,
    ) == (defaults.weight, defaults.sharpness, defaults.pool)
