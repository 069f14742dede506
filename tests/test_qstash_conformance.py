"""Every public method of the official Python SDK (``qstash``, pinned in SDK_VERSION) against
the API on a live server, once with the blocking ``QStash`` client and once with
``AsyncQStash``, a real Celery worker delivering to a real HTTP server on 127.0.0.1, and every
delivery checked with the stock ``qstash.Receiver``. One test per method; the method x client
matrix is printed at the end of the run (tests/sdk_matrix.py). The npm SDK's methods are in
tests/test_qstash_conformance_js.py.
"""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import Iterator
from typing import Any

import pytest
from django.utils import timezone
from qstash import AsyncQStash, QStash
from qstash import Receiver as QStashReceiver
from qstash.errors import QStashError
from qstash.log import LogState

from django_bgjobs.delivery import message_schedules
from django_bgjobs.delivery.models import FlowControl, Message
from tests.conftest import wait_for
from tests.http_receiver import Hit, Receiver
from tests.sdk_matrix import sdk_method

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

SDK_VERSION = "qstash==3.4.0"  # written against; the README says which versions are supported
LATER = 3600  # seconds: a message that stays pending for the test's whole life


class Blocking:
    """An ``AsyncQStash`` (or one of its API groups) called like the blocking client: each
    coroutine is run to its end on the test's event loop, so one test body serves both."""

    def __init__(self, target: Any, runner: asyncio.Runner) -> None:
        self._target, self._runner = target, runner

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._target, name)
        if inspect.iscoroutinefunction(value):
            return lambda *args, **kwargs: self._runner.run(value(*args, **kwargs))
        if type(value).__module__.startswith("qstash."):
            return Blocking(value, self._runner)
        return value


@pytest.fixture(params=["sync", "async"])
def sdk(request: pytest.FixtureRequest, token: str, base_url: str) -> Iterator[Any]:
    """The client under test, sync or async, seen through the same blocking calls."""
    if request.param == "sync":
        yield QStash(token, base_url=base_url, retry=False)
        return
    with asyncio.Runner() as runner:
        yield Blocking(AsyncQStash(token, base_url=base_url, retry=False), runner)


def verify(sdk: Any, hit: Hit, url: str) -> None:
    """The stock receiver, with the keys the API hands out."""
    keys = sdk.signing_key.get()
    QStashReceiver(current_signing_key=keys.current, next_signing_key=keys.next).verify(
        signature=hit.headers["upstash-signature"], body=hit.body.decode(), url=url
    )


def delivered(sdk: Any, receiver: Receiver, path: str, count: int = 1) -> list[Hit]:
    """The deliveries to ``path``, each verified."""
    hits = receiver.wait(path, count)
    for hit in hits:
        verify(sdk, hit, receiver.url(hit.path))
    return hits


def pending(sdk: Any, url: str = "https://example.com/later", **options: Any) -> str:
    """A message that waits an hour: its id."""
    return str(sdk.message.publish_json(url=url, body={}, delay=LATER, **options).message_id)


def gone(sdk: Any, message_id: str) -> bool:
    """QStash answers 404 for a cancelled message."""
    try:
        sdk.message.get(message_id)
    except QStashError as exc:
        return "404" in str(exc)
    return False


# --- message ---------------------------------------------------------------------------------


@sdk_method("message.publish")
def test_message_publish(worker, sdk, receiver: Receiver):
    url = receiver.url("/publish?a=1&b=two%20words")
    result = sdk.message.publish(
        url=url, body="plain", content_type="text/plain", headers={"X-Trace": "t1"}, retries=1
    )
    [hit] = delivered(sdk, receiver, "/publish")
    assert hit.path == "/publish?a=1&b=two%20words" and hit.body == b"plain"
    assert hit.headers["x-trace"] == "t1" and hit.headers["content-type"] == "text/plain"
    assert hit.headers["upstash-message-id"] == result.message_id


@sdk_method("message.publish_json")
def test_message_publish_json(worker, sdk, receiver: Receiver):
    result = sdk.message.publish_json(
        url=receiver.url("/json"), body={"user": 7}, label="signup", deduplication_id="d1"
    )
    again = sdk.message.publish_json(
        url=receiver.url("/json"), body={"user": 7}, deduplication_id="d1"
    )
    [hit] = delivered(sdk, receiver, "/json")
    assert json.loads(hit.body) == {"user": 7}
    assert hit.headers["content-type"] == "application/json"
    assert again.deduplicated and again.message_id == result.message_id


