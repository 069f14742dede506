"""The QStash-compatible API through Django's test client: authentication, the destination as
the SDKs send it, header parsing, every endpoint, error bodies. The JSON shapes are checked by
feeding them to the official ``qstash`` SDK's own parsers."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone
from qstash.dlq import parse_dlq_message_response
from qstash.log import LogState, parse_logs_response
from qstash.message import parse_message_response
from qstash.queue import parse_queue_response
from qstash.schedule import parse_schedule_response
from qstash.url_group import parse_url_group_response

from django_bgjobs.delivery import keys as signing
from django_bgjobs.delivery.api import headers as header_parser
from django_bgjobs.delivery.api import tokens
from django_bgjobs.delivery.api.durations import DurationError, parse_duration
from django_bgjobs.delivery.models import (
    ApiToken,
    DeliveryAttempt,
    DeliveryQueue,
    FlowControl,
    Message,
    MessageSchedule,
    Topic,
)
from django_bgjobs.delivery.publish import Callback, Flow, Publish, send
from django_bgjobs.models import Job, JobStatus
from django_bgjobs.testing import capture_jobs
from tests.http_receiver import Receiver

pytestmark = pytest.mark.django_db

BASE = "/qstash/v2"


@pytest.fixture(autouse=True)
def captured():
    # Nothing reaches the broker; tests that deliver call run_all().
    with capture_jobs() as jobs:
        yield jobs


@pytest.fixture
def token() -> str:
    return tokens.create_token("tests")[1]


@pytest.fixture
def api(token: str) -> Client:
    return Client(headers={"Authorization": f"Bearer {token}"})


def error(response) -> str:
    assert response["Content-Type"] == "application/json", response.content
    body = response.json()
    assert set(body) == {"error"}, body
    return body["error"]


def publish(api: Client, destination: str, body: bytes | str = b"{}", **headers: str):
    return api.post(
        f"{BASE}/publish/{destination}",
        data=body,
        content_type=headers.pop("content_type", "application/json"),
        headers=headers,
    )


def dead(
    url: str = "https://example.com/dead", *, dlq_id: str, status: int | None = 500, **fields: Any
) -> Message:
    """A dead-lettered message, its last attempt answered ``status``."""
    [published] = send(
        Publish(
            destination=url,
            body=b'{"n": 1}',
            headers={"Content-Type": "application/json"},
            **fields,
        )
    )
    Message.objects.filter(pk=published.message_id).update(dlq_id=dlq_id)
    message = Message.objects.get(pk=published.message_id)
    DeliveryAttempt.objects.create(
        message=message,
        retried=0,
        job_attempt=1,
        started_at=timezone.now(),
        duration_ms=5,
        outcome="failed",
        status=status,
        response_headers={"X-Why": "down"},
        response_body=b"boom",
    )
    return message


# --- tokens and authentication ------------------------------------------------------------------


def test_create_token_stores_only_its_hash_and_a_prefix(django_user_model):
    user = django_user_model.objects.create_user("owner")
    row, raw = tokens.create_token("ci", user=user)
    assert raw.startswith("bgq_") and len(raw) > 40
    stored = ApiToken.objects.get(pk=row.pk)
    assert stored.token_hash == tokens.hash_token(raw) != raw
    assert raw.startswith(stored.prefix) and len(stored.prefix) < 16
    assert stored.user == user and stored.is_active and stored.last_used_at is None
    assert tokens.authenticate(raw) == stored
    assert tokens.authenticate(raw + "x") is None and tokens.authenticate("") is None


def test_last_used_at_is_written_at_most_once_a_minute(token: str):
    first = tokens.authenticate(token)
    assert first is not None and first.last_used_at is not None
    stamp = first.last_used_at
    tokens.authenticate(token)
    assert ApiToken.objects.get().last_used_at == stamp
    ApiToken.objects.update(last_used_at=stamp - timedelta(minutes=2))
    tokens.authenticate(token)
    assert ApiToken.objects.get().last_used_at > stamp - timedelta(seconds=1)


@pytest.mark.parametrize(
    "authorization", [None, "Bearer nope", "Basic dXNlcjpwYXNz", "Bearer", "Bearer a b"]
)
def test_no_or_a_bad_token_is_401_with_a_json_error(authorization):
    headers = {"Authorization": authorization} if authorization else {}
    response = Client(headers=headers).get(f"{BASE}/keys")
    assert response.status_code == 401
    assert error(response)
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_a_token_in_the_query_string_is_refused_even_with_the_header(api: Client, token: str):
    for client, url in (
        (Client(), f"{BASE}/keys?qstash_token={token}"),
        (api, f"{BASE}/keys?qstash_token={token}"),
    ):
        response = client.get(url)
        assert response.status_code == 401
        assert "Authorization: Bearer" in error(response)
        assert "query string" in error(response)


def test_an_inactive_token_or_one_of_an_inactive_user_is_refused(django_user_model):
    row, raw = tokens.create_token("old")
    ApiToken.objects.filter(pk=row.pk).update(is_active=False)
    assert Client(headers={"Authorization": f"Bearer {raw}"}).get(f"{BASE}/keys").status_code == 401
    user = django_user_model.objects.create_user("gone", is_active=False)
    _, raw = tokens.create_token("theirs", user=user)
    assert Client(headers={"Authorization": f"Bearer {raw}"}).get(f"{BASE}/keys").status_code == 401


def test_unknown_paths_are_json_404_and_wrong_methods_json_405(api: Client):
    response = api.get(f"{BASE}/nothing/here")
    assert response.status_code == 404 and "no such endpoint" in error(response)
    response = api.get(f"{BASE}/batch")
    assert response.status_code == 405 and "GET" in error(response)
    assert api.put(f"{BASE}/keys").status_code == 405


def test_html_accept_still_gets_json(api: Client):
    response = api.get(f"{BASE}/keys", headers={"Accept": "text/html"})
    assert response.status_code == 200 and set(response.json()) == {"current", "next"}


# --- the destination, rebuilt ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("https://example.com/hook", "https://example.com/hook"),
        (
            "https://example.com/hook?a=1&b=two%20words",
            "https://example.com/hook?a=1&b=two%20words",
        ),
        ("http://example.com:8080/a/b/?x=1&x=2&y=", "http://example.com:8080/a/b/?x=1&x=2&y="),
        ("https://example.com/a%20b/caf%C3%A9", "https://example.com/a%20b/caf%C3%A9"),
        ("https://example.com//double//slashes", "https://example.com//double//slashes"),
        ("https:/example.com/merged", "https://example.com/merged"),  # a proxy merged "//"
        (
            "https://example.com/q?upstash-retries=3&next=https://x.io/?a=b",
            "https://example.com/q?upstash-retries=3&next=https://x.io/?a=b",
        ),
        ("https://user@example.com/at", "https://user@example.com/at"),
    ],
)
def test_the_destination_is_rebuilt_as_sent(api: Client, path: str, expected: str):
    response = publish(api, path)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["url"] == expected
    assert Message.objects.get(pk=body["messageId"]).url == expected


def test_the_raw_uri_is_preferred_so_an_escaped_slash_survives(api: Client):
    raw = "/qstash/v2/publish/https://example.com/files/a%2Fb%25c?q=%2F"
    response = api.post(
        raw, data=b"", content_type="text/plain", RAW_URI=raw
    )  # gunicorn's environ key
    assert response.status_code == 201, response.content
    assert response.json()["url"] == "https://example.com/files/a%2Fb%25c?q=%2F"
    # Without it (runserver, wsgiref) the decoded path is all there is: %2F became "/".
    response = api.post(raw, data=b"", content_type="text/plain")
    assert response.json()["url"] == "https://example.com/files/a/b%c?q=%2F"


def test_the_raw_uri_under_a_script_name_and_for_enqueue(api: Client):
    raw = "/app/qstash/v2/enqueue/q1/https://example.com/x%2Fy?z=1"
    response = api.post(
        "/qstash/v2/enqueue/q1/https://example.com/x%2Fy?z=1",
        data=b"",
        content_type="text/plain",
        RAW_URI=raw,
        SCRIPT_NAME="/app",
    )
    assert response.status_code == 201, response.content
    assert response.json()["url"] == "https://example.com/x%2Fy?z=1"


def test_an_escaped_question_mark_in_the_decoded_path_stays_escaped(api: Client):
    response = publish(api, "https://example.com/what%3F/x?real=1")
    assert response.json()["url"] == "https://example.com/what%3F/x?real=1"


def test_a_body_over_djangos_limit_is_413(api: Client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10
    response = publish(api, "https://example.com/x", b"x" * 11)
    assert response.status_code == 413
    assert error(response) == (
        "the request body is 11 bytes; the limit is 10 bytes (Django's "
        "DATA_UPLOAD_MAX_MEMORY_SIZE setting on this server): send a smaller body, or raise "
        "that setting"
    )


@pytest.mark.parametrize(
    "destination",
    [
        "ftp://example.com/x",
        "bad%20name",
        "https://",
        "https://example.com:99999/",
        "HTTPS://example.com",
    ],
)
def test_a_bad_destination_is_400(api: Client, destination: str):
    response = publish(api, destination)
    assert response.status_code == 400 and error(response)


def test_a_missing_destination_is_404(api: Client):
    assert publish(api, "").status_code == 404


def test_an_unknown_url_group_is_404(api: Client):
    response = publish(api, "no-such-group")
    assert response.status_code == 404 and "no-such-group" in error(response)


# --- headers --------------------------------------------------------------------------------------


def test_every_publish_header_is_read():
    fields = header_parser.parse(
        {
            "Content-Type": "application/json",
            "Upstash-Method": "put",
            "Upstash-Retries": "5",
            "Upstash-Retry-Delay": "pow(2, retried) * 1000",
            "Upstash-Delay": "1d10h30m",
            "Upstash-Timeout": "30s",
            "Upstash-Deduplication-Id": "order-1",
            "Upstash-Content-Based-Deduplication": "True",  # the Python SDK's spelling
            "Upstash-Callback": "https://example.com/cb",
            "Upstash-Callback-Retries": "1",
            "Upstash-Callback-Timeout": "10s",
            "Upstash-Callback-Delay": "5s",
            "Upstash-Callback-Method": "PATCH",
            "Upstash-Callback-Retry-Delay": "1000",
            "Upstash-Callback-Forward-X-A": "1",
            "Upstash-Callback-X-B": "2",  # what the Python SDK's callback_headers sends
            "Upstash-Failure-Callback": "https://example.com/fail",
            "Upstash-Failure-Callback-Forward-X-C": "3",
            "Upstash-Flow-Control-Key": "tenant-1",
            "Upstash-Flow-Control-Value": "parallelism=2, rate=10,period=1m",
            "Upstash-Label": "billing",
            "Upstash-Queue-Name": "q1",
            "Upstash-Forward-Authorization": "Bearer theirs",
            "Upstash-Telemetry-Sdk": "upstash-qstash-js@2.12.0",
            "Upstash-Redact-Fields": "body",
            "X-Not-Forwarded": "1",
        }
    )
    assert fields == {
        "headers": {"Content-Type": "application/json", "Authorization": "Bearer theirs"},
        "method": "PUT",
        "retries": 5,
        "retry_delay": "pow(2, retried) * 1000",
        "delay": 86400 + 10 * 3600 + 30 * 60,
        "timeout": 30.0,
        "deduplication_id": "order-1",
        "content_based_deduplication": True,
        "callback": Callback(
            url="https://example.com/cb",
            method="PATCH",
            retries=1,
            timeout=10.0,
            delay=5.0,
            retry_delay="1000",
            headers={"X-A": "1", "X-B": "2"},
        ),
        "failure_callback": Callback(url="https://example.com/fail", headers={"X-C": "3"}),
        "flow": Flow(key="tenant-1", parallelism=2, rate=10, period=60.0),
        "label": "billing",
        "queue": "q1",
        "redact": ("body",),
    }


def test_not_before_and_header_forward_all():
    fields = header_parser.parse(
        [
            ("Upstash-Not-Before", "1893456000"),
            ("Upstash-Header-Forward", "true"),
            ("X-Trace", "t1"),
            ("User-Agent", "ua"),
            ("Authorization", "Bearer ours"),
            ("Host", "api"),
            ("Connection", "keep-alive"),
            ("X-Forwarded-For", "1.2.3.4"),
            ("Upstash-Retries", "0"),
            ("Upstash-Forward-X-Trace", "explicit wins"),
        ]
    )
    assert fields["not_before"] == datetime(2030, 1, 1, tzinfo=UTC)
    assert fields["retries"] == 0
    assert fields["headers"] == {"X-Trace": "explicit wins", "User-Agent": "ua"}


def test_content_based_deduplication_false_and_a_flow_key_alone():
    fields = header_parser.parse(
        {"upstash-content-based-deduplication": "false", "upstash-flow-control-key": "k"}
    )
    assert fields == {"content_based_deduplication": False, "flow": Flow(key="k")}


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("Upstash-Retries", "x", "Upstash-Retries"),
        ("Upstash-Retries", "-1", "Upstash-Retries"),
        ("Upstash-Retries", "1000", "Upstash-Retries"),
        ("Upstash-Retry-Delay", "__import__('os')", "Upstash-Retry-Delay"),
        ("Upstash-Retry-Delay", "1000 +", "Upstash-Retry-Delay"),
        ("Upstash-Delay", "10x", "Upstash-Delay"),
        ("Upstash-Delay", "10s10s", "Upstash-Delay"),
        ("Upstash-Not-Before", "soon", "Upstash-Not-Before"),
        ("Upstash-Timeout", "0s", "Upstash-Timeout"),
        ("Upstash-Method", "TRACE", "Upstash-Method"),
        ("Upstash-Content-Based-Deduplication", "yes", "Upstash-Content-Based-Deduplication"),
        ("Upstash-Callback", "not-a-url", "Upstash-Callback"),
        ("Upstash-Callback-Retries", "many", "Upstash-Callback-Retries"),
        ("Upstash-Flow-Control-Value", "parallelism=2", "Upstash-Flow-Control-Key"),
        ("Upstash-Queue-Name", "a/b", "Upstash-Queue-Name"),
        ("Upstash-Header-Forward", "maybe", "Upstash-Header-Forward"),
    ],
)
def test_a_bad_header_is_400_naming_it(api: Client, name: str, value: str, says: str):
    response = publish(api, "https://example.com/x", **{name: value})
    assert response.status_code == 400
    assert says in error(response)
    assert not Message.objects.exists()


@pytest.mark.parametrize(
    "value", ["parallelism=0", "rate=x", "period=9d", "burst=1", "parallelism"]
)
def test_a_bad_flow_control_value_is_400(api: Client, value: str):
    response = publish(
        api,
        "https://example.com/x",
        **{"Upstash-Flow-Control-Key": "k", "Upstash-Flow-Control-Value": value},
    )
    assert response.status_code == 400 and "Upstash-Flow-Control-Value" in error(response)


def test_batch_headers_cannot_smuggle_line_breaks(api: Client):
    response = api.post(
        f"{BASE}/batch",
        content_type="application/json",
        data=json.dumps(
            [
                {
                    "destination": "https://example.com/x",
                    "headers": {"Upstash-Forward-X-A": "1\r\nX-Injected: 2"},
                    "body": "",
                }
            ]
        ),
    )
    assert response.status_code == 400 and "message 0" in error(response)


def test_durations():
    assert parse_duration("100s") == 100 and parse_duration("10m") == 600
    assert parse_duration("1d10h30m") == 124200 and parse_duration("1h30s") == 3630
    assert parse_duration("500ms") == 0.5 and parse_duration("60") == 60
    for bad in ("", "s", "1y", "1h1h", "10 s", "-1s", "400d"):
        with pytest.raises(DurationError):
            parse_duration(bad)


# --- publish, enqueue, batch ----------------------------------------------------------------------


def test_publish_writes_the_message_as_the_headers_say(api: Client):
    response = publish(
        api,
        "https://example.com/hook?a=1",
        b'{"user": 7}',
        **{
            "Upstash-Retries": "2",
            "Upstash-Delay": "60s",
            "Upstash-Forward-X-Trace": "t1",
            "Upstash-Label": "signup",
            "Upstash-Callback": "https://example.com/cb",
            "Upstash-Callback-X-B": "2",
            "Upstash-Telemetry-Runtime": "node@v20",
        },
    )
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"messageId", "url"} and body["messageId"].startswith("msg_")
    message = Message.objects.get(pk=body["messageId"])
    assert bytes(message.body) == b'{"user": 7}' and message.retries == 2
    assert message.headers["Content-Type"] == "application/json"
    assert message.headers["X-Trace"] == "t1"
    assert not any(k.lower().startswith("upstash-telemetry") for k in message.headers)
    assert message.label == "signup" and message.caller_ip == "127.0.0.1"
    assert message.callback["url"] == "https://example.com/cb"
    assert message.callback["headers"] == {"X-B": "2"}
    assert timedelta(seconds=59) < message.not_before - message.created_at < timedelta(seconds=61)


def test_a_deduplicated_publish_is_202_with_the_first_id(api: Client):
    first = publish(api, "https://example.com/x", **{"Upstash-Deduplication-Id": "d1"})
    again = publish(api, "https://example.com/x", **{"Upstash-Deduplication-Id": "d1"})
    assert first.status_code == 201 and again.status_code == 202
    assert again.json() == {
        "messageId": first.json()["messageId"],
        "url": "https://example.com/x",
        "deduplicated": True,
    }
    assert Message.objects.count() == 1


def test_publish_to_a_url_group_answers_a_bare_array(api: Client):
    api.post(
        f"{BASE}/topics/team/endpoints",
        content_type="application/json",
        data=json.dumps(
            {
                "endpoints": [
                    {"url": "https://a.example.com/1", "name": "a"},
                    {"url": "https://b.example.com/2"},
                ]
            }
        ),
    )
    response = publish(api, "team", b"hi", content_type="text/plain")
    assert response.status_code == 201
    body = response.json()
    assert isinstance(body, list)
    assert sorted(item["url"] for item in body) == [
        "https://a.example.com/1",
        "https://b.example.com/2",
    ]
    rows = Message.objects.filter(pk__in=[item["messageId"] for item in body])
    assert {(m.topic, m.endpoint_name) for m in rows} == {("team", "a"), ("team", "")}


def test_enqueue_makes_the_queue_and_puts_the_message_in_it(api: Client):
    response = api.post(
        f"{BASE}/enqueue/emails/https://example.com/send?x=1",
        data=b"{}",
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    assert response.json()["url"] == "https://example.com/send?x=1"
    assert Message.objects.get(pk=response.json()["messageId"]).queue == "emails"
    assert DeliveryQueue.objects.filter(name="emails", parallelism=1).exists()
    assert (
        api.post(
            f"{BASE}/enqueue/bad%20name/https://example.com/x", data=b"", content_type="text/plain"
        ).status_code
        == 400
    )


def test_batch_in_the_shapes_both_sdks_send(api: Client):
    Topic.objects.create(
        name="grp", created_at=timezone.now(), updated_at=timezone.now()
    ).endpoints.create(url="https://g.example.com/1")
    response = api.post(
        f"{BASE}/batch",
        content_type="application/json",
        data=json.dumps(
            [
                # Python SDK
                {
                    "destination": "https://example.com/1",
                    "headers": {"Content-Type": "application/json", "Upstash-Retries": "1"},
                    "body": '{"a": 1}',
                    "queue": None,
                },
                # JS SDK: lower-case names, telemetry
                {
                    "destination": "https://example.com/2?x=1",
                    "headers": {
                        "content-type": "application/json",
                        "upstash-method": "POST",
                        "upstash-telemetry-sdk": "upstash-qstash-js@2.12.0",
                    },
                    "body": '{"a":2}',
                },
                {"destination": "grp", "headers": {}, "body": None, "queue": "q9"},
            ]
        ),
    )
    assert response.status_code == 201, response.content
    first, second, group = response.json()
    assert isinstance(first, dict) and isinstance(second, dict) and isinstance(group, list)
    assert Message.objects.get(pk=first["messageId"]).retries == 1
    assert Message.objects.get(pk=second["messageId"]).url == "https://example.com/2?x=1"
    assert Message.objects.get(pk=group[0]["messageId"]).queue == "q9"


@pytest.mark.parametrize(
    "data",
    [
        "{}",
        "[]",
        "not json",
        json.dumps([{"headers": {}}]),
        json.dumps([{"destination": 1}]),
        json.dumps([{"destination": "https://example.com", "body": 1}]),
        json.dumps([{"destination": "https://example.com", "headers": []}]),
        json.dumps(
            [
                {"destination": "https://example.com/ok"},
                {"destination": "https://example.com/x", "headers": {"Upstash-Retries": "x"}},
            ]
        ),
    ],
)
def test_a_bad_batch_is_400_and_publishes_nothing(api: Client, data: str):
    response = api.post(f"{BASE}/batch", content_type="application/json", data=data)
    assert response.status_code == 400 and error(response)
    assert not Message.objects.exists()


def test_a_batch_to_an_unknown_group_publishes_nothing(api: Client):
    response = api.post(
        f"{BASE}/batch",
        content_type="application/json",
        data=json.dumps([{"destination": "https://example.com/ok"}, {"destination": "nope"}]),
    )
    assert response.status_code == 404 and "nope" in error(response)
    assert not Message.objects.exists()


# --- messages -------------------------------------------------------------------------------------


def test_get_a_message_in_the_sdks_shape(api: Client):
    FlowControl.objects.create(key="k", parallelism=2, rate=5, period=60, updated_at=timezone.now())
    message_id = publish(
        api,
        "https://example.com/m?x=1",
        b'{"a": 1}',
        **{
            "Upstash-Retries": "4",
            "Upstash-Retry-Delay": "1000",
            "Upstash-Failure-Callback": "https://example.com/f",
            "Upstash-Label": "L",
            "Upstash-Flow-Control-Key": "k",
            "Upstash-Flow-Control-Value": "parallelism=2, rate=5, period=60s",
            "Upstash-Forward-X-A": "1",
        },
    ).json()["messageId"]
    response = api.get(f"{BASE}/messages/{message_id}")
    assert response.status_code == 200
    parsed = parse_message_response(response.json())
    assert parsed.message_id == message_id and parsed.url == "https://example.com/m?x=1"
    assert parsed.body == '{"a": 1}' and parsed.body_base64 is None
    assert parsed.method == "POST" and parsed.max_retries == 4
    assert parsed.headers["X-A"] == ["1"]
    assert parsed.failure_callback == "https://example.com/f" and parsed.callback is None
    assert parsed.retry_delay_expression == "1000" and parsed.label == "L"
    assert parsed.flow_control is not None and (
        parsed.flow_control.key,
        parsed.flow_control.parallelism,
        parsed.flow_control.rate,
        parsed.flow_control.period,
    ) == ("k", 2, 5, 60)
    assert parsed.created_at == parsed.not_before
    assert abs(parsed.created_at - timezone.now().timestamp() * 1000) < 60_000
    assert parsed.caller_ip == "127.0.0.1"


def test_a_binary_body_comes_back_base64(api: Client):
    message_id = publish(
        api, "https://example.com/b", b"\xff\x00\xfe", content_type="application/octet-stream"
    ).json()["messageId"]
    parsed = parse_message_response(api.get(f"{BASE}/messages/{message_id}").json())
    assert parsed.body is None and parsed.body_base64 == "/wD+"


def test_cancel_one_message(api: Client):
    message_id = publish(api, "https://example.com/c", **{"Upstash-Delay": "1h"}).json()[
        "messageId"
    ]
    assert api.get(f"{BASE}/messages/{message_id}").status_code == 200
    response = api.delete(f"{BASE}/messages/{message_id}")
    assert response.status_code == 200 and response.json() == {"cancelled": 1}
    gone = api.get(f"{BASE}/messages/{message_id}")  # as QStash: a cancelled message is gone
    assert gone.status_code == 404
    assert error(gone) == f"message {message_id} not found: it was cancelled"
    again = api.delete(f"{BASE}/messages/{message_id}")
    assert again.status_code == 404
    assert error(again) == f"message {message_id} is CANCELLED: nothing to cancel"
    assert api.delete(f"{BASE}/messages/msg_nope").status_code == 404
    assert api.get(f"{BASE}/messages/msg_nope").status_code == 404


def test_bulk_cancel_by_json_ids_query_ids_filters_and_all(api: Client):
    ids = [
        publish(
            api, f"https://example.com/{n}", **{"Upstash-Delay": "1h", "Upstash-Label": f"l{n % 2}"}
        ).json()["messageId"]
        for n in range(6)
    ]
    response = api.delete(
        f"{BASE}/messages",
        content_type="application/json",
        data=json.dumps({"messageIds": [ids[0], "msg_unknown"]}),
    )
    assert response.json() == {"cancelled": 1}
    response = api.delete(f"{BASE}/messages?messageIds={ids[1]}&messageIds={ids[2]}")
    assert response.json() == {"cancelled": 2}
    response = api.delete(
        f"{BASE}/messages", content_type="application/json", data=json.dumps({"messageIds": []})
    )
    assert response.json() == {"cancelled": 0}  # an empty list is not "all"
    response = api.delete(f"{BASE}/messages?label=l1")  # ids[3], ids[5]
    assert response.json() == {"cancelled": 2}
    response = api.delete(f"{BASE}/messages")  # the Python SDK's cancel_all()
    assert response.json() == {"cancelled": 1}
    assert Message.objects.filter(cancelled_at__isnull=True).count() == 0
    assert api.delete(f"{BASE}/messages").json() == {"cancelled": 0}


@pytest.mark.parametrize(
    ("status", "state"), [(JobStatus.SUCCEEDED, "DELIVERED"), (JobStatus.DEAD, "FAILED")]
)
def test_cancelling_a_finished_message_says_its_state(api: Client, status: str, state: str):
    message_id = publish(api, "https://example.com/c").json()["messageId"]
    Job.objects.filter(message__pk=message_id).update(status=status)
    response = api.delete(f"{BASE}/messages/{message_id}")
    assert response.status_code == 404
    assert error(response) == f"message {message_id} is {state}: nothing to cancel"
    # Nor is it counted by a bulk cancel.
    assert api.delete(f"{BASE}/messages").json() == {"cancelled": 0}


def test_bulk_cancel_cancels_every_match_a_batch_at_a_time(api: Client, monkeypatch):
    from django_bgjobs.delivery.api.views import messages as views

    ids = [
        publish(api, f"https://example.com/{n}", **{"Upstash-Delay": "1h"}).json()["messageId"]
        for n in range(7)
    ]
    monkeypatch.setattr(views, "CANCEL_MAX", 3)  # three batches: 3, 3, 1
    # count is accepted and ignored (the JS SDK sends count=100 and expects everything).
    assert api.delete(f"{BASE}/messages?count=2").json() == {"cancelled": 7}
    assert not Message.objects.filter(pk__in=ids, cancelled_at__isnull=True).exists()
    assert api.delete(f"{BASE}/messages").json() == {"cancelled": 0}


@pytest.mark.parametrize("query", ["count=0", "count=x", "count=-1"])
def test_a_bad_bulk_cancel_count_is_400(api: Client, query: str):
    publish(api, "https://example.com/c", **{"Upstash-Delay": "1h"})
    response = api.delete(f"{BASE}/messages?{query}")
    assert response.status_code == 400 and "count: expected a whole number from 1 to" in error(
        response
    )
    assert Message.objects.filter(cancelled_at__isnull=True).count() == 1


def test_a_bulk_cancel_by_an_unknown_filter_is_400_and_cancels_nothing(api: Client):
    publish(api, "https://example.com/c", **{"Upstash-Delay": "1h"})
    response = api.delete(f"{BASE}/messages?labels=x&queue=q")
    assert response.status_code == 400
    assert error(response).startswith("unknown filter 'labels', 'queue': the filters are ")
    assert Message.objects.filter(cancelled_at__isnull=True).count() == 1


def test_bulk_cancel_by_host_and_path(api: Client):
    urls = [
        "https://a.example.com/hook",
        "https://A.example.com:8443/hook?x=1",
        "https://user@a.example.com/other",
        "https://a.example.com.evil.net/hook",
        "https://b.example.com/hook",
        "https://b.example.com/hook/deeper",
    ]
    ids = {url: publish(api, url, **{"Upstash-Delay": "1h"}).json()["messageId"] for url in urls}

    def cancelled() -> set[str]:
        return {
            url
            for url, message_id in ids.items()
            if Message.objects.get(pk=message_id).cancelled_at is not None
        }

    assert api.delete(f"{BASE}/messages?host=a.example.com&path=/hook").json() == {"cancelled": 2}
    assert cancelled() == set(urls[:2])
    assert api.delete(f"{BASE}/messages?host=a.example.com").json() == {"cancelled": 1}
    assert cancelled() == set(urls[:3])
    assert api.delete(f"{BASE}/messages?path=hook").json() == {"cancelled": 2}
    assert cancelled() == set(urls[:5])


# --- the dead-letter queue ------------------------------------------------------------------------


def test_dlq_list_in_the_sdks_shape_with_a_cursor(api: Client):
    for n in range(5):
        dead(
            f"https://example.com/d{n}",
            dlq_id=f"170000000000{n}-0",
            status=None if n == 4 else 500 + n,
        )
    response = api.get(f"{BASE}/dlq?count=2")
    body = response.json()
    assert [m["dlqId"] for m in body["messages"]] == ["1700000000004-0", "1700000000003-0"]
    seen = [m["dlqId"] for m in body["messages"]]
    while "cursor" in body:
        body = api.get(f"{BASE}/dlq", {"count": 2, "cursor": body["cursor"]}).json()
        seen += [m["dlqId"] for m in body["messages"]]
    assert seen == [f"170000000000{n}-0" for n in (4, 3, 2, 1, 0)]
    entry = parse_dlq_message_response(api.get(f"{BASE}/dlq?count=1").json()["messages"][0])
    assert entry.response_status == 0  # no response came
    entry = parse_dlq_message_response(api.get(f"{BASE}/dlq/1700000000001-0").json())
    assert entry.dlq_id == "1700000000001-0" and entry.url == "https://example.com/d1"
    assert entry.response_status == 501 and entry.response_body == "boom"
    assert entry.response_headers == {"X-Why": ["down"]} and entry.body == '{"n": 1}'


def test_dlq_filters(api: Client):
    dead("https://example.com/a", dlq_id="1700000000001-0", status=500, label="x")
    dead("https://example.com/b", dlq_id="1700000000002-0", status=404)
    urls = lambda query: [m["url"] for m in api.get(f"{BASE}/dlq?{query}").json()["messages"]]  # noqa: E731
    assert urls("url=https://example.com/a") == ["https://example.com/a"]
    assert urls("responseStatus=404") == ["https://example.com/b"]
    assert urls("label=x") == ["https://example.com/a"]
    assert urls("dlqIds=1700000000002-0") == ["https://example.com/b"]
    assert urls("fromDate=0&toDate=1") == []
    assert api.get(f"{BASE}/dlq?fromDate=yesterday").status_code == 400
    assert api.get(f"{BASE}/dlq?count=0").status_code == 400


def test_dlq_delete_one_and_many(api: Client):
    for n in range(4):
        dead(dlq_id=f"170000000000{n}-0")
    response = api.delete(f"{BASE}/dlq/1700000000000-0")
    assert response.status_code == 200
    assert api.delete(f"{BASE}/dlq/1700000000000-0").status_code == 404
    assert api.get(f"{BASE}/dlq/1700000000000-0").status_code == 404
    response = api.delete(
        f"{BASE}/dlq",
        content_type="application/json",
        data=json.dumps({"dlqIds": ["1700000000001-0", "nope"]}),
    )
    assert response.json() == {"deleted": 1}
    response = api.delete(f"{BASE}/dlq?dlqIds=1700000000002-0")
    assert response.json() == {"deleted": 1}
    response = api.delete(f"{BASE}/dlq?count=100")  # the JS SDK's {all: true}
    assert response.json() == {"deleted": 1}
    assert api.get(f"{BASE}/dlq").json() == {"messages": []}


def test_dlq_retry_one_with_overrides_and_many(api: Client):
    first = dead("https://example.com/r?x=1", dlq_id="1700000000001-0")
    dead("https://example.com/r2", dlq_id="1700000000002-0")
    dead("https://example.com/r3", dlq_id="1700000000003-0")
    response = api.post(
        f"{BASE}/dlq/retry/1700000000001-0",
        headers={"Upstash-Retries": "7", "Content-Type": "text/plain"},
    )
    assert response.status_code == 201
    new_id = response.json()["messageId"]
    assert response.json()["responses"] == [{"messageId": new_id}]
    retried = Message.objects.get(pk=new_id)
    assert retried.url == first.url and retried.retries == 7 and new_id != first.pk
    assert retried.headers == {"Content-Type": "application/json"}  # kept, not overridden
    assert api.post(f"{BASE}/dlq/retry/1700000000001-0").status_code == 404
    response = api.post(f"{BASE}/dlq/retry?dlqIds=1700000000002-0&dlqIds=1700000000003-0")
    assert response.status_code == 201 and len(response.json()["responses"]) == 2
    assert api.get(f"{BASE}/dlq").json() == {"messages": []}
    bad = api.post(f"{BASE}/dlq/retry?dlqIds=x", headers={"Upstash-Retries": "lots"})
    assert bad.status_code == 400


# --- schedules ------------------------------------------------------------------------------------


def test_schedules_create_upsert_list_get_pause_resume_delete(api: Client):
    response = api.post(
        f"{BASE}/schedules/https://example.com/cron?x=1",
        data=b'{"a": 1}',
        content_type="application/json",
        headers={
            "Upstash-Cron": "CRON_TZ=Europe/Paris */5 * * * *",
            "Upstash-Retries": "2",
            "Upstash-Forward-X-A": "1",
            "Upstash-Callback": "https://example.com/cb",
            "Upstash-Delay": "30s",
            "Upstash-Timeout": "10s",
            "Upstash-Label": "nightly",
        },
    )
    assert response.status_code == 201, response.content
    schedule_id = response.json()["scheduleId"]
    parsed = parse_schedule_response(api.get(f"{BASE}/schedules/{schedule_id}").json())
    assert parsed.schedule_id == schedule_id
    assert parsed.destination == "https://example.com/cron?x=1"
    assert parsed.cron == "CRON_TZ=Europe/Paris */5 * * * *"
    assert parsed.body == '{"a": 1}' and parsed.method == "POST" and parsed.retries == 2
    assert parsed.headers == {"Content-Type": ["application/json"], "X-A": ["1"]}
    assert parsed.callback == "https://example.com/cb" and parsed.delay == 30
    assert parsed.timeout == 10 and parsed.label == "nightly" and not parsed.paused
    assert parsed.next_schedule_time and parsed.next_schedule_time > parsed.created_at

    # Upstash-Schedule-Id: the same schedule, changed.
    response = api.post(
        f"{BASE}/schedules/https://example.com/other",
        data=b"",
        content_type="text/plain",
        headers={"Upstash-Cron": "0 * * * *", "Upstash-Schedule-Id": schedule_id},
    )
    assert response.json() == {"scheduleId": schedule_id}
    [listed] = [parse_schedule_response(s) for s in api.get(f"{BASE}/schedules").json()]
    assert listed.destination == "https://example.com/other" and listed.cron == "0 * * * *"

    assert api.patch(f"{BASE}/schedules/{schedule_id}/pause").status_code == 200
    paused = parse_schedule_response(api.get(f"{BASE}/schedules/{schedule_id}").json())
    assert paused.paused and paused.next_schedule_time is None
    assert api.post(f"{BASE}/schedules/{schedule_id}/resume").status_code == 200
    assert not MessageSchedule.objects.get(pk=schedule_id).paused
    assert api.post(f"{BASE}/schedules/{schedule_id}/pause").status_code == 200
    assert api.patch(f"{BASE}/schedules/{schedule_id}/resume").status_code == 200

    assert api.delete(f"{BASE}/schedules/{schedule_id}").status_code == 200
    for method, url in (
        ("get", f"{BASE}/schedules/{schedule_id}"),
        ("delete", f"{BASE}/schedules/{schedule_id}"),
        ("patch", f"{BASE}/schedules/{schedule_id}/pause"),
        ("patch", f"{BASE}/schedules/{schedule_id}/resume"),
    ):
        response = getattr(api, method)(url)
        assert response.status_code == 404 and error(response)
    assert api.get(f"{BASE}/schedules").json() == []


def test_a_schedule_to_a_url_group_with_a_queue(api: Client):
    response = api.post(
        f"{BASE}/schedules/my-group",
        data=b"",
        content_type="text/plain",
        headers={"Upstash-Cron": "* * * * *", "Upstash-Queue-Name": "q"},
    )
    assert response.status_code == 201
    parsed = parse_schedule_response(
        api.get(f"{BASE}/schedules/{response.json()['scheduleId']}").json()
    )
    assert parsed.destination == "my-group" and parsed.queue == "q"


@pytest.mark.parametrize(
    ("headers", "says"),
    [
        ({}, "Upstash-Cron"),
        ({"Upstash-Cron": "every minute"}, "cron"),
        ({"Upstash-Cron": "CRON_TZ=Mars/Olympus * * * * *"}, "time zone"),
        ({"Upstash-Cron": "* * * * *", "Upstash-Not-Before": "1893456000"}, "not_before"),
        ({"Upstash-Cron": "* * * * *", "Upstash-Retries": "x"}, "Upstash-Retries"),
        ({"Upstash-Cron": "* * * * *", "Upstash-Schedule-Id": "a b"}, "schedule id"),
    ],
)
def test_a_bad_schedule_is_400(api: Client, headers: dict[str, str], says: str):
    response = api.post(
        f"{BASE}/schedules/https://example.com/x",
        data=b"",
        content_type="text/plain",
        headers=headers,
    )
    assert response.status_code == 400 and says in error(response)
    assert not MessageSchedule.objects.exists()


# --- URL groups -----------------------------------------------------------------------------------


def test_url_groups(api: Client):
    url = f"{BASE}/topics/team/endpoints"
    response = api.post(
        url,
        content_type="application/json",
        data=json.dumps(
            {
                "endpoints": [
                    {"url": "https://a.example.com/1", "name": "a"},
                    {"url": "https://b.example.com/2"},
                ]
            }
        ),
    )
    assert response.status_code == 200
    # Upsert: the endpoint named "a" changes its URL; the same URL is not added twice.
    api.post(
        url,
        content_type="application/json",
        data=json.dumps(
            {
                "endpoints": [
                    {"url": "https://a.example.com/new", "name": "a"},
                    {"url": "https://b.example.com/2"},
                ]
            }
        ),
    )
    group = parse_url_group_response(api.get(f"{BASE}/topics/team").json())
    assert group.name == "team" and group.created_at <= group.updated_at
    assert [(e.url, e.name) for e in group.endpoints] == [
        ("https://a.example.com/new", "a"),
        ("https://b.example.com/2", None),
    ]
    assert [g["name"] for g in api.get(f"{BASE}/topics").json()] == ["team"]

    response = api.delete(
        url, content_type="application/json", data=json.dumps({"endpoints": [{"name": "a"}]})
    )
    assert response.status_code == 200
    group = parse_url_group_response(api.get(f"{BASE}/topics/team").json())
    assert [e.url for e in group.endpoints] == ["https://b.example.com/2"]
    # The last endpoint removed: the group goes too (as the SDK's docs say).
    api.delete(
        url,
        content_type="application/json",
        data=json.dumps({"endpoints": [{"url": "https://b.example.com/2"}]}),
    )
    assert api.get(f"{BASE}/topics/team").status_code == 404

    api.post(
        url,
        content_type="application/json",
        data=json.dumps({"endpoints": [{"url": "https://c.example.com"}]}),
    )
    assert api.delete(f"{BASE}/topics/team").status_code == 200
    assert api.delete(f"{BASE}/topics/team").status_code == 404
    assert api.get(f"{BASE}/topics").json() == []


@pytest.mark.parametrize(
    "data",
    [
        "",
        "[]",
        "{}",
        json.dumps({"endpoints": []}),
        json.dumps({"endpoints": [{"name": "x"}]}),
        json.dumps({"endpoints": [{"url": "ftp://x"}]}),
        json.dumps({"endpoints": ["x"]}),
    ],
)
def test_bad_endpoints_are_400(api: Client, data: str):
    response = api.post(f"{BASE}/topics/team/endpoints", content_type="application/json", data=data)
    assert response.status_code == 400 and error(response)
    response = api.post(
        f"{BASE}/topics/bad name/endpoints",
        content_type="application/json",
        data=json.dumps({"endpoints": [{"url": "https://x.example.com"}]}),
    )
    assert response.status_code == 400 and error(response)


# --- queues ---------------------------------------------------------------------------------------


def test_queues(api: Client):
    response = api.post(
        f"{BASE}/queues",
        content_type="application/json",
        data=json.dumps({"queueName": "q1", "parallelism": 3, "paused": False}),
    )
    assert response.status_code == 200
    api.post(f"{BASE}/enqueue/q1/https://example.com/x", data=b"", content_type="text/plain")
    api.post(f"{BASE}/enqueue/q1/https://example.com/y", data=b"", content_type="text/plain")
    queue = parse_queue_response(api.get(f"{BASE}/queues/q1").json())
    assert (queue.name, queue.parallelism, queue.paused) == ("q1", 3, False)
    assert queue.lag == 2  # nothing let through yet: the test's transaction never committed
    assert api.post(f"{BASE}/queues/q1/pause").status_code == 200
    assert parse_queue_response(api.get(f"{BASE}/queues/q1").json()).paused
    assert api.patch(f"{BASE}/queues/q1/resume").status_code == 200
    [listed] = [parse_queue_response(q) for q in api.get(f"{BASE}/queues").json()]
    assert not listed.paused and listed.lag == 2
    # Upsert changes it.
    api.post(
        f"{BASE}/queues",
        content_type="application/json",
        data=json.dumps({"queueName": "q1", "parallelism": 1, "paused": True}),
    )
    assert DeliveryQueue.objects.get(name="q1").parallelism == 1
    assert api.delete(f"{BASE}/queues/q1").status_code == 200
    # Its waiting messages would wait for ever: they are cancelled with it.
    assert not Message.objects.filter(queue="q1", cancelled_at__isnull=True).exists()
    for method, url in (
        ("get", "q1"),
        ("delete", "q1"),
        ("post", "q1/pause"),
        ("post", "q1/resume"),
    ):
        assert getattr(api, method)(f"{BASE}/queues/{url}").status_code == 404


@pytest.mark.parametrize(
    "data",
    [
        "",
        "[]",
        json.dumps({"parallelism": 1}),
        json.dumps({"queueName": "q", "parallelism": 0}),
        json.dumps({"queueName": "q", "parallelism": "2"}),
        json.dumps({"queueName": "q", "paused": "no"}),
        json.dumps({"queueName": "a b"}),
    ],
)
def test_bad_queue_upserts_are_400(api: Client, data: str):
    response = api.post(f"{BASE}/queues", content_type="application/json", data=data)
    assert response.status_code == 400 and error(response)


# --- keys -----------------------------------------------------------------------------------------


def test_keys_and_rotation(api: Client):
    keys = api.get(f"{BASE}/keys").json()
    stored = signing.signing_keys()
    assert keys == {"current": stored.current, "next": stored.next}
    rotated = api.post(f"{BASE}/keys/rotate").json()
    assert rotated["current"] == keys["next"] and rotated["next"] != keys["next"]
    assert api.get(f"{BASE}/keys").json() == rotated
    assert api.get(f"{BASE}/keys/rotate").status_code == 405


# --- events ---------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_events_of_a_delivery_a_retry_a_failure_and_a_cancel(
    api: Client, captured, receiver: Receiver
):
    receiver.answer("/fail", (500, {}, b"down"), (500, {}, b"still down"))
    ok = publish(api, receiver.url("/ok"), b"{}").json()["messageId"]
    failing = publish(
        api, receiver.url("/fail"), b"{}", **{"Upstash-Retries": "1", "Upstash-Retry-Delay": "0"}
    ).json()["messageId"]
    captured.run_all()
    cancelled = publish(api, "https://example.com/later", **{"Upstash-Delay": "1h"}).json()[
        "messageId"
    ]
    api.delete(f"{BASE}/messages/{cancelled}")

    body = api.get(f"{BASE}/events").json()
    assert "cursor" not in body
    logs = parse_logs_response(body["events"])
    times = [log.time for log in logs]
    assert times == sorted(times, reverse=True)
    states = lambda mid: [log.state.value for log in reversed(logs) if log.message_id == mid]  # noqa: E731
    assert states(ok) == ["CREATED", "ACTIVE", "IN_PROGRESS", "DELIVERED"]
    assert states(failing) == [
        "CREATED",
        "ACTIVE",
        "IN_PROGRESS",
        "ERROR",
        "RETRY",
        "IN_PROGRESS",
        "ERROR",
        "FAILED",
    ]
    assert states(cancelled) == ["CREATED", "CANCELED"]
    delivered = next(log for log in logs if log.state is LogState.DELIVERED)
    assert delivered.response_status == 200 and delivered.url == receiver.url("/ok")
    error_log = next(log for log in logs if log.state is LogState.ERROR)
    assert error_log.response_status == 500 and error_log.error

    # One page at a time gives the same events, each once.
    paged, cursor = [], None
    while True:
        query = {"count": 3, **({"cursor": cursor} if cursor else {})}
        page = api.get(f"{BASE}/events", query).json()
        assert cursor is None or cursor.isdigit()
        paged += page["events"]
        cursor = page.get("cursor")
        if not cursor:
            break
    assert paged == body["events"]

    only = api.get(f"{BASE}/events", {"state": "FAILED"}).json()["events"]
    assert [(e["messageId"], e["state"]) for e in only] == [(failing, "FAILED")]
    mine = api.get(f"{BASE}/events", {"messageId": ok}).json()["events"]
    assert {e["messageId"] for e in mine} == {ok}
    logs_alias = api.get(f"{BASE}/logs").json()
    assert logs_alias["logs"] == body["events"]
    assert api.get(f"{BASE}/events?cursor=abc").status_code == 400
    assert api.get(f"{BASE}/events?state=WHATEVER").status_code == 400


def test_events_of_a_batch_at_one_instant_page_without_gaps(api: Client):
    api.post(
        f"{BASE}/batch",
        content_type="application/json",
        data=json.dumps(
            [{"destination": f"https://example.com/{n}", "body": ""} for n in range(7)]
        ),
    )
    everything = api.get(f"{BASE}/events").json()["events"]
    assert len(everything) == 7 * 2  # CREATED and ACTIVE, all at the batch's instant
    paged, cursor = [], None
    while True:
        page = api.get(
            f"{BASE}/events", {"count": 2, **({"cursor": cursor} if cursor else {})}
        ).json()
        paged += page["events"]
        cursor = page.get("cursor")
        if not cursor:
            break
    assert paged == everything


@pytest.mark.parametrize(
    "method, path, headers, capability",
    [
        ("post", "/qstash/llm/v1/chat/completions", {}, "the LLM API"),
        ("get", f"{BASE}/workflows/logs", {}, "this part of Upstash Workflow"),
        ("post", f"{BASE}/workflows/dlq/resume", {}, "this part of Upstash Workflow"),
        (
            "post",
            f"{BASE}/publish/https://api.example.com/called",
            {"Upstash-Workflow-RunId": "wfr_1", "Upstash-Workflow-CallType": "toCallback"},
            "Upstash Workflow's context.call",
        ),
    ],
    ids=["llm", "workflow logs", "workflow dlq", "context.call"],
)
def test_a_capability_not_offered_answers_501_naming_it(api, method, path, headers, capability):
    body = {} if method == "get" else {"data": "{}", "content_type": "application/json"}
    response = getattr(api, method)(path, headers=headers, **body)
    assert response.status_code == 501
    assert error(response).startswith(capability) and "not offered" in error(response)
    assert not Message.objects.exists()
    assert api.get(f"{BASE}/nope").status_code == 404  # a path that names nothing stays a 404
