from __future__ import annotations

import json
import math
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from bridges.meters import ContextInputs, NoContextInputs, Reading, SignalKind, estimate_meters
from bridges.meters.baselines import PRIORS, baseline, daily_values
from domain import METER_NAMES, METERS, Action, Meter
from tests.bridges.meters.helpers import NOW, history, reading, wobble

K = SignalKind


def _body_history(hrv: float = 45.0, rhr: float = 58.0, score: float = 78.0) -> list[Reading]:
    """28 ordinary nights before last night, for one person."""
    return (
        history(K.HRV_RMSSD, wobble(hrv, 28, 4.0), 28)
        + history(K.RESTING_HEART_RATE, wobble(rhr, 28, 2.0), 28)
        + history(K.SLEEP_SCORE, wobble(score, 28, 5.0), 28)
        + history(K.STEPS, wobble(8000, 28, 1500), 28, hour=22)
    )


def test_a_bad_night_reads_lower_than_a_good_night_for_the_same_person() -> None:
    past = _body_history()
    good = [reading(K.HRV_RMSSD, 55), reading(K.RESTING_HEART_RATE, 55), reading(K.SLEEP_SCORE, 90)]
    bad = [reading(K.HRV_RMSSD, 28), reading(K.RESTING_HEART_RATE, 66), reading(K.SLEEP_SCORE, 45)]
    v_good = estimate_meters(past + good, NOW)[Meter.VITALITY].value
    v_bad = estimate_meters(past + bad, NOW)[Meter.VITALITY].value
    assert v_good is not None and v_bad is not None
    assert v_bad < 0.4 < 0.6 < v_good


def test_high_stress_lowers_the_calm_meter() -> None:
    calm = estimate_meters([reading(K.STRESS_SCORE, 15, hour=11)], NOW)[Meter.SERENITY].value
    tense = estimate_meters([reading(K.STRESS_SCORE, 85, hour=11)], NOW)[Meter.SERENITY].value
    assert calm is not None and tense is not None
    assert tense < 0.5 < calm


def test_more_meetings_lower_the_calm_meter() -> None:
    past = history(K.MEETING_DENSITY, wobble(20, 28, 5), 28)
    light = estimate_meters([*past, reading(K.MEETING_DENSITY, 10, hour=9)], NOW)[Meter.SERENITY].value
    packed = estimate_meters([*past, reading(K.MEETING_DENSITY, 70, hour=9)], NOW)[Meter.SERENITY].value
    assert light is not None and packed is not None
    assert packed < light


def test_a_week_of_social_events_raises_the_social_meter() -> None:
    # One event a week for a month, then a week with six.
    past = history(K.SOCIAL_EVENTS_7D, wobble(1.0, 28, 0.5), 28)
    quiet = estimate_meters([*past, reading(K.SOCIAL_EVENTS_7D, 1)], NOW)[Meter.CONNECTION].value
    busy = estimate_meters([*past, reading(K.SOCIAL_EVENTS_7D, 6)], NOW)[Meter.CONNECTION].value
    assert quiet is not None and busy is not None
    assert busy > 0.7 and busy > quiet + 0.2


@dataclass(frozen=True)
class Dinner:
    """A calendar event as the context inputs read it: two hours, with friends."""

    starts_at: datetime
    all_day: bool = False
    transparent: bool = False
    attendees: int = 3
    action: Action | None = Action.SOCIALIZE
    event_type: str | None = "default"
    context: str | None = None

    @property
    def ends_at(self) -> datetime:
        return self.starts_at + timedelta(hours=2)


def test_with_the_same_weekly_count_recent_social_events_read_as_more_connected() -> None:
    """Two events this week either way; last night's and the night before's weigh more than last weekend's."""
    from bridges.google.context import calendar_inputs

    def connection(*days_ago: float) -> float:
        events = [Dinner(NOW - timedelta(days=d)) for d in days_ago]
        fields = calendar_inputs(events, NOW, ZoneInfo("UTC"))
        ctx = ContextInputs(
            observed_at=NOW,
            source="google-calendar",
            social_events_7d=fields["social_events_7d"],
            social_recency=fields["social_recency"],
        )
        value = estimate_meters(ctx.readings(), NOW)[Meter.CONNECTION].value
        assert value is not None
        return value

    assert connection(0.5, 1.5) > connection(5.0, 6.0) + 0.1


