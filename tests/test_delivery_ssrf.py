"""Outbound delivery's SSRF guard and signed attempts, against real canary HTTP listeners on
loopback addresses (127.0.0.1, .2, .3 and ::1, all on one port). A refused URL must never
reach a canary."""

from __future__ import annotations

import ipaddress
import json
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from django.test import override_settings
from qstash import Receiver

from django_bgjobs.delivery.http import (
    Attempt,
    DeliveryFailed,
    deliver,
)
from django_bgjobs.delivery.ssrf import Allowlist, Refused, check_url, forbidden, parse_ipv4

CURRENT = "sig_current_key_for_tests_0123456789"
NEXT = "sig_next_key_for_tests_9876543210abc"
NOTHING = Allowlist.parse([])


@dataclass
class Hit:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Canary:
    address: str
    hits: list[Hit] = field(default_factory=list)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.server.canary.hits.append(
            Hit(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
        )
        if self.path.startswith("/redirect"):
            self.send_response(302)
            self.send_header("Location", self.path.split("to=", 1)[1])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path.startswith("/slow"):
            time.sleep(2)
        payload = (
            b"x" * 100_000
            if self.path.startswith("/big")
            else json.dumps({"canary": self.server.canary.address}).encode()
        )
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        try:
            self.wfile.write(payload)
        except OSError:
            pass

    do_GET = do_POST = do_PUT = _serve


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    canary: Canary


class _Server6(_Server):
    address_family = socket.AF_INET6


@dataclass
class Canaries:
    port: int
    by_address: dict[str, Canary]

    def __getitem__(self, address: str) -> Canary:
        return self.by_address[address]

    def total(self) -> int:
        return sum(len(c.hits) for c in self.by_address.values())


def _start(servers: list[_Server], cls: type[_Server], address: str, port: int) -> None:
    server = cls((address, port), _Handler)
    server.canary = Canary(address)
    servers.append(server)
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    ).start()


@pytest.fixture(scope="module")
def canaries() -> Iterator[Canaries]:
    servers: list[_Server] = []
    for _ in range(20):
        try:
            _start(servers, _Server, "127.0.0.1", 0)
            port = servers[0].server_address[1]
            for address in ("127.0.0.2", "127.0.0.3"):
                _start(servers, _Server, address, port)
            try:
                _start(servers, _Server6, "::1", port)
            except OSError:
                pass  # no IPv6 loopback here: the ::1 spellings are still refused, by parsing
            break
        except OSError:
            for server in servers:
                server.shutdown()
                server.server_close()
            servers.clear()
    else:
        pytest.fail("could not bind the canaries")
    yield Canaries(port, {s.canary.address: s.canary for s in servers})
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture(autouse=True)
def _clear_hits(canaries: Canaries) -> None:
    for canary in canaries.by_address.values():
        canary.hits.clear()


def resolver_for(answers: dict[str, list[str]], calls: list[str] | None = None) -> Any:
    """A getaddrinfo that answers from a table (and records the names it was asked)."""

    def getaddrinfo(host: str, port: int, *args: Any, **kwargs: Any) -> list[tuple[Any, ...]]:
        if calls is not None:
            calls.append(host)
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        result = []
        for address in answers[host]:
            if ":" in address:
                result.append((socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, port, 0, 0)))
            else:
                result.append((socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port)))
        return result

    return getaddrinfo


