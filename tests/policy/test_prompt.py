from __future__ import annotations

import math

import pytest

from domain import ACTIONS, DAY_NAMES, Action, Interaction, Meter, Meters, Response, Slot, SlotState
from policy.prompt import (
    ANSWER_CHOICES,
    DEFAULT_MAX_INTERACTIONS,
    DROP_BLOCK,
    HARD_MAX_INTERACTIONS,
    QUESTION,
    PromptFormatError,
    kept_history,
    parse_prompt,
    render_history,
    render_interaction,
    render_prompt,
)
from policy.tokenizer import MODEL_MAX_LENGTH, build_tokenizer
from tests.policy.conftest import make_history


def test_layout_matches_the_documented_example() -> None:
    state = SlotState(0, Slot.MORNING, Meters(0.7, 0.65, 0.2, 0.5, 0.45))
    line = render_interaction(Interaction(state, Action.DEEP_WORK, Response.IGNORED))
    assert line == (
        "Mon Morning, Vitality=0.70, Cognition=0.65, Progress=0.20, Serenity=0.50, Connection=0.45"
        " → recommended DEEP_WORK → user: IGNORED"
    )
    prompt = render_prompt([], SlotState(1, Slot.EVENING, Meters(0.68, 0.5, 0.5, 0.5, 1.0)), window_days=7)
    lines = prompt.split("\n")
    assert lines[1:] == [
        "Recent interactions (last 7 days):",
        "(none)",
        "Current state: Tue Evening, Vitality=0.68, Cognition=0.50, Progress=0.50, Serenity=0.50, "
        "Connection=1.00",
        QUESTION,
    ]


def test_answer_choices_are_the_actions_in_order() -> None:
    assert [a.value for a in ACTIONS] == ANSWER_CHOICES
    assert len(ANSWER_CHOICES) == 10


def test_render_is_deterministic() -> None:
    history, current = make_history(40, seed=3)
    again, current_again = make_history(40, seed=3)
    assert render_prompt(history, current) == render_prompt(again, current_again)


def test_history_is_append_only_so_consecutive_prompts_share_the_prefix() -> None:
    history, _ = make_history(60, seed=4)
    for n in range(1, 60):
        before = render_prompt(history[:n], history[n].state)
        after = render_prompt(history[: n + 1], history[n + 1].state if n + 1 < 60 else history[0].state)
        shared = render_history(history[:n])
        assert before.startswith(shared) and after.startswith(shared)
        # Everything up to the question of the earlier prompt survives in the later one.
        assert after.startswith(before.split("Current state:")[0])


def test_parse_round_trips_history_and_current_state() -> None:
    history, current = make_history(25, seed=5)
    prompt = render_prompt(history, current)
    parsed_history, parsed_current = parse_prompt(prompt)
    assert [(i.state.day, i.state.slot, i.action, i.response) for i in parsed_history] == [
        (i.state.day, i.state.slot, i.action, i.response) for i in history
    ]
    for original, parsed in zip(history, parsed_history, strict=True):
        assert parsed.state.meters.as_tuple() == pytest.approx(original.state.meters.as_tuple(), abs=0.005)
    assert (parsed_current.day, parsed_current.slot) == (current.day, current.slot)
    # Rendering what was parsed gives back the same text: the format loses nothing but meter rounding.
    assert render_prompt(parsed_history, parsed_current) == prompt


def test_parse_round_trips_an_empty_history() -> None:
    _, current = make_history(0)
    history, parsed = parse_prompt(render_prompt([], current))
    assert history == [] and parsed.slot == current.slot


@pytest.mark.parametrize(
    "text",
    ["", "hello\nworld", render_prompt(*make_history(2)).replace("recommended", "suggested")],
)
def test_parse_rejects_foreign_text(text: str) -> None:
    with pytest.raises(PromptFormatError):
        parse_prompt(text)


def test_cap_keeps_the_newest_and_drops_whole_blocks() -> None:
    history, current = make_history(DEFAULT_MAX_INTERACTIONS + 5, seed=6)
    kept = kept_history(history, DEFAULT_MAX_INTERACTIONS)
    assert len(kept) <= DEFAULT_MAX_INTERACTIONS
    assert list(kept) == history[len(history) - len(kept) :]
    assert (len(history) - len(kept)) % DROP_BLOCK == 0
    parsed, _ = parse_prompt(render_prompt(history, current))
    assert len(parsed) == len(kept)


