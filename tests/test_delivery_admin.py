"""The delivery admin (delivery_admin.py): messages (state, attempts with the responses escaped,
cancel and retry from the DLQ, each with its permission and history), URL groups with their
endpoints, queues with their lag, flow-control keys, API tokens (shown once, stored hashed),
signing keys (masked for all but superusers, rotate) and message schedules (pause, resume);
and ``manage.py bgjobs create-token``. Messages are delivered for real to a local server."""

from __future__ import annotations

import re
from collections.abc import Callable
from io import StringIO

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.admin.utils import quote, unquote
from django.contrib.auth.models import Permission
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from django_bgjobs.delivery import lifecycle, message_schedules
from django_bgjobs.delivery.api.tokens import authenticate, hash_token
from django_bgjobs.delivery.keys import signing_keys
from django_bgjobs.delivery.models import (
    ApiToken,
    DeliveryQueue,
    FlowControl,
    Message,
    MessageSchedule,
    SigningKeys,
    Topic,
    TopicEndpoint,
)
from django_bgjobs.delivery.publish import Flow, Publish, publish
from django_bgjobs.models import JobStatus
from django_bgjobs.testing import capture_jobs
from tests.http_receiver import Receiver

pytestmark = pytest.mark.django_db(transaction=True)

MESSAGES = reverse("admin:bgjobs_delivery_message_changelist")
EVIL = b"<script>alert('x')</script>"


def changelist(model: str) -> str:
    return reverse(f"admin:bgjobs_delivery_{model}_changelist")


def page(model: str, pk: object) -> str:
    return reverse(f"admin:bgjobs_delivery_{model}_change", args=[quote(pk)])


def rows(html: str, model: str = "message") -> dict[str, str]:
    """The changelist's rows, by primary key (from the link to the object's page)."""
    found = {}
    for row in re.findall(r"<tr>(.*?)</tr>", html, re.S):
        match = re.search(rf"/{model}/([^/]+)/change/", row)
        if match:
            found[unquote(match.group(1))] = row
    return found


def cell(row: str, column: str) -> str:
    found = re.search(rf'<t[hd] class="field-{column}"[^>]*>(.*?)</t[hd]>', row, re.S)
    assert found, column
    return found.group(1)


@pytest.fixture
def staff(client: Client, django_user_model) -> Callable[..., Client]:  # type: ignore[no-untyped-def]
    """A staff user with the given permissions (codenames), signed in."""

    def make(*codenames: str) -> Client:
        user = django_user_model.objects.create_user("staff", password="p", is_staff=True)
        user.user_permissions.add(
            *Permission.objects.filter(
                content_type__app_label__in=("django_bgjobs", "bgjobs_delivery"),
                codename__in=codenames,
            )
        )
        client.login(username="staff", password="p")
        return client

    return make


@pytest.fixture
def sent(receiver: Receiver) -> dict[str, Message]:
    """A delivered message whose destination answered HTML with an evil header, a dead one (in
    the DLQ), one queued (no worker ran it) and one waiting behind a paused queue."""
    receiver.answer("/ok", (200, {"X-Evil": "<b>bold</b>", "Content-Type": "text/html"}, EVIL))
    receiver.answer("/down", (500, {}, b"boom"), (503, {}, b"busy"))
    with capture_jobs() as captured:
        ok = publish(
            receiver.url("/ok"),
            json={"name": "<i>x</i>"},
            headers={"Authorization": "Bearer s3cret-value", "X-Trace": "t1"},
        )
        dead = publish(receiver.url("/down"), body="payload", retries=1)
        captured.run_all()
    with capture_jobs():
        queued = publish(receiver.url("/later"), body="q")
    now = timezone.now()
    DeliveryQueue.objects.create(name="held", paused=True, created_at=now, updated_at=now)
    with capture_jobs():
        waiting = publish(receiver.url("/held"), body="w", queue="held")
    found = {
        name: Message.objects.select_related("job").get(pk=pk)
        for name, pk in (("ok", ok), ("dead", dead), ("queued", queued), ("waiting", waiting))
    }
    assert found["dead"].dlq_id and found["waiting"].job is None
    return found


