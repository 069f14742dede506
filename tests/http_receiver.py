"""A real HTTP server on 127.0.0.1 for the delivery tests: it records every request and answers
each path from a script (status, headers, body), 200 "ok" once the script runs out."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Hit:
    method: str
    path: str  # with its query string
    headers: dict[str, str]  # lower-case names
    body: bytes
    at: float  # time.time()


class Receiver:
    def __init__(self) -> None:
        self.hits: list[Hit] = []
        self.script: dict[str, list[tuple[int, dict[str, str], bytes]]] = {}
        self.slow: dict[str, float] = {}  # seconds a path takes to answer
        self.in_flight: dict[str, int] = {}
        self.most_in_flight: dict[str, int] = {}  # the most requests a path had at once
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                path = self.path.split("?")[0]
                with receiver._lock:
                    receiver.hits.append(
                        Hit(
                            self.command,
                            self.path,
                            {k.lower(): v for k, v in self.headers.items()},
                            body,
                            time.time(),
                        )
                    )
                    queued = receiver.script.get(path) or []
                    status, headers, reply = queued.pop(0) if queued else (200, {}, b"ok")
                    receiver.in_flight[path] = receiver.in_flight.get(path, 0) + 1
                    receiver.most_in_flight[path] = max(
                        receiver.most_in_flight.get(path, 0), receiver.in_flight[path]
                    )
                time.sleep(receiver.slow.get(path, 0))
                with receiver._lock:
                    receiver.in_flight[path] -= 1
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def answer(self, path: str, *replies: tuple[int, dict[str, str], bytes]) -> None:
        with self._lock:
            self.script.setdefault(path, []).extend(replies)

    def at(self, path: str) -> list[Hit]:
        with self._lock:
            return [hit for hit in self.hits if hit.path.split("?")[0] == path]

    def wait(self, path: str, count: int, timeout: float = 20.0) -> list[Hit]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.at(path)
            if len(found) >= count:
                return found
            time.sleep(0.02)
        raise AssertionError(f"{path}: {len(self.at(path))} of {count} deliveries arrived")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