FORBIDDEN_SPELLINGS = [
    "http://127.0.0.1:{port}/",
    "http://127.1:{port}/",
    "http://127.0.1:{port}/",
    "http://2130706433:{port}/",
    "http://0x7f000001:{port}/",
    "http://0x7F.0x0.0x0.0x1:{port}/",
    "http://017700000001:{port}/",
    "http://0177.0.0.01:{port}/",
    "http://127.0.0.1.:{port}/",
    "http://127.0.0.2:{port}/",
    "http://127.0.0.3:{port}/",
    "http://0.0.0.0:{port}/",
    "http://0:{port}/",
    "http://localhost:{port}/",
    "http://LOCALHOST:{port}/",
    "http://localhost.:{port}/",
    "http://canary.localhost:{port}/",
    "http://[::1]:{port}/",
    "http://[0:0:0:0:0:0:0:1]:{port}/",
    "http://[::]:{port}/",
    "http://[::ffff:127.0.0.1]:{port}/",
    "http://[::ffff:7f00:1]:{port}/",
    "http://[::127.0.0.1]:{port}/",
    "http://[64:ff9b::7f00:1]:{port}/",
    "http://[2002:7f00:1::1]:{port}/",
    "http://[fe80::1%25lo]:{port}/",
    "http://\uff11\uff12\uff17\uff0e\uff10\uff0e\uff10\uff0e\uff11:{port}/",  # fullwidth
    "http://%31%32%37.0.0.1:{port}/",
    "https://127.0.0.1:{port}/",
    "HTTP://127.0.0.1:{port}/",
    # userinfo, in every place a parser might disagree about
    "http://user:pw@example.com:{port}/",
    "http://example.com@127.0.0.1:{port}/",
    "http://127.0.0.1:{port}\\@example.com/",
    "http://127.0.0.1:{port}#@example.com/",
    # other schemes
    "ftp://127.0.0.1:{port}/",
    "file:///etc/passwd",
    "gopher://127.0.0.1:{port}/_GET",
    "//127.0.0.1:{port}/",
    "127.0.0.1:{port}",
    " http://127.0.0.1:{port}/",
    "http://127.0.0.1:{port}/\r\nX: y",
    # names that resolve (through the test resolver) to canaries or internal networks
    "http://canary.test:{port}/",
    "http://dual.test:{port}/",
    "http://mapped.test:{port}/",
    # other forbidden networks (no canary: refused before any connection)
    "http://169.254.169.254/latest/meta-data/",
    "http://[fd00:ec2::254]/latest/meta-data/",
    "http://10.0.0.1/",
    "http://172.16.0.1/",
    "http://192.168.1.1/",
    "http://100.64.0.1/",
    "http://224.0.0.1/",
    "http://240.0.0.1/",
    "http://255.255.255.255/",
    "http://[fc00::1]/",
    "http://[ff02::1]/",
    "http://[fec0::1]/",
    "http://198.18.0.1/",
    "http://192.0.2.1/",
    "http://256.0.0.1/",
    "http://1.2.3.4.5/",
    "http://08.0.0.1/",
]

TEST_DNS = {
    "canary.test": ["127.0.0.2"],
    "dual.test": ["93.184.215.14", "127.0.0.3"],  # one public, one private: refused
    "mapped.test": ["::ffff:127.0.0.1"],
    "public.test": ["93.184.215.14"],
}


@pytest.mark.parametrize("template", FORBIDDEN_SPELLINGS)
def test_forbidden_spellings_are_refused_and_never_reach_a_canary(
    canaries: Canaries, template: str
) -> None:
    url = template.format(port=canaries.port)
    with pytest.raises(Refused) as refused:
        deliver(
            Attempt(url=url, body=b"{}", message_id="msg_1"),
            signing_key=CURRENT,
            allow=NOTHING,
            resolver=resolver_for(TEST_DNS),
            timeout=2,
        )
    assert refused.value.reason
    assert canaries.total() == 0


def test_the_real_resolver_refuses_localhost_too(canaries: Canaries) -> None:
    for host in ("localhost", "ip6-localhost"):
        with pytest.raises(Refused):
            check_url(f"http://{host}:{canaries.port}/", allow=NOTHING)
    assert canaries.total() == 0


def test_spellings_read_as_the_resolver_reads_them() -> None:
    expected = ipaddress.IPv4Address("127.0.0.1")
    for host in (
        "127.1",
        "127.0.1",
        "2130706433",
        "0x7f000001",
        "017700000001",
        "0x7f.1",
        "0177.0.0.1",
        "127.0.0.0x1",
    ):
        assert parse_ipv4(host) == expected, host
        assert socket.inet_aton(host) == expected.packed, host  # glibc agrees
    assert parse_ipv4("example.com") is None
    assert parse_ipv4("1.2.3.com") is None


def test_forbidden_reasons_name_the_kind_of_address() -> None:
    def reason(address: str) -> str | None:
        return forbidden(ipaddress.ip_address(address))

    assert reason("169.254.169.254") == "a cloud metadata address"
    assert reason("fd00:ec2::254") == "a cloud metadata address"
    assert reason("100.64.0.1") == "a shared (CGNAT) address"
    assert reason("::ffff:10.0.0.1") == "IPv4-mapped IPv6 address of 10.0.0.1: a private address"
    assert reason("::ffff:169.254.169.254").endswith("a cloud metadata address")
    assert reason("93.184.215.14") is None
    assert reason("2606:4700:4700::1111") is None


