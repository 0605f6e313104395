"""A local HTTP server speaking the OpenAI chat-completions format (``POST /v1/chat/completions``), for the
calendar classifier's LLM second opinion.

It answers like a small instruction-tuned model would: it reads the event facts the classifier sends as the
user message and labels titles it "knows" (``labels``); ``mode`` scripts the failures a real server cannot
be made to produce on demand: ``http500``, ``garbage`` (an HTML error page), ``prose`` (ignores "JSON only"
but names the label), ``unknown`` (names no action) and ``hang``.
"""

from __future__ import annotations

import json
import time
from http.server import BaseHTTPRequestHandler
from typing import Any

from app.benchmarks.local_http import LocalHttpServer


class ChatServer(LocalHttpServer):
    def __init__(self, labels: dict[str, str]) -> None:
        self.labels = labels
        self.mode = "ok"
        self.hang_s = 3.0
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        super().__init__(self._handler(), "chat-server")

    @property
    def url(self) -> str:
        return f"{self.base_url}/v1"

    def titles(self) -> list[str]:
        return [json.loads(r["messages"][-1]["content"])["title"] for r in self.requests]

    def _answer(self, body: dict[str, Any]) -> tuple[int, bytes]:
        if self.mode == "http500":
            return 500, b'{"error": {"message": "upstream overloaded", "type": "server_error"}}'
        if self.mode == "garbage":
            return 200, b"<html>502 Bad Gateway</html>"
        if self.mode == "hang":
            time.sleep(self.hang_s)
        facts = json.loads(body["messages"][-1]["content"])
        label = self.labels.get(facts["title"], "ME_TIME")
        if self.mode == "prose":
            content = f"I think this is most likely {label}."
        elif self.mode == "unknown":
            content = '{"action": "LUNCH", "confidence": 0.9}'
        else:
            content = json.dumps({"action": label, "confidence": 0.8})
        reply = {
            "id": "chatcmpl-local",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", ""),
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
            ],
            "usage": {"prompt_tokens": 80, "completion_tokens": 12, "total_tokens": 92},
        }
        return 200, json.dumps(reply).encode()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                if self.path != "/v1/chat/completions":
                    self.send_response(404)
                    self.end_headers()
                    return
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
                server.requests.append(body)
                server.headers.append({k.lower(): v for k, v in self.headers.items()})
                status, payload = server._answer(body)
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting ("hang"): nothing to answer

            def log_message(self, format: str, *args: Any) -> None:
                return

        return Handler