# --- messages ---


def test_anonymous_users_are_sent_to_login(client, sent):
    for url in (
        MESSAGES,
        page("message", sent["ok"].pk),
        changelist("apitoken"),
        changelist("signingkeys"),
        changelist("messageschedule"),
        changelist("topic"),
        changelist("deliveryqueue"),
        changelist("flowcontrol"),
    ):
        response = client.get(url)
        assert response.status_code == 302 and "/admin/login/" in response.url, url


def test_the_message_list_shows_states_and_attempts(admin_client, sent):
    found = rows(admin_client.get(MESSAGES).content.decode())
    ok, dead = found[sent["ok"].pk], found[sent["dead"].pk]
    queued, waiting = found[sent["queued"].pk], found[sent["waiting"].pk]
    assert "bgjobs-status-DELIVERED" in cell(ok, "state_display")
    assert cell(ok, "attempts_display") == "1/4"
    assert "bgjobs-status-FAILED" in cell(dead, "state_display")
    assert "failed (in DLQ)" in cell(dead, "state_display")
    assert cell(dead, "attempts_display") == "2/2"
    assert "bgjobs-status-ACTIVE" in cell(queued, "state_display")
    assert "bgjobs-status-CREATED" in cell(waiting, "state_display")
    assert cell(waiting, "queue") == "held"


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"state": "DELIVERED"}, {"ok"}),
        ({"state": "FAILED"}, {"dead"}),
        ({"state": "ACTIVE"}, {"queued"}),
        ({"state": "CREATED"}, {"waiting"}),
        ({"dlq": "in"}, {"dead"}),
        ({"queue": "held"}, {"waiting"}),
    ],
)
def test_filters(admin_client, sent, params, expected):
    listed = set(rows(admin_client.get(MESSAGES, params).content.decode()))
    assert listed == {sent[name].pk for name in expected}


def test_search_by_id_and_url(admin_client, sent):
    html = admin_client.get(MESSAGES, {"q": sent["dead"].pk}).content.decode()
    assert set(rows(html)) == {sent["dead"].pk}
    html = admin_client.get(MESSAGES, {"q": sent["ok"].url}).content.decode()
    assert set(rows(html)) == {sent["ok"].pk}


def test_the_message_list_makes_no_query_per_message(admin_client, sent, receiver):
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert admin_client.get(MESSAGES).status_code == 200
        return len(captured)

    queries()
    few = queries()
    with capture_jobs() as captured:
        for n in range(25):
            publish(receiver.url(f"/n{n}"), body=str(n), queue="held" if n % 2 else None)
        captured.run_all()
    assert queries() == few


def test_the_message_page_shows_attempts_and_responses_escaped(admin_client, sent):
    html = admin_client.get(page("message", sent["ok"].pk)).content.decode()
    assert EVIL not in html.encode() and "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in html
    assert "<b>bold</b>" not in html and "&lt;b&gt;bold&lt;/b&gt;" in html
    assert "&lt;i&gt;x&lt;/i&gt;" in html  # the request body, pretty-printed and escaped
    assert "s3cret-value" in html  # a superuser sees the forwarded credentials
    assert reverse("admin:django_bgjobs_job_change", args=[sent["ok"].job_id]) in html
    assert len(re.findall(r'<tr class="bgjobs-attempt">', html)) == 1

    html = admin_client.get(page("message", sent["dead"].pk)).content.decode()
    statuses = re.findall(r'<td class="bgjobs-attempt-status">(\d+)</td>', html)
    assert statuses == ["500", "503"]
    assert "boom" in html and "busy" in html


def test_staff_see_credentials_masked(staff, sent):
    client = staff("view_message")
    html = client.get(page("message", sent["ok"].pk)).content.decode()
    assert "s3cret-value" not in html and "shown to superusers" in html
    assert "t1" in html  # other headers are shown


