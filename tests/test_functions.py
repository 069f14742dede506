"""Durable functions on a real worker: events, memoized steps, sleeps, waits, cancel_on, invoke."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from django_bgjobs import DurableFunction, PayloadError, send_events
from django_bgjobs.functions.matching import deliver_stragglers
from django_bgjobs.maintenance import prune
from django_bgjobs.models import EventRecord, EventWait, Job, JobStatus, RunStatus, Step
from django_bgjobs.scheduling.beat import fire
from django_bgjobs.scheduling.sync import sync
from tests import functions as f
from tests.conftest import wait_for
from tests.models import Effect

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def run_of(function: DurableFunction, **match: object) -> Job:
    return wait_for(lambda: Job.objects.filter(name=function.name, **match).first(), 10)


def effects(prefix: str) -> list[str]:
    return sorted(Effect.objects.filter(key__startswith=prefix).values_list("key", flat=True))


def steps(job: Job) -> list[tuple[str, str, int]]:
    return list(Step.objects.filter(job=job).values_list("name", "status", "attempts"))


def parked_at(job: Job, step: str) -> Job:
    """Wait until the run parks on ``step`` (its job waiting, the step not finished)."""
    wait_for(
        lambda: (
            Job.objects.filter(pk=job.pk, status=JobStatus.SCHEDULED).exists()
            and Step.objects.filter(job=job, name=step, status__in=["waiting", "sleeping"]).exists()
        ),
        20,
        message=f"run {job.pk} parked on {step}",
    )
    return Job.objects.get(pk=job.pk)


def test_onboarding_end_to_end(worker):
    """Every step runs once; the flaky step retries alone; the run sleeps and waits without a
    worker; the login event wakes it; send_event fans out to another function."""
    f.SignedUp(user_id=1, email="ann@example.com").send()
    run = run_of(f.onboarding)
    parked_at(run, "first-login")
    f.LoggedIn(user_id=2).send()  # another user's login: not this run's
    f.LoggedIn(user_id=1).send()
    run.wait_until_finished(timeout=30)
    assert (run.status, run.result) == (JobStatus.SUCCEEDED, {"flaky_calls": 3, "opened": True})
    assert effects("create:") == ["create:1"]
    assert effects("flaky:") == ["flaky:1"] * 3
    assert effects("after:") == ["after:1:login"]
    assert steps(run) == [
        ("create-workspace", "succeeded", 1),
        ("flaky-api", "succeeded", 3),
        ("nap", "succeeded", 1),
        ("first-login", "succeeded", 0),
        ("after-login", "succeeded", 1),
        ("crm", "succeeded", 1),
    ]
    statuses = list(run.runs.order_by("attempt").values_list("status", flat=True))
    assert statuses.count(RunStatus.FAILED) == 2  # the flaky step's two failures
    assert statuses.count(RunStatus.PARKED) == 2  # the sleep and the wait
    assert statuses[-1] == RunStatus.SUCCEEDED
    login = Step.objects.get(job=run, name="first-login")
    assert login.matched_event.name == "test/logged_in"
    assert login.matched_event.data == {"user_id": 1}
    crm = run_of(f.crm_sync).wait_until_finished(timeout=20)
    assert crm.result == "crm:1:new"
    assert not EventWait.objects.filter(job=run).exists()  # the run's waits went with it


def test_an_event_sent_before_the_wait_began_still_matches(worker):
    """The race Inngest leaves open: the login commits after the run started but before its
    wait is in place. The wait looks back to the run's start."""
    with transaction.atomic():
        f.SignedUp(user_id=10).send()
        f.LoggedIn(user_id=10).send()
    run = run_of(f.onboarding).wait_until_finished(timeout=30)
    assert run.status == JobStatus.SUCCEEDED and run.result["opened"] is True
    assert effects("after:10") == ["after:10:login"]
    parks = run.runs.filter(status=RunStatus.PARKED).count()
    assert parks == 1  # the nap only: the wait found the login at once, it never parked


def test_a_login_before_the_run_started_does_not_count(worker):
    f.LoggedIn(user_id=11).send()
    f.QuickWait(user_id=11).send()
    run = run_of(f.quick_wait).wait_until_finished(timeout=20)
    assert run.result == "quick:11:timeout"


def test_a_wait_times_out_with_none(worker):
    f.QuickWait(user_id=12).send()
    run = run_of(f.quick_wait).wait_until_finished(timeout=20)
    assert run.status == JobStatus.SUCCEEDED and run.result == "quick:12:timeout"
    assert Step.objects.get(job=run, name="login").matched_event is None