@sdk_method("message.enqueue")
def test_message_enqueue(worker, sdk, receiver: Receiver):
    result = sdk.message.enqueue(
        queue="mail", url=receiver.url("/enqueued"), body="x", content_type="text/plain"
    )
    [hit] = delivered(sdk, receiver, "/enqueued")
    assert hit.headers["upstash-message-id"] == result.message_id
    assert sdk.queue.get("mail").name == "mail"  # made by its first message


@sdk_method("message.enqueue_json")
def test_message_enqueue_json(worker, sdk, receiver: Receiver):
    result = sdk.message.enqueue_json(queue="mail", url=receiver.url("/ej"), body={"n": 1})
    [hit] = delivered(sdk, receiver, "/ej")
    assert json.loads(hit.body) == {"n": 1}
    assert sdk.message.get(result.message_id).queue == "mail"


@sdk_method("message.batch")
def test_message_batch(worker, sdk, receiver: Receiver):
    results = sdk.message.batch(
        [
            {"url": receiver.url("/b1"), "body": "one"},
            {
                "url": receiver.url("/b2"),
                "body": "two",
                "queue": "batched",
                "headers": {"X-N": "2"},
            },
        ]
    )
    assert len(results) == 2
    [one], [two] = delivered(sdk, receiver, "/b1"), delivered(sdk, receiver, "/b2")
    assert (one.body, two.body, two.headers["x-n"]) == (b"one", b"two", "2")


@sdk_method("message.batch_json")
def test_message_batch_json(worker, sdk, receiver: Receiver):
    results = sdk.message.batch_json(
        [
            {"url": receiver.url("/bj1"), "body": {"n": 1}},
            {"url": receiver.url("/bj2"), "body": [2]},
        ]
    )
    assert [r.message_id for r in results] == [
        h.headers["upstash-message-id"]
        for h in (*delivered(sdk, receiver, "/bj1"), *delivered(sdk, receiver, "/bj2"))
    ]


@sdk_method("message.get")
def test_message_get(sdk):
    message_id = pending(sdk, headers={"X-Trace": "t1"}, retries=2)
    message = sdk.message.get(message_id)
    assert (message.message_id, message.url, message.max_retries) == (
        message_id,
        "https://example.com/later",
        2,
    )
    assert message.headers["X-Trace"] == ["t1"] and message.not_before > 0
    with pytest.raises(QStashError, match="404"):
        sdk.message.get("msg_nope")


@sdk_method("message.cancel")
def test_message_cancel(sdk):
    message_id = pending(sdk)
    sdk.message.cancel(message_id)
    assert gone(sdk, message_id)
    assert Message.objects.get(pk=message_id).cancelled_at is not None  # kept for the logs


@sdk_method("message.cancel_many")
def test_message_cancel_many(sdk):
    ids = [pending(sdk) for _ in range(2)]
    kept = pending(sdk)
    assert sdk.message.cancel_many(ids) == 2
    assert all(gone(sdk, i) for i in ids) and not gone(sdk, kept)


@sdk_method("message.cancel_all")
def test_message_cancel_all(sdk):
    ids = [pending(sdk) for _ in range(3)]
    assert sdk.message.cancel_all() == 3
    assert all(gone(sdk, i) for i in ids)
    assert sdk.message.cancel_all() == 0


# --- queue -----------------------------------------------------------------------------------


@sdk_method("queue.upsert")
def test_queue_upsert(sdk):
    sdk.queue.upsert("reports", parallelism=2)
    sdk.queue.upsert("reports", parallelism=3, paused=True)
    queue = sdk.queue.get("reports")
    assert (queue.parallelism, queue.paused) == (3, True)


@sdk_method("queue.get")
def test_queue_get(sdk):
    sdk.queue.upsert("reports", parallelism=2)
    queue = sdk.queue.get("reports")
    assert (queue.name, queue.parallelism, queue.paused, queue.lag) == ("reports", 2, False, 0)
    assert queue.created_at > 0
    with pytest.raises(QStashError, match="404"):
        sdk.queue.get("nope")