def test_refusal_reason_is_clear() -> None:
    with pytest.raises(Refused) as refused:
        check_url("http://127.1/", allow=NOTHING)
    assert refused.value.reason.startswith("127.0.0.1 is a loopback address")
    assert "DELIVERY_ALLOW_HOSTS" in refused.value.reason
    with pytest.raises(Refused, match="scheme 'ftp'"):
        check_url("ftp://example.com/", allow=NOTHING)
    with pytest.raises(Refused, match="userinfo"):
        check_url("http://a:b@example.com/", allow=NOTHING)
    with pytest.raises(Refused, match=r"canary\.test \(127\.0\.0\.2\) is a loopback"):
        check_url("http://canary.test/", allow=NOTHING, resolver=resolver_for(TEST_DNS))


def test_a_public_name_is_pinned_to_its_one_lookup() -> None:
    calls: list[str] = []
    target = check_url(
        "https://Public.Test./hook?a=1", allow=NOTHING, resolver=resolver_for(TEST_DNS, calls)
    )
    assert (target.address, target.host, target.port, target.scheme) == (
        "93.184.215.14",
        "public.test",
        443,
        "https",
    )
    assert target.host_header == "public.test"
    assert calls == ["public.test"]


def test_unresolvable_host_is_a_retryable_failure() -> None:
    with pytest.raises(DeliveryFailed, match="cannot resolve"):
        deliver(
            Attempt(url="http://nowhere.test/", body=b"", message_id="msg_1"),
            signing_key=CURRENT,
            allow=NOTHING,
            resolver=resolver_for({}),
        )


def test_allowlist_by_network_delivers_signed_headers_once(canaries: Canaries) -> None:
    url = f"http://127.0.0.2:{canaries.port}/hook?b=2&a=1"
    body = b'{"hello": "world"}'
    response = deliver(
        Attempt(
            url=url,
            body=body,
            message_id="msg_abc",
            retried=2,
            headers={
                "Content-Type": "application/json",
                "X-Tenant": "t1",
                "Upstash-Signature": "forged",
                "Host": "evil.example",
            },
        ),
        signing_key=CURRENT,
        allow=Allowlist.parse(["127.0.0.2/32"]),
        timeout=5,
    )
    assert response.status == 200
    assert json.loads(response.body) == {"canary": "127.0.0.2"}
    assert response.address == "127.0.0.2"
    assert [len(c.hits) for c in canaries.by_address.values()].count(1) == 1
    [hit] = canaries["127.0.0.2"].hits
    assert hit.method == "POST" and hit.path == "/hook?b=2&a=1" and hit.body == body
    assert hit.headers["host"] == f"127.0.0.2:{canaries.port}"
    assert hit.headers["upstash-message-id"] == "msg_abc"
    assert hit.headers["upstash-retried"] == "2"
    assert hit.headers["user-agent"] == "Upstash-QStash"
    assert hit.headers["content-type"] == "application/json"
    assert hit.headers["x-tenant"] == "t1"
    assert "upstash-method" not in hit.headers
    assert hit.headers["upstash-signature"] != "forged"
    Receiver(current_signing_key=CURRENT, next_signing_key=NEXT).verify(
        signature=hit.headers["upstash-signature"], body=hit.body.decode(), url=url
    )


def test_allowlist_by_name_keeps_the_host_header_and_signs_each_attempt_afresh(
    canaries: Canaries,
) -> None:
    url = f"http://canary.test:{canaries.port}/in"
    with override_settings(BGJOBS={"DELIVERY_ALLOW_HOSTS": ["canary.test"]}):
        for retried in (0, 1):
            deliver(
                Attempt(url=url, body=b"ping", message_id="msg_same", retried=retried),
                signing_key=CURRENT,
                resolver=resolver_for(TEST_DNS),
            )
    first, second = canaries["127.0.0.2"].hits
    assert canaries.total() == 2
    assert first.headers["host"] == second.headers["host"] == f"canary.test:{canaries.port}"
    assert first.headers["upstash-message-id"] == second.headers["upstash-message-id"]
    assert (first.headers["upstash-retried"], second.headers["upstash-retried"]) == ("0", "1")
    assert first.headers["upstash-signature"] != second.headers["upstash-signature"]
    for hit in (first, second):  # the next key verifies too (rotation)
        Receiver(current_signing_key=NEXT, next_signing_key=CURRENT).verify(
            signature=hit.headers["upstash-signature"], body="ping", url=url
        )
    # Without the setting the same URL is refused.
    with pytest.raises(Refused):
        check_url(url, resolver=resolver_for(TEST_DNS))