def test_messages_cannot_be_added_edited_or_deleted(admin_client, sent):
    assert admin_client.get(reverse("admin:bgjobs_delivery_message_add")).status_code == 403
    assert (
        admin_client.get(
            reverse("admin:bgjobs_delivery_message_delete", args=[sent["ok"].pk])
        ).status_code
        == 403
    )
    assert 'value="delete_selected"' not in admin_client.get(MESSAGES).content.decode()


def act(client: Client, action: str, *messages: Message, **extra: str):  # type: ignore[no-untyped-def]
    return client.post(
        MESSAGES,
        {"action": action, **extra, "_selected_action": [m.pk for m in messages]},
        follow=True,
    )


def test_cancel_needs_its_permission_and_is_logged(staff, sent):
    client = staff("view_message")
    html = client.get(MESSAGES).content.decode()
    assert 'value="cancel_messages"' not in html
    assert (
        'id="bgjobs-cancel-form"'
        not in client.get(page("message", sent["queued"].pk)).content.decode()
    )
    act(client, "cancel_messages", sent["queued"])
    assert lifecycle.message_state(Message.objects.get(pk=sent["queued"].pk)) == "ACTIVE"
    assert not LogEntry.objects.exists()

    from django.contrib.auth import get_user_model

    user = get_user_model().objects.get(username="staff")
    user.user_permissions.add(Permission.objects.get(codename="cancel_message"))
    form = client.get(page("message", sent["queued"].pk)).content.decode()
    assert 'id="bgjobs-cancel-form"' in form
    response = act(
        client,
        "cancel_messages",
        sent["queued"],
        sent["waiting"],
        sent["ok"],
        _bgjobs_back=sent["queued"].pk,
    )
    assert response.redirect_chain[-1][0] == page("message", sent["queued"].pk)
    html = response.content.decode()
    assert "2 message(s) cancelled" in html and "1 message(s) skipped" in html
    for name in ("queued", "waiting"):
        assert (
            lifecycle.message_state(Message.objects.select_related("job").get(pk=sent[name].pk))
            == "CANCELLED"
        )
    assert sorted(LogEntry.objects.values_list("object_id", "change_message")) == sorted(
        [(sent["queued"].pk, "Cancelled."), (sent["waiting"].pk, "Cancelled.")]
    )


def test_retry_from_the_dlq_needs_its_permission_and_is_logged(staff, sent, receiver):
    client = staff("view_message")
    assert 'value="retry_dead_letters"' not in client.get(MESSAGES).content.decode()
    with capture_jobs() as captured:
        act(client, "retry_dead_letters", sent["dead"])
    assert captured.jobs == [] and not LogEntry.objects.exists()

    from django.contrib.auth import get_user_model

    get_user_model().objects.get(username="staff").user_permissions.add(
        Permission.objects.get(codename="retry_message")
    )
    assert 'id="bgjobs-retry-form"' in client.get(page("message", sent["dead"].pk)).content.decode()
    with capture_jobs() as captured:
        html = act(client, "retry_dead_letters", sent["dead"], sent["ok"]).content.decode()
        captured.run_all()
    [again] = Message.objects.exclude(pk__in=[m.pk for m in sent.values()]).filter(kind="message")
    assert "1 message(s) published again" in html and page("message", again.pk) in html
    assert "1 message(s) skipped: not in the dead-letter queue" in html
    assert bytes(again.body) == b"payload"
    assert receiver.at("/down")[-1].headers["upstash-message-id"] == again.pk
    assert list(LogEntry.objects.values_list("object_id", "change_message")) == [
        (sent["dead"].pk, f"Retried from the DLQ as message {again.pk}.")
    ]
    assert not lifecycle.dead_letters().filter(pk=sent["dead"].pk).exists()


# --- URL groups, queues, flow control ---