@sdk_method("queue.list")
def test_queue_list(sdk):
    for name in ("b-queue", "a-queue"):
        sdk.queue.upsert(name)
    assert [q.name for q in sdk.queue.list()] == ["a-queue", "b-queue"]


@sdk_method("queue.delete")
def test_queue_delete(sdk):
    sdk.queue.upsert("doomed")
    sdk.queue.delete("doomed")
    assert sdk.queue.list() == []


@sdk_method("queue.pause")
def test_queue_pause(worker, sdk, receiver: Receiver):
    sdk.queue.upsert("held")
    sdk.queue.pause("held")
    sdk.message.enqueue_json(queue="held", url=receiver.url("/held"), body={})
    assert sdk.queue.get("held").paused
    with pytest.raises(AssertionError, match="0 of 1"):
        receiver.wait("/held", 1, timeout=1.5)


@sdk_method("queue.resume")
def test_queue_resume(worker, sdk, receiver: Receiver):
    sdk.queue.upsert("held", paused=True)
    sdk.message.enqueue_json(queue="held", url=receiver.url("/resumed"), body={})
    sdk.queue.resume("held")
    assert not sdk.queue.get("held").paused
    delivered(sdk, receiver, "/resumed")


# --- schedule --------------------------------------------------------------------------------


@sdk_method("schedule.create")
def test_schedule_create(worker, sdk, receiver: Receiver):
    url = receiver.url("/cron?s=1")
    schedule_id = sdk.schedule.create(
        destination=url, cron="CRON_TZ=Europe/Paris */5 * * * *", body="tick", retries=0
    )
    assert schedule_id.startswith("scd_")
    fired = message_schedules.fire(schedule_id, timezone.now())  # what beat calls when it is due
    assert fired.published
    [hit] = delivered(sdk, receiver, "/cron")
    assert hit.body == b"tick" and hit.headers["upstash-schedule-id"] == schedule_id


@sdk_method("schedule.create_json")
def test_schedule_create_json(sdk):
    schedule_id = sdk.schedule.create_json(
        destination="https://example.com/cron",
        cron="0 * * * *",
        body={"tick": True},
        schedule_id="hourly",
    )
    assert schedule_id == "hourly"
    schedule = sdk.schedule.get("hourly")
    assert json.loads(schedule.body) == {"tick": True} and schedule.cron == "0 * * * *"


@sdk_method("schedule.get")
def test_schedule_get(sdk):
    schedule_id = sdk.schedule.create(destination="https://example.com/c", cron="*/5 * * * *")
    schedule = sdk.schedule.get(schedule_id)
    assert (schedule.schedule_id, schedule.destination, schedule.paused) == (
        schedule_id,
        "https://example.com/c",
        False,
    )
    assert schedule.next_schedule_time is not None and schedule.next_schedule_time > 0
    with pytest.raises(QStashError, match="404"):
        sdk.schedule.get("scd_nope")


@sdk_method("schedule.list")
def test_schedule_list(sdk):
    ids = {
        sdk.schedule.create(destination=f"https://example.com/{n}", cron="0 0 * * *")
        for n in range(2)
    }
    assert {s.schedule_id for s in sdk.schedule.list()} == ids


@sdk_method("schedule.delete")
def test_schedule_delete(sdk):
    schedule_id = sdk.schedule.create(destination="https://example.com/c", cron="0 0 * * *")
    sdk.schedule.delete(schedule_id)
    assert sdk.schedule.list() == []


@sdk_method("schedule.pause")
def test_schedule_pause(sdk):
    schedule_id = sdk.schedule.create(destination="https://example.com/c", cron="* * * * *")
    sdk.schedule.pause(schedule_id)
    assert sdk.schedule.get(schedule_id).paused
    assert message_schedules.fire(schedule_id, timezone.now()).skipped == "paused"


@sdk_method("schedule.resume")
def test_schedule_resume(sdk):
    schedule_id = sdk.schedule.create(destination="https://example.com/c", cron="* * * * *")
    sdk.schedule.pause(schedule_id)
    sdk.schedule.resume(schedule_id)
    assert not sdk.schedule.get(schedule_id).paused
    assert message_schedules.fire(schedule_id, timezone.now()).published


# --- url_group -------------------------------------------------------------------------------


