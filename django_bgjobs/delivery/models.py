"""The self-hosted QStash side: messages delivered to URLs, and what shapes their delivery.

A ``Message`` is what was published: the URL, the exact bytes and headers to send, the retry
rules, the callbacks. Its delivery is a job (``bgjobs.deliver``, one attempt per job attempt);
the job's status is the message's state. A message in a queue or under a flow-control key
waits (``admitted_at`` NULL, no job yet) until ``admission.py`` lets it through. Each HTTP
attempt leaves a ``DeliveryAttempt`` with the response's status, headers and a bounded slice
of its body.

Imported by ``django_bgjobs.models``: the app's models are all there for Django.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from django_bgjobs.conf import django_setting
from django_bgjobs.delivery.limits import MAX_FLOW_PERIOD, MAX_PARALLELISM, MAX_RATE

# The name of the job that delivers a message (deliver.py): its status is the message's state.
DELIVER_JOB = "bgjobs.deliver"


class Message(models.Model):
    id = models.CharField(
        primary_key=True,
        max_length=40,
        editable=False,
        help_text=_("msg_…, sent as Upstash-Message-Id on every attempt."),
    )
    url = models.TextField(help_text=_("The destination exactly as published (the JWT's sub)."))
    method = models.CharField(max_length=10, default="POST")
    body = models.BinaryField(blank=True)
    # Sent with every attempt as they are: Content-Type, the forwarded headers,
    # Upstash-Topic-Name, Upstash-Schedule-Id...
    headers = models.JSONField(default=dict)
    retries = models.PositiveIntegerField(
        default=3, help_text=_("Retries after the first attempt: 1 + retries attempts in all.")
    )
    retry_delay = models.CharField(
        max_length=256,
        blank=True,
        help_text=_(
            "An Upstash-Retry-Delay expression (milliseconds); empty: QStash's default backoff."
        ),
    )
    timeout = models.FloatField(null=True, blank=True, help_text=_("Seconds per attempt."))
    not_before = models.DateTimeField(null=True, blank=True)
    signature = models.CharField(
        max_length=10,
        default="qstash",
        help_text=_("How attempts are signed: qstash (Upstash-Signature) or standard (webhook-*)."),
    )
    # {"url", "method", "retries", "timeout", "delay", "retry_delay", "headers"} or None.
    callback = models.JSONField(null=True, blank=True)
    failure_callback = models.JSONField(null=True, blank=True)
    # What this message is: a published message, or the callback of another one.
    kind = models.CharField(max_length=20, default="message")  # message|callback|failure_callback
    source = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="callbacks",
        db_index=False,
    )
    topic = models.CharField(max_length=255, blank=True)
    endpoint_name = models.CharField(max_length=255, blank=True)
    queue = models.CharField(max_length=255, blank=True)
    flow_key = models.CharField(max_length=255, blank=True)
    schedule_id = models.CharField(max_length=64, blank=True)
    label = models.CharField(
        max_length=255, blank=True, help_text=_("Its labels, comma-separated.")
    )
    redact = models.JSONField(
        default=list,
        blank=True,
        help_text=_(
            "Shown as REDACTED:<sha256> outside delivery: body, header, header:<name> "
            "(Upstash-Redact-Fields)."
        ),
    )
    caller_ip = models.CharField(max_length=64, blank=True)
    # The Upstash Workflow run it is a step of (Upstash-Workflow-RunId): api/workflow_runs.py.
    workflow_run_id = models.CharField(max_length=255, blank=True, db_index=True)
    # Deduplication: the id given (Upstash-Deduplication-Id) or the content hash; a second
    # message with the same key within DELIVERY_DEDUP_WINDOW gets this message's id.
    dedup_key = models.CharField(max_length=255, null=True, blank=True)
    created_at = models.DateTimeField()
    admitted_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text=_(
            "When its queue / flow-control key let it through and its delivery job was written."
        ),
    )
    cancelled_at = models.DateTimeField(null=True, blank=True)
    # When its delivery job was seen finished. Only narrows the in-flight index: what counts
    # is the job's status (a message whose job finished is never in flight, settled or not).
    settled_at = models.DateTimeField(null=True, blank=True)
    job = models.OneToOneField(
        "django_bgjobs.Job",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="message",
    )
    # Set when it is dead-lettered (the job died): a QStash DLQ id, "<ms>-<n>".
    dlq_id = models.CharField(max_length=40, null=True, blank=True, unique=True)
    dlq_removed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["dedup_key"],
                condition=Q(dedup_key__isnull=False),
                name="bgjobs_message_unique_dedup_key",
            ),
        ]
        indexes = [
            # The dispatcher's next-due hint (admission.next_due): delayed waiting messages.
            models.Index(
                fields=["not_before"],
                condition=Q(admitted_at__isnull=True, cancelled_at__isnull=True),
                name="bgjobs_message_delayed_idx",
            ),
            # Admission: a gate's waiting messages, oldest first (ungated messages never
            # wait: they start when published).
            models.Index(
                fields=["queue", "created_at"],
                condition=Q(admitted_at__isnull=True, cancelled_at__isnull=True) & ~Q(queue=""),
                name="bgjobs_message_wait_queue_idx",
            ),
            models.Index(
                fields=["flow_key", "created_at"],
                condition=Q(admitted_at__isnull=True, cancelled_at__isnull=True, queue="")
                & ~Q(flow_key=""),
                name="bgjobs_message_wait_flow_idx",
            ),
            # Callbacks point at their source: deleting a message checks for them.
            models.Index(
                fields=["source"],
                condition=Q(source__isnull=False),
                name="bgjobs_message_source_idx",
            ),
            # In delivery: a gate's in-flight count, the settling sweep. Small: only gated
            # messages admitted and not yet seen finished are in it.
            models.Index(
                fields=["queue", "flow_key"],
                condition=Q(admitted_at__isnull=False, settled_at__isnull=True)
                & ~Q(queue="", flow_key=""),
                name="bgjobs_message_in_flight_idx",
            ),
            # A flow-control key's rate window.
            models.Index(
                fields=["flow_key", "admitted_at"],
                condition=~Q(flow_key=""),
                name="bgjobs_message_flow_idx",
            ),
        ]
        permissions = [
            ("retry_message", "Can retry dead-lettered messages"),
            ("cancel_message", "Can cancel messages"),
        ]

    def __str__(self) -> str:
        return f"{self.id} → {self.url}"


class DeliveryAttempt(models.Model):
    """One HTTP attempt at a message, with what came back."""

    id = models.BigAutoField(primary_key=True)
    message = models.ForeignKey(
        Message, on_delete=models.CASCADE, related_name="attempts", db_index=False
    )
    retried = models.PositiveIntegerField(help_text=_("Upstash-Retried of this attempt."))
    job_attempt = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    outcome = models.CharField(max_length=16)  # delivered | retry | failed | refused
    status = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        help_text=_("The response's HTTP status; empty when no response came (see error)."),
    )
    response_headers = models.JSONField(default=dict)
    response_body = models.BinaryField(blank=True)
    body_truncated = models.BooleanField(default=False)
    address = models.CharField(max_length=64, blank=True)
    error = models.TextField(blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("delivery attempt")
        ordering = ["message", "id"]
        indexes = [models.Index(fields=["message", "id"], name="bgjobs_deliveryattempt_msg_idx")]

    def __str__(self) -> str:
        return f"{self.message_id} retried={self.retried} {self.outcome}"


class Topic(models.Model):
    """A URL group: publishing to it makes one message per endpoint."""

    name = models.CharField(max_length=255, unique=True)
    headers = models.JSONField(
        default=dict,
        blank=True,
        help_text=_("Headers added to every message published to the group."),
    )
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        verbose_name = _("URL group")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class TopicEndpoint(models.Model):
    topic = models.ForeignKey(Topic, on_delete=models.CASCADE, related_name="endpoints")
    url = models.TextField()
    name = models.CharField(max_length=255, blank=True)

    class Meta:
        verbose_name = _("URL group endpoint")
        ordering = ["topic", "id"]

    def __str__(self) -> str:
        return self.name or self.url


class DeliveryQueue(models.Model):
    """A FIFO queue: at most ``parallelism`` of its messages are in delivery (retries
    included); the next one starts when one is delivered or fails for good."""

    name = models.CharField(max_length=255, unique=True)
    parallelism = models.PositiveIntegerField(default=1)
    paused = models.BooleanField(default=False)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        verbose_name = _("delivery queue")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class FlowControl(models.Model):
    """A flow-control key: at most ``parallelism`` of its messages in delivery and at most
    ``rate`` started per ``period`` seconds, across all workers. Set by the last publish that
    named the key with a value, unless pinned (then only the API's ``pin`` changes it)."""

    key = models.CharField(max_length=255, unique=True)
    parallelism = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(MAX_PARALLELISM)]
    )
    rate = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(MAX_RATE)]
    )
    period = models.FloatField(
        default=1.0,
        help_text=_("Seconds."),
        validators=[MinValueValidator(0.001), MaxValueValidator(MAX_FLOW_PERIOD)],
    )
    paused = models.BooleanField(default=False)
    pinned_parallelism = models.BooleanField(
        default=False, help_text=_("Publishes do not change the parallelism.")
    )
    pinned_rate = models.BooleanField(
        default=False, help_text=_("Publishes do not change the rate and period.")
    )
    rate_reset_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text=_("The rate counts the messages let through since then (resetRate)."),
    )
    updated_at = models.DateTimeField()

    class Meta:
        verbose_name = _("flow-control key")
        ordering = ["key"]

    def __str__(self) -> str:
        return self.key

    def rate_counted_since(self, now: datetime) -> datetime:
        """The start of what the rate counts: the last ``period`` (a sliding window), cut
        short by a reset within it."""
        since = now - timedelta(seconds=self.period)
        return max(since, self.rate_reset_at) if self.rate_reset_at else since


