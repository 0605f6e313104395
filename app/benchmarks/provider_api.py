"""A local stand-in for a wearable provider's REST API: a real HTTP/1.1 server on loopback, in a thread.

``rhythm bench webhooks --provider whoop|oura`` points the workers' ``*_API_BASE_URL`` here, so the drain pays
a real fetch round trip (connect, request, JSON answer, parse) for every notification, as it would against the
provider. The answers are the provider's documented REST documents (bridges.md §2.1, §2.2), generated from
the record id: every delivery names a record of its own, and the server counts the GETs per path so the
benchmark can show that each delivery fetched its record exactly once. A wrong bearer token is answered 401,
as the provider would, so a worker fetching with another user's token cannot pass unnoticed.

:func:`local_api` is the plumbing alone (a responder function answers every request, every request is
recorded); the wearable tests script their own answers on it.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from app.benchmarks.local_http import serving


@dataclass
class Answer:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Seen:
    """One request as the server received it."""

    method: str
    path: str
    query: dict[str, str]
    bearer: str | None
    form: dict[str, str]


Responder = Callable[[Seen], Answer]


class LocalApi:
    """What a running :func:`local_api` exposes: its base URL and the requests it has answered, in order."""

    def __init__(self, respond: Responder, *, record: bool = True) -> None:
        self.url = ""
        self.respond = respond
        self.seen: list[Seen] = []
        # (method, path, status) of every answer; cheap enough to keep for a 10,000-delivery drain.
        self.answered: Counter[tuple[str, str, int]] = Counter()
        self._record = record
        self._lock = threading.Lock()

    def handle(self, seen: Seen) -> Answer:
        answer = self.respond(seen)
        with self._lock:
            if self._record:
                self.seen.append(seen)
            self.answered[(seen.method, seen.path, answer.status)] += 1
        return answer

    def answered_so_far(self) -> Counter[tuple[str, str, int]]:
        with self._lock:
            return Counter(self.answered)


def _handler(api: LocalApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        # Keep-alive, as the providers' servers do: a task's several GETs share one connection.
        protocol_version = "HTTP/1.1"
        # Headers and body go out in two writes; with Nagle on, the body waits for the client's delayed ACK
        # (~40 ms on Linux) on a kept-alive connection, which measured the stall rather than the round trip.
        disable_nagle_algorithm = True

        def _serve(self, method: str) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length).decode() if length else ""
            auth = self.headers.get("authorization") or ""
            answer = api.handle(
                Seen(
                    method=method,
                    path=parts.path,
                    query={k: v[0] for k, v in parse_qs(parts.query).items()},
                    bearer=auth[7:] if auth.startswith("Bearer ") else None,
                    form={k: v[0] for k, v in parse_qs(raw).items()},
                )
            )
            payload = b"" if answer.body is None else json.dumps(answer.body).encode()
            self.send_response(answer.status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(payload)))
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def do_PUT(self) -> None:
            self._serve("PUT")

        def do_DELETE(self) -> None:
            self._serve("DELETE")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def local_api(respond: Responder, *, record: bool = True) -> Iterator[LocalApi]:
    """Serve ``respond`` on a free 127.0.0.1 port in a daemon thread (one thread per connection)."""
    api = LocalApi(respond, record=record)
    with serving(_handler(api), "local-provider-api") as url:
        api.url = url
        yield api


# --- generated provider records ---------------------------------------------------------------------------


class RecordIds:
    """Record ids that carry a delivery's index under a per-run salt, so the server can answer any record
    without a table and refuse ids it never handed out (404, as for a deleted object)."""

    def __init__(self, salt: int) -> None:
        self._salt = salt & 0xFFFF_FFFF_FFFF_FFFF

    def uuid(self, index: int) -> str:
        return str(uuid.UUID(int=(self._salt << 64) | index))

    def index_of(self, text: str) -> int | None:
        try:
            value = uuid.UUID(text).int
        except ValueError:
            return None
        return value & 0xFFFF_FFFF_FFFF_FFFF if value >> 64 == self._salt else None


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Night:
    """Delivery ``index``'s night: user ``index % users``, one night further back per round of users, so no
    two deliveries of a user write the same reading (the books count every reading as new)."""

    index: int
    user: int
    end: datetime

    @classmethod
    def of(cls, index: int, users: int, today: datetime) -> Night:
        morning = today.replace(hour=7, minute=0, second=0, microsecond=0)
        return cls(index, index % users, morning - timedelta(days=1 + index // users))

    @property
    def start(self) -> datetime:
        return self.end - timedelta(hours=8)


class NotifyProviderApi:
    """Base of the generated APIs: users' tokens, the 401 on a wrong one, and the per-delivery fetch books."""

    def __init__(self, salt: int, today: datetime) -> None:
        self.ids = RecordIds(salt)
        self.today = today.astimezone(UTC)
        self.tokens: list[str] = []  # the access token of user k (provider user ``external_user_id(k)``)
        self.api: LocalApi | None = None

    def external_user_id(self, user: int) -> str:
        raise NotImplementedError

    def paths_of(self, index: int) -> list[str]:
        """The GETs the worker makes for delivery ``index`` (each exactly once, when all goes well)."""
        raise NotImplementedError

    def document(self, path: str, night: Night) -> Any:
        raise NotImplementedError

    def index_of(self, path: str) -> int | None:
        raise NotImplementedError

    def respond(self, seen: Seen) -> Answer:
        index = self.index_of(seen.path) if seen.method == "GET" else None
        if index is None or not self.tokens:
            return Answer(404, {"message": "not found"})
        night = Night.of(index, len(self.tokens), self.today)
        if seen.bearer != self.tokens[night.user]:
            return Answer(401, {"error": "invalid_token"})
        return Answer(200, self.document(seen.path, night))

    @contextmanager
    def serving(self) -> Iterator[LocalApi]:
        # Not recorded request by request: the counts per path are all the books need.
        with local_api(self.respond, record=False) as api:
            self.api = api
            try:
                yield api
            finally:
                self.api = None

    def fetch_books(self, deliveries: int) -> dict[str, Any]:
        """Deliveries ``0 … deliveries-1`` against the GETs served: each delivery's paths exactly once."""
        assert self.api is not None
        answered = self.api.answered_so_far()
        gets: Counter[str] = Counter()
        statuses: Counter[int] = Counter()
        for (method, path, status), count in answered.items():
            if method == "GET":
                gets[path] += count
                statuses[status] += count
        expected = [path for index in range(deliveries) for path in self.paths_of(index)]
        once = sum(1 for path in expected if gets[path] == 1)
        more = sum(1 for path in expected if gets[path] > 1)
        never = sum(1 for path in expected if gets[path] == 0)
        unexpected = sum(gets.values()) - sum(gets[path] for path in set(expected))
        return {
            "gets": sum(gets.values()),
            "gets_expected": len(expected),
            "gets_per_delivery": len(expected) / deliveries if deliveries else None,
            "answers": {str(status): count for status, count in sorted(statuses.items())},
            "paths_fetched_once": once,
            "paths_fetched_more_than_once": more,
            "paths_never_fetched": never,
            "gets_outside_the_deliveries": unexpected,
            # Exactly once means one GET per path and every answer a 200 (a 401 → refresh → 200 is two GETs).
            "each_delivery_fetched_exactly_once": once == len(expected)
            and unexpected == 0
            and set(statuses) <= {200},
        }


