"""The classifier's optional LLM second opinion, against a local server speaking the OpenAI chat format."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest

from app.core.config import Settings
from bridges.actions import CalendarEvent, classify
from bridges.actions.llm import SOURCE_LLM, LlmClassifier, llm_client
from domain import Action
from tests.bridges.chat_server import ChatServer

MONDAY_19 = datetime(2026, 3, 2, 19, 0)
# Titles no rule knows (the rules fall back to the time of day) and what the local "model" says they are.
UNKNOWN = {
    "Zorbing with Kai": "EXERCISE",
    "Ceilidh": "SOCIALIZE",
    "Grout the tiles": "ADMIN_WORK",
}


@pytest.fixture
def chat() -> Iterator[ChatServer]:
    server = ChatServer(dict(UNKNOWN)).start()
    yield server
    server.stop()


@pytest.fixture
def make_llm(chat: ChatServer) -> Iterator[Callable[..., LlmClassifier]]:
    clients: list[httpx.Client] = []

    def make(**kwargs: Any) -> LlmClassifier:
        clients.append(llm_client(chat.url, "sk-local", 1.0))
        return LlmClassifier(clients[-1], model="small-chat", **kwargs)

    yield make
    for client in clients:
        client.close()


def test_off_by_default() -> None:
    assert Settings().calendar_llm_url == ""


def test_unsure_verdicts_are_asked_sure_ones_are_not(
    chat: ChatServer, make_llm: Callable[..., LlmClassifier]
) -> None:
    llm = make_llm()
    zorbing = CalendarEvent(
        title="Zorbing with Kai", description="Bring Ben's number", start=MONDAY_19, minutes=60
    )
    rule = classify(zorbing)
    assert rule.confidence < 0.5 and rule.action is not Action.EXERCISE  # the rules alone get it wrong
    verdict = llm.refine(zorbing, rule)
    assert (verdict.action, verdict.source, verdict.confidence) == (Action.EXERCISE, SOURCE_LLM, 0.8)

    gym = CalendarEvent(title="Gym", start=MONDAY_19, minutes=60)
    assert llm.refine(gym, classify(gym)).source == "rule"
    travel = CalendarEvent(title="Flight to Lisbon", start=MONDAY_19, minutes=60)
    assert llm.refine(travel, classify(travel)).action is None  # "not an action" is never sent

    assert chat.titles() == ["Zorbing with Kai"]
    sent = chat.requests[0]
    assert sent["model"] == "small-chat" and sent["temperature"] == 0
    assert "Bring Ben" not in str(sent)  # the description (other people's data) stays here
    assert chat.headers[0]["authorization"] == "Bearer sk-local"


def test_answers_are_remembered_and_calls_capped(
    chat: ChatServer, make_llm: Callable[..., LlmClassifier]
) -> None:
    llm = make_llm(max_calls=2)
    events = [CalendarEvent(title=t, start=MONDAY_19, minutes=90) for t in UNKNOWN]
    first = [llm.refine(e, classify(e)) for e in events]
    again = [llm.refine(e, classify(e)) for e in events]
    assert len(chat.requests) == 2 and llm.calls == 2
    assert [v.source for v in first] == [SOURCE_LLM, SOURCE_LLM, "rule"]  # the third is over the cap
    assert [v.action for v in again] == [v.action for v in first]
    assert first[1].action is Action.SOCIALIZE


@pytest.mark.parametrize("mode", ["http500", "garbage", "unknown", "hang"])
def test_a_failing_server_keeps_the_rules_verdict(
    chat: ChatServer, make_llm: Callable[..., LlmClassifier], mode: str
) -> None:
    chat.mode = mode
    chat.hang_s = 2.0
    llm = make_llm()
    events = [CalendarEvent(title=t, start=MONDAY_19, minutes=60) for t in UNKNOWN]
    rules = [classify(e) for e in events]
    assert [llm.refine(e, r) for e, r in zip(events, rules, strict=True)] == rules
    # A server that errs or times out is not asked again in the same run; one that answers badly is.
    assert len(chat.requests) == (1 if mode in {"http500", "hang"} else len(UNKNOWN))


def test_a_server_answering_in_prose_still_counts(
    chat: ChatServer, make_llm: Callable[..., LlmClassifier]
) -> None:
    chat.mode = "prose"
    llm = make_llm()
    event = CalendarEvent(title="Grout the tiles", start=MONDAY_19, minutes=180)
    verdict = llm.refine(event, classify(event))
    assert (verdict.action, verdict.source, verdict.confidence) == (Action.ADMIN_WORK, SOURCE_LLM, 0.6)