class SigningKeys(models.Model):
    """The keys outbound deliveries are signed with (one row). Receivers are given current and
    next; rotating makes next current and a new next, and keeps the old current (``previous``)
    valid for our own verifiers during DELIVERY_KEY_OVERLAP."""

    current = models.CharField(max_length=64)
    next = models.CharField(max_length=64)
    previous = models.CharField(max_length=64, blank=True)
    rotated_at = models.DateTimeField(null=True, blank=True)
    # The Standard Webhooks secret ("whsec_…") for messages published with signature="standard".
    standard_secret = models.CharField(max_length=100)

    class Meta:
        verbose_name = _("signing keys")
        verbose_name_plural = _("signing keys")
        permissions = [("rotate_signingkeys", "Can rotate the delivery signing keys")]

    def __str__(self) -> str:
        return f"signing keys (rotated {self.rotated_at or 'never'})"


class ApiToken(models.Model):
    """A bearer token for the QStash-compatible API. Only its SHA-256 is stored; the token is
    shown once, when it is made."""

    name = models.CharField(max_length=100)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    prefix = models.CharField(
        max_length=16, editable=False, help_text=_("The token's first characters, to recognise it.")
    )
    user = models.ForeignKey(
        django_setting("AUTH_USER_MODEL", "auth.User"),
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
    )
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField()
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("API token")
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"