def test_url_groups_are_edited_with_their_endpoints(admin_client):
    form = {
        "name": "billing",
        "headers": '{"X-Group": "1"}',
        "endpoints-TOTAL_FORMS": "2",
        "endpoints-INITIAL_FORMS": "0",
        "endpoints-MIN_NUM_FORMS": "0",
        "endpoints-MAX_NUM_FORMS": "1000",
        "endpoints-0-url": "https://a.example.com/hook",
        "endpoints-0-name": "a",
        "endpoints-1-url": "ftp://b.example.com/",
        "endpoints-1-name": "b",
    }
    response = admin_client.post(reverse("admin:bgjobs_delivery_topic_add"), form)
    assert response.status_code == 200 and "not an http(s) URL" in response.content.decode()
    form["endpoints-1-url"] = "https://a.example.com/hook"
    response = admin_client.post(reverse("admin:bgjobs_delivery_topic_add"), form)
    assert "appears twice" in response.content.decode()
    form["endpoints-1-url"] = "https://b.example.com/hook"
    response = admin_client.post(reverse("admin:bgjobs_delivery_topic_add"), form)
    assert response.status_code == 302
    topic = Topic.objects.get(name="billing")
    assert topic.headers == {"X-Group": "1"} and topic.created_at is not None
    assert sorted(topic.endpoints.values_list("name", flat=True)) == ["a", "b"]
    row = rows(admin_client.get(changelist("topic")).content.decode(), "topic")[str(topic.pk)]
    assert cell(row, "endpoint_count") == "2"


def test_queues_show_their_lag_and_take_new_parallelism(admin_client, sent, no_session_worker):
    # no_session_worker: its dispatcher would admit the waiting message once the queue resumes.
    url = changelist("deliveryqueue")
    held = DeliveryQueue.objects.get(name="held")
    row = rows(admin_client.get(url).content.decode(), "deliveryqueue")[str(held.pk)]
    assert cell(row, "lag") == "1" and cell(row, "active") == "0"
    edit = {
        "form-TOTAL_FORMS": "1",
        "form-INITIAL_FORMS": "1",
        "form-MIN_NUM_FORMS": "0",
        "form-MAX_NUM_FORMS": "1000",
        "form-0-id": str(held.pk),
        "_save": "Save",
    }
    response = admin_client.post(url, {**edit, "form-0-parallelism": "0"})
    assert response.status_code == 200  # refused: the page again, with the error
    assert DeliveryQueue.objects.get(pk=held.pk).parallelism == 1
    response = admin_client.post(url, {**edit, "form-0-parallelism": "3"})  # paused unticked
    assert response.status_code == 302
    held.refresh_from_db()
    assert (held.parallelism, held.paused) == (3, False)
    assert LogEntry.objects.filter(object_id=str(held.pk)).exists()
    # Waiting messages keep their queue from being deleted, alone or in a bulk delete.
    delete = reverse("admin:bgjobs_delivery_deliveryqueue_delete", args=[held.pk])
    assert "messages are waiting in it" in admin_client.get(delete).content.decode()
    admin_client.post(delete, {"post": "yes"})
    now = timezone.now()
    idle = DeliveryQueue.objects.create(name="idle", created_at=now, updated_at=now)
    html = admin_client.post(
        url, {"action": "delete_selected", "post": "yes", "_selected_action": [held.pk, idle.pk]}
    ).content.decode()
    assert "messages are waiting in it" in html
    assert set(DeliveryQueue.objects.values_list("name", flat=True)) == {"held", "idle"}
    admin_client.post(
        url, {"action": "delete_selected", "post": "yes", "_selected_action": [idle.pk]}
    )
    assert set(DeliveryQueue.objects.values_list("name", flat=True)) == {"held"}