def test_allowlisted_ipv6_loopback(canaries: Canaries) -> None:
    if "::1" not in canaries.by_address:
        pytest.skip("no IPv6 loopback")
    response = deliver(
        Attempt(url=f"http://[::1]:{canaries.port}/six", body=b"", message_id="msg_6"),
        signing_key=CURRENT,
        allow=Allowlist.parse(["::1"]),
        timeout=5,
    )
    assert response.status == 200
    assert canaries["::1"].hits[0].headers["host"] == f"[::1]:{canaries.port}"
    assert canaries.total() == 1


def test_a_redirect_to_a_private_address_is_returned_not_followed(canaries: Canaries) -> None:
    target = f"http://127.0.0.3:{canaries.port}/secret"
    response = deliver(
        Attempt(
            url=f"http://127.0.0.2:{canaries.port}/redirect?to={target}",
            body=b"",
            message_id="msg_r",
        ),
        signing_key=CURRENT,
        allow=Allowlist.parse(["127.0.0.2"]),
        timeout=5,
    )
    assert response.status == 302
    assert response.header("Location") == target
    assert len(canaries["127.0.0.2"].hits) == 1
    assert canaries["127.0.0.3"].hits == []
    with pytest.raises(Refused):  # following it would mean checking it again
        check_url(target, allow=Allowlist.parse(["127.0.0.2"]))


def test_dns_rebinding_connects_to_the_first_answer_only(canaries: Canaries) -> None:
    """The name answers an allowed address first and a forbidden one afterwards: the single
    lookup is pinned, so the second answer is never asked for, let alone used."""
    calls: list[str] = []

    def rebinding(host: str, port: int, *args: Any, **kwargs: Any) -> list[tuple[Any, ...]]:
        calls.append(host)
        address = "127.0.0.2" if len(calls) == 1 else "127.0.0.3"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    for _ in range(3):
        calls.clear()
        deliver(
            Attempt(url=f"http://rebind.test:{canaries.port}/", body=b"x", message_id="msg_dns"),
            signing_key=CURRENT,
            allow=Allowlist.parse(["127.0.0.2/32"]),
            resolver=rebinding,
            timeout=5,
        )
        assert calls == ["rebind.test"]
    assert len(canaries["127.0.0.2"].hits) == 3
    assert canaries["127.0.0.3"].hits == []
    assert canaries["127.0.0.2"].hits[0].headers["host"] == f"rebind.test:{canaries.port}"


def test_dns_rebinding_with_a_public_first_answer_pins_the_public_address(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    answers = iter(["93.184.215.14", "127.0.0.1"])

    def rebinding(host: str, port: int, *args: Any, **kwargs: Any) -> list[tuple[Any, ...]]:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(answers), port))]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    target = check_url("http://rebind.example/", allow=NOTHING)
    assert target.address == "93.184.215.14"


def test_the_response_body_is_bounded(canaries: Canaries) -> None:
    response = deliver(
        Attempt(
            url=f"http://127.0.0.2:{canaries.port}/big",
            body=b"",
            message_id="msg_big",
            method="GET",
        ),
        signing_key=CURRENT,
        allow=Allowlist.parse(["127.0.0.2"]),
        timeout=5,
    )
    assert response.status == 200
    assert len(response.body) == 4096 and response.truncated


def test_a_slow_destination_times_out_as_a_retryable_failure(canaries: Canaries) -> None:
    with pytest.raises(DeliveryFailed, match="timed out"):
        deliver(
            Attempt(url=f"http://127.0.0.2:{canaries.port}/slow", body=b"", message_id="msg_slow"),
            signing_key=CURRENT,
            allow=Allowlist.parse(["127.0.0.2"]),
            timeout=0.3,
        )


def test_header_injection_is_refused(canaries: Canaries) -> None:
    with pytest.raises(Refused):
        deliver(
            Attempt(
                url=f"http://127.0.0.2:{canaries.port}/",
                body=b"",
                message_id="msg_h",
                headers={"X-A": "1\r\nX-B: 2"},
            ),
            signing_key=CURRENT,
            allow=Allowlist.parse(["127.0.0.2"]),
        )
    assert canaries.total() == 0


# -- TLS: the pinned address is connected to, the certificate is checked for the name ---------