@sdk_method("url_group.upsert_endpoints")
def test_url_group_upsert_endpoints(worker, sdk, receiver: Receiver):
    sdk.url_group.upsert_endpoints(
        "team", [{"url": receiver.url("/g1"), "name": "one"}, {"url": receiver.url("/g2?x=1")}]
    )
    results = sdk.message.publish_json(url_group="team", body={"to": "all"})
    assert len(results) == 2
    [first], [second] = delivered(sdk, receiver, "/g1"), delivered(sdk, receiver, "/g2")
    assert first.headers["upstash-topic-name"] == "team" and second.path == "/g2?x=1"


@sdk_method("url_group.remove_endpoints")
def test_url_group_remove_endpoints(sdk):
    sdk.url_group.upsert_endpoints(
        "team", [{"url": "https://example.com/1", "name": "one"}, {"url": "https://example.com/2"}]
    )
    sdk.url_group.remove_endpoints("team", [{"name": "one"}])
    assert [e.url for e in sdk.url_group.get("team").endpoints] == ["https://example.com/2"]


@sdk_method("url_group.get")
def test_url_group_get(sdk):
    sdk.url_group.upsert_endpoints("team", [{"url": "https://example.com/1", "name": "one"}])
    group = sdk.url_group.get("team")
    assert group.name == "team" and [(e.name, e.url) for e in group.endpoints] == [
        ("one", "https://example.com/1")
    ]
    with pytest.raises(QStashError, match="404"):
        sdk.url_group.get("nope")


@sdk_method("url_group.list")
def test_url_group_list(sdk):
    for name in ("team", "ops"):
        sdk.url_group.upsert_endpoints(name, [{"url": f"https://example.com/{name}"}])
    assert sorted(g.name for g in sdk.url_group.list()) == ["ops", "team"]


@sdk_method("url_group.delete")
def test_url_group_delete(sdk):
    sdk.url_group.upsert_endpoints("team", [{"url": "https://example.com/1"}])
    sdk.url_group.delete("team")
    assert sdk.url_group.list() == []


# --- dlq -------------------------------------------------------------------------------------


def dead_letter(sdk: Any, receiver: Receiver, path: str = "/dead") -> Any:
    """A message its endpoint refuses, with no retry: its DLQ entry."""
    receiver.answer(path, (500, {"X-Why": "down"}, b"broken"))
    result = sdk.message.publish_json(url=receiver.url(path), body={"n": 1}, retries=0)
    [entry] = wait_for(
        lambda: [m for m in sdk.dlq.list().messages if m.message_id == result.message_id],
        message="the DLQ entry",
    )
    return entry


@sdk_method("dlq.list")
def test_dlq_list(worker, sdk, receiver: Receiver):
    entry = dead_letter(sdk, receiver)
    assert (entry.url, entry.response_status, entry.response_body) == (
        receiver.url("/dead"),
        500,
        "broken",
    )
    assert [m.dlq_id for m in sdk.dlq.list(filter={"url": receiver.url("/dead")}).messages] == [
        entry.dlq_id
    ]
    assert sdk.dlq.list(filter={"url": "https://example.com/other"}).messages == []


@sdk_method("dlq.get")
def test_dlq_get(worker, sdk, receiver: Receiver):
    entry = dead_letter(sdk, receiver)
    got = sdk.dlq.get(entry.dlq_id)
    assert (got.message_id, got.response_status) == (entry.message_id, 500)
    with pytest.raises(QStashError, match="404"):
        sdk.dlq.get("dlq_nope")


@sdk_method("dlq.delete")
def test_dlq_delete(worker, sdk, receiver: Receiver):
    entry = dead_letter(sdk, receiver)
    sdk.dlq.delete(entry.dlq_id)
    assert sdk.dlq.list().messages == []


@sdk_method("dlq.delete_many")
def test_dlq_delete_many(worker, sdk, receiver: Receiver):
    entries = [dead_letter(sdk, receiver, path) for path in ("/dead1", "/dead2")]
    assert sdk.dlq.delete_many([e.dlq_id for e in entries]) == 2
    assert sdk.dlq.list().messages == []


# --- log, signing_key ------------------------------------------------------------------------


