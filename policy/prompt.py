"""The one prompt renderer every policy backend uses (local torch model, vLLM, benchmarks, training).

The layout is documented in ``docs/prompt-format.md``. Two properties matter beyond readability:

* **Append-only.** A static header, then the history oldest first, then the question. Adding an interaction to
  the history only appends a line before ``Current state:``, so consecutive prompts of one user share
  everything up to that point, which is what vLLM's automatic prefix cache and our local KV cache exploit.
* **Bounded.** Every history line is exactly :data:`TOKENS_PER_INTERACTION` word-level tokens, so the cap on
  interactions is a hard cap on prompt length. When the history is longer than the cap, whole blocks of the
  oldest interactions are dropped (not one line at a time), so the prompt start moves only once per block and
  the cached prefix stays valid in between.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from domain import (
    ACTIONS,
    DAY_NAMES,
    METERS,
    Action,
    Interaction,
    Meters,
    Response,
    Slot,
    SlotState,
)

SYSTEM_LINE = (
    "You are Rhythm, a life-management assistant. Read how this person responded to past recommendations "
    "and recommend the action they are most likely to accept now."
)
HISTORY_HEADER = "Recent interactions (last {days} days):"
EMPTY_HISTORY = "(none)"
CURRENT_PREFIX = "Current state:"
QUESTION = "Recommend an action:"
ARROW = "→"

ANSWER_CHOICES: list[str] = [action.value for action in ACTIONS]


DEFAULT_WINDOW_DAYS = 30
# 30 days x 4 slots. Each line is 13 tokens, so 120 lines + header/footer stay far below 2,048 positions.
DEFAULT_MAX_INTERACTIONS = 120
# The largest cap the model's 2,048 positions allow (see tests/policy/test_prompt.py for the exact count).
HARD_MAX_INTERACTIONS = 150
# Oldest interactions are dropped a whole week at a time so the cached prefix survives between drops.
DROP_BLOCK = 28
MAX_WINDOW_DAYS = 365

# Day, slot, 5 meters, arrow, "recommended", action, arrow, "user:", response.
TOKENS_PER_INTERACTION = 13

# The version of the text this module renders for given inputs. Bump whenever the rendered text changes:
# logged rows carry it, and a fine-tune checks its re-rendered prompts against the logged ``prompt_hash`` only
# for rows of the current version.
# * Version 1 has no token for a missing meter: a meter the bridge could not estimate is shown as the neutral
#   value below, indistinguishable from a measured 0.50.
# * Version 2 shows a missing meter as ``Vitality=?`` (one token of its own per meter). Where no meter is
#   missing its text is version 1's, character for character, so every prompt of a person with a device is
#   unchanged. A model reads the version its tokenizer was built for (``policy.tokenizer``); the service
#   renders :data:`RENDERER_VERSION`, the shipped model's.
RENDERER_VERSION = 1
RENDERER_VERSIONS = (1, 2)
MISSING_METER_VALUE = 0.5
MISSING_METER_TEXT = "?"


class PromptFormatError(ValueError):
    """The text is not a prompt this renderer produced."""


def shown_meters(values: Sequence[float | None]) -> Meters:
    """The meters for a prompt, from values in ``METERS`` order where ``None`` (a NULL column) or NaN (a
    simulated reading that was hidden) is a missing meter: flagged missing, with :data:`MISSING_METER_VALUE`
    standing in for numeric consumers and for version 1's text (the caller stores the ``None``, not this)."""
    if None not in values:
        total = sum(values)  # type: ignore[arg-type]  # no None, checked above
        if total == total:  # no NaN either: the common case, once per history line of every prompt
            return Meters(*values)  # type: ignore[arg-type]
    return Meters.with_missing(
        [None if value is None or math.isnan(value) else value for value in values],
        neutral=MISSING_METER_VALUE,
    )


def check_version(version: int) -> int:
    if version not in RENDERER_VERSIONS:
        raise ValueError(f"unknown renderer version {version}; expected one of {RENDERER_VERSIONS}")
    return version


# A state line as one format string: ``_state_text`` runs once per history line (121 times for a full prompt),
# and a generator of per-meter f-strings reading an enum property each time was most of the renderer's cost on
# the recommend path. The text is the same, character for character.
_SLOT_LABELS: dict[Slot, str] = {slot: slot.label for slot in Slot}
_STATE_FORMAT = "{} {}, " + ", ".join(f"{meter.label}={{:.2f}}" for meter in METERS)


def _state_text(state: SlotState, version: int = RENDERER_VERSION) -> str:
    meters = state.meters
    if version >= 2 and meters.missing:
        words = ", ".join(
            f"{meter.label}={MISSING_METER_TEXT}" if meter in meters.missing else f"{meter.label}={value:.2f}"
            for meter, value in zip(METERS, meters.as_tuple(), strict=True)
        )
        return f"{DAY_NAMES[state.day]} {_SLOT_LABELS[state.slot]}, {words}"
    return _STATE_FORMAT.format(DAY_NAMES[state.day], _SLOT_LABELS[state.slot], *meters.as_tuple())


# The tail of a history line per (action, response): looked up, not formatted, 120 times per prompt.
_OUTCOME_TEXT: dict[tuple[Action, Response], str] = {
    (action, response): f" {ARROW} recommended {action.value} {ARROW} user: {response.value.upper()}"
    for action in Action
    for response in Response
}