class WhoopApi(NotifyProviderApi):
    """WHOOP v2: ``recovery.updated`` names the sleep; the worker reads the sleep, its cycle's recovery and
    the cycle (3 GETs, 4 readings: recovery score, resting HR, RMSSD, strain)."""

    USER_BASE = 10_000
    CYCLE_BASE = 900_000_000  # WHOOP cycle ids are integers

    def external_user_id(self, user: int) -> str:
        return str(self.USER_BASE + user)

    def sleep_id(self, index: int) -> str:
        return self.ids.uuid(index)

    def paths_of(self, index: int) -> list[str]:
        cycle = self.CYCLE_BASE + index
        return [
            f"/v2/activity/sleep/{self.sleep_id(index)}",
            f"/v2/cycle/{cycle}/recovery",
            f"/v2/cycle/{cycle}",
        ]

    def index_of(self, path: str) -> int | None:
        parts = path.strip("/").split("/")
        if parts[:3] == ["v2", "activity", "sleep"] and len(parts) == 4:
            return self.ids.index_of(parts[3])
        if parts[:2] == ["v2", "cycle"] and len(parts) in (3, 4) and parts[2].isdigit():
            if len(parts) == 4 and parts[3] != "recovery":
                return None
            index = int(parts[2]) - self.CYCLE_BASE
            return index if index >= 0 else None
        return None

    def document(self, path: str, night: Night) -> Any:
        index, user = night.index, int(self.external_user_id(night.user))
        cycle = self.CYCLE_BASE + index
        if path.endswith("/recovery"):
            return {
                "cycle_id": cycle,
                "sleep_id": self.sleep_id(index),
                "user_id": user,
                "created_at": _iso(night.end + timedelta(minutes=12)),
                "updated_at": _iso(night.end + timedelta(minutes=12)),
                "score_state": "SCORED",
                "score": {
                    "user_calibrating": False,
                    "recovery_score": 20.0 + index % 75,
                    "resting_heart_rate": 48.0 + index % 20,
                    "hrv_rmssd_milli": 25.0 + index % 60 + 0.5,
                    "spo2_percentage": 95.0 + index % 4,
                    "skin_temp_celsius": 33.0 + (index % 10) / 10,
                },
            }
        if path.startswith("/v2/cycle/"):
            return {
                "id": cycle,
                "user_id": user,
                "created_at": _iso(night.start),
                "updated_at": _iso(night.end),
                "start": _iso(night.start),
                "end": _iso(night.start + timedelta(days=1)),
                "timezone_offset": "+00:00",
                "score_state": "SCORED",
                "score": {
                    "strain": 4.0 + (index % 150) / 10,
                    "kilojoule": 7000.0 + index % 3000,
                    "average_heart_rate": 60 + index % 20,
                    "max_heart_rate": 140 + index % 40,
                },
            }
        deep = 3_600_000 + (index % 30) * 60_000
        return {
            "id": self.sleep_id(index),
            "cycle_id": cycle,
            "v1_id": None,
            "user_id": user,
            "created_at": _iso(night.end + timedelta(minutes=10)),
            "updated_at": _iso(night.end + timedelta(minutes=10)),
            "start": _iso(night.start),
            "end": _iso(night.end),
            "timezone_offset": "+00:00",
            "nap": False,
            "score_state": "SCORED",
            "score": {
                "stage_summary": {
                    "total_in_bed_time_milli": 28_800_000,
                    "total_awake_time_milli": 1_800_000,
                    "total_no_data_time_milli": 0,
                    "total_light_sleep_time_milli": 27_000_000 - deep - 7_200_000,
                    "total_slow_wave_sleep_time_milli": deep,
                    "total_rem_sleep_time_milli": 7_200_000,
                    "sleep_cycle_count": 4,
                    "disturbance_count": 5 + index % 10,
                },
                "respiratory_rate": 15.0,
                "sleep_performance_percentage": 60.0 + index % 40,
                "sleep_consistency_percentage": 80.0,
                "sleep_efficiency_percentage": 93.7,
            },
        }