def test_flow_control_keys_are_listed_with_their_lag(admin_client, receiver):
    with capture_jobs():
        for n in range(3):
            publish(
                receiver.url("/f"), body=str(n), flow_control=Flow("tenant", rate=1, period=3600)
            )
    flow = FlowControl.objects.get(key="tenant")
    row = rows(admin_client.get(changelist("flowcontrol")).content.decode(), "flowcontrol")[
        str(flow.pk)
    ]
    assert (cell(row, "rate"), cell(row, "lag"), cell(row, "active")) == ("1", "2", "1")
    assert admin_client.get(reverse("admin:bgjobs_delivery_flowcontrol_add")).status_code == 403


def test_an_operator_pins_a_keys_limits_and_resets_its_rate(admin_client):
    with capture_jobs():
        publish("https://example.com/f", body="", flow_control=Flow("tenant", rate=1, period=60))
    flow = FlowControl.objects.get(key="tenant")
    form = {"parallelism": "3", "pinned_parallelism": "on", "rate": "1", "period": "60"}
    admin_client.post(page("flowcontrol", flow.pk), form)
    flow.refresh_from_db()
    assert (flow.parallelism, flow.pinned_parallelism, flow.pinned_rate) == (3, True, False)
    with capture_jobs():
        publish(
            "https://example.com/f", body="", flow_control=Flow("tenant", parallelism=9, rate=2)
        )
    flow.refresh_from_db()
    assert (flow.parallelism, flow.rate) == (3, 2)  # the pinned one stays, the other follows
    row = rows(admin_client.get(changelist("flowcontrol")).content.decode(), "flowcontrol")
    assert cell(row[str(flow.pk)], "pinned") == "parallelism"
    admin_client.post(
        changelist("flowcontrol"), {"action": "reset_rate", "_selected_action": [flow.pk]}
    )
    flow.refresh_from_db()
    assert flow.rate_reset_at is not None
    assert LogEntry.objects.filter(object_id=str(flow.pk)).count() == 2  # the pin, the reset
    html = admin_client.post(page("flowcontrol", flow.pk), {**form, "parallelism": "0"})
    assert "greater than or equal to 1" in html.content.decode()
    assert FlowControl.objects.get(pk=flow.pk).parallelism == 3


# --- API tokens ---


def test_a_token_added_in_the_admin_is_shown_once_and_stored_hashed(admin_client):
    response = admin_client.post(
        reverse("admin:bgjobs_delivery_apitoken_add"), {"name": "ci", "user": ""}
    )
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    html = response.content.decode()
    raw = re.search(r'<pre id="bgjobs-new-token"[^>]*>([^<]+)</pre>', html).group(1)
    assert html.count(raw) == 1
    token = ApiToken.objects.get(name="ci")
    assert token.token_hash == hash_token(raw) and raw.startswith(token.prefix)
    assert authenticate(raw) == token
    stored = " ".join(str(v) for v in ApiToken.objects.values().get())
    assert raw not in stored
    assert raw not in " ".join(LogEntry.objects.values_list("change_message", flat=True))
    assert LogEntry.objects.get().object_id == str(token.pk)
    for url in (page("apitoken", token.pk), changelist("apitoken")):
        assert raw not in admin_client.get(url).content.decode()


def test_tokens_can_be_deactivated(admin_client):
    from django_bgjobs.delivery.api.tokens import create_token

    token, raw = create_token("old")
    admin_client.post(
        changelist("apitoken"), {"action": "deactivate", "_selected_action": [token.pk]}
    )
    assert authenticate(raw) is None
    assert LogEntry.objects.get().change_message == "Deactivated."


def test_the_create_token_command_prints_the_token_once(django_user_model):
    owner = django_user_model.objects.create_user("robot")
    out = StringIO()
    call_command("bgjobs", "create-token", "deploys", "--user", "robot", stdout=out)
    raw = out.getvalue().strip().splitlines()[-1]
    token = authenticate(raw)
    assert token is not None and token.name == "deploys" and token.user == owner
    assert out.getvalue().count(raw) == 1 and token.token_hash == hash_token(raw)
    with pytest.raises(CommandError, match="no user is named 'ghost'"):
        call_command("bgjobs", "create-token", "x", "--user", "ghost", stdout=StringIO())


