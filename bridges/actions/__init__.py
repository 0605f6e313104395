"""Calendar events → the ten actions.

``classify(CalendarEvent(...))`` returns a :class:`Classification` (action or "not an action", confidence,
reason, source ``rule``); ``from_google_event(resource, tz)`` fills a :class:`CalendarEvent` from a Google
Calendar ``events`` resource; ``bridges.actions.llm.LlmClassifier`` (optional, off by default) may replace
a low-confidence verdict with an OpenAI-compatible server's answer (source ``llm``). Pure Python: the sync
task, the API and ``rhythm classify`` all call this. The LLM module is imported by its path, not from here:
it needs httpx and structlog, which ``rhythm --help`` and ``rhythm classify`` must not load.
"""

from .classifier import SOURCE_RULE, CalendarEvent, Classification, classify
from .google import EVENT_TYPES, InvalidEvent, from_google_event
from .normalize import normalize

__all__ = [
    "EVENT_TYPES",
    "SOURCE_RULE",
    "CalendarEvent",
    "Classification",
    "InvalidEvent",
    "classify",
    "from_google_event",
    "normalize",
]