def test_a_rolled_back_transaction_sends_nothing_and_starts_nothing(worker):
    with pytest.raises(RuntimeError), transaction.atomic():
        f.SignedUp(user_id=20).send()
        raise RuntimeError("the view failed")
    assert not EventRecord.objects.filter(name="test/signed_up").exists()
    assert not Job.objects.filter(name=f.onboarding.name).exists()


def test_cancel_on_cancels_a_waiting_run(worker):
    f.SignedUp(user_id=30).send()
    f.SignedUp(user_id=31).send()
    runs = {r.kwargs["event"]["data"]["user_id"]: r for r in _runs(f.onboarding, 2)}
    parked_at(runs[30], "first-login")
    f.UserDeleted(user_id=30).send()
    cancelled = wait_for(
        lambda: Job.objects.filter(pk=runs[30].pk, status=JobStatus.CANCELLED).first(), 10
    )
    assert cancelled.finished_at is not None
    assert Job.objects.get(pk=runs[31].pk).status != JobStatus.CANCELLED  # another user's run
    f.LoggedIn(user_id=30).send()  # too late: nothing runs again
    f.LoggedIn(user_id=31).send()
    Job.objects.get(pk=runs[31].pk).wait_until_finished(timeout=30)
    assert effects("after:30") == []


def test_a_step_name_used_twice_stops_the_run_with_a_clear_error(worker):
    run = f.same_name_twice.enqueue().wait_until_finished(timeout=20)
    assert run.status == JobStatus.DEAD
    assert "step name 'twice' is used twice" in run.error
    assert effects("twice:") == ["twice:1"]  # the first ran; the duplicate never did


def test_a_changed_order_of_steps_names_both_steps(worker):
    run = f.two_steps.using(delay=timedelta(seconds=1)).enqueue()
    Step.objects.create(
        job=run,
        name="renamed",
        position=0,
        kind="run",
        status="succeeded",
        started_at=run.created_at,
    )
    run.wait_until_finished(timeout=20)
    assert run.status == JobStatus.DEAD
    assert "began with 'renamed' there" in run.error and "'first'" in run.error
    assert effects("two:") == []


def test_a_non_retriable_step_ends_the_run_without_redoing_earlier_steps(worker):
    run = f.gives_up_at_once.enqueue().wait_until_finished(timeout=20)
    assert run.status == JobStatus.DEAD
    assert "step 'declined' failed (attempt 1 of 5)" in run.error
    assert effects("gives-up:") == ["gives-up:before"]


def test_invoke_waits_for_the_other_run_and_gets_its_result(worker):
    f.InvokeChild(user_id=21).send()
    parent = run_of(f.parent).wait_until_finished(timeout=30)
    assert (parent.status, parent.result) == (JobStatus.SUCCEEDED, 42)
    assert effects("parent:") == ["parent:21:42"]
    child_run = Step.objects.get(job=parent, name="call-child").child
    assert child_run.name == f.child.name and child_run.result == 42


def test_a_worker_killed_mid_step_resumes_the_run_without_redoing_finished_steps(worker):
    run = f.crashes_mid_step.enqueue().wait_until_finished(timeout=60)
    assert (run.status, run.result) == (JobStatus.SUCCEEDED, "crash:after")
    assert effects("crash:") == ["crash:after", "crash:before", "crash:crash", "crash:crash"]
    assert list(run.runs.order_by("attempt").values_list("status", flat=True)) == [
        RunStatus.LOST,
        RunStatus.SUCCEEDED,
    ]
    assert steps(run) == [
        ("before", "succeeded", 1),
        ("crash", "succeeded", 1),  # its first try died with the process: nothing recorded
        ("after", "succeeded", 1),
    ]
    assert worker.proc.poll() is None


def test_a_schedule_starts_a_run_without_an_event(worker):
    sync()
    at = datetime(2026, 12, 7, 9, 0, 1, tzinfo=ZoneInfo("Europe/Paris"))
    fired = fire(f.morning_digest.name, at)
    assert fired is not None and len(fired.enqueued) == 1
    run = Job.objects.get(name=f.morning_digest.name).wait_until_finished(timeout=20)
    assert (run.status, run.kwargs, run.result) == (JobStatus.SUCCEEDED, {}, f"digest:{run.pk}")


