"""A local OAuth 2 authorization server and provider API, speaking each provider's documented formats.

One real HTTP server (a thread, 127.0.0.1, free port) plays WHOOP, Oura, Google Health, Google and Terra:

* ``GET /authorize`` — consent granted at once: 302 to ``redirect_uri?code=…&state=…`` (records the PKCE
  challenge), or ``?error=access_denied&state=…`` when ``deny`` is set.
* ``POST /token`` — RFC 6749 authorization_code (client authentication, redirect_uri and, where a challenge
  was sent, the RFC 7636 S256 verifier are checked) and refresh_token grants (rotating refresh tokens);
  errors as ``{"error": "invalid_grant"}``.
* ``POST /revoke`` (RFC 7009, Google), ``GET /oura/revoke?access_token=`` (Oura), ``DELETE /whoop/access``
  with the bearer token (WHOOP ``/v2/user/access``).
* Profiles with the bearer token: WHOOP ``/v2/user/profile/basic`` (``user_id`` int), Oura
  ``/v2/usercollection/personal_info`` (``id``), Google Health ``/v4/users/me/identity`` (``healthUserId``),
  Google ``/oauth2/v3/userinfo`` (``sub``). Unknown or revoked token → 401.
* Terra: ``POST /api/widget/session`` (``dev-id`` / ``x-api-key``), ``DELETE /auth/deauthenticateUser``.

``down = True`` makes every endpoint answer 503 (a provider outage). Everything received is recorded.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from app.benchmarks.local_http import serving

CLIENT_ID = "rhythm-test-client"
CLIENT_SECRET = "rhythm-test-secret"
TERRA_DEV_ID = "rhythm-terra-dev"
TERRA_API_KEY = "rhythm-terra-key"


@dataclass
class Grant:
    account: str
    access_token: str
    refresh_token: str
    revoked: bool = False


@dataclass
class ProviderState:
    down: bool = False
    deny: bool = False
    # Account id the next consent belongs to (the "user logged in at the provider").
    account: str = "acct-1"
    access_ttl: int = 3600
    codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    grants: list[Grant] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    revoked_tokens: list[str] = field(default_factory=list)
    pkce_verified: int = 0
    terra_sessions: list[dict[str, Any]] = field(default_factory=list)
    terra_deauthed: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def issue(self, account: str) -> Grant:
        grant = Grant(account, "at-" + secrets.token_urlsafe(16), "rt-" + secrets.token_urlsafe(16))
        self.grants.append(grant)
        return grant

    def by_access(self, token: str) -> Grant | None:
        return next((g for g in self.grants if g.access_token == token and not g.revoked), None)

    def by_refresh(self, token: str) -> Grant | None:
        return next((g for g in self.grants if g.refresh_token == token and not g.revoked), None)

    def revoke(self, token: str) -> None:
        self.revoked_tokens.append(token)
        for grant in self.grants:
            if token in (grant.access_token, grant.refresh_token):
                grant.revoked = True


_PROFILES: dict[str, Callable[[str], dict[str, Any]]] = {
    "/v2/user/profile/basic": lambda account: {
        "user_id": int(account) if account.isdigit() else account,
        "email": "someone@example.com",
        "first_name": "Some",
        "last_name": "One",
    },
    "/v2/usercollection/personal_info": lambda account: {
        "id": account,
        "age": 34,
        "weight": 70.5,
        "height": 1.78,
        "biological_sex": "female",
        "email": "someone@example.com",
    },
    "/v4/users/me/identity": lambda account: {
        "name": "users/me/identity",
        "legacyUserId": "ABC123",
        "healthUserId": account,
    },
    "/oauth2/v3/userinfo": lambda account: {"sub": account, "email_verified": True},
}


def _handler(state: ProviderState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # quiet test output
            pass

        def _reply(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
            raw = b"" if body is None else json.dumps(body).encode()
            self.send_response(status)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            if body is not None:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def _read(self) -> tuple[str, dict[str, list[str]], bytes]:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            with state.lock:
                state.requests.append(
                    {
                        "method": self.command,
                        "path": parts.path,
                        "query": parts.query,
                        "body": body,
                        "headers": {k.lower(): v for k, v in self.headers.items()},
                    }
                )
            return parts.path, parse_qs(parts.query), body

        def _bearer(self) -> str | None:
            value = self.headers.get("Authorization") or ""
            return value[7:] if value.lower().startswith("bearer ") else None

        def _client_ok(self, form: dict[str, list[str]]) -> bool:
            basic = self.headers.get("Authorization") or ""
            if basic.lower().startswith("basic "):
                user, _, password = base64.b64decode(basic[6:]).decode().partition(":")
                return user == CLIENT_ID and password == CLIENT_SECRET
            return form.get("client_id") == [CLIENT_ID] and form.get("client_secret") == [CLIENT_SECRET]

        def do_GET(self) -> None:
            path, query, _ = self._read()
            if state.down:
                return self._reply(503, {"error": "temporarily_unavailable"})
            if path == "/authorize":
                return self._authorize(query)
            if path == "/oura/revoke":
                token = (query.get("access_token") or [""])[0]
                with state.lock:
                    known = state.by_access(token) is not None
                    state.revoke(token)
                return self._reply(200 if known else 401, {} if known else {"detail": "invalid token"})
            if path in _PROFILES:
                with state.lock:
                    grant = state.by_access(self._bearer() or "")
                if grant is None:
                    return self._reply(401, {"error": "invalid_token"})
                return self._reply(200, _PROFILES[path](grant.account))
            return self._reply(404, {"error": "not_found"})

        def _authorize(self, query: dict[str, list[str]]) -> None:
            redirect = query["redirect_uri"][0]
            params = {"state": query.get("state", [""])[0]}
            if state.deny:
                params["error"] = "access_denied"
            else:
                code = secrets.token_urlsafe(12)
                with state.lock:
                    state.codes[code] = {
                        "account": state.account,
                        "redirect_uri": redirect,
                        "challenge": next(iter(query.get("code_challenge", [])), None),
                        "method": next(iter(query.get("code_challenge_method", [])), None),
                        "scope": (query.get("scope") or [""])[0],
                    }
                params["code"] = code
            self._reply(302, None, {"Location": f"{redirect}?{urlencode(params)}"})

        def do_POST(self) -> None:
            path, _query, body = self._read()
            if state.down:
                return self._reply(503, {"error": "temporarily_unavailable"})
            if path == "/token":
                return self._token(parse_qs(body.decode()))
            if path == "/revoke":
                form = parse_qs(body.decode())
                token = (form.get("token") or [""])[0]
                with state.lock:
                    state.revoke(token)
                return self._reply(200, {})
            if path == "/api/widget/session":
                if (
                    self.headers.get("dev-id") != TERRA_DEV_ID
                    or self.headers.get("x-api-key") != TERRA_API_KEY
                ):
                    return self._reply(401, {"status": "error", "message": "unauthorised"})
                document = json.loads(body or b"{}")
                with state.lock:
                    state.terra_sessions.append(document)
                session_id = secrets.token_hex(8)
                return self._reply(
                    200,
                    {
                        "status": "success",
                        "session_id": session_id,
                        "url": f"https://widget.tryterra.co/session/{session_id}",
                        "expires_in": 900,
                    },
                )
            return self._reply(404, {"error": "not_found"})

        def _token(self, form: dict[str, list[str]]) -> None:
            if not self._client_ok(form):
                return self._reply(401, {"error": "invalid_client"})
            grant_type = (form.get("grant_type") or [""])[0]
            with state.lock:
                if grant_type == "authorization_code":
                    pending = state.codes.pop((form.get("code") or [""])[0], None)
                    if pending is None or form.get("redirect_uri") != [pending["redirect_uri"]]:
                        return self._reply(400, {"error": "invalid_grant"})
                    if pending["challenge"] is not None:
                        verifier = (form.get("code_verifier") or [""])[0]
                        digest = hashlib.sha256(verifier.encode()).digest()
                        expected = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
                        if pending["method"] != "S256" or expected != pending["challenge"]:
                            return self._reply(400, {"error": "invalid_grant", "error_description": "PKCE"})
                        state.pkce_verified += 1
                    grant = state.issue(pending["account"])
                    scope = pending["scope"]
                elif grant_type == "refresh_token":
                    grant_or_none = state.by_refresh((form.get("refresh_token") or [""])[0])
                    if grant_or_none is None:
                        return self._reply(400, {"error": "invalid_grant"})
                    grant = grant_or_none
                    # Rotating refresh tokens, as WHOOP and Oura do: the old one stops working.
                    grant.access_token = "at-" + secrets.token_urlsafe(16)
                    grant.refresh_token = "rt-" + secrets.token_urlsafe(16)
                    scope = ""
                else:
                    return self._reply(400, {"error": "unsupported_grant_type"})
            answer = {
                "access_token": grant.access_token,
                "refresh_token": grant.refresh_token,
                "token_type": "Bearer",
                "expires_in": state.access_ttl,
            }
            if scope:
                answer["scope"] = scope
            self._reply(200, answer)

        def do_DELETE(self) -> None:
            path, query, _ = self._read()
            if state.down:
                return self._reply(503, {"error": "temporarily_unavailable"})
            if path == "/whoop/access":
                token = self._bearer() or ""
                with state.lock:
                    known = state.by_access(token) is not None
                    if known:
                        state.revoke(token)
                return self._reply(204 if known else 401)
            if path == "/auth/deauthenticateUser":
                if (
                    self.headers.get("dev-id") != TERRA_DEV_ID
                    or self.headers.get("x-api-key") != TERRA_API_KEY
                ):
                    return self._reply(401, {"status": "error"})
                with state.lock:
                    state.terra_deauthed.append((query.get("user_id") or [""])[0])
                return self._reply(200, {"status": "success"})
            return self._reply(404, {"error": "not_found"})

    return Handler


@dataclass
class ProviderServer:
    base_url: str
    state: ProviderState

    def requests_to(self, path: str) -> list[dict[str, Any]]:
        with self.state.lock:
            return [r for r in self.state.requests if r["path"] == path]


@contextmanager
def provider_server() -> Iterator[ProviderServer]:
    state = ProviderState()
    with serving(_handler(state), "provider-server") as url:
        yield ProviderServer(url, state)


def wait_until(predicate: Callable[[], object], timeout: float = 30.0, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())