class OuraApi(NotifyProviderApi):
    """Oura v2: a ``sleep`` notification names the sleep period; one GET of
    ``/v2/usercollection/sleep/{id}`` (8 readings: RMSSD, lowest HR, duration, four stages, deep share)."""

    def external_user_id(self, user: int) -> str:
        return f"oura-bench-{user}"

    def sleep_id(self, index: int) -> str:
        return self.ids.uuid(index)

    def paths_of(self, index: int) -> list[str]:
        return [f"/v2/usercollection/sleep/{self.sleep_id(index)}"]

    def index_of(self, path: str) -> int | None:
        prefix = "/v2/usercollection/sleep/"
        return self.ids.index_of(path[len(prefix) :]) if path.startswith(prefix) else None

    def document(self, path: str, night: Night) -> Any:
        index = night.index
        deep = 3600 + (index % 30) * 60
        return {
            "id": self.sleep_id(index),
            "day": night.end.date().isoformat(),
            "type": "long_sleep",
            "bedtime_start": night.start.isoformat(),
            "bedtime_end": night.end.isoformat(),
            "average_hrv": 30 + index % 60,
            "average_heart_rate": 55.0 + index % 10,
            "lowest_heart_rate": 45 + index % 15,
            "deep_sleep_duration": deep,
            "rem_sleep_duration": 6000,
            "light_sleep_duration": 26_000 - deep - 6000,
            "awake_time": 2400,
            "total_sleep_duration": 26_000,
            "efficiency": 90,
            "latency": 600,
        }