def _certificate(tmp: Path, name: str) -> tuple[Path, Path]:
    cert, key = tmp / f"{name}.pem", tmp / f"{name}.key"
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
            f"/CN={name}",
            "-addext",
            f"subjectAltName=DNS:{name}",
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.fixture(scope="module")
def tls_canary(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[int, Path, list[str], Canary]]:
    try:
        cert, key = _certificate(tmp_path_factory.mktemp("tls"), "canary.test")
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("openssl is not available")
    server = _Server(("127.0.0.2", 0), _Handler)
    server.canary = Canary("127.0.0.2")
    names: list[str] = []
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    context.sni_callback = lambda sock, name, ctx: names.append(name or "")  # type: ignore
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    ).start()
    yield server.server_address[1], cert, names, server.canary
    server.shutdown()
    server.server_close()


def test_https_to_the_pinned_address_with_sni_and_verification_for_the_name(
    tls_canary: tuple[int, Path, list[str], Canary],
) -> None:
    port, cert, names, canary = tls_canary
    verify = ssl.create_default_context(cafile=str(cert))
    url = f"https://canary.test:{port}/tls"
    response = deliver(
        Attempt(url=url, body=b"{}", message_id="msg_tls"),
        signing_key=CURRENT,
        allow=Allowlist.parse(["canary.test"]),
        resolver=resolver_for(TEST_DNS),
        verify=verify,
        timeout=5,
    )
    assert response.status == 200 and response.address == "127.0.0.2"
    assert names[-1] == "canary.test"
    assert canary.hits[-1].headers["host"] == f"canary.test:{port}"
    Receiver(current_signing_key=CURRENT, next_signing_key=NEXT).verify(
        signature=canary.hits[-1].headers["upstash-signature"], body="{}", url=url
    )
    # Another name pinned to the same address fails the certificate check.
    hits = len(canary.hits)
    with pytest.raises(DeliveryFailed):
        deliver(
            Attempt(url=f"https://other.test:{port}/tls", body=b"{}", message_id="msg_x"),
            signing_key=CURRENT,
            allow=Allowlist.parse(["other.test"]),
            resolver=resolver_for({"other.test": ["127.0.0.2"]}),
            verify=verify,
            timeout=5,
        )
    assert len(canary.hits) == hits


@pytest.mark.django_db(transaction=True)
def test_published_messages_to_forbidden_addresses_fail_at_once_with_no_retry(
    canaries: Canaries,
) -> None:
    """Scenario 14 through the whole path: publish() -> the delivery job -> dead, refused."""
    from django.test import override_settings

    from django_bgjobs.delivery.models import DeliveryAttempt, Message
    from django_bgjobs.delivery.publish import PublishError, publish
    from django_bgjobs.models import JobRun
    from django_bgjobs.testing import capture_jobs

    published, refused_at_publish = [], []
    with override_settings(BGJOBS={"DELIVERY_ALLOW_HOSTS": []}), capture_jobs() as captured:
        for template in FORBIDDEN_SPELLINGS:
            if ".test" in template:  # those names only resolve through the test resolver
                continue
            url = template.format(port=canaries.port)
            try:
                published.append(publish(url, body="{}", retries=5))
            except PublishError as exc:
                assert str(exc)
                refused_at_publish.append(url)
        captured.run_all()
    assert canaries.total() == 0
    assert len(published) > 30 and refused_at_publish  # most are refused when delivered
    for message in Message.objects.filter(pk__in=published).select_related("job"):
        [attempt] = DeliveryAttempt.objects.filter(message=message)
        assert attempt.outcome == "refused" and attempt.status is None and attempt.error
        assert message.dlq_id is not None
        [run] = JobRun.objects.filter(job=message.job)  # one attempt: no retry storm
        assert "refused" in run.error


def test_by_default_a_certificate_no_public_ca_signed_is_refused(
    tls_canary: tuple[int, Path, list[str], Canary],
) -> None:
    port, _cert, _names, canary = tls_canary
    hits = len(canary.hits)
    with pytest.raises(DeliveryFailed, match="CERTIFICATE_VERIFY_FAILED|certificate"):
        deliver(
            Attempt(url=f"https://canary.test:{port}/tls", body=b"{}", message_id="m"),
            signing_key=CURRENT,
            allow=Allowlist.parse(["canary.test"]),
            resolver=resolver_for(TEST_DNS),
            timeout=5,
        )
    assert len(canary.hits) == hits
