"""A scriptable local HTTP server in vLLM's OpenAI-compatible format, for the failure modes a real server
cannot be made to produce on demand (HTTP 500, non-JSON, answers outside the constraint, hangs).

It speaks the documented reply shapes of ``/health``, ``/v1/models``, ``/tokenize`` and ``/v1/completions``
(with ``return_tokens_as_token_ids``) so the ``vllm`` backend can also succeed against it (to close a
circuit).
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler
from typing import Any

from app.benchmarks.local_http import LocalHttpServer
from policy.prompt import ANSWER_CHOICES

# Token ids the stub's "tokenizer" gives the 10 actions.
TOKEN_IDS = list(range(4, 4 + len(ANSWER_CHOICES)))
DEFAULT_PROBS = [0.3, 0.2, 0.1, 0.1, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05]


class StubModelServer(LocalHttpServer):
    """``mode`` decides how ``/v1/completions`` answers: ``ok``, ``http500``, ``garbage``, ``not_an_action``,
    ``missing_logprobs``, ``too_much_mass``, ``nan`` or ``hang``."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.probs = list(DEFAULT_PROBS)
        self.hang_s = 5.0
        # Model names the stub serves (base and loaded adapters); others are 404 as in vLLM.
        self.models = {"rhythm-policy"}
        self.hits: Counter[str] = Counter()
        self.bodies: list[dict[str, Any]] = []
        super().__init__(self._handler(), "vllm-stub")

    @property
    def url(self) -> str:
        return f"{self.base_url}/v1"

    def completion(self) -> tuple[int, bytes]:
        logprobs = {f"token_id:{t}": math.log(p) for t, p in zip(TOKEN_IDS, self.probs, strict=True)}
        text = " " + ANSWER_CHOICES[max(range(len(self.probs)), key=self.probs.__getitem__)]
        if self.mode == "http500":
            return 500, b'{"error": {"message": "EngineCore encountered an issue", "code": 500}}'
        if self.mode == "garbage":
            return 200, b"<html>502 Bad Gateway</html>"
        if self.mode == "hang":
            time.sleep(self.hang_s)
        if self.mode == "not_an_action":
            # What an unconstrained model says, e.g. when a legacy `guided_choice` field was silently ignored.
            text = " Mon"
        if self.mode == "missing_logprobs":
            logprobs.pop(f"token_id:{TOKEN_IDS[3]}")
        if self.mode == "too_much_mass":
            logprobs = {key: -0.01 for key in logprobs}
        body = {
            "id": "cmpl-stub",
            "object": "text_completion",
            "model": "rhythm-policy",
            "choices": [
                {
                    "index": 0,
                    "text": text,
                    "logprobs": {
                        "tokens": [f"token_id:{TOKEN_IDS[0]}"],
                        "token_logprobs": [logprobs.get(f"token_id:{TOKEN_IDS[0]}")],
                        "top_logprobs": [logprobs],
                        "text_offset": [0],
                    },
                    "finish_reason": "length",
                }
            ],
        }
        payload = json.dumps(body)
        if self.mode == "nan":
            payload = payload.replace(str(math.log(self.probs[0])), "NaN")
        return 200, payload.encode()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return None

            def _send(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                stub.hits[self.path] += 1
                if self.path == "/health":
                    self._send(200 if stub.mode != "http500" else 500, b"")
                elif self.path == "/v1/models":
                    models = {
                        "object": "list",
                        "data": [{"id": "rhythm-policy", "object": "model", "parent": None}],
                    }
                    self._send(200, json.dumps(models).encode())
                else:
                    self._send(404, b'{"detail": "Not Found"}')

            def do_POST(self) -> None:
                stub.hits[self.path] += 1
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
                stub.bodies.append(body)
                if self.path == "/tokenize":
                    index = ANSWER_CHOICES.index(body["prompt"])
                    reply = {"count": 1, "max_model_len": 2048, "tokens": [TOKEN_IDS[index]]}
                    self._send(200, json.dumps(reply).encode())
                elif self.path == "/v1/completions" and body.get("model") not in stub.models:
                    message = f"The model `{body.get('model')}` does not exist."
                    self._send(404, json.dumps({"error": {"message": message, "code": 404}}).encode())
                elif self.path == "/v1/completions":
                    self._send(*stub.completion())
                else:
                    self._send(404, b'{"detail": "Not Found"}')

        return Handler
