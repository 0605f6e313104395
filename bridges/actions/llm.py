"""Second opinion for titles the rules are unsure of: one chat completion on an OpenAI-compatible server.

Off unless configured (see ``calendar_llm_*`` in the settings). Only events the rules call an action with a
confidence below the threshold are sent; "not an action" verdicts (all-day, free, declined, travel …) are
structural and stay as they are. What leaves the service is the title, Google's ``eventType``, the
duration, the guest count and the local start time: never the description, the location or the guests'
addresses, which hold other people's data.

Any failure (timeout, error status, an answer that names no action) keeps the rule's verdict: the LLM can
only improve a guess, never lose an event. A timeout or an error status also ends the asking for the rest of
the run, so a server that is down costs a sync one timeout, not one per event (the sync holds its
calendar's lease meanwhile). Answers are remembered per event shape for the life of one
classifier (one sync run), and the number of calls per run is capped so that a first full sync of a
calendar full of unusual titles costs a bounded number of requests.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

import httpx
import structlog

from domain import ACTIONS, Action

from .classifier import CalendarEvent, Classification

SOURCE_LLM = "llm"

log = structlog.get_logger(__name__)

_ACTION_NAMES = {action.value: action for action in ACTIONS}
_ACTION_IN_TEXT = re.compile(r"\b(" + "|".join(sorted(_ACTION_NAMES, key=len, reverse=True)) + r")\b")
# Titles are user text; a cap keeps a pasted essay from becoming a large (and costly) prompt.
_MAX_TITLE_CHARS = 200

_SYSTEM_PROMPT = (
    "You label calendar events with what the person is doing. Answer with JSON only: "
    '{"action": "<one of: ' + ", ".join(_ACTION_NAMES) + '>", "confidence": <0..1>}. '
    "Chores, errands and appointments are ADMIN_WORK; hobbies and pampering are ME_TIME; time with a partner "
    "or relatives is FAMILY_TIME; watching a screen is BINGE_WATCH; a meeting with a neutral title is "
    "ADMIN_WORK. Titles may be in any language."
)


@dataclass(slots=True)
class LlmClassifier:
    """Asks ``{base_url}/chat/completions`` about low-confidence verdicts (``client`` carries base URL,
    key and timeouts)."""

    client: httpx.Client
    model: str
    threshold: float = 0.5
    max_calls: int = 50
    calls: int = 0
    broken: bool = False
    _memo: dict[tuple[str, str, int, int | None, int | None], Classification | None] = field(
        default_factory=dict
    )

    def refine(self, event: CalendarEvent, verdict: Classification) -> Classification:
        """The LLM's verdict when the rules were unsure and it answered with an action, else ``verdict``."""
        if verdict.action is None or verdict.confidence >= self.threshold:
            return verdict
        key = (
            event.title.strip().casefold()[:_MAX_TITLE_CHARS],
            event.event_type,
            event.attendees,
            event.minutes,
            event.start.hour if event.start is not None else None,
        )
        if key not in self._memo:
            if self.broken or self.calls >= self.max_calls:
                return verdict
            self.calls += 1
            self._memo[key] = self._ask(event)
        answer = self._memo[key]
        return answer if answer is not None else verdict

    def _ask(self, event: CalendarEvent) -> Classification | None:
        facts = {
            "title": event.title[:_MAX_TITLE_CHARS],
            "eventType": event.event_type,
            "minutes": event.minutes,
            "guests": event.attendees,
            "local_start": event.start.strftime("%A %H:%M") if event.start is not None else None,
        }
        body = {
            "model": self.model,
            "temperature": 0,
            "max_tokens": 40,
            "messages": [
                {"role": "system", "content": _SYSTEM_PROMPT},
                {"role": "user", "content": json.dumps(facts, ensure_ascii=False)},
            ],
        }
        try:
            response = self.client.post("chat/completions", json=body)
            response.raise_for_status()
            content = response.json()["choices"][0]["message"]["content"]
        except (httpx.HTTPError, ValueError, KeyError, IndexError, TypeError) as exc:
            # The title is personal data: the log says that the call failed, not about what.
            log.warning("calendar_llm_failed", error=type(exc).__name__)
            self.broken = isinstance(exc, httpx.HTTPError)
            return None
        return _parse(content) if isinstance(content, str) else None


def _parse(content: str) -> Classification | None:
    action: Action | None = None
    confidence = 0.6  # what an answer without a usable confidence is worth: above a structural guess
    try:
        data = json.loads(content)
    except ValueError:
        data = None
    if isinstance(data, dict):
        named = data.get("action")
        action = _ACTION_NAMES.get(named.strip().upper()) if isinstance(named, str) else None
        stated = data.get("confidence")
        if isinstance(stated, int | float) and not isinstance(stated, bool) and 0 <= stated <= 1:
            confidence = float(stated)
    if action is None:
        # Servers that ignore "JSON only" still tend to name the label somewhere in the text.
        found = _ACTION_IN_TEXT.search(content.upper())
        action = _ACTION_NAMES[found.group(1)] if found else None
    if action is None:
        return None
    return Classification(action, round(confidence, 2), "llm", source=SOURCE_LLM)


def llm_client(base_url: str, api_key: str, timeout_s: float) -> httpx.Client:
    """An HTTP client for an OpenAI-compatible server at ``base_url`` (e.g. ``https://…/v1``)."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    return httpx.Client(base_url=base_url.rstrip("/") + "/", headers=headers, timeout=timeout_s)