@sdk_method("log.list")
def test_log_list(worker, sdk, receiver: Receiver):
    sent = sdk.message.publish_json(url=receiver.url("/logged"), body={})
    delivered(sdk, receiver, "/logged")
    states = wait_for(
        lambda: [
            log.state
            for log in sdk.log.list(filter={"message_id": sent.message_id}).logs
            if log.state is LogState.DELIVERED
        ],
        message="the DELIVERED log",
    )
    assert states == [LogState.DELIVERED]
    cancelled = pending(sdk)
    sdk.message.cancel(cancelled)
    logs = sdk.log.list(filter={"message_id": cancelled}).logs
    assert [log.state for log in logs] == [LogState.CANCELED, LogState.CREATED]
    first = sdk.log.list(count=1)
    assert len(first.logs) == 1 and first.cursor
    assert sdk.log.list(cursor=first.cursor, count=1).logs[0] != first.logs[0]


@sdk_method("signing_key.get")
def test_signing_key_get(worker, sdk, receiver: Receiver):
    keys = sdk.signing_key.get()
    assert keys.current and keys.next and keys.current != keys.next
    sdk.message.publish_json(url=receiver.url("/signed"), body={})
    delivered(sdk, receiver, "/signed")  # verified with these keys


@sdk_method("signing_key.rotate")
def test_signing_key_rotate(worker, sdk, receiver: Receiver):
    before = sdk.signing_key.get()
    after = sdk.signing_key.rotate()
    assert after.current == before.next and after.next != before.next
    sdk.message.publish(url=receiver.url("/rotated"), body="x", content_type="text/plain")
    [hit] = delivered(sdk, receiver, "/rotated")
    # A receiver still set up with the old pair accepts it too (its old next).
    QStashReceiver(current_signing_key=before.current, next_signing_key=before.next).verify(
        signature=hit.headers["upstash-signature"], body="x", url=receiver.url("/rotated")
    )


@sdk_method("Receiver.verify")
def test_receiver_verify(worker, sdk, receiver: Receiver):
    url = receiver.url("/verify")
    sdk.message.publish(url=url, body="exact body", content_type="text/plain")
    [hit] = receiver.wait("/verify", 1)
    keys = sdk.signing_key.get()
    stock = QStashReceiver(current_signing_key=keys.current, next_signing_key=keys.next)
    stock.verify(signature=hit.headers["upstash-signature"], body="exact body", url=url)
    for body, at in (("other body", url), ("exact body", url + "?x=1")):
        with pytest.raises(Exception, match="(?i)signature|invalid|mismatch|body|subject|url"):
            stock.verify(signature=hit.headers["upstash-signature"], body=body, url=at)


# --- flow_control ----------------------------------------------------------------------------

FLOW = {"key": "tenant-fc", "parallelism": 2, "rate": 5, "period": 60}


def flow_messages(sdk: Any, count: int = 3, flow: dict[str, Any] = FLOW) -> None:
    for _ in range(count):
        sdk.message.publish_json(url="https://example.com/fc", body={}, flow_control=flow)


@sdk_method("flow_control.get")
def test_flow_control_get(no_session_worker, sdk):
    flow_messages(sdk)
    info = sdk.flow_control.get("tenant-fc")
    assert (info.key, info.parallelism_max, info.rate_max, info.rate_period) == (
        "tenant-fc",
        2,
        5,
        60,
    )
    # No worker: the two let through hold the key's two places (their jobs wait), one waits.
    assert (info.parallelism_count, info.rate_count, info.wait_list_size) == (2, 2, 1)
    assert not (info.is_paused or info.is_pinned_parallelism or info.is_pinned_rate)
    with pytest.raises(QStashError, match="not found"):
        sdk.flow_control.get("no-such-key")


@sdk_method("flow_control.get_global_parallelism")
def test_flow_control_get_global_parallelism(no_session_worker, sdk):
    overall = sdk.flow_control.get_global_parallelism()
    assert (overall.parallelism_max, overall.parallelism_count) == (0, 0)  # 0: no limit


@sdk_method("flow_control.pause")
def test_flow_control_pause(no_session_worker, sdk):
    from django_bgjobs.delivery import admission

    flow_messages(sdk, 1, {"key": "tenant-paused", "parallelism": 5})
    sdk.flow_control.pause("tenant-paused")
    assert sdk.flow_control.get("tenant-paused").is_paused
    flow_messages(sdk, 1, {"key": "tenant-paused", "parallelism": 5})
    assert admission.admit_flow("tenant-paused") == 0
    assert sdk.flow_control.get("tenant-paused").wait_list_size == 1