def test_enqueue_starts_a_run_with_its_event_and_sends_nothing(worker):
    run = f.crm_sync.enqueue(f.CrmSync(user_id=5, tags=["x", "y"])).wait_until_finished()
    assert run.result == "crm:5:x,y"
    assert not EventRecord.objects.filter(name="test/crm_sync").exists()


def _runs(function: DurableFunction, count: int) -> list[Job]:
    return wait_for(
        lambda: (
            (found := list(Job.objects.filter(name=function.name)))
            and len(found) == count
            and found
        ),
        10,
    )


# --- without a worker: events, their payloads, delivery ----------------------------------------


def test_a_payload_that_does_not_fit_is_refused_naming_the_field():
    with pytest.raises(PayloadError, match=r"SignedUp.user_id must be int, not str 'x'"):
        f.SignedUp(user_id="x")  # type: ignore[arg-type]
    with pytest.raises(PayloadError, match=r"CrmSync.tags\[1\] must be str, not int 2"):
        f.CrmSync(user_id=1, tags=["a", 2])  # type: ignore[list-item]
    with pytest.raises(PayloadError, match="has no field 'name'"):
        f.SignedUp.from_payload({"user_id": 1, "name": "x"})
    assert not EventRecord.objects.exists()


def test_an_event_nobody_listens_to_is_stored_and_delivered():
    [record] = send_events([f.NobodyListens(note=None)])
    assert EventRecord.objects.get(pk=record.pk).data == {"note": None, "extra": None}
    assert EventRecord.objects.get(pk=record.pk).delivered_at is not None  # after the commit
    assert not Job.objects.exists()


def test_the_dispatcher_delivers_an_event_whose_sender_died(no_session_worker):
    """The sender's process died between its commit and the delivery: the dispatcher's pass
    delivers it once it is DELIVERY_GRACE old."""
    old = timezone.now() - timedelta(seconds=10)
    record = EventRecord.objects.create(name="test/logged_in", data={"user_id": 1}, created_at=old)
    assert deliver_stragglers() == 0  # no run waits for it; it is marked delivered anyway
    assert EventRecord.objects.get(pk=record.pk).delivered_at is not None


def test_a_retried_run_resumes_at_its_failed_step_with_a_fresh_budget(worker):
    run = f.gives_up_at_once.enqueue().wait_until_finished(timeout=20)
    assert run.status == JobStatus.DEAD
    assert run.retry()
    run.wait_until_finished(timeout=20)
    assert run.status == JobStatus.DEAD  # the card is still declined
    assert "step 'declined' failed (attempt 1 of 5)" in run.error  # its budget started again
    assert effects("gives-up:") == ["gives-up:before"]  # the step before it did not run again


# --- the admin ----------------------------------------------------------------------------------


def test_the_run_page_shows_its_steps_and_replays_from_one(worker, admin_client):
    run = f.two_steps.enqueue().wait_until_finished(timeout=20)
    page = admin_client.get(reverse("admin:django_bgjobs_job_change", args=[run.pk]))
    html = page.content.decode()
    assert 'data-step="first"' in html and 'data-step="second"' in html
    assert html.count("Replay from here") == 2
    response = admin_client.post(
        reverse("admin:django_bgjobs_job_replay_from", args=[run.pk, 1]), follow=False
    )
    copy = Job.objects.exclude(pk=run.pk).get(name=f.two_steps.name)
    assert response.status_code == 302 and str(copy.pk) in response["Location"]
    copy.wait_until_finished(timeout=20)
    assert copy.result == "two:second"
    assert effects("two:") == ["two:first", "two:second", "two:second"]  # first: kept, not run
    assert steps(copy) == [("first", "succeeded", 1), ("second", "succeeded", 1)]
    assert LogEntry.objects.filter(object_id=str(copy.pk)).exists()


def test_replay_from_a_step_needs_the_replay_permission(worker, client, django_user_model):
    run = f.two_steps.enqueue().wait_until_finished(timeout=20)
    staff = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="view_job"))
    client.force_login(staff)
    page = client.get(reverse("admin:django_bgjobs_job_change", args=[run.pk]))
    assert page.status_code == 200 and "Replay from here" not in page.content.decode()
    url = reverse("admin:django_bgjobs_job_replay_from", args=[run.pk, 1])
    assert client.post(url).status_code == 403
    assert Job.objects.filter(name=f.two_steps.name).count() == 1


