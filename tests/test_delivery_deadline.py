"""``deliver(timeout=...)`` is a deadline for the whole attempt, not per socket operation: a
destination that trickles its response, or never answers, cannot hold a worker past it.
Raw socket servers on 127.0.0.1 (allowlisted); no database."""

from __future__ import annotations

import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from django_bgjobs.delivery.http import Attempt, DeliveryFailed, Response, deliver
from django_bgjobs.delivery.ssrf import Allowlist

KEY = "sig_current_key_for_tests_0123456789"
LOCAL = Allowlist.parse(["127.0.0.1"])
HEADERS = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\n"
TIMEOUT = 1.0
BOUND = 1.5  # seconds a deliver(timeout=1) may take, all told

Serve = Callable[[socket.socket, threading.Event], None]


def _read_request(conn: socket.socket) -> None:
    """The request's head and its Content-Length body (so closing does not reset it)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            return
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        chunk = conn.recv(4096)
        if not chunk:
            return
        body += chunk


def _trickle(conn: socket.socket, data: bytes, stop: threading.Event, every: float) -> None:
    for i in range(len(data)):
        if stop.wait(every):
            return
        conn.sendall(data[i : i + 1])


def trickled_head(conn: socket.socket, stop: threading.Event) -> None:
    _read_request(conn)
    _trickle(conn, HEADERS + b"x" * 100, stop, 0.2)


def silent(conn: socket.socket, stop: threading.Event) -> None:
    _read_request(conn)
    stop.wait(30)


def trickled_body(conn: socket.socket, stop: threading.Event) -> None:
    _read_request(conn)
    conn.sendall(HEADERS)
    _trickle(conn, b"x" * 100, stop, 0.2)


def fast(conn: socket.socket, stop: threading.Event) -> None:
    _read_request(conn)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")


class RawServer:
    """Accepts on 127.0.0.1 and runs ``serve`` per connection, in a thread (TLS first when
    given a context)."""

    def __init__(self, serve: Serve, tls: ssl.SSLContext | None = None) -> None:
        self.serve = serve
        self.tls = tls
        self.stop = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.05)
        self.port: int = self.listener.getsockname()[1]
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._handle, args=(conn,), daemon=True)
            self.threads.append(thread)
            thread.start()

    def _handle(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(None)
            if self.tls is not None:
                conn = self.tls.wrap_socket(conn, server_side=True)
            self.serve(conn, self.stop)
        except OSError:
            pass  # the client gave up (that is the point)
        finally:
            conn.close()

    def close(self) -> None:
        self.stop.set()
        self.listener.close()
        for thread in self.threads:
            thread.join(5)


@pytest.fixture
def server() -> Iterator[Callable[..., RawServer]]:
    started: list[RawServer] = []

    def start(serve: Serve, tls: ssl.SSLContext | None = None) -> RawServer:
        started.append(RawServer(serve, tls))
        return started[-1]

    yield start
    for raw in started:
        raw.close()


def _watchdogs() -> list[threading.Thread]:
    return [
        t
        for t in threading.enumerate()
        if t.name.startswith("bgjobs-delivery-deadline") and t.is_alive()
    ]


def _deliver(url: str, **kwargs: object) -> tuple[Response | DeliveryFailed, float]:
    started = time.monotonic()
    try:
        result: Response | DeliveryFailed = deliver(
            Attempt(url=url, body=b'{"a": 1}', message_id="msg_deadline"),
            signing_key=KEY,
            allow=LOCAL,
            timeout=TIMEOUT,
            **kwargs,
        )  # type: ignore[arg-type]
    except DeliveryFailed as exc:
        result = exc
    elapsed = time.monotonic() - started
    print(f"{url}: {elapsed:.3f} s -> {result!r}")
    assert _watchdogs() == []  # no thread left behind, whatever the outcome
    return result, elapsed


def test_status_line_and_headers_trickled_byte_by_byte_time_out(
    server: Callable[..., RawServer],
) -> None:
    raw = server(trickled_head)
    result, elapsed = _deliver(f"http://127.0.0.1:{raw.port}/")
    assert isinstance(result, DeliveryFailed)
    assert str(result).startswith("timed out after 1 s")
    assert TIMEOUT - 0.05 < elapsed < BOUND


def test_a_destination_that_never_answers_times_out(server: Callable[..., RawServer]) -> None:
    raw = server(silent)
    result, elapsed = _deliver(f"http://127.0.0.1:{raw.port}/")
    assert isinstance(result, DeliveryFailed)
    assert "timed out" in str(result)
    assert elapsed < BOUND


def test_a_trickled_body_is_cut_at_the_deadline(server: Callable[..., RawServer]) -> None:
    raw = server(trickled_body)
    result, elapsed = _deliver(f"http://127.0.0.1:{raw.port}/")
    assert isinstance(result, Response)
    assert result.status == 200 and result.truncated
    assert 0 < len(result.body) < 100 and set(result.body) == {ord("x")}
    assert elapsed < BOUND


def test_a_fast_destination_is_unaffected(server: Callable[..., RawServer]) -> None:
    raw = server(fast)
    for _ in range(3):
        result, elapsed = _deliver(f"http://127.0.0.1:{raw.port}/")
        assert isinstance(result, Response)
        assert (result.status, result.body, result.truncated) == (200, b"ok", False)
        assert elapsed < 0.5


def test_a_refused_connection_fails_at_once(server: Callable[..., RawServer]) -> None:
    raw = server(fast)
    port = raw.port
    raw.close()
    result, elapsed = _deliver(f"http://127.0.0.1:{port}/")
    assert isinstance(result, DeliveryFailed) and "timed out" not in str(result)
    assert elapsed < 0.5


# -- TLS: the watchdog holds through the handshake and on the TLS socket ----------------------


@pytest.fixture(scope="module")
def tls_contexts(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    tmp: Path = tmp_path_factory.mktemp("tls-deadline")
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    try:
        subprocess.run(
            [
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                str(key),
                "-out",
                str(cert),
                "-days",
                "1",
                "-subj",
                "/CN=127.0.0.1",
                "-addext",
                "subjectAltName=IP:127.0.0.1",
            ],
            check=True,
            capture_output=True,
        )
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("openssl is not available")
    server_side = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_side.load_cert_chain(cert, key)
    return server_side, ssl.create_default_context(cafile=str(cert))


def test_tls_headers_trickled_time_out(
    server: Callable[..., RawServer],
    tls_contexts: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    server_side, client_side = tls_contexts
    raw = server(trickled_head, tls=server_side)
    result, elapsed = _deliver(f"https://127.0.0.1:{raw.port}/", verify=client_side)
    assert isinstance(result, DeliveryFailed)
    assert str(result).startswith("timed out after 1 s")
    assert elapsed < BOUND


def test_tls_body_trickled_is_cut_and_fast_tls_works(
    server: Callable[..., RawServer], tls_contexts: tuple[ssl.SSLContext, ssl.SSLContext]
) -> None:
    server_side, client_side = tls_contexts
    raw = server(trickled_body, tls=server_side)
    result, elapsed = _deliver(f"https://127.0.0.1:{raw.port}/", verify=client_side)
    assert isinstance(result, Response) and result.status == 200 and result.truncated
    assert elapsed < BOUND
    raw = server(fast, tls=server_side)
    result, elapsed = _deliver(f"https://127.0.0.1:{raw.port}/", verify=client_side)
    assert isinstance(result, Response) and result.body == b"ok" and not result.truncated


def test_a_stalled_tls_handshake_times_out(server: Callable[..., RawServer]) -> None:
    """The server accepts TCP and never sends its ServerHello."""
    raw = server(lambda conn, stop: stop.wait(30))
    result, elapsed = _deliver(
        f"https://127.0.0.1:{raw.port}/", verify=ssl.create_default_context()
    )
    assert isinstance(result, DeliveryFailed) and "timed out" in str(result)
    assert elapsed < BOUND