@sdk_method("flow_control.resume")
def test_flow_control_resume(no_session_worker, sdk):

    flow_messages(sdk, 1, {"key": "tenant-paused", "parallelism": 5})
    sdk.flow_control.pause("tenant-paused")
    flow_messages(sdk, 1, {"key": "tenant-paused", "parallelism": 5})
    sdk.flow_control.resume("tenant-paused")
    info = sdk.flow_control.get("tenant-paused")
    assert not info.is_paused and info.wait_list_size == 0  # let through at once


@sdk_method("flow_control.pin")
def test_flow_control_pin(no_session_worker, sdk):
    flow_messages(sdk, 1)
    sdk.flow_control.pin("tenant-fc", {"parallelism": 1, "rate": 10, "period": 30})
    # A publish naming other limits leaves the pinned ones alone.
    flow_messages(sdk, 1, {**FLOW, "parallelism": 4, "rate": 20})
    info = sdk.flow_control.get("tenant-fc")
    assert (info.parallelism_max, info.rate_max, info.rate_period) == (1, 10, 30)
    assert info.is_pinned_parallelism and info.is_pinned_rate
    assert info.rate_count == 0  # pinning starts the rate's count again, as in QStash
    for options, problem in (
        ({"parallelism": 0}, "parallelism must be a whole number"),
        ({"period": 30}, "pin needs parallelism, rate"),
        ({"parallelism": 2, "period": 30}, "a period needs a rate"),
    ):
        with pytest.raises(QStashError, match=problem):
            sdk.flow_control.pin("tenant-fc", options)
    with pytest.raises(QStashError, match="not found"):
        sdk.flow_control.pin("no-such-key", {"parallelism": 1})


@sdk_method("flow_control.unpin")
def test_flow_control_unpin(no_session_worker, sdk):
    flow_messages(sdk, 1)
    sdk.flow_control.pin("tenant-fc", {"parallelism": 1, "rate": 10})
    sdk.flow_control.unpin("tenant-fc", {"parallelism": True})
    info = sdk.flow_control.get("tenant-fc")
    assert not info.is_pinned_parallelism and info.is_pinned_rate
    flow_messages(sdk, 1, {**FLOW, "parallelism": 4, "rate": 20})
    wait_for(
        lambda: FlowControl.objects.get(key="tenant-fc").parallelism == 4,
        message="the publish's parallelism (written after its commit)",
    )
    assert sdk.flow_control.get("tenant-fc").rate_max == 10  # still pinned
    with pytest.raises(QStashError, match="unpin needs"):
        sdk.flow_control.unpin("tenant-fc", {})


@sdk_method("flow_control.reset_rate")
def test_flow_control_reset_rate(no_session_worker, sdk):

    flow = {"key": "tenant-rate", "rate": 2, "period": 3600}
    flow_messages(sdk, 3, flow)
    info = sdk.flow_control.get("tenant-rate")
    assert (info.rate_count, info.wait_list_size) == (2, 1)  # the hour's two are spent
    sdk.flow_control.reset_rate("tenant-rate")
    info = sdk.flow_control.get("tenant-rate")
    assert (info.rate_count, info.wait_list_size) == (1, 0)  # the waiting one went at once
    with pytest.raises(QStashError, match="not found"):
        sdk.flow_control.reset_rate("no-such-key")


def public_methods(client: QStash | AsyncQStash) -> list[str]:
    """``group.method`` for every public method of a client's API groups."""
    return sorted(
        f"{group}.{name}"
        for group, api in vars(client).items()
        if not group.startswith("_") and group != "http"
        for name in dir(api)
        if not name.startswith("_") and callable(getattr(api, name))
    )


def test_every_public_method_has_a_conformance_test():
    """A new SDK version's new method fails this until it has its test above."""
    tested = {
        marker.args[0]
        for value in list(globals().values())
        for marker in getattr(value, "pytestmark", [])
        if marker.name == "sdk_method"
    }
    assert sorted(tested - {"Receiver.verify"}) == public_methods(QStash("t"))
    assert public_methods(AsyncQStash("t")) == public_methods(QStash("t"))