def test_events_are_listed_and_found_by_payload_field(admin_client):
    f.NobodyListens(note="seventy-seven").send()
    f.NobodyListens(note="other").send()
    listing = reverse("admin:django_bgjobs_eventrecord_changelist")
    found = admin_client.get(listing, {"q": "note=seventy-seven"}).content.decode()
    assert "seventy-seven" in found and "other" not in found
    by_name = admin_client.get(listing, {"q": "nobody_listens"}).content.decode()
    assert "seventy-seven" in by_name and "other" in by_name


def test_run_all_runs_a_function_to_its_end_skipping_its_sleep_and_timing_out_its_wait():
    from django_bgjobs.testing import capture_jobs

    with capture_jobs() as captured:
        f.SignedUp(user_id=8).send()
        captured.run_all()
    run = Job.objects.get(name=f.onboarding.name)
    assert (run.status, run.result) == (JobStatus.SUCCEEDED, {"flaky_calls": 3, "opened": False})
    assert Job.objects.get(name=f.crm_sync.name).status == JobStatus.SUCCEEDED


def test_retry_after_in_a_step_spends_none_of_its_attempts():
    from django_bgjobs.testing import capture_jobs

    with capture_jobs() as captured:
        run = f.snoozes_once.enqueue()
        captured.run_all()
    run = Job.objects.get(pk=run.pk)
    assert (run.status, run.result) == (JobStatus.SUCCEEDED, 2)
    assert steps(run) == [("call-api", "succeeded", 1)]


def test_a_run_kept_by_its_idempotency_key_gets_no_second_set_of_cancel_waits():
    from django_bgjobs.testing import capture_jobs

    keyed = f.onboarding.using(idempotency_key="signup-7")
    with capture_jobs():
        first = keyed.enqueue(f.SignedUp(user_id=7))
        again = keyed.enqueue(f.SignedUp(user_id=7))
    assert again.pk == first.pk
    assert list(EventWait.objects.values_list("job_id", "event_name")) == [
        (first.pk, "test/user_deleted")
    ]


def test_an_event_and_the_runs_it_starts_are_one_insert_on_postgresql():
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from django_bgjobs.testing import capture_jobs

    with capture_jobs(), transaction.atomic(), CaptureQueriesContext(connection) as queries:
        f.CrmSync(user_id=3, tags=[]).send()
    inserts = [q["sql"] for q in queries.captured_queries if "INSERT" in q["sql"]]
    assert len(inserts) == (1 if connection.vendor == "postgresql" else 2)
    assert Job.objects.get(name=f.crm_sync.name).kwargs["event"]["data"] == {
        "user_id": 3,
        "tags": [],
    }


def test_a_value_json_cannot_store_is_refused_when_the_event_is_made():
    with pytest.raises(PayloadError, match="NobodyListens"):
        f.NobodyListens(note=None, extra={"when": timezone.now()})


def test_prune_takes_a_run_with_its_steps_and_keeps_the_run_it_invoked_apart(worker):
    f.InvokeChild(user_id=4).send()
    parent = run_of(f.parent).wait_until_finished(timeout=30)
    child = Step.objects.get(job=parent, name="call-child").child
    Job.objects.filter(pk=child.pk).update(finished_at=timezone.now() - timedelta(days=30))
    assert prune()["succeeded"] == 1  # the child: older than the 7 days kept
    step = Step.objects.get(job=parent, name="call-child")
    assert step.child_id is None and step.result == 8  # the parent keeps what it got
    later = timezone.now() + timedelta(days=40)
    prune(now=later)
    assert not Job.objects.filter(pk=parent.pk).exists()
    assert not Step.objects.filter(job_id=parent.pk).exists()
    assert not EventRecord.objects.filter(name="test/invoke").exists()  # old and delivered


def test_replay_of_a_run_starts_a_new_run_with_its_event_and_waits(worker, admin_client):
    f.SignedUp(user_id=50).send()
    run = run_of(f.onboarding)
    parked_at(run, "first-login")
    admin_client.post(reverse("admin:django_bgjobs_job_replay", args=[run.pk]))
    copy = Job.objects.exclude(pk=run.pk).get(name=f.onboarding.name)
    assert copy.kwargs["event"] == run.kwargs["event"]
    assert EventWait.objects.filter(job=copy, step="").count() == 1  # its cancel_on
    f.UserDeleted(user_id=50).send()  # cancels both
    for job in (run, copy):
        assert wait_for(
            lambda job=job: Job.objects.get(pk=job.pk).status == JobStatus.CANCELLED, 20
        )