def render_interaction(interaction: Interaction, version: int = RENDERER_VERSION) -> str:
    """One history line, e.g. ``Mon Morning, Vitality=0.70, … → recommended DEEP_WORK → user: IGNORED``."""
    return _state_text(interaction.state, version) + _OUTCOME_TEXT[interaction.action, interaction.response]


def kept_history(history: Sequence[Interaction], max_interactions: int) -> Sequence[Interaction]:
    """The interactions that fit under the cap: the newest ones, dropping the oldest in whole blocks."""
    if not 0 <= max_interactions <= HARD_MAX_INTERACTIONS:
        raise ValueError(f"max_interactions must be in [0, {HARD_MAX_INTERACTIONS}], got {max_interactions}")
    excess = len(history) - max_interactions
    if excess <= 0:
        return history
    block = min(DROP_BLOCK, max_interactions) or 1
    drop = math.ceil(excess / block) * block
    return history[drop:]


def render_history(
    history: Sequence[Interaction],
    *,
    window_days: int | None = None,
    max_interactions: int = DEFAULT_MAX_INTERACTIONS,
    version: int = RENDERER_VERSION,
) -> str:
    """The static header and the history block: the part of the prompt that only ever grows."""
    days = DEFAULT_WINDOW_DAYS if window_days is None else window_days
    if not 1 <= days <= MAX_WINDOW_DAYS:
        raise ValueError(f"window_days must be in [1, {MAX_WINDOW_DAYS}], got {days}")
    check_version(version)
    kept = kept_history(history, max_interactions)
    lines = [SYSTEM_LINE, HISTORY_HEADER.format(days=days)]
    if kept:
        lines.extend(render_interaction(item, version) for item in kept)
    else:
        lines.append(EMPTY_HISTORY)
    return "\n".join(lines) + "\n"


def render_question(current: SlotState, version: int = RENDERER_VERSION) -> str:
    """The variable tail: the current state and the question whose answer is one action token."""
    return f"{CURRENT_PREFIX} {_state_text(current, check_version(version))}\n{QUESTION}"


def render_prompt(
    history: Sequence[Interaction],
    current: SlotState,
    *,
    window_days: int | None = None,
    max_interactions: int = DEFAULT_MAX_INTERACTIONS,
    version: int = RENDERER_VERSION,
) -> str:
    """Render the prompt for recommending an action in ``current`` given the person's ``history``.

    ``history`` is oldest first; ``window_days`` only labels the header (the caller chooses which interactions
    fall in the window). At most ``max_interactions`` of the newest interactions are shown. ``version`` is the
    text version (see :data:`RENDERER_VERSION`): the one the reading model was trained on.
    """
    return render_history(
        history, window_days=window_days, max_interactions=max_interactions, version=version
    ) + render_question(current, version)


def _parse_state(text: str) -> SlotState:
    try:
        head, *meter_parts = (part.strip() for part in text.split(","))
        day_name, slot_label = head.split()
        if len(meter_parts) != len(METERS):
            raise PromptFormatError(f"expected {len(METERS)} meters in {text!r}")
        values: list[float | None] = []
        for meter, part in zip(METERS, meter_parts, strict=True):
            name, value = part.split("=")
            if name != meter.label:
                raise PromptFormatError(f"expected meter {meter.label} in {text!r}, got {name}")
            values.append(None if value == MISSING_METER_TEXT else float(value))
        return SlotState(DAY_NAMES.index(day_name), Slot.from_label(slot_label), shown_meters(values))
    except PromptFormatError:
        raise
    except (ValueError, KeyError) as exc:
        raise PromptFormatError(f"cannot parse state {text!r}: {exc}") from exc


def _parse_interaction(line: str) -> Interaction:
    parts = [part.strip() for part in line.split(ARROW)]
    if len(parts) != 3 or not parts[1].startswith("recommended ") or not parts[2].startswith("user: "):
        raise PromptFormatError(f"cannot parse history line {line!r}")
    try:
        action = Action(parts[1].removeprefix("recommended "))
        response = Response(parts[2].removeprefix("user: ").lower())
    except ValueError as exc:
        raise PromptFormatError(f"cannot parse history line {line!r}: {exc}") from exc
    return Interaction(_parse_state(parts[0]), action, response)


def parse_prompt(text: str) -> tuple[list[Interaction], SlotState]:
    """Invert :func:`render_prompt` (meters come back rounded to the two rendered decimals)."""
    lines = text.split("\n")
    if len(lines) < 5 or lines[0] != SYSTEM_LINE or lines[-1] != QUESTION:
        raise PromptFormatError("not a Rhythm prompt: system line or question missing")
    header, body, current_line = lines[1], lines[2:-2], lines[-2]
    if not (header.startswith("Recent interactions (last ") and header.endswith(" days):")):
        raise PromptFormatError(f"unexpected history header {header!r}")
    if not current_line.startswith(CURRENT_PREFIX + " "):
        raise PromptFormatError(f"unexpected current-state line {current_line!r}")
    history = [] if body == [EMPTY_HISTORY] else [_parse_interaction(line) for line in body]
    return history, _parse_state(current_line.removeprefix(CURRENT_PREFIX + " "))