# --- signing keys ---


def test_superusers_see_the_keys_and_others_only_their_end(admin_client, staff):
    keys = signing_keys()
    html = admin_client.get(changelist("signingkeys")).content.decode()
    assert keys.current in html and keys.next in html
    client = staff("view_signingkeys")
    for url in (changelist("signingkeys"), page("signingkeys", keys.pk)):
        html = client.get(url).content.decode()
        assert keys.current not in html and keys.next not in html, url
        assert keys.standard_secret not in html
        assert keys.current[-4:] in html


def test_the_keys_list_makes_the_row_on_first_use(admin_client):
    assert not SigningKeys.objects.exists()
    assert admin_client.get(changelist("signingkeys")).status_code == 200
    assert SigningKeys.objects.count() == 1


def test_rotate_needs_its_permission_and_is_logged(staff):
    before = signing_keys()
    client = staff("view_signingkeys")
    assert 'value="rotate_keys"' not in client.get(changelist("signingkeys")).content.decode()
    assert (
        'id="bgjobs-rotate-form"' not in client.get(page("signingkeys", before.pk)).content.decode()
    )
    client.post(
        changelist("signingkeys"), {"action": "rotate_keys", "_selected_action": [before.pk]}
    )
    assert signing_keys().current == before.current and not LogEntry.objects.exists()

    from django.contrib.auth import get_user_model

    get_user_model().objects.get(username="staff").user_permissions.add(
        Permission.objects.get(codename="rotate_signingkeys")
    )
    html = client.get(page("signingkeys", before.pk)).content.decode()
    assert 'id="bgjobs-rotate-form"' in html and "DELIVERY_KEY_OVERLAP" in html
    response = client.post(
        changelist("signingkeys"),
        {"action": "rotate_keys", "_selected_action": [before.pk], "_bgjobs_back": before.pk},
        follow=True,
    )
    assert response.redirect_chain[-1][0] == page("signingkeys", before.pk)
    after = signing_keys()
    assert (after.current, after.previous) == (before.next, before.current)
    assert LogEntry.objects.get().change_message == "Rotated the signing keys."
    html = response.content.decode()
    assert "Keys rotated" in html and "accepted by this project" in html


# --- message schedules ---


@pytest.fixture
def schedules() -> dict[str, MessageSchedule]:
    daily = message_schedules.create(
        "https://hooks.example.com/daily",
        "CRON_TZ=Europe/Paris 0 9 * * *",
        Publish("x", body=b'{"a": "<b>"}', headers={"X-Api-Key": "k-123"}),
        schedule_id="daily",
    )
    often = message_schedules.create("https://hooks.example.com/often", "*/5 * * * *", Publish("x"))
    message_schedules.pause(often.id)
    return {"daily": daily, "often": often}


def test_the_schedules_list_shows_state_and_next_run(admin_client, schedules):
    found = rows(
        admin_client.get(changelist("messageschedule")).content.decode(), "messageschedule"
    )
    daily, often = found["daily"], found[schedules["often"].id]
    assert "active" in cell(daily, "state_display")
    upcoming = message_schedules.next_run(schedules["daily"])
    assert upcoming is not None
    assert timezone.localtime(upcoming).strftime("%Y-%m-%d %H:%M:%S") in cell(
        daily, "next_run_display"
    )
    assert "paused" in cell(often, "state_display")
    assert cell(often, "next_run_display") == "paused"
    assert cell(daily, "last_fired_display") == "never"

    with capture_jobs():
        fired = message_schedules.fire("daily", timezone.now())
    row = rows(admin_client.get(changelist("messageschedule")).content.decode(), "messageschedule")[
        "daily"
    ]
    assert page("message", fired.published[0].message_id) in cell(row, "last_message_display")
    html = admin_client.get(page("messageschedule", "daily")).content.decode()
    assert "&lt;b&gt;" in html and "k-123" in html