# --- registered records, and an outage ------------------------------------------------------------------


@dataclass
class Outage:
    """A window (Unix time) in which every GET is answered 429 (with ``Retry-After``) or 503, alternately."""

    start: float
    end: float
    retry_after_s: int = 1
    answers: Counter[int] = field(default_factory=Counter)


class RecordApi:
    """A provider API that answers the records a caller registered, path by path, each with its owner's
    bearer token (``rhythm simulate``: the documents carry a simulated person's observed signals, so the
    worker fetches what the simulation decided). Unknown paths are 404, a wrong token 401, as the provider
    answers. :meth:`outage` makes it refuse every GET for a while, as a provider's API does under load or in
    an incident: 429 with ``Retry-After`` and 503 in turn, so both of the workers' retry paths are taken."""

    def __init__(self) -> None:
        self.records: dict[str, tuple[str, Any]] = {}  # path -> (owner's access token, document)
        self.outages: list[Outage] = []
        self.api: LocalApi | None = None
        self._lock = threading.Lock()

    def register(self, path: str, token: str, document: Any) -> None:
        with self._lock:
            self.records[path] = (token, document)

    def outage(self, seconds: float, *, retry_after_s: int = 1) -> Outage:
        now = time.time()
        window = Outage(now, now + seconds, retry_after_s)
        with self._lock:
            self.outages.append(window)
        return window

    def respond(self, seen: Seen) -> Answer:
        now = time.time()
        with self._lock:
            window = next((o for o in self.outages if o.start <= now < o.end), None)
            if window is not None and seen.method == "GET":
                # Alternate so a worker meets both a rate limit and a server error in the same outage.
                status = 429 if sum(window.answers.values()) % 2 == 0 else 503
                window.answers[status] += 1
            record = self.records.get(seen.path)
        if window is not None and seen.method == "GET":
            if status == 429:
                return Answer(429, {"error": "rate_limited"}, {"retry-after": str(window.retry_after_s)})
            return Answer(503, {"error": "unavailable"})
        if seen.method != "GET" or record is None:
            return Answer(404, {"message": "not found"})
        token, document = record
        if seen.bearer != token:
            return Answer(401, {"error": "invalid_token"})
        return Answer(200, document)

    @contextmanager
    def serving(self) -> Iterator[LocalApi]:
        with local_api(self.respond, record=False) as api:
            self.api = api
            try:
                yield api
            finally:
                self.api = None

    def fetch_books(self) -> dict[str, Any]:
        """Every registered path against the GETs served: fetched (a 200 at least once), never fetched, and
        the refused answers (429/5xx: the retries the outage caused)."""
        assert self.api is not None
        answered = self.api.answered_so_far()
        ok: Counter[str] = Counter()
        statuses: Counter[int] = Counter()
        for (method, path, status), count in answered.items():
            if method != "GET":
                continue
            statuses[status] += count
            if status == 200:
                ok[path] += count
        with self._lock:
            paths = set(self.records)
        return {
            "records": len(paths),
            "records_fetched": sum(1 for p in paths if ok[p] > 0),
            "records_never_fetched": sum(1 for p in paths if ok[p] == 0),
            # A task attempt the outage stopped half-way reads its first records again when retried: counted,
            # not a fault (the inbox's handled_at, not the fetch count, says each event was handled once).
            "records_fetched_more_than_once": sum(1 for p in paths if ok[p] > 1),
            "answers": {str(status): count for status, count in sorted(statuses.items())},
            "refused_answers": sum(count for status, count in statuses.items() if status in (429, 503)),
        }