def test_prefix_is_stable_between_block_drops() -> None:
    history, current = make_history(DEFAULT_MAX_INTERACTIONS + DROP_BLOCK, seed=7)
    first = render_prompt(history[: DEFAULT_MAX_INTERACTIONS + 1], current)
    later = render_prompt(history[: DEFAULT_MAX_INTERACTIONS + DROP_BLOCK - 1], current)
    assert later.startswith(first.split("Current state:")[0])


def test_prompt_never_exceeds_the_model_length() -> None:
    tokenizer = build_tokenizer()
    history, current = make_history(3 * HARD_MAX_INTERACTIONS, seed=8)
    for cap in (DEFAULT_MAX_INTERACTIONS, HARD_MAX_INTERACTIONS):
        ids = tokenizer(render_prompt(history, current, window_days=365, max_interactions=cap))["input_ids"]
        assert len(ids) <= MODEL_MAX_LENGTH
    # The hard cap is tight: the largest prompt uses most of the positions.
    full = render_prompt(history[:HARD_MAX_INTERACTIONS], current, max_interactions=HARD_MAX_INTERACTIONS)
    assert len(tokenizer(full)["input_ids"]) > MODEL_MAX_LENGTH - 100


@pytest.mark.parametrize("kwargs", [{"max_interactions": HARD_MAX_INTERACTIONS + 1}, {"window_days": 0}])
def test_out_of_range_arguments_are_refused(kwargs: dict[str, int]) -> None:
    history, current = make_history(3)
    with pytest.raises(ValueError):
        render_prompt(history, current, **kwargs)


def test_a_missing_meter_is_rendered_neutral_under_prompt_v1() -> None:
    from policy.prompt import MISSING_METER_VALUE, shown_meters

    assert MISSING_METER_VALUE == 0.5
    shown = shown_meters([0.7, None, 0.2, None, 0.9])
    assert shown.as_tuple() == (0.7, 0.5, 0.2, 0.5, 0.9)
    assert shown.missing == {Meter.COGNITION, Meter.SERENITY}
    text = render_prompt([], SlotState(0, Slot.MORNING, shown), version=1)
    assert "Cognition=0.50, Progress=0.20, Serenity=0.50," in text
    with pytest.raises(ValueError):
        shown_meters([0.5, None])


def test_shown_meters_flags_nan_like_none_and_leaves_complete_values_unflagged() -> None:
    from policy.prompt import shown_meters

    assert shown_meters([0.7, math.nan, 0.2, 0.4, 0.9]).missing == {Meter.COGNITION}
    complete = shown_meters((0.7, 0.1, 0.2, 0.4, 0.9))
    assert complete.missing == frozenset() and complete.as_tuple() == (0.7, 0.1, 0.2, 0.4, 0.9)
    with pytest.raises(ValueError, match="progress"):
        shown_meters([0.7, 0.1, 1.2, 0.4, 0.9])


def test_prompt_v2_shows_a_missing_meter_as_its_own_word_and_parses_back() -> None:
    from policy.prompt import shown_meters

    history, current = make_history(12, seed=11)
    gone = shown_meters([None, 0.4, None, 0.6, None])
    history = [
        Interaction(SlotState(item.state.day, item.state.slot, gone), item.action, item.response)
        if index % 3 == 0
        else item
        for index, item in enumerate(history)
    ]
    text = render_prompt(history, current, version=2)
    lines = text.split("\n")
    assert lines[2].startswith(f"{DAY_NAMES[history[0].state.day]} ")
    assert "Vitality=?, Cognition=0.40, Progress=?, Serenity=0.60, Connection=? →" in lines[2]
    assert "=?" not in lines[3]
    parsed_history, parsed_current = parse_prompt(text)
    assert [item.state.meters.missing for item in parsed_history] == [
        item.state.meters.missing for item in history
    ]
    assert render_prompt(parsed_history, parsed_current, version=2) == text
    # Version 1 of the same history cannot tell a missing meter from a measured 0.50.
    assert "=?" not in render_prompt(history, current, version=1)


def test_prompt_v2_equals_v1_when_no_meter_is_missing() -> None:
    history, current = make_history(40, seed=12)
    assert render_prompt(history, current, version=2) == render_prompt(history, current, version=1)


def test_an_unknown_renderer_version_is_refused() -> None:
    history, current = make_history(3)
    for version in (0, 3):
        with pytest.raises(ValueError, match="renderer version"):
            render_prompt(history, current, version=version)