def test_calendar_and_task_inputs_drive_their_meters() -> None:
    def run(**fields: float) -> dict[str, float | None]:
        ctx = ContextInputs(observed_at=NOW - timedelta(minutes=10), source="google-calendar", **fields)
        return estimate_meters(ctx.readings(), NOW).values()

    def value(values: dict[str, float | None], meter: Meter) -> float:
        v = values[meter.value]
        assert v is not None
        return v

    on_track = run(task_completion_rate=90, deadline_proximity=14, focus_time=180)
    behind = run(task_completion_rate=20, deadline_proximity=0, focus_time=0)
    assert value(behind, Meter.PROGRESS) < 0.5 < value(on_track, Meter.PROGRESS)
    rested = run(time_since_last_break=10, calendar_density=20)
    drained = run(time_since_last_break=300, calendar_density=90)
    assert value(drained, Meter.COGNITION) < value(rested, Meter.COGNITION)
    # What the context did not mention stays missing.
    assert behind[Meter.CONNECTION.value] is None
    assert run()[Meter.PROGRESS.value] is None


def test_no_calendar_bridge_means_the_context_meters_are_missing() -> None:
    readings = [*NoContextInputs().context_readings(uuid.uuid4(), NOW), *_body_history()]
    report = estimate_meters(readings, NOW)
    for meter in (Meter.PROGRESS, Meter.CONNECTION, Meter.COGNITION):
        assert report[meter].value is None
        assert report[meter].confidence == 0.0
    assert report[Meter.VITALITY].value is not None


def test_no_input_is_missing_not_neutral() -> None:
    report = estimate_meters([], NOW)
    for meter in METERS:
        assert report[meter].value is None
        assert report[meter].confidence == 0.0
        assert report[meter].inputs == ()
    assert report.meters() is None
    assert report.values() == dict.fromkeys(METER_NAMES)


def test_stale_data_decays_toward_neutral_and_loses_confidence() -> None:
    def body_meter(days_ago: float) -> tuple[float | None, float]:
        bad_night = [reading(K.SLEEP_SCORE, 40, days_ago), reading(K.HRV_RMSSD, 20, days_ago)]
        estimate = estimate_meters(bad_night, NOW)[Meter.VITALITY]
        return estimate.value, estimate.confidence

    values, confidences = zip(*(body_meter(d) for d in (0, 2, 3, 4)), strict=True)
    distances = [abs(v - 0.5) for v in values if v is not None]
    assert len(distances) == len(values)
    assert distances == sorted(distances, reverse=True) and distances[0] > 3 * distances[-1]
    assert list(confidences) == sorted(confidences, reverse=True) and confidences[-1] < confidences[0] / 4
    # Long after four half-lives the night says nothing: missing again.
    assert body_meter(8) == (None, 0.0)


def test_a_stale_input_does_not_drag_a_fresh_one_to_neutral() -> None:
    fresh_bad = [reading(K.SLEEP_SCORE, 40, 0)]
    alone = estimate_meters(fresh_bad, NOW)[Meter.VITALITY].value
    with_stale = estimate_meters([*fresh_bad, reading(K.RECOVERY_SCORE, 55, 3)], NOW)[Meter.VITALITY].value
    assert alone is not None and with_stale is not None
    assert with_stale == pytest.approx(alone, abs=0.05)


def test_sdnn_readings_never_shift_an_rmssd_baseline() -> None:
    # Terra and Google Health deliver both statistics from one source: the kind alone must keep them apart.
    rmssd = history(K.HRV_RMSSD, wobble(40, 28, 3), 28, source="terra")
    today = reading(K.HRV_RMSSD, 40, source="terra")
    sdnn = history(K.HRV_SDNN, wobble(110, 28, 15), 28, source="terra", hour=6)
    alone = estimate_meters([*rmssd, today], NOW)[Meter.VITALITY].inputs
    mixed = estimate_meters([*rmssd, *sdnn, today], NOW)[Meter.VITALITY].inputs
    (hrv_alone,) = [i for i in alone if i.kind is K.HRV_RMSSD]
    (hrv_mixed,) = [i for i in mixed if i.kind is K.HRV_RMSSD]
    assert hrv_mixed.baseline == hrv_alone.baseline
    assert hrv_mixed.z == hrv_alone.z
    assert not [i for i in mixed if i.kind is K.HRV_SDNN]


def test_sdnn_alone_is_judged_against_its_own_baseline() -> None:
    sdnn = history(K.HRV_SDNN, wobble(90, 28, 8), 28, source="apple")
    used = estimate_meters([*sdnn, reading(K.HRV_SDNN, 90, source="apple")], NOW)[Meter.VITALITY].inputs
    (hrv,) = [i for i in used if i.kind is K.HRV_SDNN]
    # 90 ms is ordinary for this person: the baseline sits near ln 90, not at the population's ln 45.
    assert abs(hrv.baseline.mean - math.log(90)) < 0.2 < abs(hrv.baseline.mean - math.log(45))
    assert abs(hrv.z) < 1.0


