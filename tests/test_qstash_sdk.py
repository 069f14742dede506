"""The official SDKs against the API on a live server, a real Celery worker delivering to a
real HTTP server on 127.0.0.1, and every delivery checked with the stock
``qstash.Receiver(current, next)`` using the keys from ``GET /v2/keys``.

The Python SDK (``qstash`` 3.4) always; the JS SDK (``@upstash/qstash`` 2.12, installed with
npm into a temporary folder, ``--ignore-scripts``) when node and npm are there.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
from qstash import QStash
from qstash import Receiver as QStashReceiver
from qstash.errors import QStashError
from qstash.log import LogState

from django_bgjobs.delivery import message_schedules
from django_bgjobs.delivery.api import tokens
from django_bgjobs.delivery.models import Message
from tests.conftest import wait_for
from tests.http_receiver import Hit, Receiver

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

JS_SDK = "@upstash/qstash@2.12.0"


@pytest.fixture
def token() -> str:
    return tokens.create_token("sdk tests")[1]


@pytest.fixture
def base_url(live_server) -> str:  # type: ignore[no-untyped-def]
    return live_server.url + "/qstash"


@pytest.fixture
def client(token: str, base_url: str) -> QStash:
    return QStash(token, base_url=base_url, retry=False)


def verify(client: QStash, hit: Hit, url: str) -> None:
    """The stock receiver, with the keys the API hands out."""
    keys = client.signing_key.get()
    QStashReceiver(current_signing_key=keys.current, next_signing_key=keys.next).verify(
        signature=hit.headers["upstash-signature"], body=hit.body.decode(), url=url
    )


def test_publish_to_a_url_arrives_signed(worker, client: QStash, receiver: Receiver):
    url = receiver.url("/hook?a=1&b=two%20words")
    result = client.message.publish_json(
        url=url, body={"user": 7}, headers={"X-Trace": "t1"}, retries=1
    )
    [hit] = receiver.wait("/hook", 1)
    assert hit.path == "/hook?a=1&b=two%20words"
    assert json.loads(hit.body) == {"user": 7}
    assert hit.headers["x-trace"] == "t1"
    assert hit.headers["content-type"] == "application/json"
    assert hit.headers["upstash-message-id"] == result.message_id
    verify(client, hit, url)
    message = client.message.get(result.message_id)
    assert message.url == url and message.max_retries == 1
    assert message.headers["X-Trace"] == ["t1"]


def test_publish_to_a_url_group_reaches_each_endpoint(worker, client: QStash, receiver: Receiver):
    client.url_group.upsert_endpoints(
        "team", [{"url": receiver.url("/g1"), "name": "one"}, {"url": receiver.url("/g2?x=1")}]
    )
    group = client.url_group.get("team")
    assert [e.url for e in group.endpoints] == [receiver.url("/g1"), receiver.url("/g2?x=1")]
    results = client.message.publish_json(url_group="team", body={"to": "all"})
    assert isinstance(results, list) and len(results) == 2
    [first] = receiver.wait("/g1", 1)
    [second] = receiver.wait("/g2", 1)
    verify(client, first, receiver.url("/g1"))
    verify(client, second, receiver.url("/g2?x=1"))
    assert first.headers["upstash-topic-name"] == "team"
    client.url_group.remove_endpoints("team", [{"name": "one"}])
    assert [e.url for e in client.url_group.get("team").endpoints] == [receiver.url("/g2?x=1")]
    client.url_group.delete("team")
    assert client.url_group.list() == []


def test_enqueue_and_the_queue_api(worker, client: QStash, receiver: Receiver):
    client.queue.upsert("jobs", parallelism=2)
    result = client.message.enqueue_json(queue="jobs", url=receiver.url("/q"), body={"n": 1})
    [hit] = receiver.wait("/q", 1)
    verify(client, hit, receiver.url("/q"))
    assert hit.headers["upstash-message-id"] == result.message_id
    queue = client.queue.get("jobs")
    assert (queue.name, queue.parallelism, queue.paused) == ("jobs", 2, False)
    client.queue.pause("jobs")
    assert client.queue.get("jobs").paused
    client.queue.resume("jobs")
    assert [q.name for q in client.queue.list()] == ["jobs"]
    client.queue.delete("jobs")
    assert client.queue.list() == []


def test_batch(worker, client: QStash, receiver: Receiver):
    results = client.message.batch_json(
        [
            {"url": receiver.url("/b1"), "body": {"n": 1}},
            {
                "url": receiver.url("/b2"),
                "body": {"n": 2},
                "queue": "batched",
                "headers": {"X-N": "2"},
            },
        ]
    )
    assert len(results) == 2
    [one] = receiver.wait("/b1", 1)
    [two] = receiver.wait("/b2", 1)
    verify(client, one, receiver.url("/b1"))
    verify(client, two, receiver.url("/b2"))
    assert json.loads(two.body) == {"n": 2} and two.headers["x-n"] == "2"


def test_a_schedule_fires_and_can_be_paused_and_deleted(worker, client: QStash, receiver: Receiver):
    url = receiver.url("/cron?s=1")
    schedule_id = client.schedule.create_json(
        destination=url, cron="* * * * *", body={"tick": True}, retries=0
    )
    schedule = client.schedule.get(schedule_id)
    assert schedule.destination == url and not schedule.paused
    assert schedule.next_schedule_time is not None
    # Beat fires once a minute: call what it calls.
    fired = message_schedules.fire(schedule_id, _now())
    assert fired.published and not fired.skipped
    [hit] = receiver.wait("/cron", 1)
    verify(client, hit, url)
    assert hit.headers["upstash-schedule-id"] == schedule_id
    client.schedule.pause(schedule_id)
    assert client.schedule.get(schedule_id).paused
    assert message_schedules.fire(schedule_id, _now()).skipped == "paused"
    client.schedule.resume(schedule_id)
    client.schedule.delete(schedule_id)
    assert client.schedule.list() == []


def test_the_dlq_read_and_retried(
    worker, client: QStash, receiver: Receiver, token: str, base_url: str
):
    receiver.answer("/dead", (500, {"X-Why": "down"}, b"broken"))
    url = receiver.url("/dead")
    result = client.message.publish_json(url=url, body={"n": 1}, retries=0)
    receiver.wait("/dead", 1)
    entries = wait_for(lambda: client.dlq.list().messages, message="the DLQ entry")
    [entry] = entries
    assert entry.message_id == result.message_id and entry.response_status == 500
    assert entry.response_body == "broken" and entry.url == url
    assert client.dlq.get(entry.dlq_id).message_id == result.message_id
    # The Python SDK has no retry: the REST call, as the JS SDK makes it.
    response = httpx.post(
        f"{base_url}/v2/dlq/retry",
        params={"dlqIds": entry.dlq_id},
        headers={"Authorization": f"Bearer {token}", "Upstash-Retries": "2"},
    )
    assert response.status_code == 201, response.text
    [retried] = response.json()["responses"]
    first, second = receiver.wait("/dead", 2)
    verify(client, second, url)
    assert second.headers["upstash-message-id"] == retried["messageId"] != result.message_id
    assert client.dlq.list().messages == []
    # A second dead letter, deleted rather than retried.
    receiver.answer("/dead", (500, {}, b"again"))
    client.message.publish_json(url=url, body={"n": 2}, retries=0)
    [entry] = wait_for(lambda: client.dlq.list().messages, message="the second entry")
    assert client.dlq.delete_many([entry.dlq_id]) == 1
    assert client.dlq.list().messages == []


def test_cancel_and_logs(worker, client: QStash, receiver: Receiver):
    later = client.message.publish_json(url=receiver.url("/later"), body={}, delay="1h")
    assert client.message.get(later.message_id).message_id == later.message_id
    client.message.cancel(later.message_id)
    assert Message.objects.get(pk=later.message_id).cancelled_at is not None
    with pytest.raises(QStashError):  # gone, as QStash removes a cancelled message
        client.message.get(later.message_id)
    others = [
        client.message.publish_json(url=receiver.url("/later"), body={}, delay=3600)
        for _ in range(2)
    ]
    assert client.message.cancel_many([m.message_id for m in others]) == 2
    last = client.message.publish_json(url=receiver.url("/later"), body={}, delay=3600)
    assert client.message.cancel_all() == 1
    for message in [*others, last]:
        with pytest.raises(QStashError):
            client.message.get(message.message_id)
    delivered = client.message.publish_json(url=receiver.url("/now"), body={})
    receiver.wait("/now", 1)
    logs = wait_for(
        lambda: [
            log
            for log in client.log.list(filter={"message_id": delivered.message_id}).logs
            if log.state is LogState.DELIVERED
        ],
        message="the DELIVERED event",
    )
    assert logs[0].url == receiver.url("/now")
    cancelled = client.log.list(filter={"message_id": later.message_id}).logs
    assert [log.state for log in cancelled] == [LogState.CANCELED, LogState.CREATED]
    assert receiver.at("/later") == []


def test_cancel_all_cancels_every_pending_message(client: QStash, monkeypatch):
    from django_bgjobs.delivery.api.views import messages as views

    monkeypatch.setattr(views, "CANCEL_MAX", 2)  # the live server runs in this process
    for _ in range(3):
        client.message.publish_json(url="https://example.com/later", body={}, delay="1h")
    # One call, as the SDK documents it, in batches of the limit on the server.
    assert [client.message.cancel_all() for _ in range(2)] == [3, 0]
    assert not Message.objects.filter(cancelled_at__isnull=True).exists()


def test_the_flow_control_api(no_session_worker, client: QStash):
    """client.flow_control: a key's figures, pause and resume; global parallelism; pin, unpin
    and reset_rate answered 501 with why (not offered here)."""
    from qstash.errors import QStashError

    flow = {"key": "tenant-fc", "parallelism": 2, "rate": 5, "period": 60}
    for _ in range(3):
        client.message.publish_json(url="https://example.com/fc", body={}, flow_control=flow)
    info = client.flow_control.get("tenant-fc")
    assert (info.key, info.parallelism_max, info.rate_max, info.rate_period) == (
        "tenant-fc",
        2,
        5,
        60,
    )
    # No worker: two let through hold the key's two places (their jobs wait), one waits.
    assert (info.parallelism_count, info.rate_count, info.wait_list_size) == (2, 2, 1)
    assert not info.is_paused and not info.is_pinned_parallelism and not info.is_pinned_rate
    client.flow_control.pause("tenant-fc")
    assert client.flow_control.get("tenant-fc").is_paused
    client.flow_control.resume("tenant-fc")
    assert not client.flow_control.get("tenant-fc").is_paused
    overall = client.flow_control.get_global_parallelism()
    assert (overall.parallelism_max, overall.parallelism_count) == (0, 0)
    with pytest.raises(QStashError, match="not found"):
        client.flow_control.get("no-such-key")
    with pytest.raises(QStashError, match="resetRate is not offered"):
        client.flow_control.reset_rate("tenant-fc")
    with pytest.raises(QStashError, match="pin is not offered"):
        client.flow_control.pin("tenant-fc", {"parallelism": 1})
    with pytest.raises(QStashError, match="unpin is not offered"):
        client.flow_control.unpin("tenant-fc", {"rate": True})


def test_a_paused_flow_control_key_lets_nothing_through_until_resumed(
    no_session_worker, client: QStash
):
    from django_bgjobs.delivery import admission

    flow = {"key": "tenant-paused", "parallelism": 5}
    client.message.publish_json(url="https://example.com/p", body={}, flow_control=flow)
    client.flow_control.pause("tenant-paused")
    second = client.message.publish_json(url="https://example.com/p", body={}, flow_control=flow)
    assert admission.admit_flow("tenant-paused") == 0
    assert Message.objects.get(pk=second.message_id).admitted_at is None
    client.flow_control.resume("tenant-paused")
    assert admission.admit_flow("tenant-paused") >= 1
    assert Message.objects.get(pk=second.message_id).admitted_at is not None


def test_key_rotation_keeps_deliveries_verifiable(worker, client: QStash, receiver: Receiver):
    before = client.signing_key.get()
    after = client.signing_key.rotate()
    assert after.current == before.next and after.next != before.next
    client.message.publish(url=receiver.url("/rotated"), body="x", content_type="text/plain")
    [hit] = receiver.wait("/rotated", 1)
    verify(client, hit, receiver.url("/rotated"))
    # A receiver still configured with the old pair accepts it too (its old next).
    QStashReceiver(current_signing_key=before.current, next_signing_key=before.next).verify(
        signature=hit.headers["upstash-signature"], body="x", url=receiver.url("/rotated")
    )


def test_errors_reach_the_sdk_as_qstash_errors(client: QStash, base_url: str):

    with pytest.raises(QStashError, match="401"):
        QStash("bgq_wrong", base_url=base_url, retry=False).signing_key.get()
    with pytest.raises(QStashError, match="404"):
        client.message.get("msg_nope")
    with pytest.raises(QStashError, match="Upstash-Retries"):
        client.message.publish(url="https://example.com/x", body="", retries=-1)


def _now():  # type: ignore[no-untyped-def]
    from django.utils import timezone

    return timezone.now()


# --- the JS SDK ----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def js_sdk(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``@upstash/qstash`` installed by npm into a temporary folder (outside the repository),
    its install scripts off: nothing but npm packages is downloaded."""
    if not shutil.which("node") or not shutil.which("npm"):
        pytest.skip("node and npm are needed for the JS SDK test")
    folder = tmp_path_factory.mktemp("qstash-js")
    (folder / "package.json").write_text('{"name": "qstash-js-test", "private": true}')
    done = subprocess.run(
        ["npm", "install", "--ignore-scripts", "--no-audit", "--no-fund", JS_SDK],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode != 0:
        pytest.skip(f"npm install {JS_SDK} failed: {done.stderr[-500:]}")
    return folder


JS_SCRIPT = r"""
const { Client } = require("@upstash/qstash");
const [baseUrl, token, hook] = process.argv.slice(2);
const client = new Client({ baseUrl, token, retry: false });
(async () => {
  const out = {};
  out.publish = await client.publishJSON({ url: hook + "/js?a=1&b=two%20words",
    body: { js: 1 }, headers: { "X-From": "js" }, retries: 1 });
  await client.urlGroups.addEndpoints({ name: "jsgroup",
    endpoints: [{ url: hook + "/jsg1", name: "one" }, { url: hook + "/jsg2" }] });
  out.group = await client.publishJSON({ urlGroup: "jsgroup", body: { g: 1 } });
  out.enqueue = await client.queue({ queueName: "jsq" }).enqueueJSON({ url: hook + "/jsq",
    body: { q: 1 } });
  out.batch = await client.batchJSON([{ url: hook + "/jsb1", body: { b: 1 } },
    { url: hook + "/jsb2", body: { b: 2 } }]);
  out.schedule = await client.schedules.create({ destination: hook + "/jscron",
    cron: "CRON_TZ=Europe/Paris */5 * * * *", body: "tick" });
  out.scheduleGet = await client.schedules.get(out.schedule.scheduleId);
  await client.schedules.pause({ schedule: out.schedule.scheduleId });
  await client.schedules.resume({ schedule: out.schedule.scheduleId });
  const later = await client.publishJSON({ url: hook + "/jslater", body: {}, delay: 3600 });
  out.cancel = await client.messages.cancel(later.messageId);
  // Bulk cancel by filters: the SDK adds count=100 to the query.
  for (const path of ["/jsbulk", "/jsbulk", "/jskeep"]) {
    await client.publishJSON({ url: hook + path, body: {}, delay: 3600, label: "jsbulk" });
  }
  out.cancelByPath = await client.messages.cancel({
    filter: { host: new URL(hook).hostname, path: "/jsbulk" } });
  out.cancelByLabel = await client.messages.cancel({ filter: { label: "jsbulk" } });
  out.message = await client.messages.get(out.publish.messageId);
  out.queues = await client.queue({ queueName: "jsq" }).get();
  out.logs = await client.logs({ filter: { messageId: later.messageId } });
  const dead = await client.publishJSON({ url: hook + "/jsdead", body: {}, retries: 0 });
  out.dead = dead;
  for (let i = 0; i < 200; i++) {
    const dlq = await client.dlq.listMessages();
    if (dlq.messages.length) { out.dlq = dlq; break; }
    await new Promise((r) => setTimeout(r, 100));
  }
  out.retry = await client.dlq.retry([out.dlq.messages[0].dlqId]);
  out.dlqAfter = await client.dlq.listMessages();
  await client.schedules.delete(out.schedule.scheduleId);
  console.log(JSON.stringify(out));
})().catch((e) => { console.error(e); process.exit(1); });
"""


def test_the_js_sdk(
    worker, js_sdk: Path, token: str, base_url: str, client: QStash, receiver: Receiver
):
    receiver.answer("/jsdead", (500, {}, b"no"))
    script = js_sdk / "run.js"
    script.write_text(JS_SCRIPT)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("QSTASH_", "UPSTASH_")) and not k.endswith("_QSTASH_URL")
    }
    done = subprocess.run(
        ["node", str(script), base_url, token, receiver.url("")],
        cwd=js_sdk,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])

    [hit] = receiver.wait("/js", 1)
    assert hit.path == "/js?a=1&b=two%20words" and json.loads(hit.body) == {"js": 1}
    assert hit.headers["x-from"] == "js"
    verify(client, hit, receiver.url("/js?a=1&b=two%20words"))
    assert out["message"]["url"] == receiver.url("/js?a=1&b=two%20words")
    assert len(out["group"]) == 2
    for path in ("/jsg1", "/jsg2", "/jsq", "/jsb1", "/jsb2"):
        [hit] = receiver.wait(path, 1)
        verify(client, hit, receiver.url(path))
        assert not any(k.startswith("upstash-telemetry") for k in hit.headers)
    assert out["scheduleGet"]["cron"] == "CRON_TZ=Europe/Paris */5 * * * *"
    assert out["cancel"] == {"cancelled": 1}
    assert out["cancelByPath"] == {"cancelled": 2} and out["cancelByLabel"] == {"cancelled": 1}
    assert out["queues"]["name"] == "jsq"
    assert [e["state"] for e in out["logs"]["logs"]] == ["CANCELED", "CREATED"]
    assert out["dlq"]["messages"][0]["messageId"] == out["dead"]["messageId"]
    [retried] = out["retry"]["responses"]
    first, second = receiver.wait("/jsdead", 2)
    verify(client, second, receiver.url("/jsdead"))
    assert second.headers["upstash-message-id"] == retried["messageId"]
    assert out["dlqAfter"]["messages"] == []
    assert receiver.at("/jslater") == [] and receiver.at("/jscron") == []
    assert receiver.at("/jsbulk") == [] and receiver.at("/jskeep") == []