class MessageSchedule(models.Model):
    """A QStash schedule (``POST /v2/schedules/{destination}`` with ``Upstash-Cron``): beat
    fires its django-celery-beat PeriodicTask, which publishes one message per slot."""

    id = models.CharField(primary_key=True, max_length=64, editable=False)  # scd_… or custom
    destination = models.TextField(help_text=_("A URL or a URL group's name."))
    cron = models.CharField(max_length=255, help_text=_("As given, CRON_TZ= prefix included."))
    # The message template: the publish() arguments, as JSON (body base64-encoded).
    template = models.JSONField(default=dict)
    queue = models.CharField(max_length=255, blank=True)
    periodic_task = models.OneToOneField(
        "django_celery_beat.PeriodicTask",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="bgjobs_message_schedule",
    )
    created_at = models.DateTimeField()
    last_fired_at = models.DateTimeField(null=True, blank=True)
    last_message = models.ForeignKey(
        Message, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        verbose_name = _("message schedule")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.id} {self.cron} → {self.destination}"

    @property
    def paused(self) -> bool:
        return not (self.periodic_task and self.periodic_task.enabled)


class WorkflowRun(models.Model):
    """An Upstash Workflow run (api/workflow_runs.py): its steps are the messages that name
    it, in the order they were published; the app's SDK ends it (DELETE
    /v2/workflows/runs/{id})."""

    id = models.CharField(primary_key=True, max_length=255, editable=False)
    url = models.TextField(help_text=_("The workflow's endpoint."))
    created_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    cancelled = models.BooleanField(default=False)
    result = models.TextField(blank=True, help_text=_("What the run returned, as the SDK sent it."))

    class Meta:
        verbose_name = _("workflow run")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.id


class WorkflowStep(models.Model):
    """A message published to a run (its trigger, a step, a sleep, a wait's answer), as the
    app's SDK reads it back: kept with the run, so that pruning the message's delivery job
    leaves the run whole."""

    run = models.ForeignKey(WorkflowRun, on_delete=models.CASCADE, related_name="steps")
    message_id = models.CharField(max_length=40)
    body = models.BinaryField(blank=True)
    call_type = models.CharField(max_length=20, default="step")
    created_at = models.DateTimeField()

    class Meta:
        verbose_name = _("workflow step")
        ordering = ["id"]  # the order they were published in

    def __str__(self) -> str:
        return f"{self.run_id} {self.message_id}"


class WorkflowWaiter(models.Model):
    """A run's ``context.waitForEvent``: the step to deliver when the event is notified, or
    when ``deadline`` passes (then to ``timeout_url``, with ``waitTimeout``)."""

    run = models.ForeignKey(WorkflowRun, on_delete=models.CASCADE, related_name="waiters")
    event_id = models.CharField(max_length=255, db_index=True)
    url = models.TextField()
    headers = models.JSONField(default=dict, help_text=_("The wait request's Upstash-* headers."))
    step = models.JSONField(default=dict)
    timeout_url = models.TextField(blank=True)
    timeout_headers = models.JSONField(default=dict)
    deadline = models.DateTimeField()
    created_at = models.DateTimeField()
    # Set once: notified (with the message that carries the event) or timed out.
    ended_at = models.DateTimeField(null=True, blank=True)
    message = models.ForeignKey(
        Message, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        verbose_name = _("workflow waiter")
        ordering = ["created_at"]
        indexes = [
            models.Index(
                fields=["deadline"],
                condition=Q(ended_at__isnull=True),
                name="bgjobs_dlv_waiter_open_idx",
            )
        ]

    def __str__(self) -> str:
        return f"{self.run_id} waits for {self.event_id}"