def test_schedule_headers_are_masked_for_staff(staff, schedules):
    client = staff("view_messageschedule")
    html = client.get(page("messageschedule", "daily")).content.decode()
    assert "k-123" not in html and "X-Api-Key" in html


def test_pause_and_resume_need_the_change_permission_and_are_logged(staff, schedules):
    client = staff("view_messageschedule")
    url = changelist("messageschedule")
    assert 'value="pause_schedules"' not in client.get(url).content.decode()
    client.post(url, {"action": "pause_schedules", "_selected_action": ["daily"]})
    assert not MessageSchedule.objects.get(pk="daily").paused

    from django.contrib.auth import get_user_model

    get_user_model().objects.get(username="staff").user_permissions.add(
        Permission.objects.get(codename="change_messageschedule")
    )
    html = client.post(
        url,
        {"action": "pause_schedules", "_selected_action": ["daily", schedules["often"].id]},
        follow=True,
    ).content.decode()
    assert "1 schedule(s) paused" in html and "1 schedule(s) were paused already" in html
    assert not PeriodicTask.objects.get(name="bgjobs-message:daily").enabled
    client.post(url, {"action": "resume_schedules", "_selected_action": ["daily"]})
    assert PeriodicTask.objects.get(name="bgjobs-message:daily").enabled
    assert list(LogEntry.objects.order_by("pk").values_list("object_id", "change_message")) == [
        ("daily", "Paused."),
        ("daily", "Resumed."),
    ]


def test_deleting_a_schedule_removes_its_beat_task(admin_client, schedules):
    response = admin_client.post(
        reverse("admin:bgjobs_delivery_messageschedule_delete", args=["daily"]), {"post": "yes"}
    )
    assert response.status_code == 302
    assert not MessageSchedule.objects.filter(pk="daily").exists()
    assert not PeriodicTask.objects.filter(name="bgjobs-message:daily").exists()
    assert PeriodicTask.objects.filter(name=f"bgjobs-message:{schedules['often'].id}").exists()


def test_every_delivery_page_renders(admin_client, sent, schedules):
    now = timezone.now()
    topic = Topic.objects.create(name="g", created_at=now, updated_at=now)
    TopicEndpoint.objects.create(topic=topic, url="https://g.example.com/")
    for model, pk in (
        ("message", sent["waiting"].pk),
        ("topic", topic.pk),
        ("deliveryqueue", DeliveryQueue.objects.get().pk),
        ("messageschedule", "daily"),
        ("signingkeys", signing_keys().pk),
    ):
        assert admin_client.get(changelist(model)).status_code == 200, model
        assert admin_client.get(page(model, pk)).status_code == 200, model
    assert admin_client.get(reverse("admin:bgjobs_delivery_apitoken_add")).status_code == 200
    assert admin_client.get(reverse("admin:index")).status_code == 200


def test_a_job_status_change_is_the_messages_state(admin_client, sent):
    """No copy of the state is kept: retrying the dead delivery job shows the message active."""
    from django_bgjobs import states

    job = sent["dead"].job
    assert job is not None and job.status == JobStatus.DEAD
    with capture_jobs():  # not to the broker: a session worker would take it at once
        states.retry(job)
    row = rows(admin_client.get(MESSAGES).content.decode())[sent["dead"].pk]
    assert "bgjobs-status-ACTIVE" in cell(row, "state_display")


@pytest.mark.django_db(transaction=True)
def test_a_delivery_jobs_page_links_to_its_message(admin_client, receiver):
    from django_bgjobs.testing import capture_jobs

    with capture_jobs():
        message_id = publish(receiver.url("/linked"), body="x")
    message = Message.objects.get(pk=message_id)
    page = admin_client.get(reverse("admin:django_bgjobs_job_change", args=[message.job_id]))
    assert page.status_code == 200
    link = reverse("admin:bgjobs_delivery_message_change", args=[quote(message_id)])
    assert link in page.content.decode()