def test_the_same_hrv_reads_high_for_a_low_baseline_and_low_for_a_high_baseline() -> None:
    def hrv_z(person_mean: float) -> float:
        past = history(K.HRV_RMSSD, wobble(person_mean, 28, person_mean * 0.08), 28)
        used = estimate_meters([*past, reading(K.HRV_RMSSD, 45)], NOW)[Meter.VITALITY].inputs
        return next(i.z for i in used if i.kind is K.HRV_RMSSD)

    assert hrv_z(25) > 1.0
    assert hrv_z(80) < -1.0


def test_a_new_user_sits_near_population_defaults() -> None:
    prior = PRIORS[K.HRV_RMSSD]
    few = daily_values(history(K.HRV_RMSSD, [80, 82], 3), prior.fold, UTC)
    many = daily_values(history(K.HRV_RMSSD, wobble(80, 28, 4), 28), prior.fold, UTC)
    new, settled = baseline(prior, few), baseline(prior, many)
    assert new.personal_weight < 0.25 < 0.75 < settled.personal_weight
    # The mean starts near ln(42) and ends near ln(80); the spread shrinks from population to personal.
    assert abs(new.mean - prior.mean) < abs(new.mean - settled.mean)
    assert abs(settled.mean - math.log(80)) < 0.15
    assert new.sd > 1.5 * settled.sd
    # And a new user's meters carry less confidence than a settled user's for the same night.
    new_conf = estimate_meters(history(K.HRV_RMSSD, [80, 82], 1), NOW)[Meter.VITALITY].confidence
    settled_conf = estimate_meters(history(K.HRV_RMSSD, wobble(80, 29, 4), 28), NOW)[
        Meter.VITALITY
    ].confidence
    assert new_conf < settled_conf


def test_baselines_are_robust_to_gaps_and_duplicates() -> None:
    prior = PRIORS[K.HRV_RMSSD]
    every_day = history(K.HRV_RMSSD, wobble(50, 28, 3), 28)
    with_gaps = every_day[::3]
    # The same night delivered twice (a webhook retry) counts once.
    doubled = every_day + every_day
    tz = UTC
    full = baseline(prior, daily_values(every_day, prior.fold, tz))
    assert baseline(prior, daily_values(doubled, prior.fold, tz)) == full
    gappy = baseline(prior, daily_values(with_gaps, prior.fold, tz))
    assert gappy.n_days == len(with_gaps) and abs(gappy.mean - full.mean) < 0.1


def test_a_low_hrv_week_lowers_the_calm_meter_through_the_trend() -> None:
    normal = history(K.HRV_RMSSD, wobble(50, 28, 3), 35)
    steady = history(K.HRV_RMSSD, wobble(50, 7, 3), 6)
    sinking = history(K.HRV_RMSSD, wobble(36, 7, 3), 6)
    s_steady = estimate_meters(normal + steady, NOW)[Meter.SERENITY]
    s_sinking = estimate_meters(normal + sinking, NOW)[Meter.SERENITY]
    assert s_steady.value is not None and s_sinking.value is not None
    assert s_sinking.value < 0.3 and abs(s_steady.value - 0.5) < 0.15
    assert s_sinking.inputs[0].statistic == "trend"


def test_steps_of_the_unfinished_day_are_not_compared_with_whole_days() -> None:
    past = history(K.STEPS, wobble(9000, 28, 1000), 28, hour=22)
    morning = reading(K.STEPS, 300, 0, hour=9)
    used = estimate_meters([*past, morning], NOW)[Meter.VITALITY].inputs
    (steps,) = [i for i in used if i.kind is K.STEPS]
    assert steps.value != 300 and steps.observed_at < morning.observed_at


def test_readings_after_now_are_ignored() -> None:
    later = reading(K.STRESS_SCORE, 95, -1)
    report = estimate_meters([later], NOW)
    assert report[Meter.SERENITY].value is None
    assert report.provenance()["readings_after_taken_at"] == 1


def test_provenance_is_json_and_names_inputs_with_their_age() -> None:
    report = estimate_meters([*_body_history(), reading(K.SLEEP_SCORE, 70)], NOW)
    provenance = json.loads(json.dumps(report.provenance()))
    body = provenance["meters"][Meter.VITALITY.value]
    assert body["confidence"] == pytest.approx(report[Meter.VITALITY].confidence, abs=1e-4)
    sleep = next(i for i in body["inputs"] if i["kind"] == K.SLEEP_SCORE.value)
    assert sleep["age_s"] == 5 * 3600 and sleep["source"] == "oura" and sleep["value"] == 70
    assert set(provenance["missing"]) == {m.value for m in METERS if report[m].value is None}
