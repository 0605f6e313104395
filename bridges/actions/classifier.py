"""Calendar event → one of the ten actions, by scored rules.

Order of evidence:

1. **Not an action** (no scoring at all): cancelled, declined by the user, all-day, ``transparent`` (free time
   markers, holds), ``workingLocation`` and ``birthday`` (Google's status and reminder types). An all-day
   ``outOfOffice`` is reported with ``context="out_of_office"``: the meters use it, the feedback loop does
   not.
2. **Keywords** from :mod:`bridges.actions.lexicon` in title (weight 1), description and location (0.5),
   summed per action: every matching rule counts, so several weak hints can outvote one, and a strong activity
   word beats a context word ("Team dinner" is SOCIALIZE). Travel words can win too, and then the event is not
   an action.
3. **Google's eventType**: ``focusTime`` adds a strong DEEP_WORK vote, a timed ``outOfOffice`` a mild ME_TIME
   vote (keywords such as "kids" still win).
4. **Structure**, only when the words say little: a guest list means a meeting in working hours (ADMIN_WORK)
   and company outside them (SOCIALIZE); a long block starting late at night is SLEEP; a short one is ME_TIME;
   a solo block in working hours is DEEP_WORK when it is long enough to be one, ADMIN_WORK when short.

The confidence is the winner's share of the votes times how strong the winning vote is (``share × (1 −
e^(−score / 1.5))``): "Gym" ≈ 0.95, a neutral six-person meeting ≈ 0.7, a guess from the time of day alone ≈
0.5 or less.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache

from domain import ACTIONS, Action

from .lexicon import LEXICON, MEALS, TRAVEL
from .normalize import normalize

SOURCE_RULE = "rule"

# Field weights: the title is what the person typed for themselves; description and location are often
# boilerplate
# (video-call links, addresses) and only support it.
_TITLE_WEIGHT = 1.0
_DETAIL_WEIGHT = 0.5

# Below this keyword score the words are too weak to decide and the event's structure gets a vote.
_WEAK_EVIDENCE = 2.0
_WORK_START_HOUR = 7
_WORK_END_HOUR = 18
_NIGHT_START_HOUR = 21
_NIGHT_END_HOUR = 5
_SLEEP_MIN_MINUTES = 300
_DEEP_BLOCK_MIN_MINUTES = 60
# Guests (the user included) that make an event a meeting even when its words point elsewhere.
_GROUP_MIN = 3
_GROUP_MEETING_WEIGHT = 0.8

_TRAVEL = "travel"


@dataclass(frozen=True, slots=True)
class CalendarEvent:
    """What the classifier reads from one calendar event (see
    :func:`bridges.actions.google.from_google_event`).

    ``start`` is the user's local wall time (aware or naive); ``attendees`` counts the people on the guest
    list,
    the user included (0 when there is no guest list, 2 for a one-on-one).
    """

    title: str
    description: str = ""
    location: str = ""
    event_type: str = "default"
    attendees: int = 0
    organizer_self: bool | None = None
    start: datetime | None = None
    minutes: int | None = None
    all_day: bool = False
    transparent: bool = False
    status: str = "confirmed"
    declined: bool = False
    recurring_event_id: str | None = None


@dataclass(frozen=True, slots=True)
class Classification:
    """The verdict on one event: an action (``None``: not an action), a confidence in [0, 1], where it came
    from
    (``source``: ``rule`` here; the sync adds ``user`` and ``llm``), and a short human-readable reason."""

    action: Action | None
    confidence: float
    reason: str
    source: str = SOURCE_RULE
    context: str | None = None
    scores: dict[Action, float] = field(default_factory=dict, compare=False, repr=False)

    @property
    def is_action(self) -> bool:
        return self.action is not None


@dataclass(frozen=True, slots=True)
class _Rule:
    label: Action | str
    term: str
    weight: float
    pattern: re.Pattern[str]
    length: int


def _word_pattern(word: str) -> str:
    infix = word.startswith("~")
    prefix = word.endswith("*")
    core = normalize(word.strip("~*"))
    if not core:
        raise ValueError(f"empty lexicon word {word!r}")
    body = re.escape(core).replace(r"\ ", " ")
    return ("[a-z0-9]*" if infix else "") + body + ("[a-z0-9]*" if prefix or infix else "")


def _compile(label: Action | str, term: str, weight: float) -> _Rule:
    words = term.split()
    pattern = r"\b" + " ".join(_word_pattern(w) for w in words) + r"\b"
    return _Rule(
        label, term, weight, re.compile(pattern), len(normalize(term.replace("~", "").replace("*", "")))
    )


@lru_cache(maxsize=1)
def _rules() -> tuple[_Rule, ...]:
    rules = [
        _compile(action, term, weight) for action, terms in LEXICON.items() for term, weight in terms.items()
    ]
    rules += [_compile(_TRAVEL, term, weight) for term, weight in TRAVEL.items()]
    # Longest first: a phrase claims its words before the single words inside it can.
    rules.sort(key=lambda r: (-r.length, r.term))
    return tuple(rules)


_MEAL_RULES = frozenset(normalize(m) for m in MEALS)

# Compounds ("Filmabend", "Tennisles", "Datenanalyse") hide a known word inside a longer one. When a field
# matched nothing at all, the longest known single word at the start or the end of a longer word still votes,
# at a discount: better than falling back to the time of day, never over a real match. The end is the head of
# a German or Dutch compound ("Daten|analyse" is an analysis), so it wins a tie, but it must be longer: short
# English endings are false friends ("tran|sport").
_COMPOUND_MIN_PART = 4
_COMPOUND_MIN_TAIL = 6
_COMPOUND_MIN_REST = 3
_COMPOUND_FACTOR = 0.6


@lru_cache(maxsize=1)
def _compound_parts() -> tuple[tuple[str, Action | str, float], ...]:
    parts: dict[str, tuple[Action | str, float]] = {}
    vocab: list[tuple[Action | str, str, float]] = [
        (label, term, weight) for label, terms in LEXICON.items() for term, weight in terms.items()
    ]
    vocab += [(_TRAVEL, term, weight) for term, weight in TRAVEL.items()]
    for label, term, weight in vocab:
        core = normalize(term.strip("~*"))
        if " " in core or len(core) < _COMPOUND_MIN_PART:
            continue
        if weight > parts.get(core, (label, 0.0))[1]:
            parts[core] = (label, weight)
    # Longest part first, so "training" beats "rain" inside "Krafttraining".
    return tuple(sorted(((core, lab, w) for core, (lab, w) in parts.items()), key=lambda p: -len(p[0])))


def _compound_match(normalized: str, factor: float, into: _Matches) -> None:
    for token in normalized.split():
        best: tuple[int, bool, str, Action | str, float] | None = None
        for core, label, weight in _compound_parts():
            if len(token) - len(core) < _COMPOUND_MIN_REST:
                continue
            tail = len(core) >= _COMPOUND_MIN_TAIL and token.endswith(core)
            if tail or token.startswith(core):
                found = (len(core), tail, core, label, weight)
                if best is None or found[:2] > best[:2]:
                    best = found
        if best is not None:
            _, _, core, label, weight = best
            into.add(label, f"{core} (in {token})", weight * factor * _COMPOUND_FACTOR)


_COMPANION = re.compile(r"\b(?:with|mit|con|avec|com|bei|chez|avec les|with the|met)\s+[a-z0-9]")
# A season or episode code ("The Bear S3", "S01E04", "s2 e5") names a show. A bare "S3" only at the end of
# the title, so that "S3 bucket migration" stays work.
_SEASON_EPISODE = re.compile(r"\bs\d{1,2}\s?e\d{1,3}\b|\bs\d{1,2}$")
_SEASON_EPISODE_WEIGHT = 3.5


@dataclass(slots=True)
class _Matches:
    scores: dict[Action | str, float] = field(default_factory=dict)
    best_term: dict[Action | str, tuple[float, str]] = field(default_factory=dict)
    meal: bool = False
    companion: bool = False

    def add(self, label: Action | str, term: str, weight: float) -> None:
        self.scores[label] = self.scores.get(label, 0.0) + weight
        if weight > self.best_term.get(label, (0.0, ""))[0]:
            self.best_term[label] = (weight, term)


def _match_text(text: str, factor: float, into: _Matches) -> None:
    normalized = normalize(text)
    if not normalized:
        return
    taken: list[tuple[int, int]] = []
    before = sum(into.scores.values())
    for rule in _rules():
        for hit in rule.pattern.finditer(normalized):
            start, end = hit.span()
            if any(start < t_end and t_start < end for t_start, t_end in taken):
                continue
            taken.append((start, end))
            into.add(rule.label, rule.term, rule.weight * factor)
            if normalize(rule.term) in _MEAL_RULES:
                into.meal = True
            break  # a term counts once per field
    if _SEASON_EPISODE.search(normalized):
        into.add(Action.BINGE_WATCH, "season/episode code", _SEASON_EPISODE_WEIGHT * factor)
    if not taken and sum(into.scores.values()) == before:
        _compound_match(normalized, factor, into)
    if _COMPANION.search(normalized):
        into.companion = True


def _not_an_action(event: CalendarEvent) -> Classification | None:
    if event.status == "cancelled":
        return Classification(None, 1.0, "cancelled")
    if event.declined:
        return Classification(None, 1.0, "declined by the user")
    if event.event_type == "workingLocation":
        return Classification(None, 1.0, "working location (status, not an activity)")
    if event.event_type == "birthday":
        return Classification(None, 1.0, "birthday reminder")
    if event.all_day:
        if event.event_type == "outOfOffice":
            return Classification(None, 1.0, "all-day out of office (context)", context="out_of_office")
        return Classification(None, 1.0, "all-day event")
    if event.transparent:
        return Classification(None, 1.0, "shown as free (a marker, not a commitment)")
    return None


def _in_working_hours(start: datetime) -> bool:
    return start.weekday() < 5 and _WORK_START_HOUR <= start.hour < _WORK_END_HOUR


def _at_night(start: datetime) -> bool:
    return start.hour >= _NIGHT_START_HOUR or start.hour < _NIGHT_END_HOUR


def _structural_votes(event: CalendarEvent, keyword_total: float) -> list[tuple[Action, float, str]]:
    votes: list[tuple[Action, float, str]] = []
    start, minutes = event.start, event.minutes
    if event.attendees >= 2:
        if start is None or _in_working_hours(start):
            votes.append((Action.ADMIN_WORK, 2.0, f"meeting with {event.attendees} attendees"))
        else:
            votes.append((Action.SOCIALIZE, 2.0, f"{event.attendees} people outside working hours"))
        return votes
    if keyword_total > 0 or start is None:
        return votes
    if _at_night(start):
        if minutes is not None and minutes >= _SLEEP_MIN_MINUTES:
            votes.append((Action.SLEEP, 2.5, "long block overnight"))
        else:
            votes.append((Action.ME_TIME, 1.0, "personal time late at night"))
    elif _in_working_hours(start):
        if minutes is not None and minutes >= _DEEP_BLOCK_MIN_MINUTES:
            votes.append((Action.DEEP_WORK, 1.0, "solo block in working hours"))
        else:
            votes.append((Action.ADMIN_WORK, 1.0, "short solo slot in working hours"))
    else:
        votes.append((Action.ME_TIME, 1.0, "personal time outside working hours"))
    return votes


def classify(event: CalendarEvent) -> Classification:
    """Classify one calendar event into an action (or "not an action") with a confidence and a reason."""
    skipped = _not_an_action(event)
    if skipped is not None:
        return skipped

    matches = _Matches()
    _match_text(event.title, _TITLE_WEIGHT, matches)
    _match_text(event.description, _DETAIL_WEIGHT, matches)
    _match_text(event.location, _DETAIL_WEIGHT, matches)

    reasons: dict[Action | str, str] = {
        label: f"keyword '{term}'" for label, (_, term) in matches.best_term.items()
    }
    company = matches.companion or event.attendees >= 2
    if company:
        # A meal with someone is a social meal; "with X" alone is a faint social hint ("Tennis w/ Mark"
        # stays sport).
        # The company is family when a family word says so ("Abendessen mit Familie").
        bonus = 2.0 if matches.meal else 0.8
        with_whom = (
            Action.FAMILY_TIME if matches.scores.get(Action.FAMILY_TIME, 0.0) > 0 else Action.SOCIALIZE
        )
        matches.add(with_whom, "with someone", bonus)
        reasons.setdefault(with_whom, "keyword 'with someone'")

    if event.event_type == "focusTime":
        matches.add(Action.DEEP_WORK, "focusTime", 5.0)
        reasons[Action.DEEP_WORK] = "eventType focusTime"
    elif event.event_type == "outOfOffice":
        matches.add(Action.ME_TIME, "outOfOffice", 1.5)
        reasons.setdefault(Action.ME_TIME, "eventType outOfOffice")

    keyword_total = sum(matches.scores.values())
    strongest = max(matches.scores.values(), default=0.0)
    if strongest < _WEAK_EVIDENCE:
        for action, weight, reason in _structural_votes(event, keyword_total):
            matches.add(action, reason, weight)
            reasons.setdefault(action, reason)
    elif event.attendees >= _GROUP_MIN and (event.start is None or _in_working_hours(event.start)):
        # Even when the words are clear, a group on the guest list in working hours is a meeting about
        # them: "Design review" with four guests is reviewed together (ADMIN_WORK), alone it is desk work.
        # A faint vote: an activity word still wins ("Team lunch", "Yoga class" with classmates).
        matches.add(Action.ADMIN_WORK, "a group in working hours", _GROUP_MEETING_WEIGHT)
        reasons.setdefault(Action.ADMIN_WORK, f"meeting with {event.attendees} attendees")

    if not matches.scores:
        return Classification(Action.ME_TIME, 0.1, "no signal: personal time by default")

    # Highest score wins; ties go to the label listed first (ACTIONS order, travel last) so results are
    # stable.
    order: dict[Action | str, int] = {a: i for i, a in enumerate(ACTIONS)}
    ranked = sorted(matches.scores.items(), key=lambda kv: (-kv[1], order.get(kv[0], len(order))))
    winner, top = ranked[0]
    runner_up = ranked[1][1] if len(ranked) > 1 else 0.0
    confidence = round((top / (top + runner_up)) * (1.0 - math.exp(-top / 1.5)), 2)
    action_scores = {a: s for a, s in matches.scores.items() if isinstance(a, Action)}
    if not isinstance(winner, Action):
        return Classification(None, confidence, f"travel ({reasons[winner]})", scores=action_scores)
    return Classification(winner, confidence, reasons[winner], scores=action_scores)
